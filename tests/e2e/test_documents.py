"""Files read as text wherever an engine expects text: PDFs page by page in
layout reading order (PDFium), DOCX, XLSX, CSV, HTML, EML; the errors of
encrypted, truncated, oversized and unreadable files. PDFs are made with
reportlab (pdf_factory.py); the fake provider records what reached the model."""

from __future__ import annotations

import io
import zipfile
from typing import Iterator

import pytest

import pdf_factory
from file_server import FileServer
from helpers import assert_error, expect, extraction_config, only_output, png_bytes, unique, wait_for_job

FAILURE = 4
SUCCESS = 3

PDF = "application/pdf"


def doc_agent(create_agent, data_type: str = PDF, text: str = "${doc}") -> dict:
    """An agent whose text field is the file input `doc`."""
    return create_agent(
        input_definitions=[{"key": "doc", "data_type": data_type, "description": "A document"}],
        engine_config=extraction_config(text=text),
    )


def run_with_file(http, agent: dict, name: str, data: bytes, mime: str):
    return http.post(f"/v1/agents/run/{agent['id']}/", files={"doc": (name, data, mime)})


def user_text(fake) -> str:
    """The user message of the one model call."""
    return "\n".join(fake.only().message_texts("user"))


def read_through_model(http, fake, create_agent, name: str, data: bytes, mime: str, data_type: str | None = None) -> str:
    agent = doc_agent(create_agent, data_type or mime)
    only_output(expect(run_with_file(http, agent, name, data, mime), 200))
    return user_text(fake)


# ---------------------------------------------------------------------------
# PDFs
# ---------------------------------------------------------------------------


def test_each_page_reaches_the_model_in_order_with_its_number(http, fake, create_agent):
    pages = [f"Page body {n} {unique()}.\nSecond line of page {n}." for n in range(1, 5)]
    text = read_through_model(http, fake, create_agent, "four.pdf", pdf_factory.pages_pdf(pages), PDF)
    positions = []
    for n, body in enumerate(pages, start=1):
        marker = f"--- Page {n} ---\n{body}"
        assert marker in text, f"page {n} missing or out of place in {text!r}"
        positions.append(text.index(marker))
    assert positions == sorted(positions), text
    # The file id never stands in for the text.
    assert "--- Page 1 ---" in text and len(text) > 4 * 30


def test_two_columns_written_row_by_row_read_column_by_column(http, fake, create_agent):
    text = read_through_model(http, fake, create_agent, "columns.pdf", pdf_factory.two_column_pdf(), PDF)
    left, right = pdf_factory.two_column_lines()
    order = [text.index(line) for line in left + right]
    assert order == sorted(order), text
    assert text.index("A Two Column Report") < order[0]


def test_table_rows_stay_together(http, fake, create_agent):
    text = read_through_model(http, fake, create_agent, "table.pdf", pdf_factory.table_pdf(), PDF)
    for row in pdf_factory.TABLE_ROWS:
        assert "\t".join(row) in text, text


def test_a_password_protected_pdf_is_a_400(http, fake, create_agent):
    agent = doc_agent(create_agent)
    resp = run_with_file(http, agent, "secret.pdf", pdf_factory.encrypted_pdf(), PDF)
    body = assert_error(resp, 400, field="doc", mentions="password-protected")
    assert "doc" in body["detail"]
    assert fake.completions == []


def test_a_truncated_pdf_is_a_400_with_the_reason(http, fake, create_agent):
    agent = doc_agent(create_agent)
    resp = run_with_file(http, agent, "cut.pdf", pdf_factory.truncated_pdf(), PDF)
    assert_error(resp, 400, field="doc", mentions="corrupt")
    assert fake.completions == []


def test_bytes_that_are_not_a_pdf_are_a_400(http, fake, create_agent):
    agent = doc_agent(create_agent)
    resp = run_with_file(http, agent, "fake.pdf", b"just some words, no PDF here", PDF)
    assert_error(resp, 400, field="doc", mentions="pdf")
    assert fake.completions == []


