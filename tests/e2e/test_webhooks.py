"""Webhooks (issue 11): per-agent subscriptions, Standard Webhooks messages signed with
HMAC-SHA256, deliveries stored durably and retried on a (here scaled down) schedule,
a delivery log with status and latency per attempt, resends through Roe's endpoint and
the SDK, and the outbound URL guard on targets.

A receiver in this file verifies every signature by hand (``v1,`` base64 of
HMAC-SHA256 over ``{id}.{timestamp}.{body}`` keyed with the secret's base64 part) and
answers from a script of status codes (then 200).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import httpx
import pytest

from conftest import make_roe_client
from fake_openai import Reply
from helpers import CANCELLED, SUCCESS, agent_body, assert_error, expect, wait_for_job
from test_cli import cli, cli_env, ok

# Delays of the Standard Webhooks schedule times 0.001: 0, 5 ms, 300 ms, 1.8 s, ...
FAST = {"AGENTD_WEBHOOK_RETRY_SCALE": "0.001", "AGENTD_WEBHOOK_POLL_MS": "50"}
# Times 0.01: 0, 50 ms, 3 s, 18 s: time to restart the server before the third attempt.
SLOWER = {"AGENTD_WEBHOOK_RETRY_SCALE": "0.01", "AGENTD_WEBHOOK_POLL_MS": "50"}
WAIT = 60.0
HANG = 0


@dataclass
class Message:
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A webhook endpoint on loopback: records every message, answers ``script`` in order
    (then 200) and checks signatures against ``secret`` once it is set."""

    def __init__(self, script: list[int] | None = None) -> None:
        # A status code, or HANG: no answer until ``release`` is set.
        self.script = list(script or [])
        self.release = threading.Event()
        self.messages: list[Message] = []
        self.secret: str | None = None
        self.bad_signatures: list[str] = []
        self.cond = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with outer.cond:
                    status = outer.script.pop(0) if outer.script else 200
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    if not outer.signature_ok(headers, body):
                        outer.bad_signatures.append(headers.get("webhook-signature", ""))
                    outer.messages.append(Message(headers, body, status))
                    outer.cond.notify_all()
                if status == HANG:
                    outer.release.wait()
                    return
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/agentd"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def signature_ok(self, headers: dict[str, str], body: bytes) -> bool:
        if self.secret is None:
            return True
        key = base64.b64decode(self.secret.removeprefix("whsec_"))
        signed = f"{headers.get('webhook-id')}.{headers.get('webhook-timestamp')}.".encode() + body
        expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        offered = headers.get("webhook-signature", "").split(" ")
        return any(hmac.compare_digest(expected, s) for s in offered)

    def wait_for(self, count: int, timeout: float = WAIT) -> list[Message]:
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.messages) >= count, timeout):
                raise AssertionError(f"{len(self.messages)} of {count} webhook messages came in {timeout} s")
            return list(self.messages)

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def client_for(srv) -> httpx.Client:
    return httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {srv.api_key}"}, timeout=30)


def subscribe(c: httpx.Client, agent_id: str, receiver: Receiver, **fields: Any) -> dict:
    hook = expect(c.post(f"/v1/agents/{agent_id}/webhooks/", json={"url": receiver.url, **fields}), 201)
    receiver.secret = hook["secret"]
    return hook


def run_job(c: httpx.Client, agent_id: str, text: str = "hello webhooks") -> str:
    job_id = expect(c.post(f"/v1/agents/run/{agent_id}/async/", json={"text": text}), 200)
    assert wait_for_job(c, job_id, timeout=WAIT)["status"] == SUCCESS
    return job_id


def deliveries(c: httpx.Client, agent_id: str, hook_id: str) -> list[dict]:
    return expect(c.get(f"/v1/agents/{agent_id}/webhooks/{hook_id}/deliveries/"), 200)["results"]


def wait_for_attempts(c: httpx.Client, agent_id: str, hook_id: str, count: int) -> dict:
    """Polls the delivery log until the newest delivery shows ``count`` attempts."""
    deadline = time.monotonic() + WAIT
    while True:
        found = deliveries(c, agent_id, hook_id)
        if found and found[0]["attempt_count"] >= count:
            return found[0]
        assert time.monotonic() < deadline, f"the delivery log never showed {count} attempts: {found}"
        time.sleep(0.05)


