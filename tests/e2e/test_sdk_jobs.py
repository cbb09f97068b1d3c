"""Jobs through the official roe-ai SDK: async runs, batches, the jobs API, cancellation,
data deletion, idempotency and the result cache.

The fake's default responder echoes the start of the user text into every string field
(``echo_value``), so each result can be matched to the input it belongs to.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone

import pytest
import roe
from roe import FileUpload
from roe.exceptions import BadRequestError, NotFoundError

from fake_openai import Reply, echo_value
from helpers import (
    CACHED,
    CANCELLED,
    ENGINE,
    FAILURE,
    PENDING,
    STARTED,
    SUCCESS,
    TEXT_INPUT,
    cost_of,
    extraction_config,
    png_bytes,
    unique,
)


def make_agent(client: roe.RoeClient, instruction: str = "Summarize the text.", **config):
    return client.agents.create(
        name=unique("jobs-agent-"),
        engine_class_id=ENGINE,
        input_definitions=[TEXT_INPUT],
        engine_config=extraction_config(instruction, **config),
    )


def expected_answer(text: str) -> dict:
    """What the fake's default responder answers for this user text (SUMMARY_SCHEMA)."""
    v = echo_value(text)
    return {"title": v, "sentiment": "positive", "score": 1, "tags": [v]}


def output_value(outputs) -> dict:
    assert isinstance(outputs, list) and len(outputs) == 1, outputs
    d = outputs[0]
    assert d.key == "output" and d.data_type == "application/json", d
    return json.loads(d.value)


def wait_status(client: roe.RoeClient, job_id: str, statuses, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        st = client.agents.jobs.retrieve_status(job_id)
        if st.status in statuses:
            return st
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} has status {st.status} after {timeout} s, wanted {statuses}")
        time.sleep(0.05)


def input_value(inputs, key: str = "text"):
    for item in inputs:
        item = item if isinstance(item, dict) else item.to_dict()
        if item.get("key") == key:
            return item.get("value")
    raise AssertionError(f"no input {key!r} in {inputs}")


# ---------------------------------------------------------------------------
# Async runs
# ---------------------------------------------------------------------------


def test_run_async_and_wait(client, fake):
    agent = make_agent(client)
    text = "async-one " + unique()
    job = client.agents.run(str(agent.id), metadata={"source": "sdk-async"}, text=text)
    uuid.UUID(job.id)
    result = job.wait(interval=0.2, timeout=30)
    assert result["status"] == SUCCESS
    assert str(result.agent_id) == str(agent.id)
    assert str(result.agent_version_id) == str(agent.current_version_id)
    assert output_value(result.outputs) == expected_answer(text)
    assert result.outputs[0].cost == pytest.approx(cost_of(100, 20))
    assert result.input_tokens == 100 and result.output_tokens == 20
    assert input_value(result.inputs) == text
    assert result["metadata"] == {"source": "sdk-async"}
    assert result["cost"] == pytest.approx(cost_of(100, 20))
    req = fake.only()
    assert any(text in t for t in req.message_texts("user"))

    st = client.agents.jobs.retrieve_status(job.id)
    assert st.status == SUCCESS
    assert abs(st.timestamp - time.time()) < 120, st.timestamp


def test_run_version_runs_that_version(client, fake):
    """A new version becomes current; run_version runs the older one it names."""
    agent = make_agent(client, instruction="Instruction of version one.")
    v1 = str(agent.current_version_id)
    v2 = client.agents.versions.create(
        str(agent.id),
        input_definitions=[TEXT_INPUT],
        engine_config=extraction_config("Instruction of version two."),
        version_name="v2-" + unique(),
    )
    assert str(v2.id) != v1
    text = "versioned " + unique()
    job = client.agents.run_version(str(agent.id), v1, text=text)
    result = job.wait(interval=0.2, timeout=30)
    assert result["status"] == SUCCESS
    assert str(result.agent_version_id) == v1
    assert output_value(result.outputs) == expected_answer(text)
    all_text = fake.only().all_text()
    assert "Instruction of version one." in all_text
    assert "Instruction of version two." not in all_text

    current = client.agents.run(str(agent.id), text="current " + unique()).wait(interval=0.2, timeout=30)
    assert str(current.agent_version_id) == str(v2.id)
    assert "Instruction of version two." in fake.last().all_text()


