"""PDFs made with reportlab for the document tests.

Run as a script to (re)write the small fixtures the Rust unit tests read:
    .venv/bin/python tests/e2e/pdf_factory.py tests/fixtures
"""

import io
import sys
from pathlib import Path

from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

FONT = ("Helvetica", 10)


def _canvas(buffer, **kwargs):
    # invariant=True keeps the bytes identical from run to run.
    return canvas.Canvas(buffer, pagesize=A4, invariant=True, **kwargs)


def pages_pdf(page_texts):
    """One page per text, each line of a text on its own line."""
    buffer = io.BytesIO()
    c = _canvas(buffer)
    for text in page_texts:
        c.setFont(*FONT)
        y = 780
        for line in text.split("\n"):
            c.drawString(72, y, line)
            y -= 14
        c.showPage()
    c.save()
    return buffer.getvalue()


def two_column_lines(rows=6):
    left = [f"Left column sentence {i} about apples and pears." for i in range(rows)]
    right = [f"Right column sentence {i} about rivers and hills." for i in range(rows)]
    return left, right


def two_column_pdf(rows=6):
    """A title across the page, then two columns written row by row
    (left line, right line, ...), the order that defeats stored-order readers."""
    left, right = two_column_lines(rows)
    buffer = io.BytesIO()
    c = _canvas(buffer)
    c.setFont("Helvetica-Bold", 14)
    c.drawString(72, 790, "A Two Column Report")
    c.setFont(*FONT)
    y = 750
    for l, r in zip(left, right):
        c.drawString(72, y, l)
        c.drawString(320, y, r)
        y -= 14
    c.showPage()
    c.save()
    return buffer.getvalue()


TABLE_ROWS = [
    ("Item", "Quantity", "Unit price"),
    ("Bolt M6", "120", "0.15"),
    ("Nut M6", "240", "0.05"),
    ("Washer", "500", "0.01"),
]


def table_pdf():
    """A ruled table whose cells are written column by column."""
    buffer = io.BytesIO()
    c = _canvas(buffer)
    c.setFont(*FONT)
    c.drawString(72, 790, "Invoice 2024-117")
    xs = [72, 220, 340]
    top = 760
    for col, x in enumerate(xs):
        for row, cells in enumerate(TABLE_ROWS):
            c.drawString(x + 4, top - 18 * row - 13, cells[col])
    for row in range(len(TABLE_ROWS) + 1):
        c.line(72, top - 18 * row, 460, top - 18 * row)
    for x in xs + [460]:
        c.line(x, top, x, top - 18 * len(TABLE_ROWS))
    c.showPage()
    c.save()
    return buffer.getvalue()


def encrypted_pdf():
    from reportlab.lib import pdfencrypt

    buffer = io.BytesIO()
    enc = pdfencrypt.StandardEncryption("secret-user", ownerPassword="secret-owner", strength=128)
    c = _canvas(buffer, encrypt=enc)
    c.setFont(*FONT)
    c.drawString(72, 780, "Confidential figures")
    c.showPage()
    c.save()
    return buffer.getvalue()


PAGE_HEIGHT = A4[1]


def scanned_page_image(lines, width=1240, height=1754):
    """A 150 DPI A4 'scan': black text on white, as pixels only."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=40)
    y = 150
    for line in lines:
        draw.text((120, y), line, fill=0, font=font)
        y += 70
    return image


def with_scanned_page(text_pages, scan_lines, scan_at):
    """Text pages with one image-only page (no text layer) inserted at index
    `scan_at`: what a scanner leaves in a document."""
    from reportlab.lib.utils import ImageReader

    buffer = io.BytesIO()
    c = _canvas(buffer)
    pages = list(text_pages)
    pages.insert(scan_at, None)
    for text in pages:
        if text is None:
            image = scanned_page_image(scan_lines)
            c.drawImage(ImageReader(image), 0, 0, width=A4[0], height=A4[1])
        else:
            c.setFont(*FONT)
            y = 780
            for line in text.split("\n"):
                c.drawString(72, y, line)
                y -= 14
        c.showPage()
    c.save()
    return buffer.getvalue()


def catalogue_pdf(pages, items_per_page=3):
    """A catalogue: each page lists `items_per_page` items numbered across the
    document ("Item 0001 costs 12.50")."""
    texts = []
    for page in range(pages):
        first = page * items_per_page + 1
        texts.append("\n".join(
            f"Item {n:04d} costs {n % 97 + 0.5:.2f}" for n in range(first, first + items_per_page)
        ))
    return pages_pdf(texts)


def truncated_pdf():
    whole = pages_pdf(["A page that will be cut short."] * 3)
    return whole[: len(whole) // 2]


# A ten-page annual report: its sections (title, first page, outline level).
REPORT_SECTIONS = [
    ("Introduction", 2, 0),
    ("Financial Statements", 3, 0),
    ("Balance Sheet", 4, 1),
    ("Income Statement", 6, 1),
    ("Notes", 8, 0),
]
REPORT_PAGE_COUNT = 10
# Pages 4 and 5 hold the balance sheet; no other page mentions it.
BALANCE_SHEET_PAGES = (4, 5)


def report_page_texts(contents_page: bool = False) -> list[str]:
    """Page n starts with 'Annual report page n'; page 1 is the cover, or a
    contents page listing the sections with their page numbers."""
    texts = []
    for n in range(1, REPORT_PAGE_COUNT + 1):
        if n == 1 and contents_page:
            lines = ["Contents"] + [f"{title} ........ {first}" for title, first, _ in REPORT_SECTIONS]
        elif n in BALANCE_SHEET_PAGES:
            lines = [f"Annual report page {n}", "Balance sheet: total assets and total liabilities."]
        else:
            lines = [f"Annual report page {n}", "General remarks about the year."]
        texts.append("\n".join(lines))
    return texts


def outlined_report_pdf() -> bytes:
    """The report with its sections in the PDF outline (bookmarks)."""
    buffer = io.BytesIO()
    c = _canvas(buffer)
    starts = {first: (title, level) for title, first, level in REPORT_SECTIONS}
    for n, text in enumerate(report_page_texts(), start=1):
        key = f"page-{n}"
        c.bookmarkPage(key)
        if n in starts:
            title, level = starts[n]
            c.addOutlineEntry(title, key, level=level)
        c.setFont(*FONT)
        y = 780
        for line in text.split("\n"):
            c.drawString(72, y, line)
            y -= 14
        c.showPage()
    c.save()
    return buffer.getvalue()


def contents_page_report_pdf() -> bytes:
    """The report without an outline: page 1 is a printed contents page."""
    return pages_pdf(report_page_texts(contents_page=True))


FIXTURES = {
    "outlined-report.pdf": outlined_report_pdf,
    "two-column.pdf": two_column_pdf,
    "table.pdf": table_pdf,
    "encrypted.pdf": encrypted_pdf,
    "truncated.pdf": truncated_pdf,
    "three-pages.pdf": lambda: pages_pdf([f"This is page {n}.\nSecond line of page {n}." for n in (1, 2, 3)]),
}


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, make in FIXTURES.items():
        (out / name).write_bytes(make())
        print(out / name)
