"""Several agentd processes on one PostgreSQL database: idle workers wake through
LISTEN/NOTIFY, a sync run waits on a job another process executes, a cancel reaches the
process running the job, SIGTERM hands a worker's jobs back, and a PostgreSQL restart in
the middle of a batch loses nothing (requests answer 503 while it is down).

PostgreSQL only (except the check of an unsupported DATABASE_URL): run with
``AGENTD_E2E_DATABASE=postgres``. The restart test starts a
private PostgreSQL cluster (Debian's ``initdb``/``pg_ctl``, run as the ``postgres`` user)
on a free port in a temporary directory; the shared server is never restarted."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from conftest import AgentdServer, AgentdWorker, agentd_bin, use_postgres
from fake_openai import Reply, echo_value
from helpers import (CANCELLED, RETRY, SUCCESS, agent_body, event_codes, expect, job_statuses, list_jobs, unique,
                     wait_for_jobs)

postgres_only = pytest.mark.skipif(not use_postgres(), reason="PostgreSQL only (AGENTD_E2E_DATABASE=postgres)")

# Generous deadlines: the machine may be loaded; nothing here measures speed.
DEADLINE = 120.0
# A worker that polls once an hour finds new work only through notifications.
NEVER_POLL = {"AGENTD_JOB_POLL_MS": "3600000"}
API_ONLY = {"AGENTD_WORKERS": "0"}


def client_for(srv: AgentdServer, timeout: float = DEADLINE) -> httpx.Client:
    return httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {srv.api_key}"},
                        timeout=timeout)


@pytest.fixture
def hosts(start_server, fake_openai, session_dir):
    """``hosts(api_env, worker_env)``: an API-only ``serve`` process (host A) and an
    ``agentd worker`` process (host B) on one database; more with ``hosts.serve`` /
    ``hosts.worker`` on the same database."""
    workers: list[AgentdWorker] = []

    class Hosts:
        first: AgentdServer | None = None

        def serve(self, env: dict[str, str] | None = None) -> AgentdServer:
            return start_server(self._env(env), org_id=self._org(), api_key=self._key())

        def worker(self, env: dict[str, str] | None = None) -> AgentdWorker:
            wd = session_dir / ("worker-" + unique())
            env = {"AGENTD_METRICS_ADDR": "127.0.0.1:0", **self._env(env)}
            worker = AgentdWorker(wd, fake_openai.base_url, env, org_id=self._org(),
                                  api_key=self._key()).start()
            workers.append(worker)
            return worker

        def _env(self, env: dict[str, str] | None) -> dict[str, str]:
            shared = {"DATABASE_URL": self.first.env["DATABASE_URL"]} if self.first else {}
            return {**shared, **(env or {})}

        def _org(self) -> str | None:
            return self.first.org_id if self.first else None

        def _key(self) -> str | None:
            return self.first.api_key if self.first else None

        def __call__(self, api_env=None, worker_env=None, database_url: str | None = None):
            if database_url:
                api_env = {"DATABASE_URL": database_url, **(api_env or {})}
            self.first = self.serve({**API_ONLY, **(api_env or {})})
            return self.first, self.worker(worker_env)

    yield Hosts()
    for worker in workers:
        worker.stop()


def wait_until(what: str, check, deadline: float = DEADLINE):
    end = time.monotonic() + deadline
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < end, f"{what} did not happen within {deadline:.0f} s"
        time.sleep(0.05)


def answered_texts(fake) -> list[str]:
    return [t for r in fake.completions if r.answered for t in r.message_texts("user")]


@postgres_only
def test_a_sync_run_on_an_api_host_is_executed_by_the_worker_host(hosts, fake):
    """Host A runs no workers; host B's worker polls once an hour, so only the notification
    of the new job wakes it, and A's sync wait ends on the notification of the final job."""
    api, worker = hosts({"RUST_LOG": "info,agentd::worker::notices=debug"}, NEVER_POLL)
    with client_for(api) as c:
        agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
        # Let B finish its start-up claim and go idle before the job exists.
        wait_until("B listening", lambda: "listening for job notifications" in worker.log_text())
        text = "sync-" + unique()
        outputs = expect(c.post(f"/v1/agents/run/{agent['id']}/", json={"text": text}), 200)
        assert json.loads(outputs[0]["value"])["title"] == echo_value(text)
        job = list_jobs(c, agent["id"])["results"][0]
        [status] = job_statuses(c, [job["id"]])
    assert status["status"] == SUCCESS
    assert re.search(rf"notified: job is final.*{job['id']}", api.log_text()), \
        "host A did not hear of the job's end through a notification"
    assert answered_texts(fake) == [text]


