"""Nothing accepted is lost when the server dies: jobs whose worker vanished (kill -9, or
SIGTERM in the middle of a model call) are taken up again by a new server process on the
same database once their lease expires (RETRY, then STARTED again), and finish."""

from __future__ import annotations

import json
import signal
import time

import httpx

from fake_openai import Reply, echo_value
from helpers import (
    FAILURE,
    PENDING,
    RETRY,
    STARTED,
    SUCCESS,
    agent_body,
    event_codes,
    expect,
    job_statuses,
    list_jobs,
    unique,
    wait_for_jobs,
)

LEASE_SECS = 3
CRASH_ENV = {
    "AGENTD_JOB_LEASE_SECS": str(LEASE_SECS),
    "AGENTD_JOB_POLL_MS": "200",
    "AGENTD_WORKERS": "4",
}
N_JOBS = 20
MODEL_DELAY = 2.0


def client_for(srv) -> httpx.Client:
    return httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {srv.api_key}"}, timeout=30)


def submit_and_interrupt(start_server, fake, stop) -> tuple[object, dict, list[str], list[str], list[str]]:
    """Starts a server, submits jobs, waits until some run, stops the server with ``stop(srv)``.

    Returns (stopped server, agent, job ids, their texts, ids that were STARTED at the stop)."""
    fake.always(Reply.default(delay=MODEL_DELAY))
    srv = start_server(dict(CRASH_ENV))
    with client_for(srv) as c:
        agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
        tag = unique()
        texts = [f"crash-{i:02d}-{tag}" for i in range(N_JOBS)]
        ids = expect(c.post(f"/v1/agents/run/{agent['id']}/async/many/",
                            json={"inputs": [{"text": t} for t in texts[:-1]]}), 200)
        # One more through the single async endpoint.
        ids.append(expect(c.post(f"/v1/agents/run/{agent['id']}/async/", json={"text": texts[-1]}), 200))
        assert len(ids) == N_JOBS
        fake.wait_for_requests(1, timeout=10)
        deadline = time.monotonic() + 10
        while True:
            started = [s["id"] for s in job_statuses(c, ids) if s["status"] == STARTED]
            if started:
                break
            assert time.monotonic() < deadline, "no job was STARTED"
            time.sleep(0.05)
    stop(srv)
    return srv, agent, ids, texts, started


def check_all_recovered(again, agent, ids, texts, interrupted, require_retry: bool = True) -> list[dict]:
    with client_for(again) as c:
        statuses = wait_for_jobs(c, ids, timeout=60, interval=0.2)
        assert [s["status"] for s in statuses] == [SUCCESS] * len(ids), [
            (s["id"], s["status"], s.get("error_message")) for s in statuses if s["status"] != SUCCESS]
        results = expect(c.post("/v1/agents/jobs/results/", json={"job_ids": ids}), 200)
        for text, r in zip(texts, results):
            assert json.loads(r["result"][0]["value"])["title"] == echo_value(text), (r["id"], text)
            assert [i["value"] for i in r["inputs"] if i["key"] == "text"] == [text]
        jobs = {j["id"]: j for j in list_jobs(c, agent["id"])["results"]}
        assert set(jobs) == set(ids), "the job list lost or gained jobs"
        for job_id in interrupted:
            job = jobs[job_id]
            codes = event_codes(job)
            assert job["attempts"] >= 2, (job_id, job["attempts"], codes)
            assert codes[0] == PENDING and codes[-1] == SUCCESS, codes
            assert RETRY in codes, f"job {job_id} was interrupted but shows no RETRY event: {codes}"
            retry = next(e for e in job["status_events"] if e["status_code"] == RETRY)
            assert isinstance(retry.get("error_message"), str) and retry["error_message"], job["status_events"]
            assert codes.index(RETRY) < len(codes) - 1 and codes[codes.index(RETRY) + 1] == STARTED, codes
        if require_retry:
            assert any(RETRY in event_codes(j) for j in jobs.values())
        assert all(FAILURE not in event_codes(j) for j in jobs.values())
        return list(jobs.values())


