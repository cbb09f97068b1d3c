"""Operators' endpoints: /metrics (parsed with the Prometheus text parser after a batch of jobs,
some failing: the counters match the jobs), /healthz, /readyz (503 when the database is gone),
the optional metrics token, and the job id and agent id on every log line of a job.

Each test runs its own server (own database), so the counts it reads are its own.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import POSTGRES_ADMIN_URL, REPO_ROOT, AgentdWorker, _psql, _with_database
from fake_openai import Reply, default_answer
from helpers import (
    CACHED,
    ENGINE,
    FAILURE,
    MODEL,
    SUCCESS,
    agent_body,
    assert_error,
    cost_of,
    expect,
    unique,
    wait_for_job,
    wait_for_jobs,
)

STATUS_NAMES = {SUCCESS: "SUCCESS", FAILURE: "FAILURE", CACHED: "CACHED"}
FAIL_MARK = "please-fail"
PROMPT_TOKENS, COMPLETION_TOKENS = 100, 20


def client_for(srv, **headers: str) -> httpx.Client:
    return httpx.Client(base_url=srv.base_url, timeout=60,
                        headers={"Authorization": f"Bearer {srv.api_key}", **headers})


def fail_marked(req) -> Reply:
    """A rejected key (no retry) for requests whose text carries FAIL_MARK; an answer otherwise."""
    if FAIL_MARK in req.all_text():
        return Reply.invalid_api_key()
    return default_answer(req, PROMPT_TOKENS, COMPLETION_TOKENS)


def scrape(srv, **headers: str) -> dict[str, list[Any]]:
    """``GET /metrics`` of a server, parsed by prometheus_client: samples by sample name."""
    return scrape_url(srv.base_url, **headers)


def scrape_url(base_url: str, **headers: str) -> dict[str, list[Any]]:
    resp = httpx.get(f"{base_url}/metrics", headers=headers, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain"), resp.headers
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def value(samples: dict[str, list[Any]], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (0 when none)."""
    return sum(s.value for s in samples.get(name, [])
               if all(s.labels.get(k) == v for k, v in labels.items()))


