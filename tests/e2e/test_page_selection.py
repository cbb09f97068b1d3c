"""Document Segmentation (PDFPageSelectionEngine): pages picked by
@PAGERANGE, by @TOC section (from the PDF outline, or from a contents page)
and by description (the fake model names the pages), united, sorted and
merged; the selected pages come back as a new PDF served as a job reference.
PDFs are made by pdf_factory.py."""

from __future__ import annotations

import pytest

import pdf_factory
from fake_openai import Reply
from helpers import assert_error, expect, field_errors, only_output, wait_for_job
from selection import (
    FAILURE,
    PDF,
    page_numbers_in,
    page_ranges,
    run_selection,
    selected_pdf_reference,
    selection_agent,
    start_selection,
)


@pytest.fixture
def agent(create_agent):
    return selection_agent(create_agent)


def pages_of(http, fake, create_agent, pdf: bytes) -> list[int]:
    """The report page numbers of a PDF, as agentd reads it to a model."""
    reader = create_agent(
        input_definitions=[{"key": "doc", "data_type": PDF, "description": "A document"}],
        engine_config={"model": "gpt-4.1-2025-04-14", "text": "${doc}", "instruction": "Summarize.",
                       "output_schema": {"type": "object", "properties": {"summary": {"type": "string"}}}},
    )
    fake.always(None)
    only_output(expect(http.post(f"/v1/agents/run/{reader['id']}/", files={"doc": ("s.pdf", pdf, PDF)}), 200))
    return page_numbers_in("\n".join(fake.completions[-1].message_texts("user")))


def download(http, reference: dict) -> bytes:
    resp = http.get(reference["url"])
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == PDF
    return resp.content


def test_page_ranges_are_united_sorted_and_merged_without_a_model(http, fake, agent, create_agent):
    pdf = pdf_factory.outlined_report_pdf()
    job, outputs = run_selection(http, agent, pdf, "@PAGERANGE: 6, 2; @pagerange: 4-5, 5")
    assert page_ranges(outputs) == [{"start": 2, "end": 2}, {"start": 4, "end": 6}]
    assert fake.completions == []
    reference = selected_pdf_reference(outputs)
    assert reference["url"].endswith(f"/v1/agents/jobs/{job}/references/{reference['resource_id']}/")
    assert reference["page_count"] == 4
    assert pages_of(http, fake, create_agent, download(http, reference)) == [2, 4, 5, 6]


@pytest.mark.parametrize(
    "title, expected",
    [
        ("Financial Statements", [{"start": 3, "end": 7}]),
        ("balance  sheet", [{"start": 4, "end": 5}]),
        ("Notes", [{"start": 8, "end": 10}]),
    ],
)
def test_a_toc_section_runs_to_the_next_entry_at_its_level(http, fake, agent, title, expected):
    _, outputs = run_selection(http, agent, pdf_factory.outlined_report_pdf(), f"@TOC: {title}")
    assert page_ranges(outputs) == expected
    assert fake.completions == []


def test_without_an_outline_the_contents_page_gives_the_sections(http, fake, agent, create_agent):
    pdf = pdf_factory.contents_page_report_pdf()
    _, outputs = run_selection(http, agent, pdf, "@TOC: Balance Sheet")
    assert page_ranges(outputs) == [{"start": 4, "end": 5}]
    assert pages_of(http, fake, create_agent, download(http, selected_pdf_reference(outputs))) == [4, 5]


def balance_sheet_pages(req) -> Reply:
    """Names the pages of the request whose text mentions the balance sheet."""
    text = "\n".join(req.message_texts("user"))
    pages = []
    for chunk in text.split("--- Page ")[1:]:
        number, _, body = chunk.partition(" ---")
        if "Balance sheet" in body:
            pages.append(int(number))
    return Reply.answer({"pages": pages}).build(req)


def test_described_pages_are_the_ones_the_model_names(http, fake, agent):
    fake.always(Reply(build=balance_sheet_pages))
    _, outputs = run_selection(http, agent, pdf_factory.outlined_report_pdf(), "the balance sheet; @PAGERANGE: 9")
    assert page_ranges(outputs) == [{"start": 4, "end": 5}, {"start": 9, "end": 9}]
    # Every page reached the model once, with its number, and the description with them.
    request = fake.only()
    assert "the balance sheet" in "\n".join(request.message_texts("system"))
    assert page_numbers_in("\n".join(request.message_texts("user"))) == list(range(1, 11))
    assert request.schema["properties"]["pages"]["type"] == "array"


def test_a_malformed_page_range_is_a_400_at_creation(http, create_agent):
    resp = http.post("/v1/agents/", json={
        "name": "bad-range",
        "engine_class_id": "PDFPageSelectionEngine",
        "input_definitions": [{"key": "pdf", "data_type": PDF, "description": "d"}],
        "engine_config": {"pdf_file": "${pdf}", "page_description": "@PAGERANGE: 5-3"},
    })
    body = assert_error(resp, 400, field="engine_config.page_description", mentions="ends before it starts")
    assert list(field_errors(body)) == ["engine_config.page_description"]


@pytest.mark.parametrize(
    "pages, mentions",
    [
        ("@PAGERANGE: 9-12", "beyond the last page"),
        ("@PAGERANGE: 0", "not a page number"),
        ("@TOC: Cash Flow", "no section titled 'Cash Flow'"),
    ],
)
def test_pages_the_document_lacks_fail_the_job_saying_why(http, fake, agent, pages, mentions):
    job = start_selection(http, agent, pdf_factory.outlined_report_pdf(), pages)
    status = wait_for_job(http, job)
    assert status["status"] == FAILURE, status
    assert mentions in status["error_message"], status
    assert fake.completions == []


def test_a_toc_section_of_a_document_without_contents_fails_the_job(http, fake, agent):
    pdf = pdf_factory.pages_pdf(["Plain page one.", "Plain page two."])
    status = wait_for_job(http, start_selection(http, agent, pdf, "@TOC: Summary"))
    assert status["status"] == FAILURE, status
    assert "no table of contents" in status["error_message"], status
