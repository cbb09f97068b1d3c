"""The references for the text-layer figure of scripts/bench-documents.sh:
the PDF text libraries a Python user would pick for speed, reading the same
files on the same machine at the same moment as agentd, so that a busy
machine slows all alike. Text only: no character boxes, no reading order.

    python benches/python_pdf_text.py LIBRARY ROUNDS FILE...

LIBRARY is `pypdfium2` (PDFium, the library agentd's readers load: the
text page's whole range) or `pymupdf` (MuPDF: `page.get_text()`).
scripts/bench-documents.sh installs the pinned versions into a venv of
its own (target/bench-venv); they are benchmark references, not test or
run-time dependencies."""

from __future__ import annotations

import sys
import time
from importlib.metadata import version


def pypdfium2_pages(data: bytes) -> int:
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(data)
    pages = 0
    for page in document:
        text_page = page.get_textpage()
        text_page.get_text_range()
        text_page.close()
        page.close()
        pages += 1
    document.close()
    return pages


def pymupdf_pages(data: bytes) -> int:
    import pymupdf

    document = pymupdf.open(stream=data, filetype="pdf")
    pages = 0
    for page in document:
        page.get_text()
        pages += 1
    document.close()
    return pages


READERS = {"pypdfium2": pypdfium2_pages, "pymupdf": pymupdf_pages}


def pages_per_cpu_second(read, path: str, rounds: int) -> tuple[int, float, float]:
    """Pages, pages per CPU-second over all rounds, pages/s of the best round."""
    data = open(path, "rb").read()
    read(data)  # imports and first-use costs out of the timing
    pages = 0
    best = float("inf")
    started = time.process_time()
    for _ in range(rounds):
        wall = time.perf_counter()
        pages += read(data)
        best = min(best, time.perf_counter() - wall)
    cpu = time.process_time() - started
    per_round = pages // rounds
    return per_round, pages / cpu, per_round / best


def main() -> None:
    library, rounds = sys.argv[1], int(sys.argv[2])
    read = READERS[library]
    for path in sys.argv[3:]:
        pages, rate, wall = pages_per_cpu_second(read, path, rounds)
        print(f"{path}: {library} {version(library)}, {pages} pages, {rate:.0f} pages per CPU-second, "
              f"best round {wall:.0f} pages/s (text only)")


if __name__ == "__main__":
    main()