def test_run_many_over_a_hundred_inputs(client, fake):
    agent = make_agent(client)
    tag = unique()
    texts = [f"batch-item-{i:03d}-{tag}" for i in range(120)]
    batch = client.agents.run_many(str(agent.id), batch_inputs=[{"text": t} for t in texts])
    ids = batch.job_ids
    assert len(ids) == len(texts) and len(set(ids)) == len(ids)
    results = batch.wait(interval=0.5, timeout=90)
    assert len(results) == len(texts)
    for job_id, text, item in zip(ids, texts, results):
        assert item is not None, f"no result for job {job_id}"
        assert str(item.id) == job_id
        assert item.status == SUCCESS, (job_id, item.status, item["error_message"])
        assert str(item.agent_id) == str(agent.id)
        assert output_value(item.result) == expected_answer(text), f"job {job_id} ({text}) got another input's answer"
        assert input_value(item.inputs) == text
    # One model call per input, each with its own text.
    seen = sorted(t for r in fake.completions for t in r.message_texts("user"))
    assert seen == sorted(texts)


def test_retrieve_status_many_and_result_many_with_unknown_id(client, fake):
    agent = make_agent(client)
    texts = ["many-a " + unique(), "many-b " + unique()]
    ids = client.agents.run_many(str(agent.id), batch_inputs=[{"text": t} for t in texts]).job_ids
    client.agents.run_many(str(agent.id), batch_inputs=[{"text": t} for t in texts])  # noise: cached
    unknown = str(uuid.uuid4())
    asked = [ids[1], unknown, ids[0]]

    deadline = time.monotonic() + 30
    while True:
        statuses = client.agents.jobs.retrieve_status_many(asked)
        assert [str(s.id) for s in statuses] == asked
        if all(s.status == SUCCESS for s in (statuses[0], statuses[2])):
            break
        assert time.monotonic() < deadline, statuses
        time.sleep(0.1)
    missing = statuses[1]
    assert missing.status is None
    assert missing.error_message == "Job not found."
    assert statuses[0].created_at is not None and statuses[0].last_updated_at is not None

    results = client.agents.jobs.retrieve_result_many(asked)
    assert [str(r.id) for r in results] == asked
    assert output_value(results[0].result) == expected_answer(texts[1])
    assert output_value(results[2].result) == expected_answer(texts[0])
    assert results[1].status is None
    assert results[1].agent_id is None and results[1].result is None
    assert results[1]["error_message"] == "Job not found."
    for r in (results[0], results[2]):
        assert r.cost == pytest.approx(cost_of(100, 20))
        assert r.input_tokens == 100 and r.output_tokens == 20


def test_result_of_unknown_job_is_404(client):
    with pytest.raises(NotFoundError):
        client.agents.jobs.retrieve_status(str(uuid.uuid4()))
    with pytest.raises(NotFoundError):
        client.agents.jobs.retrieve_result(str(uuid.uuid4()))


# ---------------------------------------------------------------------------
# Listing
# ---------------------------------------------------------------------------


