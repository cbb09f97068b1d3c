"""Error statuses over raw HTTP: every 4xx/5xx body is JSON with equal `detail` and `message`."""

from __future__ import annotations

import json
import uuid

import pytest

from fake_openai import Reply
from helpers import agent_body, assert_error, expect, extraction_config, field_errors, unique


@pytest.fixture
def agent(create_agent):
    return create_agent()


def run_url(agent: dict) -> str:
    return f"/v1/agents/run/{agent['id']}/"


# ---------------------------------------------------------------------------
# 400
# ---------------------------------------------------------------------------


def test_malformed_json_run_body(http, fake, agent):
    resp = http.post(run_url(agent), content=b'{"text": "unterminated', headers={"Content-Type": "application/json"})
    assert_error(resp, 400, mentions="json")
    assert fake.completions == []


def test_json_body_not_an_object(http, fake, agent):
    resp = http.post(run_url(agent), json=["text", "x"])
    assert_error(resp, 400)
    assert fake.completions == []


def test_malformed_json_create_body(http):
    resp = http.post("/v1/agents/", content=b"{nope", headers={"Content-Type": "application/json"})
    assert_error(resp, 400, mentions="json")


def test_missing_input(http, fake, agent):
    body = assert_error(http.post(run_url(agent), json={"metadata": {"a": "b"}}), 400, field="text")
    assert "required" in json.dumps(body["text"]).lower()
    assert fake.completions == []


def test_missing_input_wrapped(http, fake, agent):
    assert_error(http.post(run_url(agent), json={"inputs": {}}), 400, field="text")


def test_unknown_input_key(http, fake, agent):
    body = assert_error(http.post(run_url(agent), json={"text": "x", "txet": "y"}), 400, field="txet")
    assert "text" in body["detail"] + json.dumps(body)  # names what is expected
    assert fake.completions == []


def test_object_for_text_input(http, fake, agent):
    assert_error(http.post(run_url(agent), json={"text": {"nested": "object"}}), 400, field="text")
    assert_error(http.post(run_url(agent), json={"inputs": {"text": ["a", "list"]}}), 400, field="text")
    assert fake.completions == []


def test_null_for_text_input(http, fake, agent):
    assert_error(http.post(run_url(agent), json={"text": None}), 400, field="text")


def test_bad_multipart_body(http, fake, agent):
    resp = http.post(
        run_url(agent),
        content=b"this is not a multipart body at all",
        headers={"Content-Type": "multipart/form-data; boundary=XyZ"},
    )
    assert_error(resp, 400)
    resp = http.post(
        run_url(agent),
        content=b'--XyZ\r\nContent-Disposition: form-data; name="text"\r\n\r\ntruncated',
        headers={"Content-Type": "multipart/form-data; boundary=XyZ"},
    )
    assert_error(resp, 400)
    resp = http.post(run_url(agent), content=b"", headers={"Content-Type": "multipart/form-data"})
    assert_error(resp, 400)
    assert fake.completions == []


def test_unsupported_content_type(http, fake, agent):
    resp = http.post(run_url(agent), content=b"text=x", headers={"Content-Type": "text/csv"})
    assert resp.status_code in (400, 415), resp.text
    assert_error(resp, resp.status_code)


@pytest.mark.parametrize(
    "patch, field",
    [
        pytest.param({"engine_config": {**extraction_config(), "model": "gpt-nope-1"}}, "model", id="unknown-model"),
        pytest.param({"engine_config": extraction_config(schema={"type": "objekt"})}, "output_schema",
                     id="invalid-schema"),
        pytest.param({"engine_config": extraction_config(schema="{broken")}, "output_schema", id="schema-not-json"),
        pytest.param({"engine_config": {k: v for k, v in extraction_config().items() if k != "instruction"}},
                     "instruction", id="missing-instruction"),
        pytest.param({"name": ""}, "name", id="empty-name"),
        pytest.param({"engine_class_id": "NoSuchEngine"}, "engine_class_id", id="unknown-engine"),
        pytest.param({"input_definitions": [{"key": "text"}]}, "input_definitions", id="bad-input-definition"),
    ],
)
def test_create_validation(http, patch, field):
    body = agent_body()
    body.update(patch)
    err = assert_error(http.post("/v1/agents/", json=body), 400, mentions=field)
    assert field_errors(err) and "errors" not in err, err


