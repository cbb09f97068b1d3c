"""Several hosts on one PostgreSQL database and one S3 store (moto on
loopback): two ``agentd serve`` processes and one ``agentd worker`` process.
A batch of 1,000 jobs (some with uploaded files) is submitted to one host;
the worker process is killed with ``kill -9`` while some jobs are done and
others run on it; then every job is final with its outputs, readable from
both hosts, and no job was completed (or charged) twice: the fake
provider's log shows a second request only for the jobs the killed worker
held, which their lease handed to another worker.

Run with ``AGENTD_E2E_DATABASE=postgres`` (scripts/test.sh does)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from conftest import use_postgres
from fake_openai import DEFAULT_COMPLETION_TOKENS, DEFAULT_PROMPT_TOKENS, Reply, default_answer, echo_value
from helpers import (
    SUCCESS,
    TEXT_INPUT,
    agent_body,
    cost_of,
    data_url,
    event_codes,
    expect,
    extraction_config,
    job_statuses,
    list_jobs,
    parse_credits,
    png_bytes,
    unique,
    wait_for_jobs,
)
from conftest import AgentdWorker
from hosts import MotoS3

pytestmark = pytest.mark.skipif(not use_postgres(), reason="a PostgreSQL test: AGENTD_E2E_DATABASE=postgres")

N_TEXT_JOBS = 900
N_FILE_JOBS = 100
N_JOBS = N_TEXT_JOBS + N_FILE_JOBS
# Requests the fake answers at once; later ones wait until the worker is killed.
ANSWERED_BEFORE_KILL = 150
SERVE_WORKERS = 2
KILLED_WORKERS = 8
ALL_WORKERS = 2 * SERVE_WORKERS + KILLED_WORKERS
HOST_ENV = {
    "AGENTD_JOB_LEASE_SECS": "3",
    "AGENTD_JOB_POLL_MS": "200",
    # A file sweep that never touches files of this test.
    "AGENTD_FILE_SWEEP_GRACE_SECS": "3600",
}
DEADLINE = 600.0


class GatedProvider:
    """Answers the first ``ANSWERED_BEFORE_KILL`` requests at once; holds
    the others until ``open()``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received = 0
        self.gate = threading.Event()

    def reply(self) -> Reply:
        def build(req):
            with self.lock:
                self.received += 1
                held = self.received > ANSWERED_BEFORE_KILL
            if held:
                self.gate.wait(DEADLINE)
            return default_answer(req, DEFAULT_PROMPT_TOKENS, DEFAULT_COMPLETION_TOKENS)

        return Reply(build=build)

    def open(self) -> None:
        self.gate.set()


@pytest.fixture
def moto(session_dir: Path) -> Iterator[MotoS3]:
    s3 = MotoS3(session_dir)
    yield s3
    s3.stop()


def http_of(srv) -> httpx.Client:
    return httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {srv.api_key}"}, timeout=120)


def user_texts(requests) -> list[str]:
    return [t for r in requests for t in r.message_texts("user") if t.startswith("mp-")]


