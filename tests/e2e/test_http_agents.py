"""Agent and version endpoints over raw HTTP: shapes, list filters, ordering and pagination."""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx
import pytest

from helpers import ENGINE, MODEL, TEXT_INPUT, agent_body, expect, extraction_config, unique

BASE_AGENT_FIELDS = {
    "id", "created_at", "updated_at", "name", "disable_cache", "cache_failed_jobs", "organization_id",
    "engine_class_id", "current_version_id", "job_count", "most_recent_job", "engine_name", "tags",
}
AGENT_VERSION_FIELDS = {
    "id", "name", "version_name", "created_at", "engine_class_id", "engine_name", "input_definitions",
    "engine_config", "organization_id", "readonly", "base_agent",
}


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_create_shape(http, org_id):
    body = agent_body(name=unique("shape-"), version_name="v-one", description="desc")
    resp = http.post("/v1/agents/", json=body)
    agent = expect(resp, 201)
    assert resp.headers["content-type"].startswith("application/json")
    assert BASE_AGENT_FIELDS <= set(agent), BASE_AGENT_FIELDS - set(agent)
    uuid.UUID(agent["id"])
    uuid.UUID(agent["current_version_id"])
    assert agent["organization_id"] == org_id
    assert agent["name"] == body["name"]
    assert agent["engine_class_id"] == ENGINE
    assert agent["tags"] == []
    assert agent["most_recent_job"] is None
    assert parse_time(agent["created_at"]).tzinfo is not None

    version = expect(http.get(f"/v1/agents/{agent['id']}/versions/current/"), 200)
    assert AGENT_VERSION_FIELDS <= set(version), AGENT_VERSION_FIELDS - set(version)
    assert version["id"] == agent["current_version_id"]
    assert version["name"] == agent["name"]
    assert version["version_name"] == "v-one"
    assert version["description"] == "desc"
    assert version["base_agent"]["id"] == agent["id"]
    assert version["engine_config"]["model"] == MODEL
    assert version["input_definitions"][0]["key"] == "text"


def test_get_put_patch_delete(http, create_agent):
    agent = create_agent()
    url = f"/v1/agents/{agent['id']}/"
    assert expect(http.get(url), 200)["id"] == agent["id"]
    patched = expect(http.patch(url, json={"disable_cache": True}), 200)
    assert patched["disable_cache"] is True and patched["name"] == agent["name"]
    put = expect(http.put(url, json={"name": "put-name", "disable_cache": False, "cache_failed_jobs": True}), 200)
    assert (put["name"], put["disable_cache"], put["cache_failed_jobs"]) == ("put-name", False, True)
    assert parse_time(put["updated_at"]) >= parse_time(agent["updated_at"])
    resp = http.delete(url)
    assert resp.status_code == 204, resp.text
    assert resp.content == b""
    assert http.get(url).status_code == 404


def test_versions_endpoints(http, create_agent):
    agent = create_agent()
    base = f"/v1/agents/{agent['id']}/versions/"
    created = expect(http.post(base, json={"version_name": "two", "input_definitions": [TEXT_INPUT],
                                           "engine_config": extraction_config("two")}), 201)
    vid = created["id"]
    assert expect(http.get(f"/v1/agents/{agent['id']}/"), 200)["current_version_id"] == vid
    listed = expect(http.get(base), 200)
    assert isinstance(listed, list) and {v["id"] for v in listed} == {vid, agent["current_version_id"]}
    msg = expect(http.patch(f"{base}{vid}/", json={"description": "patched"}), 200)
    assert isinstance(msg.get("message"), str) and msg["message"]
    msg = expect(http.put(f"{base}{vid}/", json={"version_name": "two-b", "description": "put"}), 200)
    assert isinstance(msg.get("message"), str)
    got = expect(http.get(f"{base}{vid}/"), 200)
    assert (got["version_name"], got["description"]) == ("two-b", "put")
    resp = http.delete(f"{base}{agent['current_version_id']}/")
    assert resp.status_code == 204, resp.text
    assert [v["id"] for v in expect(http.get(base), 200)] == [vid]