@postgres_only
def test_cancel_on_one_host_stops_the_job_on_the_host_running_it(hosts, fake):
    fake.always(Reply.default(delay=3600))
    # An hour-long lease: the worker's heartbeat would not see the cancel for 20 minutes.
    api, _worker = hosts(None, {**NEVER_POLL, "AGENTD_JOB_LEASE_SECS": "3600"})
    with client_for(api) as c:
        agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
        job_id = expect(c.post(f"/v1/agents/run/{agent['id']}/async/", json={"text": "cancel-me"}), 200)
        [request] = fake.wait_for_requests(1, timeout=DEADLINE)
        expect(c.post(f"/v1/agents/jobs/{job_id}/cancel/"), 204)
        assert request.disconnected.wait(DEADLINE), "the worker host kept calling the provider"
        assert not request.answered
        [status] = wait_for_jobs(c, [job_id], timeout=DEADLINE)
    assert status["status"] == CANCELLED


@postgres_only
def test_sigterm_hands_a_workers_jobs_back_to_the_other_hosts(hosts, fake):
    """Worker B is stopped while it runs jobs: it finishes those it holds and exits 0; the rest
    stay queued and worker C runs them. Leases are an hour long, so no job waits for one to
    expire (no RETRY event), and no job is answered twice."""
    fake.always(Reply.default(delay=1.0))
    lease = {"AGENTD_JOB_LEASE_SECS": "3600", "AGENTD_WORKERS": "2"}
    api, worker_b = hosts(None, {**NEVER_POLL, **lease})
    with client_for(api) as c:
        agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
        texts = [f"handback-{i}-{unique()}" for i in range(8)]
        ids = expect(c.post(f"/v1/agents/run/{agent['id']}/async/many/",
                            json={"inputs": [{"text": t} for t in texts]}), 200)
        fake.wait_for_requests(1, timeout=DEADLINE)
        assert worker_b.stop(timeout=DEADLINE) == 0, worker_b.log_text()[-3000:]
        statuses = {s["id"]: s["status"] for s in job_statuses(c, ids)}
        left = [i for i in ids if statuses[i] != SUCCESS]
        assert left, "B finished every job before it stopped: the test proves nothing"
        hosts.worker({**NEVER_POLL, **lease})
        final = wait_for_jobs(c, ids, timeout=DEADLINE)
        assert [s["status"] for s in final] == [SUCCESS] * len(ids)
        jobs = list_jobs(c, agent["id"])["results"]
    assert all(RETRY not in event_codes(j) for j in jobs), [event_codes(j) for j in jobs]
    assert sorted(answered_texts(fake)) == sorted(texts), "a job was answered twice or not at all"


@postgres_only
def test_sigterm_hands_back_jobs_still_running_after_the_grace_period(hosts, fake):
    """Worker B's jobs outlast its grace period (0 s): it cuts their model calls, puts them
    back in the queue (RETRY, the attempt not counted) and exits 0; worker C runs them
    without waiting for B's hour-long leases to expire."""
    fake.always(Reply.default(delay=3600))
    env = {**NEVER_POLL, "AGENTD_JOB_LEASE_SECS": "3600", "AGENTD_WORKERS": "2",
           "AGENTD_SHUTDOWN_GRACE_SECS": "0"}
    api, worker_b = hosts(None, env)
    with client_for(api) as c:
        agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
        texts = [f"interrupted-{i}-{unique()}" for i in range(4)]
        ids = expect(c.post(f"/v1/agents/run/{agent['id']}/async/many/",
                            json={"inputs": [{"text": t} for t in texts]}), 200)
        held = fake.wait_for_requests(2, timeout=DEADLINE)
        assert worker_b.stop(timeout=DEADLINE) == 0, worker_b.log_text()[-3000:]
        for request in held:
            assert request.disconnected.wait(DEADLINE), "B kept calling the provider"
        fake.always(Reply.default())
        hosts.worker(env)
        final = wait_for_jobs(c, ids, timeout=DEADLINE)
        assert [s["status"] for s in final] == [SUCCESS] * len(ids)
        jobs = list_jobs(c, agent["id"])["results"]
    handed_back = [j for j in jobs if RETRY in event_codes(j)]
    assert len(handed_back) == 2, [event_codes(j) for j in jobs]
    for job in handed_back:
        retry = next(e for e in job["status_events"] if e["status_code"] == RETRY)
        assert "shut down" in retry["error_message"], retry
        assert job["attempts"] == 1, job["attempts"]
    assert sorted(answered_texts(fake)) == sorted(texts)