def test_jobs_list_filters_and_ordering(client, fake):
    agent = make_agent(client)
    aid = str(agent.id)
    tag = unique()
    # Four sequential jobs with distinct costs; the third one fails.
    fake.enqueue(
        Reply.answer({"title": "a", "sentiment": "neutral", "score": 1, "tags": []}, 100, 10),
        Reply.answer({"title": "b", "sentiment": "neutral", "score": 2, "tags": []}, 300, 10),
        Reply.error(400, "Invalid schema for response_format", "invalid_request_error"),
        Reply.answer({"title": "d", "sentiment": "neutral", "score": 4, "tags": []}, 200, 10),
    )
    specs = [("a", f"first-{tag}"), ("a", f"second-{tag}"), ("b", f"third-{tag}"), ("b", f"fourth-{tag}")]
    ids = []
    between = None
    for i, (batch, text) in enumerate(specs):
        if i == 2:
            time.sleep(0.05)
            between = datetime.now(timezone.utc)
            time.sleep(0.05)
        job = client.agents.run(aid, metadata={"batch": batch, "tag": tag}, text=text)
        res = job.wait(interval=0.1, timeout=30)
        assert res["status"] == (FAILURE if i == 2 else SUCCESS), res["error_message"]
        ids.append(job.id)

    everything = client.agents.jobs.list(aid, page_size=50)
    assert everything.count == 4
    # Default order: newest first.
    assert [str(j.id) for j in everything.results] == ids[::-1]

    ok = client.agents.jobs.list(aid, status_code="3")
    assert sorted(str(j.id) for j in ok.results) == sorted([ids[0], ids[1], ids[3]])
    failed = client.agents.jobs.list(aid, status_code="4")
    assert [str(j.id) for j in failed.results] == [ids[2]]
    assert client.agents.jobs.list(aid, status_code="3,4").count == 4
    assert client.agents.jobs.list(aid, status_code="5").count == 0

    meta = client.agents.jobs.list(aid, metadata=json.dumps({"batch": "a"}))
    assert sorted(str(j.id) for j in meta.results) == sorted(ids[:2])
    assert client.agents.jobs.list(aid, metadata=json.dumps({"batch": "b", "tag": tag})).count == 2
    assert client.agents.jobs.list(aid, metadata=json.dumps({"batch": "zzz"})).count == 0

    later = client.agents.jobs.list(aid, created_from=between.isoformat())
    assert sorted(str(j.id) for j in later.results) == sorted(ids[2:])
    earlier = client.agents.jobs.list(aid, created_to=between.isoformat())
    assert sorted(str(j.id) for j in earlier.results) == sorted(ids[:2])

    found = client.agents.jobs.list(aid, search=f"third-{tag}")
    assert [str(j.id) for j in found.results] == [ids[2]]

    oldest_first = client.agents.jobs.list(aid, ordering="created_at")
    assert [str(j.id) for j in oldest_first.results] == ids
    by_cost = client.agents.jobs.list(aid, status_code="3", ordering="cost")
    assert [str(j.id) for j in by_cost.results] == [ids[0], ids[3], ids[1]]
    by_cost_desc = client.agents.jobs.list(aid, status_code="3", ordering="-cost")
    assert [str(j.id) for j in by_cost_desc.results] == [ids[1], ids[3], ids[0]]

    page = client.agents.jobs.list(aid, page_size=3, ordering="created_at")
    assert page.count == 4 and len(page.results) == 3 and isinstance(page.next_, str)
    page2 = client.agents.jobs.list(aid, page=2, page_size=3, ordering="created_at")
    assert [str(j.id) for j in page2.results] == [ids[3]]

    by_id = {str(j.id): j for j in everything.results}
    done = by_id[ids[0]]
    assert [e.status_code for e in done.status_events] == [PENDING, STARTED, SUCCESS]
    assert isinstance(done.duration_ms, int) and done.duration_ms >= 0
    assert done["attempts"] == 1
    assert done.metadata.to_dict() == {"batch": "a", "tag": tag}
    bad = by_id[ids[2]]
    assert bad.status_code == FAILURE
    assert [e.status_code for e in bad.status_events] == [PENDING, STARTED, FAILURE]
    assert isinstance(bad.status_events[-1].error_message, str) and bad.status_events[-1].error_message


def test_jobs_list_version_name_filter(client, fake):
    agent = make_agent(client)
    aid = str(agent.id)
    v1 = str(agent.current_version_id)
    name = "release-" + unique()
    client.agents.versions.create(aid, input_definitions=[TEXT_INPUT],
                                  engine_config=extraction_config("V2."), version_name=name)
    j2 = client.agents.run(aid, text="current " + unique())  # the new version is current
    j2.wait(interval=0.1, timeout=30)
    client.agents.run_version(aid, v1, text="old " + unique()).wait(interval=0.1, timeout=30)
    got = client.agents.jobs.list(aid, version_name=name)
    assert [str(j.id) for j in got.results] == [j2.id]
    assert got.results[0].agent_version_name == name
    assert client.agents.jobs.list(aid).count == 2