def test_kill_9_jobs_are_retried_by_the_next_server(start_server, fake):
    def kill(srv):
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait(10)
        srv.stop()

    srv, agent, ids, texts, interrupted = submit_and_interrupt(start_server, fake, kill)
    assert srv.proc.returncode == -signal.SIGKILL
    killed_at = time.monotonic()
    in_flight = [r for r in fake.completions if not r.finished.is_set() or r.disconnected.is_set()]
    assert in_flight, "no model call was in flight when the server was killed"

    again = start_server(dict(CRASH_ENV), workdir=srv.workdir, org_id=srv.org_id, api_key=srv.api_key)
    check_all_recovered(again, agent, ids, texts, interrupted)
    assert time.monotonic() - killed_at < 60
    # Every input got an answer from the fake (the interrupted calls were made again).
    answered = [r for r in fake.completions if r.answered]
    assert {t for r in answered for t in r.message_texts("user")} == set(texts)


def test_sigterm_while_jobs_run_then_restart_completes_them(start_server, fake):
    codes = []

    def terminate(srv):
        codes.append(srv.stop(timeout=15))

    srv, agent, ids, texts, interrupted = submit_and_interrupt(start_server, fake, terminate)
    assert codes == [0], f"agentd exited with {codes[0]} after SIGTERM\n{srv.log_text()[-3000:]}"
    again = start_server(dict(CRASH_ENV), workdir=srv.workdir, org_id=srv.org_id, api_key=srv.api_key)
    with client_for(again) as c:
        left = [s for s in job_statuses(c, ids) if s["status"] != SUCCESS]
        assert left, "every job had finished before the SIGTERM: the test proves nothing"
    # A graceful stop may hand its running jobs back at once or leave them to their leases;
    # either way the next server finishes them.
    check_all_recovered(again, agent, ids, texts, [], require_retry=False)


def test_job_fails_after_max_attempts(start_server, fake):
    """AGENTD_JOB_MAX_ATTEMPTS=1: a job whose only worker died is not run again but fails with a message;
    a job that was only queued still runs after the restart."""
    env = {**CRASH_ENV, "AGENTD_WORKERS": "1", "AGENTD_JOB_MAX_ATTEMPTS": "1"}
    fake.enqueue(Reply.default(delay=30))
    srv = start_server(dict(env))
    with client_for(srv) as c:
        agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
        doomed = expect(c.post(f"/v1/agents/run/{agent['id']}/async/", json={"text": "doomed " + unique()}), 200)
        (first,) = fake.wait_for_requests(1)
        queued_text = "queued " + unique()
        queued = expect(c.post(f"/v1/agents/run/{agent['id']}/async/", json={"text": queued_text}), 200)
        assert [s["status"] for s in job_statuses(c, [doomed, queued])] == [STARTED, PENDING]
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(10)
    srv.stop()
    assert first.disconnected.wait(3)

    again = start_server(dict(env), workdir=srv.workdir, org_id=srv.org_id, api_key=srv.api_key)
    with client_for(again) as c:
        statuses = wait_for_jobs(c, [doomed, queued], timeout=30, interval=0.2)
        assert statuses[1]["status"] == SUCCESS
        assert statuses[0]["status"] == FAILURE, statuses[0]
        assert isinstance(statuses[0].get("error_message"), str) and statuses[0]["error_message"]
        jobs = {j["id"]: j for j in list_jobs(c, agent["id"])["results"]}
        assert jobs[doomed]["attempts"] == 1
        assert event_codes(jobs[doomed]) == [PENDING, STARTED, FAILURE]
        res = expect(c.get(f"/v1/agents/jobs/{doomed}/result/"), 200)
        assert res["outputs"] == [] and res["error_message"] == statuses[0]["error_message"]
    # The doomed job was not sent to the model again.
    assert len(fake.completions) == 2
    assert any(queued_text in t for t in fake.completions[1].message_texts("user"))
