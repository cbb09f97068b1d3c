"""Job references and artifacts as Roe serves them: the stored bytes with
their Content-Type, HTTP ranges (206/416), download=true for an attachment,
the SDK's download_reference and retrieve_artifact, other organizations'
404s, and delete-data removing them with counts. The job that saves them is
a Document Segmentation run (test_page_selection.py)."""

from __future__ import annotations

import hashlib

import pytest

import pdf_factory
from helpers import assert_error, expect
from selection import page_ranges, run_selection, selected_pdf_reference, selection_agent


@pytest.fixture
def saved(http, create_agent):
    return save_selection(http, create_agent)


def save_selection(http, create_agent) -> dict:
    """A finished job with a reference (the selected pages) and an artifact."""
    agent = selection_agent(create_agent)
    job, outputs = run_selection(http, agent, pdf_factory.outlined_report_pdf(), "@PAGERANGE: 2-4")
    reference = selected_pdf_reference(outputs)
    artifact_key = __import__("json").loads(outputs["output"]["value"])["artifact_key"]
    path = f"/v1/agents/jobs/{job}/references/{reference['resource_id']}/"
    whole = http.get(path)
    assert whole.status_code == 200, whole.text
    return {"agent": agent, "job": job, "outputs": outputs, "reference": reference, "artifact_key": artifact_key,
            "path": path, "bytes": whole.content, "headers": whole.headers}


def test_a_reference_is_served_with_its_type_and_length(saved):
    data, headers = saved["bytes"], saved["headers"]
    assert data.startswith(b"%PDF-")
    assert headers["content-type"] == "application/pdf"
    assert int(headers["content-length"]) == len(data)
    assert headers["accept-ranges"] == "bytes"
    assert headers["content-disposition"].startswith("inline;")


def test_the_sdk_fetches_the_saved_reference_and_artifact_unmodified(client, saved):
    job = saved["job"]
    data = client.agents.jobs.download_reference(job, saved["reference"]["resource_id"])
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(saved["bytes"]).hexdigest()
    attached = client.agents.jobs.download_reference(job, saved["reference"]["resource_id"], as_attachment=True)
    assert attached == saved["bytes"]

    artifact = client.agents.jobs.retrieve_artifact(job, saved["artifact_key"])
    details = artifact.result
    assert details["page_ranges"] == page_ranges(saved["outputs"]) == [{"start": 2, "end": 4}]
    assert details["selected_pages"]["resource_id"] == saved["reference"]["resource_id"]
    assert details["parts"] == [{"type": "page_range", "ranges": [{"start": 2, "end": 4}]}]
    assert saved["artifact_key"] == f"agent-job-{job}/page_selection.json"

    # The job's result, as the SDK reads it, names the reference.
    result = client.agents.jobs.retrieve_result(job)
    values = {datum.key: datum.value for datum in result.outputs}
    assert values["selected_pages"] == saved["reference"]["url"]


@pytest.mark.parametrize(
    "header, part",
    [
        ("bytes=0-9", slice(0, 10)),
        ("bytes=10-", slice(10, None)),
        ("bytes=-7", slice(-7, None)),
    ],
)
def test_a_single_range_is_a_206_with_its_content_range(http, saved, header, part):
    data = saved["bytes"]
    resp = http.get(saved["path"], headers={"Range": header})
    assert resp.status_code == 206, resp.text
    assert resp.content == data[part]
    first = range(len(data))[part][0]
    last = range(len(data))[part][-1]
    assert resp.headers["content-range"] == f"bytes {first}-{last}/{len(data)}"
    assert resp.headers["content-type"] == "application/pdf"


def test_a_range_past_the_end_is_a_416(http, saved):
    size = len(saved["bytes"])
    resp = http.get(saved["path"], headers={"Range": f"bytes={size}-"})
    assert_error(resp, 416, mentions="range")
    assert resp.headers["content-range"] == f"bytes */{size}"


def test_download_true_makes_an_attachment_with_the_file_name(http, saved):
    resp = http.get(saved["path"], params={"download": "true"})
    assert resp.status_code == 200
    assert resp.content == saved["bytes"]
    disposition = resp.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert 'filename="report (selected pages).pdf"' in disposition
    assert_error(http.get(saved["path"], params={"download": "maybe"}), 400, field="download")


def test_unknown_references_and_artifacts_are_404s_and_the_key_is_required(http, saved):
    job = saved["job"]
    assert_error(http.get(f"/v1/agents/jobs/{job}/references/{__import__('uuid').uuid4()}/"), 404)
    assert_error(http.get(f"/v1/agents/jobs/{job}/references/not-an-id/"), 404)
    # An artifact is not a reference.
    artifacts = f"/v1/agents/jobs/{job}/artifacts/result/"
    assert_error(http.get(artifacts, params={"artifact_key": "agent-job-x/none.json"}), 404)
    assert_error(http.get(artifacts), 400, field="artifact_key")


def test_another_organization_sees_neither(fresh_org, saved):
    other = fresh_org.http
    assert_error(other.get(saved["path"]), 404)
    assert_error(other.get(f"/v1/agents/jobs/{saved['job']}/artifacts/result/",
                           params={"artifact_key": saved["artifact_key"]}), 404)


def test_delete_data_removes_references_and_artifacts_and_counts_them(http, server, saved):
    files_dir = server.workdir / "files"
    before = {p.name for p in files_dir.iterdir()}
    body = expect(http.post(f"/v1/agents/jobs/{saved['job']}/delete-data/"), 200)
    assert body["status"] == "success", body
    # The uploaded PDF; the selected pages' PDF and the details artifact.
    assert (body["deleted_count"], body["failed_count"]) == (1, 0), body
    assert (body["artifacts_deleted_count"], body["artifacts_failed_count"]) == (2, 0), body
    assert body["errors"] is None
    after = {p.name for p in files_dir.iterdir()}
    assert after <= before and len(before - after) == 3
    assert_error(http.get(saved["path"]), 404)
    assert_error(http.get(f"/v1/agents/jobs/{saved['job']}/artifacts/result/",
                          params={"artifact_key": saved["artifact_key"]}), 404)


def test_deleting_the_agent_removes_what_its_jobs_saved(http, server, create_agent):
    files_dir = server.workdir / "files"
    before = {p.name for p in files_dir.iterdir()}
    saved = save_selection(http, create_agent)
    added = {p.name for p in files_dir.iterdir()} - before
    # The uploaded PDF, the selected pages' PDF and the details artifact.
    assert len(added) == 3
    expect(http.delete(f"/v1/agents/{saved['agent']['id']}/"), 204)
    assert not added & {p.name for p in files_dir.iterdir()}
    assert_error(http.get(saved["path"]), 404)
