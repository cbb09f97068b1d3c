"""The jobs half of the API over raw HTTP: async endpoints, batch validation, bulk status and
result, list filters, the sync timeout, idempotency, credits."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from fake_openai import Reply, echo_value, message_text
from helpers import (
    CACHED,
    CANCELLED,
    FAILURE,
    PENDING,
    STARTED,
    SUCCESS,
    agent_body,
    assert_error,
    cost_of,
    describe,
    event_codes,
    expect,
    field_errors,
    list_jobs,
    parse_credits,
    unique,
    wait_for_job,
    wait_for_jobs,
)

TWO_INPUTS = [
    {"key": "text", "data_type": "text/plain", "description": "Text"},
    {"key": "lang", "data_type": "text/plain", "description": "Language"},
]


@pytest.fixture
def agent(create_agent):
    return create_agent()


def async_run(http: httpx.Client, agent_id: str, body: dict, headers: dict | None = None,
              path: str | None = None) -> str:
    resp = http.post(path or f"/v1/agents/run/{agent_id}/async/", json=body, headers=headers or {})
    job_id = expect(resp, 200)
    assert isinstance(job_id, str), describe(resp)
    uuid.UUID(job_id)
    return job_id


def result_of(http: httpx.Client, job_id: str) -> dict:
    return expect(http.get(f"/v1/agents/jobs/{job_id}/result/"), 200)


def parses_to(text: str, expected) -> bool:
    try:
        return json.loads(text) == expected
    except ValueError:
        return False


def value_of(result: dict) -> dict:
    outputs = result["outputs"]
    assert isinstance(outputs, list) and len(outputs) == 1, result
    return json.loads(outputs[0]["value"])


# ---------------------------------------------------------------------------
# Async endpoints
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["flat", "wrapped", "multipart"])
def test_async_returns_job_id_string(http, fake, agent, shape):
    text = f"async {shape} " + unique()
    url = f"/v1/agents/run/{agent['id']}/async/"
    if shape == "flat":
        resp = http.post(url, json={"text": text, "metadata": {"m": shape}})
    elif shape == "wrapped":
        resp = http.post(url, json={"inputs": {"text": text}, "metadata": {"m": shape}})
    else:
        resp = http.post(url, files={"text": (None, text), "metadata": (None, json.dumps({"m": shape}))})
    job_id = expect(resp, 200)
    assert isinstance(job_id, str), describe(resp)
    wait_for_job(http, job_id)
    res = result_of(http, job_id)
    assert res["status"] == SUCCESS
    assert res["metadata"] == {"m": shape}
    assert value_of(res)["title"] == echo_value(text)
    assert res["agent_id"] == agent["id"]
    assert res["agent_version_id"] == agent["current_version_id"]
    assert res["input_tokens"] == 100 and res["output_tokens"] == 20
    assert res["cost"] == pytest.approx(cost_of(100, 20))
    assert res["error_message"] is None
    assert [i["value"] for i in res["inputs"] if i["key"] == "text"] == [text]


def test_version_async_endpoint(http, fake, create_agent):
    agent = create_agent(engine_config={"model": "gpt-4.1-2025-04-14", "text": "${text}",
                                        "instruction": "First instruction.",
                                        "output_schema": {"type": "object",
                                                          "properties": {"x": {"type": "string"}}}})
    v1 = agent["current_version_id"]
    expect(http.post(f"/v1/agents/{agent['id']}/versions/", json={
        "input_definitions": agent_body()["input_definitions"],
        "engine_config": {"model": "gpt-4.1-2025-04-14", "text": "${text}", "instruction": "Second instruction.",
                          "output_schema": {"type": "object", "properties": {"x": {"type": "string"}}}},
    }), 201)
    job = async_run(http, agent["id"], {"text": "ver " + unique()},
                    path=f"/v1/agents/run/{agent['id']}/versions/{v1}/async/")
    wait_for_job(http, job)
    res = result_of(http, job)
    assert res["status"] == SUCCESS and res["agent_version_id"] == v1
    assert "First instruction." in fake.only().all_text()


def test_result_is_404_until_final_and_status_shape(http, fake, agent):
    fake.always(Reply.default(delay=30))
    job = async_run(http, agent["id"], {"text": "pending " + unique()})
    fake.wait_for_requests(1)
    st = expect(http.get(f"/v1/agents/jobs/{job}/status/"), 200)
    assert st["status"] == STARTED
    assert isinstance(st["timestamp"], (int, float)) and abs(st["timestamp"] - time.time()) < 120
    assert_error(http.get(f"/v1/agents/jobs/{job}/result/"), 404)
    expect(http.post(f"/v1/agents/jobs/{job}/cancel/"), 204)
    wait_for_job(http, job, timeout=3)
    res = result_of(http, job)
    assert res["status"] == CANCELLED and res["outputs"] == []


def test_status_and_result_of_unknown_or_malformed_id(http):
    for path in ("status", "result"):
        assert_error(http.get(f"/v1/agents/jobs/{uuid.uuid4()}/{path}/"), 404)
        assert_error(http.get(f"/v1/agents/jobs/not-a-uuid/{path}/"), 404)
    assert_error(http.post(f"/v1/agents/jobs/{uuid.uuid4()}/cancel/"), 404)
    assert_error(http.post(f"/v1/agents/jobs/{uuid.uuid4()}/delete-data/"), 404)


def test_jobs_of_another_organization_are_invisible(http, fresh_org, fake, agent):
    job = async_run(http, agent["id"], {"text": "mine " + unique()})
    wait_for_job(http, job)
    other = fresh_org.http
    assert_error(other.get(f"/v1/agents/jobs/{job}/status/"), 404)
    assert_error(other.get(f"/v1/agents/jobs/{job}/result/"), 404)
    assert_error(other.post(f"/v1/agents/jobs/{job}/cancel/"), 404)
    assert_error(other.post(f"/v1/agents/jobs/{job}/delete-data/"), 404)
    got = expect(other.post("/v1/agents/jobs/statuses/", json={"job_ids": [job]}), 200)
    assert got[0]["status"] is None and got[0]["error_message"] == "Job not found."
    got = expect(other.post("/v1/agents/jobs/results/", json={"job_ids": [job]}), 200)
    assert got[0]["status"] is None and got[0]["result"] is None
    assert expect(http.get(f"/v1/agents/jobs/{job}/status/"), 200)["status"] == SUCCESS


def test_cancel_pending_job_never_runs(start_server, fake):
    """With one worker busy, a queued job is PENDING; cancelled, it never reaches the model."""
    srv = start_server({"AGENTD_WORKERS": "1", "AGENTD_JOB_POLL_MS": "100"})
    with httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {srv.api_key}"}, timeout=30) as c:
        agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
        fake.always(Reply.default(delay=30))
        busy = async_run(c, agent["id"], {"text": "busy " + unique()})
        (first,) = fake.wait_for_requests(1)
        queued = async_run(c, agent["id"], {"text": "queued " + unique()})
        time.sleep(0.3)
        assert expect(c.get(f"/v1/agents/jobs/{queued}/status/"), 200)["status"] == PENDING
        expect(c.post(f"/v1/agents/jobs/{queued}/cancel/"), 204)
        assert expect(c.get(f"/v1/agents/jobs/{queued}/status/"), 200)["status"] == CANCELLED
        expect(c.post(f"/v1/agents/jobs/{busy}/cancel/"), 204)
        wait_for_job(c, busy, timeout=3)
        assert first.disconnected.wait(3)
        time.sleep(0.5)  # the worker is free now: it must not pick up the cancelled job
        assert len(fake.completions) == 1
        (job,) = list_jobs(c, agent["id"], search=queued)["results"]
        assert job["id"] == queued
        assert event_codes(job) == [PENDING, CANCELLED]
        assert job["attempts"] == 0


# ---------------------------------------------------------------------------
# async/many
# ---------------------------------------------------------------------------


def test_async_many_order_and_metadata(http, fake, agent):
    tag = unique()
    texts = [f"many-{i}-{tag}" for i in range(5)]
    items = [{"text": t, "metadata": {"ignored": "yes"}} for t in texts]
    resp = http.post(f"/v1/agents/run/{agent['id']}/async/many/", json={"inputs": items, "metadata": {"batch": tag}})
    ids = expect(resp, 200)
    assert isinstance(ids, list) and len(ids) == 5 and len(set(ids)) == 5, describe(resp)
    wait_for_jobs(http, ids)
    results = expect(http.post("/v1/agents/jobs/results/", json={"job_ids": ids}), 200)
    assert [r["id"] for r in results] == ids
    for text, r in zip(texts, results):
        assert r["status"] == SUCCESS
        assert json.loads(r["result"][0]["value"])["title"] == echo_value(text)
        assert [i["value"] for i in r["inputs"] if i["key"] == "text"] == [text]
        assert r["cost"] == pytest.approx(cost_of(100, 20))
    listed = list_jobs(http, agent["id"], metadata=json.dumps({"batch": tag}))
    assert listed["count"] == 5
    for job in listed["results"]:
        assert job["metadata"] == {"batch": tag}


def test_async_many_invalid_item_creates_nothing(http, fake, create_agent):
    agent = create_agent(input_definitions=TWO_INPUTS,
                         engine_config={"model": "gpt-4.1-2025-04-14", "text": "${text} in ${lang}",
                                        "instruction": "Go.", "output_schema": {"type": "object",
                                                                               "properties": {"x": {"type": "string"}}}})
    url = f"/v1/agents/run/{agent['id']}/async/many/"
    good = {"text": "ok", "lang": "en"}
    body = assert_error(http.post(url, json={"inputs": [good, {"text": "no lang"}, good, {"text": "x", "lang": "y",
                                                                                          "bogus": "z"}]}),
                        400, field="inputs[1].lang")
    assert any(k.startswith("inputs[3]") for k in field_errors(body)), body
    assert not any(k.startswith("inputs[0]") or k.startswith("inputs[2]") for k in field_errors(body)), body
    assert_error(http.post(url, json={"inputs": [good, "not an object"]}), 400, field="inputs[1]")
    assert_error(http.post(url, json={"inputs": []}), 400, field="inputs")
    assert_error(http.post(url, json={"inputs": {"text": "x"}}), 400, field="inputs")
    assert_error(http.post(url, json={}), 400, field="inputs")
    assert_error(http.post(url, json={"inputs": [good] * 1001}), 400, field="inputs")
    time.sleep(0.2)
    assert list_jobs(http, agent["id"])["count"] == 0
    assert fake.completions == []
    ids = expect(http.post(url, json={"inputs": [{"text": f"t{i}", "lang": "en"} for i in range(1000)]}), 200)
    assert len(ids) == 1000 and len(set(ids)) == 1000
    # Cancel them (most are still PENDING): cancel-all reports what it stopped.
    stopped = expect(http.post(f"/v1/agents/{agent['id']}/jobs/cancel-all/"), 200)
    assert stopped["task_id"] is None and isinstance(stopped["note"], str)
    assert 0 < stopped["targeted_count"] <= 1000, stopped
    statuses = wait_for_jobs(http, ids, timeout=10, interval=0.3)
    codes = [s["status"] for s in statuses]
    assert set(codes) <= {SUCCESS, CANCELLED}, set(codes)
    assert codes.count(CANCELLED) == stopped["targeted_count"]
    time.sleep(0.5)
    assert len(fake.completions) <= 1000 - stopped["targeted_count"] + 16, "cancelled jobs still called the model"


# ---------------------------------------------------------------------------
# Bulk statuses and results
# ---------------------------------------------------------------------------


def test_bulk_statuses_and_results(http, fake, agent):
    ids = [async_run(http, agent["id"], {"text": f"bulk-{i} " + unique()}) for i in range(3)]
    wait_for_jobs(http, ids)
    unknown = str(uuid.uuid4())
    asked = [ids[2], unknown, ids[0], ids[1]]
    statuses = expect(http.post("/v1/agents/jobs/statuses/", json={"job_ids": asked}), 200)
    assert [s["id"] for s in statuses] == asked
    for s in (statuses[0], statuses[2], statuses[3]):
        assert s["status"] == SUCCESS
        assert s["created_at"] and s["last_updated_at"] and isinstance(s["timestamp"], (int, float))
    assert statuses[1]["status"] is None and statuses[1]["error_message"] == "Job not found."
    results = expect(http.post("/v1/agents/jobs/results/", json={"job_ids": asked}), 200)
    assert [r["id"] for r in results] == asked
    assert results[1]["status"] is None and results[1]["result"] is None and results[1]["agent_id"] is None
    assert results[0]["agent_id"] == agent["id"] and results[0]["status"] == SUCCESS

    for path in ("statuses", "results"):
        url = f"/v1/agents/jobs/{path}/"
        assert_error(http.post(url, json={"job_ids": []}), 400, field="job_ids")
        assert_error(http.post(url, json={}), 400, field="job_ids")
        assert_error(http.post(url, json={"job_ids": "x"}), 400, field="job_ids")
        assert_error(http.post(url, json={"job_ids": [str(uuid.uuid4()) for _ in range(1001)]}), 400,
                     field="job_ids")
        many = expect(http.post(url, json={"job_ids": [ids[0]] + [str(uuid.uuid4()) for _ in range(999)]}), 200)
        assert len(many) == 1000 and many[0]["status"] == SUCCESS


# ---------------------------------------------------------------------------
# List
# ---------------------------------------------------------------------------


def test_list_jobs_shape_and_bad_filters(http, fake, agent):
    job = async_run(http, agent["id"], {"text": "listed " + unique(), "metadata": {"n": 1, "flag": True}})
    wait_for_job(http, job)
    page = list_jobs(http, agent["id"])
    assert page["count"] == 1 and page["next"] is None and page["previous"] is None
    (item,) = page["results"]
    for key in ("id", "agent_version_name", "status_events", "status_code", "created_at", "last_updated_at",
                "duration_ms", "job_inputs", "metadata", "ui_fields", "evaluation", "feedback_review", "creator"):
        assert key in item, key
    assert item["id"] == job and item["status_code"] == SUCCESS
    assert event_codes(item) == [PENDING, STARTED, SUCCESS]
    assert item["attempts"] == 1
    assert isinstance(item["duration_ms"], int) and 0 <= item["duration_ms"] < 60_000
    # Roe's ListAgentJob.metadata maps to strings: other values are shown as JSON text there,
    # and kept as given in the job's result.
    assert item["metadata"] == {"n": "1", "flag": "true"}
    assert result_of(http, job)["metadata"] == {"n": 1, "flag": True}
    # metadata filter compares each key for equality, also numbers and booleans.
    assert list_jobs(http, agent["id"], metadata=json.dumps({"n": 1}))["count"] == 1
    assert list_jobs(http, agent["id"], metadata=json.dumps({"flag": True}))["count"] == 1
    assert list_jobs(http, agent["id"], metadata=json.dumps({"n": 2}))["count"] == 0
    assert list_jobs(http, agent["id"], ordering="-id")["count"] == 1
    assert list_jobs(http, agent["id"], ordering="last_updated_at")["count"] == 1
    assert list_jobs(http, agent["id"], ordering="-status_code")["count"] == 1

    url = f"/v1/agents/{agent['id']}/jobs/"
    assert_error(http.get(url, params={"status_code": "9"}), 400, field="status_code")
    assert_error(http.get(url, params={"status_code": "done"}), 400, field="status_code")
    assert_error(http.get(url, params={"ordering": "bogus"}), 400, field="ordering")
    assert_error(http.get(url, params={"metadata": "not json"}), 400, field="metadata")
    assert_error(http.get(url, params={"metadata": "[1]"}), 400, field="metadata")
    assert_error(http.get(url, params={"created_from": "yesterday"}), 400, field="created_from")
    assert_error(http.get(f"/v1/agents/{uuid.uuid4()}/jobs/"), 404)


# ---------------------------------------------------------------------------
# Idempotency, cache, credits
# ---------------------------------------------------------------------------


def test_idempotency_key_header(http, fake, agent):
    key = "http-idem-" + unique()
    body = {"text": "idem " + unique()}
    j1 = async_run(http, agent["id"], body, headers={"Idempotency-Key": key})
    j2 = async_run(http, agent["id"], body, headers={"Idempotency-Key": key})
    assert j1 == j2, "same Idempotency-Key, agent and request must give the same job"
    # The same key with another request is refused, naming the key.
    assert_error(http.post(f"/v1/agents/run/{agent['id']}/async/", json={"text": "other text " + unique()},
                           headers={"Idempotency-Key": key}), 422, mentions=key)
    v = agent["current_version_id"]
    j3 = async_run(http, agent["id"], body, headers={"Idempotency-Key": key},
                   path=f"/v1/agents/run/{agent['id']}/versions/{v}/async/")
    assert j3 == j1
    j4 = async_run(http, agent["id"], {"text": "no key " + unique()})
    assert j4 != j1
    wait_for_jobs(http, [j1, j4])
    assert len(fake.completions) == 2
    assert list_jobs(http, agent["id"])["count"] == 2
    assert_error(http.post(f"/v1/agents/run/{agent['id']}/async/", json=body,
                           headers={"Idempotency-Key": "k" * 256}), 400)


def test_skip_cache_header_on_sync_runs(http, fake, agent):
    body = {"text": "sync cache " + unique()}
    url = f"/v1/agents/run/{agent['id']}/"
    first = expect(http.post(url, json=body), 200)
    second = expect(http.post(url, json=body), 200)
    assert second[0]["value"] == first[0]["value"] and second[0]["cost"] == 0
    assert len(fake.completions) == 1
    third = expect(http.post(url, json=body, headers={"X-Skip-Cache": "true"}), 200)
    assert third[0]["cost"] == pytest.approx(cost_of(100, 20))
    assert len(fake.completions) == 2
    codes = sorted(j["status_code"] for j in list_jobs(http, agent["id"])["results"])
    assert codes == [SUCCESS, SUCCESS, CACHED]


def test_credits_are_deducted_when_async_jobs_end(fresh_org, admin, fake):
    http = fresh_org.http
    admin("credits", "set", "--org", fresh_org.id, "10")
    agent = expect(http.post("/v1/agents/", json=agent_body()), 201)
    fake.always(Reply.default(prompt_tokens=1000, completion_tokens=500, delay=1.0))
    text = "pay " + unique()
    job = async_run(http, agent["id"], {"text": text})
    fake.wait_for_requests(1)
    running = parse_credits(admin("credits", "show", "--org", fresh_org.id))
    assert running.get("spent") == pytest.approx(0, abs=1e-9), "credits were taken before the job ended"
    wait_for_job(http, job)
    cost = cost_of(1000, 500)
    shown = parse_credits(admin("credits", "show", "--org", fresh_org.id))
    assert shown.get("spent") == pytest.approx(cost, abs=1e-6), shown
    assert shown.get("balance") == pytest.approx(10 - cost, abs=1e-6), shown
    # A cache hit costs nothing.
    hit = async_run(http, agent["id"], {"text": text})
    assert wait_for_job(http, hit)["status"] == CACHED
    shown = parse_credits(admin("credits", "show", "--org", fresh_org.id))
    assert shown.get("spent") == pytest.approx(cost, abs=1e-6), shown


def test_schema_invalid_twice_fails_the_job(http, fake, agent):
    bad = {"title": 1, "sentiment": "happy", "score": "x", "tags": "no"}
    fake.enqueue(Reply.answer(bad), Reply.answer(bad))
    job = async_run(http, agent["id"], {"text": "bad answers " + unique()})
    st = wait_for_job(http, job)
    assert st["status"] == FAILURE
    assert st.get("error_message"), st
    first, second = fake.completions
    added = second.messages[len(first.messages):]
    assert any(m["role"] == "assistant" and parses_to(message_text(m), bad) for m in added), (
        f"the retry does not show the rejected answer: {added}")
    feedback = " ".join(message_text(m) for m in added if m["role"] == "user").lower()
    assert any(w in feedback for w in ("sentiment", "score", "title", "tags")), (
        f"the retry does not carry the validation error: {added}")
    res = result_of(http, job)
    assert res["status"] == FAILURE and res["outputs"] == [] and res["error_message"] == st["error_message"]


# ---------------------------------------------------------------------------
# Sync timeout
# ---------------------------------------------------------------------------


def test_sync_run_past_the_timeout_answers_504_and_continues(start_server, fake):
    srv = start_server({"AGENTD_SYNC_TIMEOUT_SECS": "1"})
    with httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {srv.api_key}"}, timeout=30) as c:
        agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
        fake.enqueue(Reply.default(delay=3))
        text = "slow sync " + unique()
        t0 = time.monotonic()
        resp = c.post(f"/v1/agents/run/{agent['id']}/", json={"text": text})
        elapsed = time.monotonic() - t0
        body = assert_error(resp, 504)
        job_id = resp.headers.get("x-job-id")
        assert job_id, f"no X-Job-Id header: {dict(resp.headers)}"
        assert body.get("job_id") == job_id, body
        assert elapsed < 2.9, f"the 504 came after {elapsed:.1f} s with a 1 s sync timeout"
        assert expect(c.get(f"/v1/agents/jobs/{job_id}/status/"), 200)["status"] in (PENDING, STARTED)
        st = wait_for_job(c, job_id, timeout=15)
        assert st["status"] == SUCCESS
        res = expect(c.get(f"/v1/agents/jobs/{job_id}/result/"), 200)
        assert json.loads(res["outputs"][0]["value"])["title"] == echo_value(text)
        assert len(fake.completions) == 1
        # A fast run on the same server is unaffected.
        out = expect(c.post(f"/v1/agents/run/{agent['id']}/", json={"text": "fast " + unique()}), 200)
        assert len(out) == 1