def test_duplicate_endpoint(http, create_agent):
    agent = create_agent(engine_config=extraction_config("dup me"))
    dup = expect(http.post(f"/v1/agents/{agent['id']}/duplicate/"), 201)
    assert AGENT_VERSION_FIELDS <= set(dup)
    assert dup["base_agent"]["id"] != agent["id"]
    assert dup["engine_config"]["instruction"] == "dup me"
    assert expect(http.get(f"/v1/agents/{dup['base_agent']['id']}/"), 200)["current_version_id"] == dup["id"]


def test_duplicate_keeps_the_cache_settings(http, create_agent):
    agent = create_agent()
    expect(http.patch(f"/v1/agents/{agent['id']}/", json={"disable_cache": True, "cache_failed_jobs": True}), 200)
    dup = expect(http.post(f"/v1/agents/{agent['id']}/duplicate/"), 201)["base_agent"]
    assert (dup["disable_cache"], dup["cache_failed_jobs"]) == (True, True)


def names(page: dict) -> list[str]:
    return [a["name"] for a in page["results"]]


@pytest.fixture
def org_with_agents(fresh_org, create_agent):
    made = []
    for name in ["charlie invoice", "alpha receipt", "bravo invoice"]:
        made.append(create_agent(client=fresh_org.http, name=name))
    return fresh_org, made


def test_list_pagination_links(org_with_agents):
    org, made = org_with_agents
    first = expect(org.http.get("/v1/agents/", params={"page_size": 2}), 200)
    assert set(first) >= {"count", "next", "previous", "results"}
    assert first["count"] == 3 and len(first["results"]) == 2
    assert first["previous"] is None and first["next"]
    # Follow the `next` link as a client would.
    nxt = httpx.URL(first["next"])
    second = expect(org.http.get(nxt.path, params=dict(nxt.params)), 200)
    assert len(second["results"]) == 1 and second["next"] is None and second["previous"]
    assert {a["id"] for a in first["results"] + second["results"]} == {a["id"] for a in made}
    # Past the last page.
    assert org.http.get("/v1/agents/", params={"page_size": 2, "page": 3}).status_code == 404


def test_list_filters(org_with_agents):
    org, _ = org_with_agents
    assert names(expect(org.http.get("/v1/agents/", params={"name": "alpha receipt"}), 200)) == ["alpha receipt"]
    found = expect(org.http.get("/v1/agents/", params={"search": "invoice", "ordering": "name"}), 200)
    assert names(found) == ["bravo invoice", "charlie invoice"] and found["count"] == 2
    assert expect(org.http.get("/v1/agents/", params={"search": "nothing-matches"}), 200)["count"] == 0
    assert expect(org.http.get("/v1/agents/", params={"engine_class_id": ENGINE}), 200)["count"] == 3
    assert expect(org.http.get("/v1/agents/", params={"engine_class_id": "PDFExtractionEngine"}), 200)["count"] == 0


def test_list_ordering(org_with_agents):
    org, made = org_with_agents
    assert names(expect(org.http.get("/v1/agents/", params={"ordering": "name"}), 200)) == \
        ["alpha receipt", "bravo invoice", "charlie invoice"]
    assert names(expect(org.http.get("/v1/agents/", params={"ordering": "-name"}), 200)) == \
        ["charlie invoice", "bravo invoice", "alpha receipt"]
    newest_first = expect(org.http.get("/v1/agents/", params={"ordering": "-created_at"}), 200)
    assert [a["id"] for a in newest_first["results"]] == [a["id"] for a in reversed(made)]
    oldest_first = expect(org.http.get("/v1/agents/", params={"ordering": "created_at"}), 200)
    assert [a["id"] for a in oldest_first["results"]] == [a["id"] for a in made]


def test_current_user(http):
    me = expect(http.get("/v1/users/current_user/"), 200)
    assert isinstance(me["id"], int)
    assert isinstance(me["email"], str)
    assert isinstance(me["display_name"], str)


def test_discovery_endpoints(http):
    types = expect(http.get("/v1/agents/types/"), 200)
    assert ENGINE in types["engine_types"]
    models = expect(http.get("/v1/agents/models/"), 200)
    ids = [m["id"] for m in models["models"]]
    assert MODEL in ids
    assert models["total_count"] == len(ids)