# ---------------------------------------------------------------------------
# Cancellation
# ---------------------------------------------------------------------------


def test_cancel_running_job_drops_the_model_call(client, fake):
    agent = make_agent(client)
    fake.always(Reply.default(delay=30))
    job = client.agents.run(str(agent.id), text="slow " + unique())
    (req,) = fake.wait_for_requests(1, timeout=10)
    assert client.agents.jobs.retrieve_status(job.id).status == STARTED

    t0 = time.monotonic()
    client.agents.jobs.cancel(job.id)
    wait_status(client, job.id, (CANCELLED,), timeout=3)
    assert time.monotonic() - t0 <= 3.0
    assert req.disconnected.wait(3), "the server did not drop the model call of the cancelled job"
    assert not req.answered

    time.sleep(0.5)
    st = client.agents.jobs.retrieve_status(job.id)
    assert st.status == CANCELLED, "a cancelled job changed status afterwards"
    result = job.wait(interval=0.1, timeout=5)
    assert result["status"] == CANCELLED
    assert result.outputs == []
    assert len(fake.completions) == 1, "the cancelled job was run again"


def test_cancel_all(client, fake):
    agent = make_agent(client)
    aid = str(agent.id)
    done_text = "done " + unique()
    finished = client.agents.run(aid, text=done_text)
    finished.wait(interval=0.1, timeout=30)

    fake.always(Reply.default(delay=30))
    jobs = [client.agents.run(aid, text=f"running-{i} " + unique()) for i in range(3)]
    reqs = fake.wait_for_requests(4, timeout=10)[1:]

    t0 = time.monotonic()
    resp = client.agents.jobs.cancel_all(aid)
    assert resp.task_id is None
    assert resp.targeted_count == 3
    assert isinstance(resp.note, str) and resp.note
    for job in jobs:
        wait_status(client, job.id, (CANCELLED,), timeout=3)
    assert time.monotonic() - t0 <= 3.5
    for r in reqs:
        assert r.disconnected.wait(3), "a cancelled job's model call was not dropped"
    assert client.agents.jobs.retrieve_status(finished.id).status == SUCCESS
    assert client.agents.jobs.cancel_all(aid).targeted_count == 0


def test_cancel_unknown_job_is_404(client):
    with pytest.raises(NotFoundError):
        client.agents.jobs.cancel(str(uuid.uuid4()))


# ---------------------------------------------------------------------------
# Data deletion
# ---------------------------------------------------------------------------


def test_delete_data(client, fake):
    agent = make_agent(client)
    text = "secret data " + unique()
    job = client.agents.run(str(agent.id), metadata={"k": "v"}, text=text)
    before = job.wait(interval=0.1, timeout=30)
    assert before["status"] == SUCCESS

    resp = client.agents.jobs.delete_data(job.id)
    assert resp.status == "success"
    assert resp.failed_count == 0 and resp.deleted_count >= 0
    assert resp.blob_sanitized is True
    assert resp.artifacts_deleted_count == 0 and resp.artifacts_failed_count == 0
    assert resp.errors is None or resp.errors == []

    after = client.agents.jobs.retrieve_result(job.id)
    assert after.outputs == []
    assert input_value(after.inputs) in ("", None)
    assert text not in json.dumps(after.to_dict())
    assert after["status"] == SUCCESS
    assert after["cost"] == pytest.approx(before["cost"])
    assert client.agents.jobs.retrieve_status(job.id).status == SUCCESS


def test_delete_data_of_running_job_is_refused(client, fake):
    agent = make_agent(client)
    fake.always(Reply.default(delay=30))
    job = client.agents.run(str(agent.id), text="still running " + unique())
    fake.wait_for_requests(1)
    with pytest.raises(BadRequestError):
        client.agents.jobs.delete_data(job.id)
    client.agents.jobs.cancel(job.id)
    wait_status(client, job.id, (CANCELLED,), timeout=3)
    assert client.agents.jobs.delete_data(job.id).status == "success"


# ---------------------------------------------------------------------------
# Idempotency and the result cache
# ---------------------------------------------------------------------------


