"""Provider failures seen through the jobs API: retries with backoff on 429/5xx/timeouts/
malformed bodies, Retry-After, bounded retries ending in FAILURE with a readable error,
a rejected API key failing at once.

The session server runs with AGENTD_PROVIDER_MAX_RETRIES=0, so these tests use their own
servers with small retry settings.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from fake_openai import Reply, echo_value
from helpers import FAILURE, SUCCESS, agent_body, expect, list_jobs, unique, wait_for_job


class Target:
    def __init__(self, srv):
        self.srv = srv
        self.http = httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {srv.api_key}"},
                                 timeout=60)
        self.agent = expect(self.http.post("/v1/agents/", json=agent_body()), 201)

    def submit(self, text: str) -> str:
        return expect(self.http.post(f"/v1/agents/run/{self.agent['id']}/async/", json={"text": text}), 200)

    def run(self, text: str, timeout: float = 30) -> tuple[dict, dict]:
        """Submits a job, waits for it to end; returns (status, result)."""
        job = self.submit(text)
        st = wait_for_job(self.http, job, timeout=timeout)
        res = expect(self.http.get(f"/v1/agents/jobs/{job}/result/"), 200)
        return st, res

    def close(self):
        self.http.close()


@pytest.fixture(scope="module")
def retrying(start_module_server):
    t = Target(start_module_server({"AGENTD_PROVIDER_MAX_RETRIES": "2"}))
    yield t
    t.close()


@pytest.fixture(scope="module")
def impatient(start_module_server):
    """A provider timeout of 1 s and a single retry."""
    t = Target(start_module_server({"AGENTD_PROVIDER_MAX_RETRIES": "1", "AGENTD_PROVIDER_TIMEOUT_SECS": "1"}))
    yield t
    t.close()


def assert_success(st: dict, res: dict, text: str) -> None:
    assert st["status"] == SUCCESS, st
    assert json.loads(res["outputs"][0]["value"])["title"] == echo_value(text)


def assert_same_requests(fake) -> None:
    bodies = [r.json for r in fake.completions]
    assert all(b == bodies[0] for b in bodies), "a retry sent a different request"


# ---------------------------------------------------------------------------
# Transient failures, then success
# ---------------------------------------------------------------------------


def test_429_honours_retry_after_then_succeeds(retrying, fake):
    fake.enqueue(Reply.rate_limited(retry_after="2"))
    text = "rate limited " + unique()
    st, res = retrying.run(text)
    assert_success(st, res, text)
    first, second = fake.completions
    gap = second.at - first.at
    assert gap >= 1.9, f"retried {gap:.2f} s after a 429 with Retry-After: 2"
    assert gap < 10, f"retried only {gap:.2f} s after a 429 with Retry-After: 2"
    assert_same_requests(fake)
    job = list_jobs(retrying.http, retrying.agent["id"], search=text)["results"][0]
    assert job["attempts"] == 1, "provider retries must not count as job attempts"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_then_success(retrying, fake, status):
    fake.enqueue(Reply.error(status))
    text = f"server error {status} " + unique()
    st, res = retrying.run(text)
    assert_success(st, res, text)
    assert len(fake.completions) == 2
    assert_same_requests(fake)
    assert res["input_tokens"] == 100 and res["output_tokens"] == 20


def test_malformed_body_then_success(retrying, fake):
    fake.enqueue(Reply.malformed())
    text = "malformed " + unique()
    st, res = retrying.run(text)
    assert_success(st, res, text)
    assert len(fake.completions) == 2


def test_two_failures_then_success_within_max_retries(retrying, fake):
    fake.enqueue(Reply.error(500), Reply.rate_limited(retry_after="0"))
    text = "twice " + unique()
    st, res = retrying.run(text)
    assert_success(st, res, text)
    assert len(fake.completions) == 3


def test_slow_answer_times_out_and_is_retried(impatient, fake):
    fake.enqueue(Reply.default(delay=5))
    text = "slow then fast " + unique()
    t0 = time.monotonic()
    st, res = impatient.run(text)
    assert_success(st, res, text)
    first, second = fake.completions
    assert first.disconnected.wait(2), "the timed-out request was not abandoned by the server"
    assert not first.answered
    gap = second.at - first.at
    assert gap >= 0.9, f"the retry came {gap:.2f} s after the first call, before the 1 s timeout"
    assert time.monotonic() - t0 < 5, "the job waited for the slow answer instead of timing out"


# ---------------------------------------------------------------------------
# Persistent failures
# ---------------------------------------------------------------------------


def assert_failed(st: dict, res: dict, *words: str) -> str:
    assert st["status"] == FAILURE, st
    msg = st.get("error_message")
    assert isinstance(msg, str) and msg.strip(), st
    low = msg.lower()
    assert any(w.lower() in low for w in words), f"error_message {msg!r} mentions none of {words}"
    assert "panicked" not in low and "traceback" not in low
    assert res["status"] == FAILURE and res["error_message"] == msg and res["outputs"] == []
    assert not res["cost"], f"a job whose model calls all failed cost {res['cost']}"
    return msg


def test_persistent_500_fails_with_readable_error(retrying, fake):
    fake.always(Reply.error(500, "The server had an error while processing your request."))
    st, res = retrying.run("always 500 " + unique())
    assert_failed(st, res, "HTTP 500")
    assert len(fake.completions) == 3, "expected the first call and 2 retries"
    assert_same_requests(fake)


def test_persistent_429_fails_with_rate_limit_error(retrying, fake):
    fake.always(Reply.rate_limited(retry_after="0"))
    st, res = retrying.run("always 429 " + unique())
    assert_failed(st, res, "rate limit", "429")
    assert len(fake.completions) == 3


def test_persistent_malformed_body_fails(retrying, fake):
    fake.always(Reply.malformed())
    st, res = retrying.run("always broken " + unique())
    assert_failed(st, res, "malformed", "invalid", "parse", "json", "decode", "unexpected")
    assert len(fake.completions) == 3


def test_invalid_api_key_fails_at_once(retrying, fake):
    fake.always(Reply.invalid_api_key())
    st, res = retrying.run("bad key " + unique())
    assert_failed(st, res, "rejected the API key")
    time.sleep(1.0)
    assert len(fake.completions) == 1, "a 401 must not be retried"


def test_persistent_timeout_fails(impatient, fake):
    fake.always(Reply.default(delay=5))
    t0 = time.monotonic()
    st, res = impatient.run("always slow " + unique(), timeout=20)
    elapsed = time.monotonic() - t0
    assert_failed(st, res, "timed out", "timeout", "did not answer within")
    assert len(fake.completions) == 2, "expected the first call and 1 retry"
    assert elapsed < 8, f"two 1 s timeouts took {elapsed:.1f} s"
    for r in fake.completions:
        assert r.disconnected.wait(3)


@pytest.fixture(scope="module")
def capped(start_module_server):
    """Provider answers of at most 4 KiB, retries on."""
    t = Target(start_module_server({"AGENTD_PROVIDER_MAX_RETRIES": "2",
                                    "AGENTD_PROVIDER_MAX_RESPONSE_BYTES": "4096"}))
    yield t
    t.close()


def test_an_answer_over_the_size_cap_fails_at_once(capped, fake):
    fake.always(Reply(status=200, body=" " * 5000 + "{}", headers={"Content-Type": "application/json"}))
    st, res = capped.run("huge answer " + unique())
    assert_failed(st, res, "larger than 4096 bytes")
    assert len(fake.completions) == 1, "an oversized answer must not be retried"