def test_two_servers_and_a_killed_worker_finish_every_job_once(start_server, session_dir, moto, fake):
    gated = GatedProvider()
    fake.always(gated.reply())
    host_a = start_server({**moto.env(), **HOST_ENV, "AGENTD_WORKERS": str(SERVE_WORKERS)})
    shared = {"DATABASE_URL": host_a.env["DATABASE_URL"]}
    host_b = start_server({**moto.env(), **HOST_ENV, **shared, "AGENTD_WORKERS": str(SERVE_WORKERS)},
                          org_id=host_a.org_id, api_key=host_a.api_key)
    worker = AgentdWorker.beside(host_a, session_dir / ("worker-" + unique()),
                                 {**moto.env(), **HOST_ENV, "AGENTD_WORKERS": str(KILLED_WORKERS)})
    try:
        with http_of(host_a) as a, http_of(host_b) as b:
            tag = unique()
            text_agent = expect(a.post("/v1/agents/", json=agent_body()), 201)
            photo_body = agent_body(input_definitions=[TEXT_INPUT, {"key": "photo", "data_type": "image/png"}],
                                    engine_config=extraction_config(images="${photo}"))
            photo_agent = expect(a.post("/v1/agents/", json=photo_body), 201)
            texts = [f"mp-{i:04d}-{tag}" for i in range(N_JOBS)]
            file_inputs = [{"text": t, "photo": data_url(png_bytes(i + 1, 1), "image/png")}
                           for i, t in enumerate(texts[:N_FILE_JOBS])]
            ids = expect(a.post(f"/v1/agents/run/{photo_agent['id']}/async/many/", json={"inputs": file_inputs}), 200)
            ids += expect(a.post(f"/v1/agents/run/{text_agent['id']}/async/many/",
                                 json={"inputs": [{"text": t} for t in texts[N_FILE_JOBS:]]}), 200)
            assert len(ids) == N_JOBS
            file_keys = [k for k in moto.keys() if k.startswith("files/")]
            assert len(file_keys) == N_FILE_JOBS, "each uploaded file is an object in the bucket"

            # Every worker of every host holds a request the fake has not
            # answered: the worker process has jobs in flight, and each
            # worker finished its earlier jobs before taking one more.
            fake.wait_for_requests(ANSWERED_BEFORE_KILL + ALL_WORKERS, timeout=DEADLINE)
            worker.kill()
            done_at_kill = sum(s["status"] == SUCCESS for s in job_statuses(b, ids))
            assert 0 < done_at_kill < N_JOBS, done_at_kill
            gated.open()

            statuses = wait_for_jobs(b, ids, timeout=DEADLINE, interval=0.5)
            assert [s["status"] for s in statuses] == [SUCCESS] * N_JOBS, [
                (s["id"], s["status"], s.get("error_message")) for s in statuses if s["status"] != SUCCESS][:10]
            check_results_on(a, ids, texts)
            check_results_on(b, ids, texts)
            check_each_job_completed_once(b, [text_agent["id"], photo_agent["id"]], N_JOBS)

            # The fake answered every job; only those the killed worker
            # held were asked for twice (their lease retry).
            asked = Counter(user_texts(fake.completions))
            assert set(asked) == set(texts)
            asked_twice = [t for t, n in asked.items() if n > 1]
            assert 0 < len(asked_twice) <= KILLED_WORKERS, asked_twice
            assert max(asked.values()) == 2
            print(f"\n{N_JOBS} jobs: {done_at_kill} done when the worker was killed, "
                  f"{len(asked_twice)} asked again after their lease")

            # Each job was charged once.
            credits = parse_credits(host_a.admin("credits", "show", "--org", host_a.org_id))
            expected = N_JOBS * cost_of(DEFAULT_PROMPT_TOKENS, DEFAULT_COMPLETION_TOKENS)
            assert abs(float(credits["spent"]) - expected) < 1e-6, (credits, expected)
    finally:
        gated.open()
        worker.stop()


def check_results_on(client: httpx.Client, ids: list[str], texts: list[str]) -> None:
    """Every job's result, through this host, is the answer to its own input."""
    results = expect(client.post("/v1/agents/jobs/results/", json={"job_ids": ids}), 200)
    assert [r["id"] for r in results] == ids
    for text, result in zip(texts, results):
        assert result["status"] == SUCCESS, result
        assert json.loads(result["result"][0]["value"])["title"] == echo_value(text), (result["id"], text)


def check_each_job_completed_once(client: httpx.Client, agent_ids: list[str], total: int) -> None:
    seen = 0
    for agent_id in agent_ids:
        page = 1
        while True:
            listing = list_jobs(client, agent_id, page=page, page_size=100)
            for job in listing["results"]:
                codes = event_codes(job)
                assert codes.count(SUCCESS) == 1 and codes[-1] == SUCCESS, (job["id"], codes)
                seen += 1
            if not listing.get("next"):
                break
            page += 1
    assert seen == total