def test_an_unsupported_database_url_names_both_schemes(tmp_path):
    env = {**os.environ, "DATABASE_URL": "mysql://root@127.0.0.1/agentd", "AGENTD_ADDR": "127.0.0.1:0",
           "AGENTD_DATA_DIR": str(tmp_path)}
    for command in ("serve", "worker"):
        proc = subprocess.run([str(agentd_bin()), command], env=env, capture_output=True, text=True,
                              timeout=DEADLINE, stdin=subprocess.DEVNULL)
        assert proc.returncode != 0
        assert "sqlite://" in proc.stderr and "postgres://" in proc.stderr, proc.stderr
        assert "mysql://" in proc.stderr, proc.stderr


# ---------------------------------------------------------------------------
# A private PostgreSQL cluster, to restart it in the middle of a batch
# ---------------------------------------------------------------------------

def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateCluster:
    """initdb + pg_ctl in a directory the ``postgres`` user owns (initdb refuses root)."""

    def __init__(self) -> None:
        bin_dir = _postgres_bin()
        if bin_dir is None or shutil.which("runuser") is None:
            pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) or runuser")
        self.bin = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="agentd_pg_notify_"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.port = _free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def _as_postgres(self, tool: str, *args: str) -> None:
        proc = subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / tool), *args],
                              capture_output=True, text=True, timeout=DEADLINE, cwd=self.dir)
        assert proc.returncode == 0, f"{tool} failed: {proc.stdout}\n{proc.stderr}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._as_postgres("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"),
                          "-w", "-t", str(int(DEADLINE)), "start")

    def stop(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", str(int(DEADLINE)), "stop")

    def destroy(self) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / "pg_ctl"), "-D", str(self.data),
                        "-m", "immediate", "stop"], capture_output=True, timeout=DEADLINE)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_cluster() -> Iterator[PrivateCluster]:
    cluster = PrivateCluster()
    cluster.start()
    yield cluster
    cluster.destroy()


@postgres_only
def test_a_postgres_restart_mid_batch_loses_no_job(hosts, fake, private_cluster):
    fake.always(Reply.default(delay=0.3))
    api, worker = hosts(None, {"AGENTD_WORKERS": "4", "AGENTD_JOB_POLL_MS": "200"},
                        database_url=private_cluster.url)
    with client_for(api) as c:
        agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
        texts = [f"restart-{i:02d}-{unique()}" for i in range(40)]
        ids = expect(c.post(f"/v1/agents/run/{agent['id']}/async/many/",
                            json={"inputs": [{"text": t} for t in texts]}), 200)
        wait_until("a few jobs finished", lambda: len(answered_texts(fake)) >= 4)

        private_cluster.stop()
        down = c.get(f"/v1/agents/jobs/{ids[0]}/status/")
        assert down.status_code == 503, down.text
        body = down.json()
        assert isinstance(body, dict) and "database" in json.dumps(body).lower(), body
        private_cluster.start()

        final = wait_for_jobs(c, ids, timeout=DEADLINE * 2, interval=0.2)
        assert [s["status"] for s in final] == [SUCCESS] * len(ids), final
        results = expect(c.post("/v1/agents/jobs/results/", json={"job_ids": ids}), 200)
    for text, result in zip(texts, results):
        assert json.loads(result["result"][0]["value"])["title"] == echo_value(text)
    assert set(answered_texts(fake)) == set(texts)
    # The worker and the API host reconnected without a restart of their own.
    assert worker.proc.poll() is None and api.proc.poll() is None
    for host in (api, worker):
        assert host.log_text().count("listening for job notifications") >= 2, "a listener did not reconnect"
