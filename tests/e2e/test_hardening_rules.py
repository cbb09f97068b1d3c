"""Authorization and input rules, and Roe wire details (issue 8, items 6 and 8).

Each attack of the report is replayed through the public API: agent-scoped keys
creating agents, reused idempotency keys, wrong types and values in agent
definitions, cancelling finished jobs, forged Host headers in pagination links,
the flat 400 field map, version descriptions, bulk ids, list filters and
orderings, unknown filters, model capabilities and ``get_supports_eval``.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import httpx
import pytest
import roe
from roe.exceptions import BadRequestError, ForbiddenError, RoeAPIException

from fake_openai import Reply
from helpers import (
    ENGINE,
    TEXT_INPUT,
    agent_body,
    assert_error,
    expect,
    extraction_config,
    field_errors,
    unique,
    wait_for_job,
    wait_for_jobs,
)

PDF_INPUT = {"key": "doc", "data_type": "application/pdf", "description": "A PDF"}


def async_run(http: httpx.Client, agent_id: str, body: dict, **kw: Any) -> str:
    return expect(http.post(f"/v1/agents/run/{agent_id}/async/", json=body, **kw), 200)


# ---------------------------------------------------------------------------
# Scoped keys
# ---------------------------------------------------------------------------


def test_agent_scoped_key_cannot_create_or_duplicate_agents(fresh_org, create_agent):
    own = create_agent(client=fresh_org.http)
    key = fresh_org.key(f"agent:{own['id']}")
    with fresh_org.http_for(key) as scoped:
        assert_error(scoped.post("/v1/agents/", json=agent_body()), 403, mentions="agent")
        assert_error(scoped.post(f"/v1/agents/{own['id']}/duplicate/"), 403)
        # What it may do to its own agent still works.
        expect(scoped.patch(f"/v1/agents/{own['id']}/", json={"name": "renamed " + unique()}), 200)
        expect(scoped.post(f"/v1/agents/{own['id']}/versions/",
                           json={"input_definitions": [TEXT_INPUT], "engine_config": extraction_config()}), 201)
        listed = expect(scoped.get("/v1/agents/"), 200)
        assert [a["id"] for a in listed["results"]] == [own["id"]]
    # Nothing was created by the refused calls.
    assert expect(fresh_org.http.get("/v1/agents/"), 200)["count"] == 1
    # Through the SDK: a ForbiddenError, not a silent success.
    sdk = fresh_org.roe(key)
    try:
        with pytest.raises(ForbiddenError):
            sdk.agents.create(name=unique("sdk-"), engine_class_id=ENGINE, input_definitions=[TEXT_INPUT],
                              engine_config=extraction_config())
        with pytest.raises(ForbiddenError):
            sdk.agents.duplicate(own["id"])
    finally:
        sdk.close()


# ---------------------------------------------------------------------------
# Idempotency keys
# ---------------------------------------------------------------------------


def test_reused_idempotency_key_with_another_body_is_422(http, create_agent):
    agent = create_agent()
    key = "reuse-" + unique()
    body = {"text": "first " + unique(), "metadata": {"a": "1", "b": "2"}}
    first = async_run(http, agent["id"], body, headers={"Idempotency-Key": key})
    # The same request (metadata keys in another order) is the same job.
    same = {"text": body["text"], "metadata": {"b": "2", "a": "1"}}
    assert async_run(http, agent["id"], same, headers={"Idempotency-Key": key}) == first
    for other in ({"text": "second " + unique(), "metadata": body["metadata"]},
                  {"text": body["text"], "metadata": {"a": "1"}}):
        err = assert_error(http.post(f"/v1/agents/run/{agent['id']}/async/", json=other,
                                     headers={"Idempotency-Key": key}), 422, mentions=key)
        assert "different request" in err["detail"]
    wait_for_job(http, first)
    assert expect(http.get(f"/v1/agents/{agent['id']}/jobs/"), 200)["count"] == 1


def test_reused_idempotency_key_through_the_sdk(client):
    agent = client.agents.create(name=unique("idem-"), engine_class_id=ENGINE, input_definitions=[TEXT_INPUT],
                                 engine_config=extraction_config())
    key = "sdk-reuse-" + unique()
    job = client.agents.run(str(agent.id), idempotency_key=key, text="one " + unique())
    with pytest.raises(RoeAPIException) as exc:
        client.agents.run(str(agent.id), idempotency_key=key, text="two " + unique())
    assert exc.value.status_code == 422 and key in exc.value.message
    assert job.wait(interval=0.1, timeout=30)["status"] == 3


# ---------------------------------------------------------------------------
# Agent definitions: wrong types and values are a 400 naming the field
# ---------------------------------------------------------------------------


def config_with(**extra: Any) -> dict:
    return extraction_config(**extra)


BAD_AGENTS = [
    pytest.param({"disable_cache": "maybe"}, "disable_cache", id="disable-cache-maybe"),
    pytest.param({"cache_failed_jobs": 3}, "cache_failed_jobs", id="cache-failed-jobs-number"),
    pytest.param({"engine_config": config_with(temperature="hot")}, "engine_config.temperature",
                 id="temperature-hot"),
    pytest.param({"engine_config": config_with(temperature=-5)}, "engine_config.temperature",
                 id="temperature-negative"),
    pytest.param({"engine_config": config_with(max_output_tokens=-1)}, "engine_config.max_output_tokens",
                 id="max-output-tokens-negative"),
    pytest.param({"engine_config": config_with(max_output_tokens=1e20)}, "engine_config.max_output_tokens",
                 id="max-output-tokens-huge"),
    pytest.param({"engine_config": config_with(reasoning_effort="extreme")}, "engine_config.reasoning_effort",
                 id="reasoning-effort-extreme"),
    pytest.param({"engine_config": config_with(reasoning="extreme")}, "engine_config.reasoning",
                 id="reasoning-extreme"),
    pytest.param({"engine_config": config_with(instruction="Use ${unknown}.")}, "engine_config.instruction",
                 id="unknown-placeholder"),
    pytest.param({"engine_config": config_with(text="${text")}, "engine_config.text", id="unterminated"),
    # In a file field a file input must stand alone; in a text field it stands
    # for its text (tests/e2e/test_documents.py), so it may sit inside a longer text.
    pytest.param({"input_definitions": [TEXT_INPUT, PDF_INPUT],
                  "engine_config": config_with(images=["see ${doc}"])}, "engine_config.images[0]",
                 id="file-inside-text"),
    pytest.param({"name": "a\u0000b"}, "name", id="nul-in-name"),
    pytest.param({"name": "n" * 100_000}, "name", id="long-name"),
    pytest.param({"input_definitions": [{**TEXT_INPUT, "key": "k" * 100_000}]}, "input_definitions",
                 id="long-key"),
    pytest.param({"input_definitions": [{**TEXT_INPUT, "key": "te\u0000xt"}]}, "input_definitions",
                 id="nul-in-key"),
    pytest.param({"input_definitions": [{**TEXT_INPUT, "data_type": "t" * 100_000}]}, "input_definitions",
                 id="long-data-type"),
    pytest.param({"input_definitions": [{**TEXT_INPUT, "data_type": "text/\u0000plain"}]}, "input_definitions",
                 id="nul-in-data-type"),
    pytest.param({"input_definitions": [{"key": f"k{i}", "data_type": "text/plain", "description": ""}
                                        for i in range(100_000)]}, "input_definitions",
                 id="100000-definitions"),
    pytest.param({"version_name": "v" * 201}, "version_name", id="long-version-name"),
    pytest.param({"description": "d\u0000"}, "description", id="nul-in-description"),
]


@pytest.mark.parametrize("patch, field", BAD_AGENTS)
def test_agent_creation_refuses_wrong_types_and_values(http, patch, field):
    body = agent_body()
    body.update(patch)
    before = expect(http.get("/v1/agents/", params={"page_size": 1}), 200)["count"]
    err = assert_error(http.post("/v1/agents/", json=body), 400, field=field)
    assert field in err["detail"], err["detail"][:500]
    assert len(err["detail"]) < 5_000, "the error must not echo the whole input"
    assert expect(http.get("/v1/agents/", params={"page_size": 1}), 200)["count"] == before


@pytest.mark.parametrize("patch, field", [p for p in BAD_AGENTS if p.id not in (
    "disable-cache-maybe", "cache-failed-jobs-number", "nul-in-name", "long-name")])
def test_version_creation_refuses_the_same(http, create_agent, patch, field):
    agent = create_agent()
    body = {k: v for k, v in agent_body().items() if k not in ("name", "engine_class_id")}
    body.update(patch)
    assert_error(http.post(f"/v1/agents/{agent['id']}/versions/", json=body), 400, field=field)
    versions = expect(http.get(f"/v1/agents/{agent['id']}/versions/"), 200)
    assert len(versions) == 1


def test_agent_update_refuses_wrong_types(http, create_agent):
    agent = create_agent()
    url = f"/v1/agents/{agent['id']}/"
    assert_error(http.patch(url, json={"disable_cache": "maybe"}), 400, field="disable_cache")
    assert_error(http.patch(url, json={"name": "x\u0000"}), 400, field="name")
    assert_error(http.patch(url, json={"name": "x" * 201}), 400, field="name")
    version = f"/v1/agents/{agent['id']}/versions/{agent['current_version_id']}/"
    assert_error(http.patch(version, json={"version_name": "v" * 201}), 400, field="version_name")
    assert_error(http.patch(version, json={"description": "   "}), 400, field="description")
    assert expect(http.get(url), 200)["disable_cache"] is False


def test_valid_settings_are_kept(http):
    defs = [TEXT_INPUT, PDF_INPUT]
    cfg = extraction_config(text="${text}, costs $$5 in $USD", images="${doc}", temperature="0.7",
                            max_output_tokens=1000, reasoning_effort="medium")
    agent = expect(http.post("/v1/agents/", json=agent_body(input_definitions=defs, engine_config=cfg,
                                                            disable_cache=True, cache_failed_jobs=True)), 201)
    assert agent["disable_cache"] is True and agent["cache_failed_jobs"] is True
    version = expect(http.get(f"/v1/agents/{agent['id']}/versions/current/"), 200)
    assert version["engine_config"]["temperature"] == "0.7"
    assert version["engine_config"]["reasoning_effort"] == "medium"


def test_sdk_sees_a_bad_request_naming_the_field(client):
    with pytest.raises(BadRequestError) as exc:
        client.agents.create(name=unique("sdk-bad-"), engine_class_id=ENGINE, input_definitions=[TEXT_INPUT],
                             engine_config=extraction_config(temperature="hot"))
    assert "engine_config.temperature" in exc.value.message
    assert exc.value.response["engine_config.temperature"]


# ---------------------------------------------------------------------------
# Cancelling a finished job
# ---------------------------------------------------------------------------


def test_cancelling_a_finished_job_says_it_was_final(http, client, create_agent):
    agent = create_agent()
    job = async_run(http, agent["id"], {"text": "finish " + unique()})
    assert wait_for_job(http, job)["status"] == 3
    resp = http.post(f"/v1/agents/jobs/{job}/cancel/")
    body = expect(resp, 200)
    assert body["cancelled"] is False and body["status"] == 3
    assert "already finished" in body["message"] and "SUCCESS" in body["message"]
    assert expect(http.get(f"/v1/agents/jobs/{job}/status/"), 200)["status"] == 3
    # The SDK does not raise for it, and the job stays as it was.
    assert client.agents.jobs.cancel(job) is None
    assert client.agents.jobs.retrieve_status(job).status == 3


def test_cancelling_a_running_job_is_still_204(http, fake, create_agent):
    agent = create_agent()
    fake.always(Reply.default(delay=30))
    job = async_run(http, agent["id"], {"text": "long " + unique()})
    fake.wait_for_requests(1)
    resp = http.post(f"/v1/agents/jobs/{job}/cancel/")
    assert resp.status_code == 204 and not resp.content
    wait_for_job(http, job)
    again = expect(http.post(f"/v1/agents/jobs/{job}/cancel/"), 200)
    assert again["status"] == 5 and "CANCELLED" in again["message"]


def test_a_cached_failure_keeps_its_error_class(http, create_agent):
    """Found by schemathesis: a sync run answered from a cached failure was a 500."""
    agent = create_agent(cache_failed_jobs=True)
    url = f"/v1/agents/run/{agent['id']}/"
    for _ in range(2):  # the second answer comes from the cache
        assert_error(http.post(url, json={"text": "", "metadata": None}), 400, mentions="empty")
    page = expect(http.get(f"/v1/agents/{agent['id']}/jobs/", params={"ordering": "created_at"}), 200)
    assert [j["status_code"] for j in page["results"]] == [4, 6]


# ---------------------------------------------------------------------------
# Pagination links
# ---------------------------------------------------------------------------


def two_pages(http: httpx.Client, **headers: str) -> dict:
    return expect(http.get("/v1/agents/", params={"page_size": 1}, headers=headers), 200)


def test_pagination_links_ignore_a_forged_host(fresh_org, create_agent):
    for _ in range(2):
        create_agent(client=fresh_org.http)
    page = two_pages(fresh_org.http, Host="evil.example")
    assert page["next"] and "evil.example" not in page["next"]
    assert page["next"].startswith(fresh_org.server.base_url + "/v1/agents/?")


def test_pagination_links_use_the_public_url(start_server):
    srv = start_server({"AGENTD_PUBLIC_URL": "https://agents.example.com/"})
    with httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {srv.api_key}"}) as http:
        for _ in range(2):
            expect(http.post("/v1/agents/", json=agent_body()), 201)
        page = two_pages(http, Host="evil.example")
        assert page["next"] == "https://agents.example.com/v1/agents/?page_size=1&page=2"
        second = expect(http.get("/v1/agents/", params={"page_size": 1, "page": 2}), 200)
        assert second["previous"] == "https://agents.example.com/v1/agents/?page_size=1&page=1"


def test_an_invalid_public_url_stops_the_server_at_start(start_server):
    with pytest.raises(pytest.fail.Exception):
        start_server({"AGENTD_PUBLIC_URL": "ftp://agents.example.com"})


# ---------------------------------------------------------------------------
# Roe wire details
# ---------------------------------------------------------------------------


def test_field_errors_are_a_flat_map(http):
    err = assert_error(http.post("/v1/agents/", json={"engine_class_id": 5}), 400, field="name")
    assert set(field_errors(err)) >= {"name", "engine_class_id"}
    assert all(isinstance(v, list) for v in field_errors(err).values())


def test_fields_named_detail_or_message_keep_the_summary(http, create_agent):
    defs = [{"key": "detail", "data_type": "text/plain", "description": ""},
            {"key": "message", "data_type": "text/plain", "description": ""}]
    agent = create_agent(input_definitions=defs, engine_config=extraction_config(text="${detail} ${message}"))
    err = assert_error(http.post(f"/v1/agents/run/{agent['id']}/", json={}), 400)
    assert isinstance(err["detail"], str) and isinstance(err["message"], str)
    assert err["field:detail"] and err["field:message"]


def test_version_description_is_always_a_string(http, client, create_agent):
    agent = create_agent()
    version = expect(http.get(f"/v1/agents/{agent['id']}/versions/current/"), 200)
    assert version["description"] == ""
    assert all(v["description"] == "" for v in expect(http.get(f"/v1/agents/{agent['id']}/versions/"), 200))
    dup = expect(http.post(f"/v1/agents/{agent['id']}/duplicate/"), 201)
    assert dup["description"] == ""
    assert client.agents.versions.retrieve_current(agent["id"]).description == ""


def test_bulk_ids_must_be_uuids(http, create_agent):
    agent = create_agent()
    job = async_run(http, agent["id"], {"text": "bulk " + unique()})
    for path in ("statuses", "results"):
        url = f"/v1/agents/jobs/{path}/"
        err = assert_error(http.post(url, json={"job_ids": [job, "not-a-uuid", 7]}), 400, field="job_ids")
        text = " ".join(err["job_ids"])
        assert "not-a-uuid" in text and "job_ids[2]" in text and "job_ids[0]" not in text


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def test_agents_list_filters(fresh_org, create_agent):
    http = fresh_org.http
    idle = create_agent(client=http, name="idle " + unique())
    middle = dt.datetime.now(dt.timezone.utc)
    time.sleep(0.01)
    busy = create_agent(client=http, name="busy " + unique())
    jobs = [async_run(http, busy["id"], {"text": f"job {i} " + unique()}) for i in range(2)]
    wait_for_jobs(http, jobs)

    def ids(**params: Any) -> set[str]:
        page = expect(http.get("/v1/agents/", params=params), 200)
        assert page["count"] == len(page["results"])
        return {a["id"] for a in page["results"]}

    both = {idle["id"], busy["id"]}
    assert ids() == both
    assert ids(created_from=iso(middle)) == {busy["id"]}
    assert ids(created_to=iso(middle)) == {idle["id"]}
    assert ids(updated_from=iso(middle)) == {busy["id"]}
    assert ids(updated_to=iso(middle)) == {idle["id"]}
    assert ids(job_count_min=2) == {busy["id"]}
    assert ids(job_count_max=0) == {idle["id"]}
    assert ids(job_count_min=1, job_count_max=1) == set()
    assert ids(most_recent_job_from=iso(middle)) == {busy["id"]}
    assert ids(most_recent_job_to=iso(middle)) == set()
    creator = busy["creator"]["id"]
    assert ids(creator_id=creator) == both
    assert ids(creator_id=creator + 1000) == set()
    assert ids(tags=str(uuid.uuid4())) == set()
    assert ids(tags=str(uuid.uuid4()), include_untagged="true") == both
    page = expect(http.get("/v1/agents/", params={"include_job_stats": "false"}), 200)
    assert all(a["job_count"] is None and a["most_recent_job"] is None for a in page["results"])
    page = expect(http.get("/v1/agents/", params={"include_job_stats": "true", "ordering": "-job_count"}), 200)
    assert [a["job_count"] for a in page["results"]] == [2, 0]
    for name, value in [("created_from", "yesterday"), ("job_count_min", "many"), ("creator_id", "me"),
                        ("include_job_stats", "perhaps"), ("ordering", "colour")]:
        assert_error(http.get("/v1/agents/", params={name: value}), 400, field=name)


def test_unknown_list_filters_are_refused(http, create_agent):
    agent = create_agent()
    for url in ("/v1/agents/", f"/v1/agents/{agent['id']}/jobs/", "/v1/agents/models/"):
        err = assert_error(http.get(url, params={"colour": "blue"}), 400, field="colour")
        assert "Unknown query parameter" in err["colour"][0]
    # What the SDK sends is accepted: organization_id, page, page_size.
    expect(http.get("/v1/agents/", params={"organization_id": expect(
        http.get("/v1/users/current_user/"), 200)["organization_id"], "page": 1, "page_size": 5}), 200)


def test_sdk_list_calls_are_accepted(client):
    agent = client.agents.create(name=unique("sdk-list-"), engine_class_id=ENGINE, input_definitions=[TEXT_INPUT],
                                 engine_config=extraction_config())
    job = client.agents.run(str(agent.id), text="list " + unique())
    job.wait(interval=0.1, timeout=30)
    assert client.agents.list(page=1, page_size=10).count >= 1
    now = dt.datetime.now(dt.timezone.utc)
    page = client.agents.jobs.list(
        str(agent.id), page=1, page_size=10, status_code="3", version_name="unnamed version",
        metadata="{}", created_from=(now - dt.timedelta(hours=1)).isoformat(),
        created_to=(now + dt.timedelta(hours=1)).isoformat(), search="", ordering="-duration")
    assert page.count == 1
    assert client.agents.jobs.list(str(agent.id), ordering="agent_version_name").count == 1


def test_jobs_list_orderings_and_filters(http, fake, create_agent):
    agent = create_agent()
    quick = async_run(http, agent["id"], {"text": "quick " + unique()})
    wait_for_job(http, quick)
    fake.always(Reply.default(delay=0.5))
    slow = async_run(http, agent["id"], {"text": "slow " + unique()})
    wait_for_job(http, slow)
    fake.always(Reply.default(delay=30))
    running = async_run(http, agent["id"], {"text": "running " + unique()})
    fake.wait_for_requests(3)
    version = expect(http.post(f"/v1/agents/{agent['id']}/versions/",
                               json={"version_name": "a-first", "input_definitions": [TEXT_INPUT],
                                     "engine_config": extraction_config()}), 201)
    fake.always(Reply.default())
    renamed = expect(http.post(f"/v1/agents/run/{agent['id']}/async/", json={"text": "v2 " + unique()}), 200)
    wait_for_job(http, renamed)
    url = f"/v1/agents/{agent['id']}/jobs/"

    def order(value: str) -> list[str]:
        return [j["id"] for j in expect(http.get(url, params={"ordering": value}), 200)["results"]]

    assert order("duration")[:1] == [running]  # unfinished: no duration, first when ascending
    by_duration = order("-duration")
    assert by_duration.index(slow) < by_duration.index(quick)
    assert order("agent_version_name")[0] == renamed  # "a-first" < "unnamed version"
    assert order("-agent_version_name")[-1] == renamed
    assert order("-cost,created_at") and order("grader_score")
    assert version["version_name"] == "a-first"

    def count(**params: Any) -> int:
        return expect(http.get(url, params=params), 200)["count"]

    assert count(job_id=quick) == 1 and count(job_id=quick[:8]) == 1
    assert count(job_inputs="slow") == 1
    assert count(limit=2) == 2 and count(limit=0) == 4
    assert len(expect(http.get(url, params={"limit": 1, "page_size": 3}), 200)["results"]) == 1
    assert count(review_state="unreviewed") == 4 and count(review_state="approved") == 0
    assert count(verdict="pass") == 0
    page = expect(http.get(url, params={"exclude_metadata": "true"}), 200)
    assert all("metadata" not in j for j in page["results"])
    assert_error(http.get(url, params={"ordering": "colour"}), 400, field="ordering")
    assert_error(http.get(url, params={"limit": -1}), 400, field="limit")
    assert_error(http.get(url, params={"semantic_string": "similar"}), 400, field="semantic_string")
    http.post(f"/v1/agents/jobs/{running}/cancel/")


def test_models_capability_filter(http):
    for capability in ("audio", "video"):
        body = expect(http.get("/v1/agents/models/", params={"capability": capability}), 200)
        assert body["models"] == [] and body["total_count"] == 0
    images = expect(http.get("/v1/agents/models/", params={"capability": "image"}), 200)
    assert all("image" in m["capabilities"] for m in images["models"])
    assert_error(http.get("/v1/agents/models/", params={"capability": "smell"}), 400, field="capability")


def test_get_supports_eval(http, client, create_agent):
    agent = create_agent()
    current = f"/v1/agents/{agent['id']}/versions/current/"
    one = f"/v1/agents/{agent['id']}/versions/{agent['current_version_id']}/"
    for url in (current, one):
        assert "supports_eval" not in expect(http.get(url), 200)
        assert expect(http.get(url, params={"get_supports_eval": "true"}), 200)["supports_eval"] is False
        assert "supports_eval" not in expect(http.get(url, params={"get_supports_eval": "false"}), 200)
        assert_error(http.get(url, params={"get_supports_eval": "sometimes"}), 400, field="get_supports_eval")
    version = client.agents.versions.retrieve(agent["id"], agent["current_version_id"], get_supports_eval=True)
    assert str(version.id) == agent["current_version_id"]


def test_sdk_client_roundtrip_with_scoped_key_still_runs(fresh_org, create_agent):
    """A key scoped to one agent runs it through the SDK (the restriction is on creation only)."""
    own = create_agent(client=fresh_org.http)
    sdk: roe.RoeClient = fresh_org.roe(fresh_org.key(f"agent:{own['id']}"))
    try:
        job = sdk.agents.run(own["id"], text="scoped " + unique())
        assert job.wait(interval=0.1, timeout=30)["status"] == 3
    finally:
        sdk.close()