def test_failed_deliveries_are_retried_until_accepted_and_logged(start_server, fake, receiver):
    fake.always(Reply.default())
    receiver.script = [500, 500]
    srv = start_server(dict(FAST))
    with client_for(srv) as c:
        agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
        hook = subscribe(c, agent["id"], receiver)
        assert hook["secret"].startswith("whsec_")
        assert hook["events"] == ["job.succeeded", "job.failed", "job.cancelled", "job.cached"]
        job_id = run_job(c, agent["id"])

        messages = receiver.wait_for(3)
        assert [m.answered for m in messages] == [500, 500, 200]
        assert receiver.bad_signatures == []
        # Retries of one delivery carry the same webhook-id, for deduplication.
        assert len({m.id for m in messages}) == 1
        for m in messages:
            assert m.headers["content-type"] == "application/json"
            assert abs(int(m.headers["webhook-timestamp"]) - time.time()) < 600
            payload = m.json
            assert payload["type"] == "job.succeeded"
            assert payload["data"]["job_id"] == job_id
            assert payload["data"]["status"] == SUCCESS
            assert payload["data"]["agent_id"] == agent["id"]
            assert payload["data"]["outputs"], payload

        delivery = wait_for_attempts(c, agent["id"], hook["id"], 3)
        assert delivery["id"] == messages[0].id
        assert delivery["status"] == "delivered"
        assert delivery["job_id"] == job_id
        assert delivery["response_status"] == 200
        assert delivery["next_attempt_at"] is None
        attempts = delivery["attempts"]
        assert [a["response_status"] for a in attempts] == [500, 500, 200]
        assert [a["succeeded"] for a in attempts] == [False, False, True]
        assert all(isinstance(a["latency_ms"], int) and a["latency_ms"] >= 0 for a in attempts)
        assert attempts[0]["error"] == "The receiver answered HTTP 500."
        assert attempts[2]["error"] is None
        # The secret is shown once; listings show only its end.
        listed = expect(c.get(f"/v1/agents/{agent['id']}/webhooks/"), 200)
        assert listed["count"] == 1
        assert listed["results"][0]["secret"] != hook["secret"]
        assert listed["results"][0]["secret"].endswith(hook["secret"][-4:])


def test_a_restart_between_attempts_loses_no_delivery(start_server, fake, receiver):
    fake.always(Reply.default())
    receiver.script = [500, 503]
    srv = start_server(dict(SLOWER))
    with client_for(srv) as c:
        agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
        hook = subscribe(c, agent["id"], receiver)
        run_job(c, agent["id"])
        # Two attempts recorded; the third is due 3 s after the second.
        wait_for_attempts(c, agent["id"], hook["id"], 2)
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(10)
    srv.stop()

    again = start_server(dict(SLOWER), workdir=srv.workdir, org_id=srv.org_id, api_key=srv.api_key)
    messages = receiver.wait_for(3)
    assert [m.answered for m in messages] == [500, 503, 200]
    assert len({m.id for m in messages}) == 1
    assert receiver.bad_signatures == []
    with client_for(again) as c:
        delivery = wait_for_attempts(c, agent["id"], hook["id"], 3)
        assert delivery["status"] == "delivered"
        assert [a["response_status"] for a in delivery["attempts"]] == [500, 503, 200]


def test_a_receiver_that_does_not_answer_in_time_is_retried(start_server, fake, receiver):
    fake.always(Reply.default())
    receiver.script = [HANG]
    srv = start_server({**FAST, "AGENTD_WEBHOOK_TIMEOUT_SECS": "1"})
    with client_for(srv) as c:
        agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
        hook = subscribe(c, agent["id"], receiver)
        run_job(c, agent["id"])
        messages = receiver.wait_for(2)
        assert messages[0].id == messages[1].id
        delivery = wait_for_attempts(c, agent["id"], hook["id"], 2)
        receiver.release.set()
        first, second = delivery["attempts"]
        assert first["response_status"] is None and first["succeeded"] is False
        assert first["error"].startswith("No answer")
        assert first["latency_ms"] >= 1000
        assert second["response_status"] == 200
        assert delivery["status"] == "delivered"