def test_the_server_keeps_serving_after_bad_pdfs(http, fake, create_agent):
    agent = doc_agent(create_agent)
    for bad in (pdf_factory.truncated_pdf(), pdf_factory.encrypted_pdf()):
        assert run_with_file(http, agent, "bad.pdf", bad, PDF).status_code == 400
    body = f"Still alive {unique()}."
    only_output(expect(run_with_file(http, agent, "ok.pdf", pdf_factory.pages_pdf([body]), PDF), 200))
    assert body in user_text(fake)


def test_a_pdf_over_the_page_limit_is_a_400(start_server, fake):
    srv = start_server({"AGENTD_MAX_PDF_PAGES": "2"})
    import httpx

    with httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {srv.api_key}"}, timeout=60) as http:
        agent = expect(http.post("/v1/agents/", json={
            "name": unique("pages-"),
            "engine_class_id": "MultimodalExtractionEngine",
            "input_definitions": [{"key": "doc", "data_type": PDF, "description": "A document"}],
            "engine_config": extraction_config(text="${doc}"),
        }), 201)
        three = pdf_factory.pages_pdf(["one", "two", "three"])
        assert_error(run_with_file(http, agent, "three.pdf", three, PDF), 400, field="doc", mentions="pages")
        only_output(expect(run_with_file(http, agent, "two.pdf", pdf_factory.pages_pdf(["one", "two"]), PDF), 200))


@pytest.fixture(scope="module")
def files() -> Iterator[FileServer]:
    server = FileServer()
    yield server
    server.close()


def test_a_password_protected_pdf_by_url_fails_the_job_with_the_reason(http, fake, create_agent, files):
    agent = doc_agent(create_agent)
    files.files["/secret.pdf"] = (pdf_factory.encrypted_pdf(), PDF)
    job = expect(http.post(f"/v1/agents/run/{agent['id']}/async/", json={"doc": files.url("/secret.pdf")}), 200)
    status = wait_for_job(http, job)
    assert status["status"] == FAILURE, status
    assert "password-protected" in status["error_message"], status
    assert "doc" in status["error_message"]
    assert fake.completions == []


# ---------------------------------------------------------------------------
# Other document types
# ---------------------------------------------------------------------------


def docx_bytes(paragraphs: list[str], table: list[list[str]]) -> bytes:
    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    body = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
    rows = "".join(
        "<w:tr>" + "".join(f"<w:tc><w:p><w:r><w:t>{c}</w:t></w:r></w:p></w:tc>" for c in row) + "</w:tr>"
        for row in table
    )
    document = f'<?xml version="1.0" encoding="UTF-8"?><w:document {w}><w:body>{body}<w:tbl>{rows}</w:tbl></w:body></w:document>'
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                   '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>')
        z.writestr("word/document.xml", document)
    return buffer.getvalue()


DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def test_docx_paragraphs_and_table_rows_reach_the_model(http, fake, create_agent):
    first = f"Contract {unique()} between A &amp; B."
    data = docx_bytes([first, "Second paragraph."], [["Party", "Role"], ["Ada", "Seller"]])
    text = read_through_model(http, fake, create_agent, "contract.docx", data, DOCX)
    assert first.replace("&amp;", "&") + "\nSecond paragraph.\n" in text, text
    assert "Party\tRole\nAda\tSeller" in text, text


def test_csv_reaches_the_model_as_its_text(http, fake, create_agent):
    csv = f"name,amount\nwidget {unique()},12.50\n"
    text = read_through_model(http, fake, create_agent, "rows.csv", csv.encode(), "text/csv")
    assert csv.strip() in text


@pytest.mark.parametrize("mime", ["text/html", "application/xhtml+xml"])
def test_html_reaches_the_model_as_markdown(http, fake, create_agent, mime):
    title = unique("Title ")
    html = f"<html><body><h1>{title}</h1><p>Some <b>bold</b> words.</p><ul><li>one</li></ul></body></html>"
    text = read_through_model(http, fake, create_agent, "page.html", html.encode(), mime)
    assert f"# {title}" in text, text
    assert "**bold**" in text and "<p>" not in text, text


def test_eml_reaches_the_model_with_its_headers_and_body(http, fake, create_agent):
    subject = unique("Order ")
    eml = (
        "From: Ada <ada@example.com>\r\nTo: shop@example.com\r\n"
        f"Subject: {subject}\r\nDate: Mon, 2 Sep 2024 10:00:00 +0000\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nPlease send 3 widgets.\r\n"
    )
    text = read_through_model(http, fake, create_agent, "mail.eml", eml.encode(), "message/rfc822")
    assert f"Subject: {subject}" in text and "From: Ada <ada@example.com>" in text, text
    assert "Please send 3 widgets." in text


