"""Process-level behaviour: start-up, graceful shutdown, persistence, bootstrap, provider retries."""

from __future__ import annotations

import httpx
import pytest

from fake_openai import Reply
from helpers import agent_body, expect, only_output, unique


def test_sigterm_shuts_down_cleanly_and_data_persists(start_server, fake):
    srv = start_server()
    with httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {srv.api_key}"}, timeout=30) as c:
        agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
        only_output(expect(c.post(f"/v1/agents/run/{agent['id']}/", json={"text": "persist " + unique()}), 200))
    rc = srv.stop()
    assert rc == 0, f"agentd exited with {rc} after SIGTERM\n{srv.log_text()[-3000:]}"

    # Same database, same bootstrap variables: bootstrap is idempotent, data and key survive.
    again = start_server(workdir=srv.workdir, org_id=srv.org_id, api_key=srv.api_key)
    with httpx.Client(base_url=again.base_url, headers={"Authorization": f"Bearer {again.api_key}"},
                      timeout=30) as c:
        got = expect(c.get(f"/v1/agents/{agent['id']}/"), 200)
        assert got["name"] == agent["name"]
        assert expect(c.get("/v1/agents/"), 200)["count"] == 1


def test_admin_cli_output(server):
    org = server.admin("org", "create", "cli-org")
    assert len(org.splitlines()) == 1
    key = server.admin("key", "create", "--org", org, "--scope", "read")
    assert len(key.splitlines()) == 1 and len(key) >= 16
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
        page = expect(c.get("/v1/agents/", params={"organization_id": org}), 200)
        assert page["count"] == 0
    bad = server.admin_run("key", "create", "--org", "00000000-0000-0000-0000-000000000000")
    assert bad.returncode != 0


@pytest.fixture
def retrying_server(start_server):
    return start_server({"AGENTD_PROVIDER_MAX_RETRIES": "2"})


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(Reply.error(500), id="500"),
        pytest.param(Reply.error(503), id="503"),
        pytest.param(Reply.rate_limited(retry_after="0"), id="429"),
    ],
)
def test_provider_retries_transient_errors(retrying_server, fake, first):
    fake.enqueue(first)
    srv = retrying_server
    with httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {srv.api_key}"}, timeout=60) as c:
        agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
        only_output(expect(c.post(f"/v1/agents/run/{agent['id']}/", json={"text": "retry " + unique()}), 200))
    assert len(fake.completions) == 2
    assert fake.completions[0].json == fake.completions[1].json


def test_provider_retry_honours_retry_after(retrying_server, fake):
    fake.enqueue(Reply.rate_limited(retry_after="1"))
    srv = retrying_server
    with httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {srv.api_key}"}, timeout=60) as c:
        agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
        only_output(expect(c.post(f"/v1/agents/run/{agent['id']}/", json={"text": "wait " + unique()}), 200))
    first, second = fake.completions
    assert second.at - first.at >= 0.9, f"retried {second.at - first.at:.2f} s after a Retry-After: 1"


def test_provider_bad_key_is_not_retried(retrying_server, fake):
    fake.always(Reply.invalid_api_key())
    srv = retrying_server
    with httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {srv.api_key}"}, timeout=60) as c:
        agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
        resp = c.post(f"/v1/agents/run/{agent['id']}/", json={"text": "bad key " + unique()})
    assert resp.status_code == 502, resp.text
    assert len(fake.completions) == 1