def test_the_sdk_resends_a_finished_jobs_webhook(start_server, fake, receiver):
    fake.always(Reply.default())
    srv = start_server(dict(FAST))
    with client_for(srv) as c:
        agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
        job_id = run_job(c, agent["id"])
        # Subscribed after the job ended: nothing was sent for it yet.
        hook = subscribe(c, agent["id"], receiver, events=["job.failed"])
        other = Receiver()
        try:
            second = expect(c.post(f"/v1/agents/{agent['id']}/webhooks/",
                                   json={"url": other.url, "secret": hook["secret"]}), 201)
            other.secret = hook["secret"]
            sdk = make_roe_client(srv, srv.api_key, srv.org_id)
            try:
                answer = sdk.agents.jobs.resend_webhook(job_id)
                assert (answer.status, answer.queued) == ("queued", 2)
                first = receiver.wait_for(1)[0]
                assert other.wait_for(1)[0].json["data"]["job_id"] == job_id
                assert first.json["type"] == "job.succeeded"
                assert first.json["data"]["job_id"] == job_id

                answer = sdk.agents.jobs.resend_webhook(job_id, webhook_id=hook["id"])
                assert answer.queued == 1
                resent = receiver.wait_for(2)[1]
                assert resent.id != first.id, "a resend is a new message with its own webhook-id"
                assert receiver.bad_signatures == [] and other.bad_signatures == []
            finally:
                sdk.close()
            assert len(other.messages) == 1
            assert deliveries(c, agent["id"], second["id"])[0]["status"] in ("pending", "delivered")
        finally:
            other.close()

        # After delete-data, a resend carries no inputs or outputs.
        expect(c.post(f"/v1/agents/jobs/{job_id}/delete-data/"), 200)
        assert expect(c.post(f"/v1/agents/jobs/{job_id}/webhook/resend/",
                             json={"webhook_id": hook["id"]}), 200)["queued"] == 1
        data = receiver.wait_for(3)[2].json["data"]
        assert data["data_deleted"] is True
        assert data["outputs"] == []
        assert all(i["value"] == "" for i in data["inputs"])
        assert "hello webhooks" not in receiver.messages[2].body.decode()


def test_resend_refuses_unfinished_and_unknown_jobs(start_server, fake, receiver):
    fake.always(Reply.default(delay=30))
    srv = start_server(dict(FAST))
    with client_for(srv) as c:
        agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
        hook = subscribe(c, agent["id"], receiver)
        job_id = expect(c.post(f"/v1/agents/run/{agent['id']}/async/", json={"text": "slow"}), 200)
        refused = assert_error(c.post(f"/v1/agents/jobs/{job_id}/webhook/resend/", json={}), 400,
                               mentions="terminal")
        # Roe documents this 400 as ApiErrorResponse: {"error": ...}.
        assert refused["error"] == refused["detail"]
        assert_error(c.post(f"/v1/agents/jobs/{uuid.uuid4()}/webhook/resend/", json={}), 404)
        assert_error(c.post(f"/v1/agents/jobs/{job_id}/webhook/resend/", json={"webhook_id": "nope"}),
                     400, field="webhook_id")
        assert "error" in c.post(f"/v1/agents/jobs/{job_id}/webhook/resend/", content=b"{oops").json()
        # Cancelling makes it final: job.cancelled is sent, and a resend is allowed.
        c.post(f"/v1/agents/jobs/{job_id}/cancel/")
        assert wait_for_job(c, job_id, timeout=WAIT)["status"] == CANCELLED
        assert receiver.wait_for(1)[0].json["type"] == "job.cancelled"
        assert_error(c.post(f"/v1/agents/jobs/{job_id}/webhook/resend/",
                            json={"webhook_id": str(uuid.uuid4())}), 404, mentions="webhook")
        assert expect(c.post(f"/v1/agents/jobs/{job_id}/webhook/resend/"), 200)["queued"] == 1
        assert receiver.wait_for(2)[1].json["data"]["status"] == CANCELLED
        assert deliveries(c, agent["id"], hook["id"])[0]["event"] == "job.cancelled"