def test_idempotency_key(client, fake):
    agent = make_agent(client)
    other = make_agent(client)
    key = "idem-" + unique()
    text = "idempotent " + unique()
    j1 = client.agents.run(str(agent.id), idempotency_key=key, text=text)
    j2 = client.agents.run(str(agent.id), idempotency_key=key, text=text)
    assert j1.id == j2.id
    j1.wait(interval=0.1, timeout=30)
    j3 = client.agents.run(str(agent.id), idempotency_key=key, text=text)
    assert j3.id == j1.id
    assert len(fake.completions) == 1
    assert client.agents.jobs.list(str(agent.id)).count == 1

    # Another key, or the same key on another agent: new jobs.
    j4 = client.agents.run(str(agent.id), idempotency_key="idem-" + unique(), text="fresh " + unique())
    assert j4.id != j1.id
    j5 = client.agents.run(str(other.id), idempotency_key=key, text=text)
    assert j5.id not in (j1.id, j4.id)
    # run_version honours it too.
    v = str(agent.current_version_id)
    vkey = "idem-v-" + unique()
    vtext = "ver " + unique()
    jv1 = client.agents.run_version(str(agent.id), v, idempotency_key=vkey, text=vtext)
    jv2 = client.agents.run_version(str(agent.id), v, idempotency_key=vkey, text=vtext)
    assert jv1.id == jv2.id
    for j in (j4, j5, jv1):
        assert j.wait(interval=0.1, timeout=30)["status"] == SUCCESS
    assert len(fake.completions) == 4


def test_cache_hit(client, fake):
    agent = make_agent(client)
    text = "cache me " + unique()
    fake.enqueue(Reply.answer({"title": "cached", "sentiment": "neutral", "score": 5, "tags": ["c"]}, 500, 50))
    first = client.agents.run(str(agent.id), text=text)
    r1 = first.wait(interval=0.1, timeout=30)
    assert r1["status"] == SUCCESS
    assert r1.outputs[0].cost == pytest.approx(cost_of(500, 50))

    second = client.agents.run(str(agent.id), text=text)
    assert second.id != first.id
    r2 = second.wait(interval=0.1, timeout=30)
    assert r2["status"] == CACHED
    assert output_value(r2.outputs) == output_value(r1.outputs)
    assert r2.outputs[0].cost == 0
    assert r2["cost"] == 0
    assert len(fake.completions) == 1, "a cache hit called the model"

    # A sync run with the same inputs is a hit too; a different text is not.
    out = client.agents.run_sync(str(agent.id), text=text)
    assert output_value(out) == output_value(r1.outputs) and out[0].cost == 0
    assert len(fake.completions) == 1
    client.agents.run_sync(str(agent.id), text=text + " changed")
    assert len(fake.completions) == 2

    cached_jobs = client.agents.jobs.list(str(agent.id), status_code="6")
    assert cached_jobs.count == 2
    assert [e.status_code for e in cached_jobs.results[0].status_events][-1] == CACHED


def test_cache_hit_with_different_metadata_keeps_its_own_metadata(client, fake):
    agent = make_agent(client)
    text = "meta cache " + unique()
    client.agents.run(str(agent.id), metadata={"run": "first"}, text=text).wait(interval=0.1, timeout=30)
    job = client.agents.run(str(agent.id), metadata={"run": "second"}, text=text)
    res = job.wait(interval=0.1, timeout=30)
    assert res["status"] == CACHED
    assert res["metadata"] == {"run": "second"}
    assert len(fake.completions) == 1


def test_file_inputs_are_cached_by_content(client, fake, tmp_path):
    defs = [TEXT_INPUT, {"key": "photo", "data_type": "image/png", "description": "A photo"}]
    agent = client.agents.create(name=unique("file-cache-"), engine_class_id=ENGINE, input_definitions=defs,
                                 engine_config=extraction_config("Describe.", images="${photo}"))
    a, b, c = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    a.write_bytes(png_bytes(2, 2))
    b.write_bytes(png_bytes(2, 2))  # same bytes, another name
    c.write_bytes(png_bytes(3, 3))
    text = "photo " + unique()

    def run(path, name):
        job = client.agents.run(str(agent.id), text=text,
                                photo=FileUpload(path=str(path), filename=name, mime_type="image/png"))
        return job.wait(interval=0.1, timeout=30)

    assert run(a, "a.png")["status"] == SUCCESS
    assert run(b, "other-name.png")["status"] == CACHED
    assert len(fake.completions) == 1
    assert run(c, "c.png")["status"] == SUCCESS
    assert len(fake.completions) == 2