def test_a_file_with_a_generic_type_is_read_by_its_content(http, fake, create_agent):
    body = f"Generic {unique()}."
    agent = doc_agent(create_agent, "application/octet-stream")
    only_output(expect(run_with_file(http, agent, "x.bin", pdf_factory.pages_pdf([body]), "application/octet-stream"), 200))
    assert f"--- Page 1 ---\n{body}" in user_text(fake)


def test_text_around_a_file_placeholder_is_kept(http, fake, create_agent):
    agent = doc_agent(create_agent, "text/markdown", text="Document follows.\n${doc}\nEnd.")
    only_output(expect(run_with_file(http, agent, "a.md", b"# Heading\nbody", "text/markdown"), 200))
    assert "Document follows.\n# Heading\nbody\nEnd." in user_text(fake)


def test_an_image_used_as_text_fails_the_job_naming_the_field(http, fake, create_agent):
    agent = doc_agent(create_agent, "image/png")
    job = expect(http.post(f"/v1/agents/run/{agent['id']}/async/", files={"doc": ("p.png", png_bytes(), "image/png")}), 200)
    status = wait_for_job(http, job)
    assert status["status"] == FAILURE, status
    message = status["error_message"]
    assert "image" in message and "'text'" in message and "'doc'" in message, message
    assert fake.completions == []


def test_a_type_that_cannot_be_read_is_a_400_naming_the_input_and_type(http, fake, create_agent):
    agent = doc_agent(create_agent, "application/zip")
    resp = run_with_file(http, agent, "a.zip", b"PK\x03\x04rest", "application/zip")
    body = assert_error(resp, 400, field="doc", mentions="application/zip")
    assert "'doc'" in body["detail"], body
    assert fake.completions == []


def test_an_image_in_an_image_field_is_still_an_image(http, fake, create_agent):
    agent = create_agent(
        input_definitions=[{"key": "text", "data_type": "text/plain", "description": "t"},
                           {"key": "photo", "data_type": "image/png", "description": "p"}],
        engine_config=extraction_config(images="${photo}"),
    )
    resp = http.post(f"/v1/agents/run/{agent['id']}/", data={"text": "t " + unique()},
                     files={"photo": ("p.png", png_bytes(), "image/png")})
    only_output(expect(resp, 200))
    parts = fake.only().content_parts()
    assert any(p.get("type") == "image_url" for p in parts), parts


def xlsx_bytes(sheet: str, rows: list[list[str]]) -> bytes:
    """A minimal workbook with one sheet of inline strings."""
    def cell(ref: str, value: str) -> str:
        return f'<c r="{ref}" t="inlineStr"><is><t>{value}</t></is></c>'

    sheet_rows = "".join(
        f'<row r="{r}">' + "".join(cell(f"{chr(65 + c)}{r}", v) for c, v in enumerate(row)) + "</row>"
        for r, row in enumerate(rows, start=1)
    )
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    rel_ns = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
    parts = {
        "[Content_Types].xml": '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>',
        "_rels/.rels": '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<?xml version="1.0"?><workbook {ns} {rel_ns}><sheets><sheet name="{sheet}" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>',
        "xl/worksheets/sheet1.xml": f'<?xml version="1.0"?><worksheet {ns}><sheetData>{sheet_rows}</sheetData></worksheet>',
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in parts.items():
            z.writestr(name, text)
    return buffer.getvalue()


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def test_xlsx_sheets_reach_the_model_row_by_row(http, fake, create_agent):
    sku = unique("SKU-")
    data = xlsx_bytes("Stock", [["sku", "count"], [sku, "7"]])
    text = read_through_model(http, fake, create_agent, "stock.xlsx", data, XLSX)
    assert f"--- Sheet Stock ---\nsku\tcount\n{sku}\t7" in text, text


# ---------------------------------------------------------------------------
# PDFExtractionEngine (Document Insights)
# ---------------------------------------------------------------------------

import re  # noqa: E402

from fake_openai import Reply  # noqa: E402
from helpers import MODEL, assert_error as _assert_error  # noqa: E402

ITEMS_SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "items": {"type": "array", "items": {"type": "string"}}},
    "required": ["title", "items"],
    "additionalProperties": False,
}