def wait_for_value(srv, name: str, expected: float, timeout: float = 30, **labels: str):
    """Scrapes until ``name{labels}`` equals ``expected`` (database gauges are cached a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(srv)
        if value(samples, name, **labels) == expected or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


def test_metrics_after_a_batch_match_the_jobs(start_server, fake):
    fake.always(Reply(build=fail_marked))
    srv = start_server()
    with client_for(srv) as c:
        agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
        tag = unique()
        texts = [f"ok {i} {tag}" for i in range(5)] + [f"{FAIL_MARK} {i} {tag}" for i in range(3)]
        ids = expect(c.post(f"/v1/agents/run/{agent['id']}/async/many/",
                            json={"inputs": [{"text": t} for t in texts]}), 200)
        wait_for_jobs(c, ids)
        # The same input again: answered from the cache, without a worker.
        again = expect(c.post(f"/v1/agents/run/{agent['id']}/async/", json={"text": texts[0]}), 200)
        wait_for_job(c, again)
        statuses = Counter(s["status"] for s in wait_for_jobs(c, ids + [again]))
    assert statuses[SUCCESS] == 5 and statuses[FAILURE] == 3, statuses

    samples = wait_for_value(srv, "agentd_jobs", statuses[CACHED], status="CACHED")
    # Database gauges: every job by status, engine and model.
    for code, name in STATUS_NAMES.items():
        assert value(samples, "agentd_jobs", status=name, engine=ENGINE, model=MODEL) == statuses[code], name
    assert value(samples, "agentd_jobs") == len(ids) + 1
    for waiting in ("PENDING", "STARTED", "RETRY"):
        assert value(samples, "agentd_jobs", status=waiting) == 0
    assert value(samples, "agentd_queue_depth") == 0
    assert value(samples, "agentd_database_up") == 1

    # Jobs this process ran: the cached one never reached a worker.
    finished = dict(engine=ENGINE, model=MODEL)
    assert value(samples, "agentd_jobs_finished_total", status="SUCCESS", **finished) == 5
    assert value(samples, "agentd_jobs_finished_total", status="FAILURE", **finished) == 3
    assert value(samples, "agentd_job_duration_seconds_count", **finished) == 8
    assert value(samples, "agentd_job_queue_wait_seconds_count") == 8
    assert value(samples, "agentd_job_cost_count", **finished) == 8
    assert value(samples, "agentd_job_cost_sum", **finished) == pytest.approx(
        5 * cost_of(PROMPT_TOKENS, COMPLETION_TOKENS))

    # Provider calls by outcome, and their tokens.
    calls = dict(provider="openai", model=MODEL)
    assert value(samples, "agentd_provider_requests_total", outcome="success", **calls) == 5
    assert value(samples, "agentd_provider_requests_total", outcome="auth_error", **calls) == 3
    assert value(samples, "agentd_provider_requests_total") == len(fake.completions) == 8
    assert value(samples, "agentd_provider_request_duration_seconds_count", **calls) == 8
    assert value(samples, "agentd_provider_tokens_total", kind="input", **calls) == 5 * PROMPT_TOKENS
    assert value(samples, "agentd_provider_tokens_total", kind="output", **calls) == 5 * COMPLETION_TOKENS

    # HTTP requests by route template, never by raw path.
    many = dict(method="POST", route="/v1/agents/run/{agent_id}/async/many/")
    assert value(samples, "agentd_http_requests_total", status="200", **many) == 1
    assert value(samples, "agentd_http_request_duration_seconds_count", **many) == 1
    assert value(samples, "agentd_http_requests_total", method="POST", route="/v1/agents/", status="201") == 1
    routes = {s.labels["route"] for s in samples["agentd_http_requests_total"]}
    assert not any(agent["id"] in r or any(i in r for i in ids) for r in routes), routes

    # The Grafana dashboard queries only metrics the server exports (webhooks: none delivered here).
    dashboard = json.loads((REPO_ROOT / "deploy" / "grafana" / "agentd.json").read_text())
    queried = {name for panel in dashboard["panels"] for target in panel["targets"]
               for name in re.findall(r"agentd_[a-z_]+", target["expr"])}
    missing = queried - set(samples) - {"agentd_webhook_deliveries_total", "agentd_provider_retries_total"}
    assert not missing, f"the dashboard queries metrics /metrics lacks: {missing}"


def test_unmatched_paths_share_one_route_label(start_server):
    srv = start_server()
    for n in range(3):
        resp = httpx.get(f"{srv.base_url}/no/such/path/{uuid.uuid4()}")
        assert_error(resp, 404)
    samples = scrape(srv)
    assert value(samples, "agentd_http_requests_total", route="unmatched", status="404") == 3


def test_healthz_and_readyz(server):
    resp = httpx.get(f"{server.base_url}/healthz")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}
    resp = httpx.get(f"{server.base_url}/readyz")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == "ok"
    # The suite runs without a local model: nothing to load, so nothing missing.
    assert body["checks"]["local_model"] == "ok"
    # The old probe is kept.
    assert httpx.get(f"{server.base_url}/health").status_code == 200


def test_metrics_token_is_asked_for_when_configured(start_server):
    token = "metrics-" + uuid.uuid4().hex
    srv = start_server({"AGENTD_METRICS_TOKEN": token})
    assert_error(httpx.get(f"{srv.base_url}/metrics"), 401)
    assert_error(httpx.get(f"{srv.base_url}/metrics", headers={"Authorization": "Bearer wrong"}), 401,
                 mentions="token")
    samples = scrape(srv, Authorization=f"Bearer {token}")
    assert value(samples, "agentd_database_up") == 1
    # An API key is no metrics token.
    assert_error(httpx.get(f"{srv.base_url}/metrics", headers={"Authorization": f"Bearer {srv.api_key}"}), 401)
    # Probes stay open.
    assert httpx.get(f"{srv.base_url}/readyz").status_code == 200


def _has_psql() -> bool:
    try:
        _psql("SELECT 1")
        return True
    except (OSError, subprocess.SubprocessError):
        return False


def test_readyz_is_503_while_the_database_is_gone(start_server):
    """On PostgreSQL: connections to the server's database are refused and cut, then allowed again."""
    if not _has_psql():
        pytest.skip(f"no PostgreSQL at {POSTGRES_ADMIN_URL}")
    name = "agentd_e2e_ready_" + uuid.uuid4().hex[:12]
    _psql(f"CREATE DATABASE {name}")
    try:
        srv = start_server({"DATABASE_URL": _with_database(POSTGRES_ADMIN_URL, name)})
        assert httpx.get(f"{srv.base_url}/readyz").status_code == 200
        _psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false",
              f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        resp = wait_for_readyz(srv, 503)
        body = assert_error(resp, 503, mentions="database")
        assert body["status"] == "not ready" and body["checks"]["database"] != "ok", body
        assert "postgres" not in body["detail"].lower(), body  # the database's own text stays in the log
        # Liveness does not depend on the database.
        assert httpx.get(f"{srv.base_url}/healthz").status_code == 200
        samples = scrape(srv)
        assert value(samples, "agentd_database_up") == 0
        _psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        assert wait_for_readyz(srv, 200).json()["status"] == "ready"
    finally:
        _psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def wait_for_readyz(srv, status: int, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        resp = httpx.get(f"{srv.base_url}/readyz", timeout=30)
        if resp.status_code == status or time.monotonic() > deadline:
            assert resp.status_code == status, resp.text
            return resp
        time.sleep(0.2)


def job_lines(log: str) -> list[dict[str, Any]]:
    """The JSON log lines (stderr) that a job span encloses."""
    lines = []
    for raw in log.splitlines():
        if not raw.startswith("[err] {"):
            continue
        line = json.loads(raw[len("[err] "):])
        if any(span.get("name") == "job" for span in line.get("spans", [])):
            lines.append(line)
    return lines


def test_every_log_line_of_a_job_names_the_job_and_its_agent(start_server, fake):
    srv = start_server({"AGENTD_LOG_FORMAT": "json", "RUST_LOG": "info,agentd=debug,agentd_providers=debug",
                        "AGENTD_PROVIDER_MAX_RETRIES": "1"})
    # One server error first: the retry logs a warning from inside the provider layer.
    fake.enqueue(Reply.error(500))
    start = srv.log_size()
    with client_for(srv) as c:
        agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
        job = expect(c.post(f"/v1/agents/run/{agent['id']}/async/", json={"text": unique("log ")}), 200)
        assert wait_for_job(c, job)["status"] == SUCCESS
    deadline = time.monotonic() + 30
    while True:
        lines = job_lines(srv.log_text(start))
        messages = [line["fields"].get("message", "") for line in lines]
        if "job finished" in messages or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert "job started" in messages and "job finished" in messages, messages
    assert any("retrying model call" in m for m in messages), messages
    for line in lines:
        span = next(s for s in line["spans"] if s.get("name") == "job")
        assert span["job_id"] == job and span["agent_id"] == agent["id"], line
    # Every line logged while the job ran sits in its span: none outside it mentions the retry.
    outside = [raw for raw in srv.log_text(start).splitlines()
               if "retrying model call" in raw and '"job_id"' not in raw]
    assert not outside, outside


METRICS_LISTEN_RE = re.compile(r"agentd metrics listening on (http://\S+)")


def test_a_worker_process_serves_its_own_metrics(start_server, fake, tmp_path):
    """An API-only server and a worker process sharing its database: the server reports the
    database's jobs, the worker the jobs it ran, each on its own /metrics."""
    fake.always(Reply(build=fail_marked))
    api = start_server({"AGENTD_WORKERS": "0", "AGENTD_METRICS_ADDR": "127.0.0.1:0"})
    assert METRICS_LISTEN_RE.search(api.log_text()), "the metrics listener of `serve` did not start"
    worker = AgentdWorker.beside(api, api.workdir / "worker",
                                 {"AGENTD_METRICS_ADDR": "127.0.0.1:0", "AGENTD_WORKERS": "4"})
    worker_url = worker.base_url
    try:
        with client_for(api) as c:
            agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
            tag = unique()
            texts = [f"ok {i} {tag}" for i in range(3)] + [f"{FAIL_MARK} {tag}"]
            ids = expect(c.post(f"/v1/agents/run/{agent['id']}/async/many/",
                                json={"inputs": [{"text": t} for t in texts]}), 200)
            wait_for_jobs(c, ids)
        worker_samples = scrape_url(worker_url)
        finished = dict(engine=ENGINE, model=MODEL)
        assert value(worker_samples, "agentd_jobs_finished_total", status="SUCCESS", **finished) == 3
        assert value(worker_samples, "agentd_jobs_finished_total", status="FAILURE", **finished) == 1
        assert httpx.get(f"{worker_url}/readyz").status_code == 200
        assert_error(httpx.get(f"{worker_url}/v1/agents/"), 404)
        api_samples = wait_for_value(api, "agentd_jobs", 3, status="SUCCESS")
        assert value(api_samples, "agentd_jobs", status="SUCCESS") == 3
        assert value(api_samples, "agentd_jobs", status="FAILURE") == 1
        assert value(api_samples, "agentd_jobs_finished_total") == 0  # it runs no jobs
        # Both see the same database totals.
        assert value(worker_samples, "agentd_jobs") == value(api_samples, "agentd_jobs") == 4
    finally:
        worker.stop()
        print("agentd worker log:\n" + worker.log_text())  # shown when the test fails