def test_create_missing_required_fields(http):
    err = assert_error(http.post("/v1/agents/", json={}), 400)
    assert {"name", "engine_class_id"} <= set(err), err


def test_delete_current_version(http, agent):
    resp = http.delete(f"/v1/agents/{agent['id']}/versions/{agent['current_version_id']}/")
    assert_error(resp, 400)
    expect(http.get(f"/v1/agents/{agent['id']}/versions/{agent['current_version_id']}/"), 200)


# ---------------------------------------------------------------------------
# 401
# ---------------------------------------------------------------------------


def test_missing_key(anon_http, agent):
    assert_error(anon_http.get("/v1/agents/"), 401)
    assert_error(anon_http.post(run_url(agent), json={"text": "x"}), 401)
    assert_error(anon_http.get("/v1/users/current_user/"), 401)


@pytest.mark.parametrize("header", ["Bearer nope", "Bearer", "Basic dXNlcjpwYXNz", "nonsense", "bearer"])
def test_bad_authorization_header(anon_http, header):
    assert_error(anon_http.get("/v1/agents/", headers={"Authorization": header}), 401)


def test_revoked_key(fresh_org, admin):
    key = fresh_org.key()
    with fresh_org.http_for(key) as c:
        expect(c.get("/v1/agents/"), 200)
        admin("key", "revoke", "--key", key)
        assert_error(c.get("/v1/agents/"), 401)


def test_unauthenticated_unknown_agent_is_401_not_404(anon_http):
    assert_error(anon_http.get(f"/v1/agents/{uuid.uuid4()}/"), 401)


# ---------------------------------------------------------------------------
# 402
# ---------------------------------------------------------------------------


def test_credits_exhausted(fresh_org, admin, fake, create_agent):
    agent = create_agent(client=fresh_org.http)
    admin("credits", "set", "--org", fresh_org.id, "0")
    assert_error(fresh_org.http.post(run_url(agent), json={"text": "x"}), 402)
    assert_error(fresh_org.http.post(run_url(agent), files={"text": (None, "x")}), 402)
    assert_error(fresh_org.http.post(f"{run_url(agent)}versions/{agent['current_version_id']}/",
                                     json={"text": "x"}), 402)
    assert fake.completions == []
    expect(fresh_org.http.get(f"/v1/agents/{agent['id']}/"), 200)


# ---------------------------------------------------------------------------
# 403
# ---------------------------------------------------------------------------


def test_foreign_organization_id(http, agent):
    other = str(uuid.uuid4())
    assert_error(http.get("/v1/agents/", params={"organization_id": other}), 403)
    assert_error(http.get(f"/v1/agents/{agent['id']}/", params={"organization_id": other}), 403)
    assert_error(http.post(run_url(agent), params={"organization_id": other}, json={"text": "x"}), 403)


def test_another_organizations_real_id_in_query(http, fresh_org):
    assert_error(http.get("/v1/agents/", params={"organization_id": fresh_org.id}), 403)


def test_read_scope(fresh_org, fake, create_agent):
    agent = create_agent(client=fresh_org.http)
    with fresh_org.http_for(fresh_org.key("read")) as reader:
        expect(reader.get(f"/v1/agents/{agent['id']}/"), 200)
        expect(reader.get("/v1/agents/"), 200)
        assert_error(reader.post(run_url(agent), json={"text": "x"}), 403)
        assert_error(reader.post("/v1/agents/", json=agent_body()), 403)
        assert_error(reader.patch(f"/v1/agents/{agent['id']}/", json={"name": "x"}), 403)
        assert_error(reader.delete(f"/v1/agents/{agent['id']}/"), 403)
    assert fake.completions == []


def test_agent_scope(fresh_org, fake, create_agent):
    allowed = create_agent(client=fresh_org.http)
    other = create_agent(client=fresh_org.http)
    with fresh_org.http_for(fresh_org.key(f"agent:{allowed['id']}")) as scoped:
        expect(scoped.get(f"/v1/agents/{allowed['id']}/"), 200)
        assert_error(scoped.get(f"/v1/agents/{other['id']}/"), 403)
        assert_error(scoped.get(f"/v1/agents/{other['id']}/versions/"), 403)
        assert_error(scoped.post(run_url(other), json={"text": "x"}), 403)
        assert_error(scoped.post(f"/v1/agents/{other['id']}/duplicate/"), 403)
    assert fake.completions == []