def test_subscriptions_are_validated_updated_and_deleted(start_server, fake, receiver):
    srv = start_server(dict(FAST))
    with client_for(srv) as c:
        agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
        base = f"/v1/agents/{agent['id']}/webhooks/"
        assert_error(c.post(base, json={}), 400, field="url")
        assert_error(c.post(base, json={"url": receiver.url, "events": ["job.done"]}), 400,
                     field="events", mentions="job.succeeded")
        assert_error(c.post(base, json={"url": receiver.url, "secret": "hunter2"}), 400,
                     field="secret", mentions="whsec_")
        assert_error(c.post(base, json={"url": "ftp://example.com/x"}), 400, field="url")
        assert_error(c.post(base, json={"url": receiver.url, "colour": "red"}), 400, field="colour")
        assert_error(c.post(f"/v1/agents/{uuid.uuid4()}/webhooks/", json={"url": receiver.url}), 404)

        hook = subscribe(c, agent["id"], receiver, events=["job.failed", "job.failed"],
                         description="CI")
        assert hook["events"] == ["job.failed"]
        path = f"{base}{hook['id']}/"
        got = expect(c.get(path), 200)
        assert (got["url"], got["description"], got["active"]) == (receiver.url, "CI", True)
        assert "secret" in got and got["secret"] != hook["secret"]
        new_secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
        patched = expect(c.patch(path, json={"active": False, "secret": new_secret}), 200)
        assert (patched["active"], patched["secret"]) == (False, new_secret)
        assert_error(c.get(f"{base}{uuid.uuid4()}/"), 404)
        assert expect(c.get(f"{path}deliveries/"), 200) == {
            "count": 0, "next": None, "previous": None, "results": []}
        assert c.delete(path).status_code == 204
        assert_error(c.get(path), 404)


def test_private_targets_are_refused_without_the_allowance(start_server, receiver):
    srv = start_server({"AGENTD_ALLOW_PRIVATE_URLS": "false"})
    with client_for(srv) as c:
        agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
        base = f"/v1/agents/{agent['id']}/webhooks/"
        for url in (receiver.url, "http://169.254.169.254/latest/meta-data/",
                    "http://[::1]:9/", "http://10.0.0.1/hook", "http://localhost:9/hook"):
            assert_error(c.post(base, json={"url": url}), 400, field="url",
                         mentions="AGENTD_ALLOW_PRIVATE_URLS")
        assert expect(c.get(base), 200)["count"] == 0
    assert receiver.messages == []


def test_the_cli_manages_webhooks(start_server, fake, receiver, tmp_path):
    fake.always(Reply.default())
    srv = start_server(dict(FAST))
    home = tmp_path / "home"
    home.mkdir()
    env = cli_env(srv, home)
    with client_for(srv) as c:
        agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
    created = json.loads(ok(cli(env, "webhooks", "create", agent["id"], "--url", receiver.url,
                                "--event", "job.succeeded", "--description", "from the CLI")))
    receiver.secret = created["secret"]
    assert created["events"] == ["job.succeeded"]
    listed = ok(cli(env, "webhooks", "list", agent["id"]))
    assert created["id"] in listed and receiver.url in listed
    with client_for(srv) as c:
        job_id = run_job(c, agent["id"])
    receiver.wait_for(1)
    log = json.loads(ok(cli(env, "webhooks", "deliveries", agent["id"], created["id"], "--json")))
    assert [d["job_id"] for d in log] == [job_id]
    assert "queued 1" in ok(cli(env, "webhooks", "resend", job_id))
    receiver.wait_for(2)
    assert receiver.bad_signatures == []
    table = ok(cli(env, "webhooks", "deliveries", agent["id"], created["id"]))
    assert table.count(job_id) == 2
    ok(cli(env, "webhooks", "delete", agent["id"], created["id"]))
    assert created["id"] not in ok(cli(env, "webhooks", "list", agent["id"]))
    refused = cli(env, "webhooks", "create", agent["id"], "--url", "gopher://x")
    assert refused.returncode == 1 and "url" in refused.stderr.lower()