def insights_agent(create_agent, **config) -> dict:
    engine_config = {
        "pdf_files": "${pdf}",
        "instructions": "List every item.",
        "model": MODEL,
        "output_schema": ITEMS_SCHEMA,
    }
    engine_config.update(config)
    return create_agent(
        engine_class_id="PDFExtractionEngine",
        input_definitions=[{"key": "pdf", "data_type": PDF, "description": "A catalogue"}],
        engine_config=engine_config,
    )


def items_from_pages(req) -> Reply:
    """Answers with the items on the pages the request carries; the title only
    from the batch holding page 1, and one item every batch repeats."""
    text = "\n".join(req.message_texts("user"))
    items = re.findall(r"Item \d{3}", text) + ["Shared item"]
    title = "Catalogue" if "--- Page 1 ---" in text else ""
    return Reply.answer({"title": title, "items": items}).build(req)


def test_insights_reads_a_pdf_in_batches_and_merges_them_in_page_order(http, fake, create_agent):
    agent = insights_agent(create_agent, batch_size=10)
    pages = [f"Item {n:03d}\nDescription of item {n}." for n in range(1, 26)]
    fake.always(Reply(build=items_from_pages))
    resp = http.post(f"/v1/agents/run/{agent['id']}/", files={"pdf": ("catalogue.pdf", pdf_factory.pages_pdf(pages), PDF)})
    data = expect(resp, 200)
    # The extracted value, then the page images sent with the text (saved as references).
    assert [d["key"] for d in data] == ["output", "page_images"], data
    merged = __import__("json").loads(only_output(data[:1])["value"])
    assert merged["title"] == "Catalogue"
    # Page order; the item every batch repeats is kept once, where it first appeared.
    items = [f"Item {n:03d}" for n in range(1, 26)]
    assert merged["items"] == items[:10] + ["Shared item"] + items[10:]
    # Three model calls of 10, 10 and 5 pages, each page once, in order, with its number.
    seen = []
    for req in fake.completions:
        text = "\n".join(req.message_texts("user"))
        numbers = [int(n) for n in re.findall(r"--- Page (\d+) ---", text)]
        assert numbers == sorted(numbers) and numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        for n in numbers:
            assert f"--- Page {n} ---\nItem {n:03d}\nDescription of item {n}." in text
        seen.append(numbers)
    assert sorted(len(s) for s in seen) == [5, 10, 10]
    assert sorted(n for s in seen for n in s) == list(range(1, 26))
    assert all(req.json.get("temperature") == 0 for req in fake.completions)


def test_insights_is_listed_with_its_default_config(http):
    types = expect(http.get("/v1/agents/types/"), 200)
    assert "PDFExtractionEngine" in __import__("json").dumps(types)


@pytest.mark.parametrize("config, field", [
    ({"convert_to_images": "sometimes"}, "convert_to_images"),
    ({"use_source": 3}, "use_source"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 51}, "batch_size"),
])
def test_insights_refuses_options_it_cannot_honour(http, config, field):
    body = {
        "name": unique("insights-"),
        "engine_class_id": "PDFExtractionEngine",
        "input_definitions": [{"key": "pdf", "data_type": PDF, "description": "A PDF"}],
        "engine_config": {"pdf_files": "${pdf}", "instructions": "x", "model": MODEL, "output_schema": ITEMS_SCHEMA, **config},
    }
    _assert_error(http.post("/v1/agents/", json=body), 400, field=f"engine_config.{field}")


def test_insights_fails_an_encrypted_pdf_given_by_url(http, fake, create_agent, files):
    agent = insights_agent(create_agent)
    files.files["/locked.pdf"] = (pdf_factory.encrypted_pdf(), PDF)
    job = expect(http.post(f"/v1/agents/run/{agent['id']}/async/", json={"pdf": files.url("/locked.pdf")}), 200)
    status = wait_for_job(http, job)
    assert status["status"] == FAILURE and "password-protected" in status["error_message"], status
    assert fake.completions == []