def test_cache_is_per_version(client, fake):
    agent = make_agent(client)
    text = "per version " + unique()
    client.agents.run(str(agent.id), text=text).wait(interval=0.1, timeout=30)
    v2 = client.agents.versions.create(str(agent.id), input_definitions=[TEXT_INPUT],
                                       engine_config=extraction_config("Other instruction."))
    res = client.agents.run_version(str(agent.id), str(v2.id), text=text).wait(interval=0.1, timeout=30)
    assert res["status"] == SUCCESS
    assert len(fake.completions) == 2


def test_skip_cache_runs_again_and_refreshes_the_cache(client, fake):
    agent = make_agent(client)
    text = "skip " + unique()
    old = {"title": "old", "sentiment": "neutral", "score": 1, "tags": []}
    new = {"title": "new", "sentiment": "negative", "score": 2, "tags": []}
    fake.enqueue(Reply.answer(old), Reply.answer(new))
    assert client.agents.run(str(agent.id), text=text).wait(interval=0.1, timeout=30)["status"] == SUCCESS
    fresh = client.agents.run(str(agent.id), skip_cache=True, text=text).wait(interval=0.1, timeout=30)
    assert fresh["status"] == SUCCESS
    assert output_value(fresh.outputs) == new
    assert len(fake.completions) == 2
    hit = client.agents.run(str(agent.id), text=text).wait(interval=0.1, timeout=30)
    assert hit["status"] == CACHED
    assert output_value(hit.outputs) == new, "the fresh result did not refresh the cache"
    # run_sync and run_many honour skip_cache too.
    client.agents.run_sync(str(agent.id), skip_cache=True, text=text)
    assert len(fake.completions) == 3
    items = client.agents.run_many(str(agent.id), batch_inputs=[{"text": text}], skip_cache=True).wait(
        interval=0.1, timeout=30)
    assert items[0].status == SUCCESS
    assert len(fake.completions) == 4


def test_disable_cache(client, fake):
    agent = make_agent(client)
    updated = client.agents.update(str(agent.id), disable_cache=True)
    assert updated.disable_cache is True
    text = "no cache " + unique()
    for _ in range(2):
        assert client.agents.run(str(agent.id), text=text).wait(interval=0.1, timeout=30)["status"] == SUCCESS
    assert len(fake.completions) == 2


def test_failures_are_not_cached_by_default(client, fake):
    agent = make_agent(client)
    text = "fails once " + unique()
    fake.enqueue(Reply.error(400, "Invalid request: bad things", "invalid_request_error"))
    r1 = client.agents.run(str(agent.id), text=text).wait(interval=0.1, timeout=30)
    assert r1["status"] == FAILURE and r1["error_message"]
    r2 = client.agents.run(str(agent.id), text=text).wait(interval=0.1, timeout=30)
    assert r2["status"] == SUCCESS
    assert len(fake.completions) == 2


def test_cache_failed_jobs(client, fake):
    agent = make_agent(client)
    assert client.agents.update(str(agent.id), cache_failed_jobs=True).cache_failed_jobs is True
    text = "cached failure " + unique()
    fake.enqueue(Reply.error(400, "Invalid request: bad things", "invalid_request_error"))
    r1 = client.agents.run(str(agent.id), text=text).wait(interval=0.1, timeout=30)
    assert r1["status"] == FAILURE
    assert r1["error_message"]
    job2 = client.agents.run(str(agent.id), text=text)
    r2 = job2.wait(interval=0.1, timeout=30)
    assert r2["status"] == CACHED
    assert r2["error_message"] == r1["error_message"]
    assert r2.outputs == []
    assert len(fake.completions) == 1
    st = client.agents.jobs.retrieve_status(job2.id)
    assert st.status == CACHED and st.error_message == r1["error_message"]