def test_agent_scoped_key_lists_only_its_agents(fresh_org, create_agent):
    allowed = create_agent(client=fresh_org.http)
    create_agent(client=fresh_org.http)
    with fresh_org.http_for(fresh_org.key(f"agent:{allowed['id']}")) as scoped:
        listed = expect(scoped.get("/v1/agents/"), 200)
    assert [a["id"] for a in listed["results"]] == [allowed["id"]]
    assert listed["count"] == 1


# ---------------------------------------------------------------------------
# 404
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/v1/agents/{uuid}/"),
        ("PATCH", "/v1/agents/{uuid}/"),
        ("DELETE", "/v1/agents/{uuid}/"),
        ("GET", "/v1/agents/{uuid}/versions/"),
        ("GET", "/v1/agents/{uuid}/versions/current/"),
        ("POST", "/v1/agents/{uuid}/duplicate/"),
        ("POST", "/v1/agents/run/{uuid}/"),
        ("GET", "/v1/agents/not-a-uuid/"),
        ("POST", "/v1/agents/run/not-a-uuid/"),
        ("POST", "/v1/agents/run/{uuid}/versions/not-a-uuid/"),
        ("GET", "/v1/agents/{agent}/versions/{uuid}/"),
        ("GET", "/v1/agents/{agent}/versions/not-a-uuid/"),
        ("POST", "/v1/agents/run/{agent}/versions/{uuid}/"),
    ],
)
def test_not_found(http, agent, method, path):
    url = path.format(uuid=uuid.uuid4(), agent=agent["id"])
    kw = {"json": {"text": "x"}} if method in ("POST", "PATCH") else {}
    assert_error(http.request(method, url, **kw), 404)


def test_other_organizations_agent(http, fresh_org, fake, create_agent):
    theirs = create_agent(client=fresh_org.http)
    for method, path in [
        ("GET", f"/v1/agents/{theirs['id']}/"),
        ("PATCH", f"/v1/agents/{theirs['id']}/"),
        ("DELETE", f"/v1/agents/{theirs['id']}/"),
        ("GET", f"/v1/agents/{theirs['id']}/versions/"),
        ("GET", f"/v1/agents/{theirs['id']}/versions/{theirs['current_version_id']}/"),
        ("POST", f"/v1/agents/{theirs['id']}/duplicate/"),
        ("POST", f"/v1/agents/run/{theirs['id']}/"),
        ("POST", f"/v1/agents/run/{theirs['id']}/versions/{theirs['current_version_id']}/"),
    ]:
        kw = {"json": {"text": "x", "name": "stolen"}} if method in ("POST", "PATCH") else {}
        assert_error(http.request(method, path, **kw), 404)
    assert fake.completions == []
    got = expect(fresh_org.http.get(f"/v1/agents/{theirs['id']}/"), 200)
    assert got["name"] == theirs["name"]


def test_unknown_route_is_json_404(http):
    assert_error(http.get("/v1/no-such-thing/"), 404)
    assert_error(http.get("/nothing-here"), 404)


# ---------------------------------------------------------------------------
# 405
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("DELETE", "/v1/agents/"),
        ("PUT", "/v1/agents/"),
        ("GET", "/v1/agents/run/{agent}/"),
        ("POST", "/v1/agents/types/"),
        ("DELETE", "/v1/users/current_user/"),
    ],
)
def test_method_not_allowed_is_json(http, agent, method, path):
    resp = http.request(method, path.format(agent=agent["id"]))
    assert_error(resp, 405)
    assert "allow" in resp.headers


# ---------------------------------------------------------------------------
# 502
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(Reply.error(500), id="500"),
        pytest.param(Reply.rate_limited(retry_after="0"), id="429"),
        pytest.param(Reply.invalid_api_key(), id="401"),
        pytest.param(Reply.malformed(), id="garbage"),
        pytest.param(Reply(200, {"id": "x", "object": "chat.completion", "choices": []}), id="no-choices"),
        pytest.param(Reply(404, "<html>not found</html>", {"Content-Type": "text/html"}), id="html-404"),
    ],
)
def test_provider_failure_is_502(http, fake, agent, reply):
    fake.always(reply)
    resp = http.post(run_url(agent), json={"text": "fail " + unique()})
    assert_error(resp, 502)
    assert "sk-test" not in resp.text  # the provider key never leaks
