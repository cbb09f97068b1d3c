"""Document Segmentation (PDFPageSelectionEngine) agents and runs, shared by
test_page_selection.py and test_references.py."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx

from helpers import MODEL, expect, wait_for_job

PDF = "application/pdf"
SUCCESS = 3
FAILURE = 4

SELECTION_INPUTS = [
    {"key": "pdf", "data_type": PDF, "description": "The document"},
    {"key": "pages", "data_type": "text/plain", "description": "Which pages"},
]


def selection_agent(create_agent, client: httpx.Client | None = None, **config: Any) -> dict:
    engine_config = {"model": MODEL, "pdf_file": "${pdf}", "page_description": "${pages}"}
    engine_config.update(config)
    return create_agent(
        client,
        engine_class_id="PDFPageSelectionEngine",
        input_definitions=SELECTION_INPUTS,
        engine_config=engine_config,
    )


def start_selection(http: httpx.Client, agent: dict, pdf: bytes, pages: str) -> str:
    """Starts an async run; returns the job id."""
    resp = http.post(
        f"/v1/agents/run/{agent['id']}/async/",
        data={"pages": pages},
        files={"pdf": ("report.pdf", pdf, PDF)},
    )
    job_id = expect(resp, 200)
    uuid.UUID(job_id)
    return job_id


def run_selection(http: httpx.Client, agent: dict, pdf: bytes, pages: str) -> tuple[str, dict[str, dict]]:
    """Runs to success; returns the job id and its outputs by key."""
    job_id = start_selection(http, agent, pdf, pages)
    status = wait_for_job(http, job_id)
    assert status["status"] == SUCCESS, status
    result = expect(http.get(f"/v1/agents/jobs/{job_id}/result/"), 200)
    return job_id, {datum["key"]: datum for datum in result["outputs"]}


def page_ranges(outputs: dict[str, dict]) -> list[dict[str, int]]:
    datum = outputs["page_ranges"]
    assert datum["data_type"] == "application/json", datum
    return json.loads(datum["value"])


def selected_pdf_reference(outputs: dict[str, dict]) -> dict[str, Any]:
    """The reference of the selected pages' PDF: resource_id, url, file_name, page_count."""
    summary = json.loads(outputs["output"]["value"])
    reference = summary["selected_pages"]
    assert outputs["selected_pages"]["value"] == reference["url"]
    assert outputs["selected_pages"]["data_type"] == PDF
    return reference


def page_numbers_in(text: str) -> list[int]:
    """The 'Annual report page N' lines of a text, in order."""
    return [int(n) for n in re.findall(r"Annual report page (\d+)", text)]
