"""AGENTD_JOB_RETENTION_DAYS: the sweep erases the data of jobs finished longer ago than
that (inputs' values, outputs, files), as delete-data does; the job stays, with its status
and cost, so counts and listings stay right. The test backdates a finished job in the
database (SQLite or PostgreSQL, by AGENTD_E2E_DATABASE) instead of waiting a day."""

from __future__ import annotations

import sqlite3
import subprocess
import time

import httpx
import pytest

from conftest import AgentdServer, agentd_bin
from helpers import SUCCESS, TEXT_INPUT, agent_body, expect, extraction_config, list_jobs, only_output, png_bytes, unique

PHOTO_INPUTS = [TEXT_INPUT, {"key": "photo", "data_type": "image/png", "description": "A photo"}]
DEADLINE = 30.0


def execute(srv, sql: str) -> list[tuple]:
    url = srv.env["DATABASE_URL"]
    if url.startswith("postgres"):
        out = subprocess.run(["psql", url, "-Atc", sql], check=True, capture_output=True, text=True,
                             timeout=60).stdout
        return [tuple(line.split("|")) for line in out.splitlines()]
    db = sqlite3.connect(srv.workdir / "agentd.db", timeout=30)
    try:
        rows = db.execute(sql).fetchall()
        db.commit()
        return rows
    finally:
        db.close()


def backdate(srv, job_id: str, days: int) -> None:
    if srv.env["DATABASE_URL"].startswith("postgres"):
        execute(srv, f"UPDATE jobs SET updated_at = now() - interval '{days} days' WHERE id = '{job_id}'")
    else:
        execute(srv, f"UPDATE jobs SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-{days} days') "
                     f"WHERE id = '{job_id}'")


@pytest.fixture
def retained(start_server):
    srv = start_server({"AGENTD_JOB_RETENTION_DAYS": "2", "AGENTD_FILE_SWEEP_SECS": "1"})
    with httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {srv.api_key}"},
                      timeout=60) as http:
        yield srv, http


def run_with_photo(http: httpx.Client, agent: dict) -> tuple[dict, str]:
    resp = http.post(f"/v1/agents/run/{agent['id']}/", data={"text": "old " + unique()},
                     files={"photo": ("p.png", png_bytes(4, 4), "image/png")})
    only_output(expect(resp, 200))
    job = list_jobs(http, agent["id"])["results"][0]
    return job, next(i for i in job["job_inputs"] if i["key"] == "photo")["value"]


def test_a_job_past_retention_keeps_its_status_and_loses_its_data(retained):
    srv, http = retained
    body = agent_body(input_definitions=PHOTO_INPUTS, engine_config=extraction_config(images="${photo}"))
    agent = expect(http.post("/v1/agents/", json=body), 201)
    old, old_file = run_with_photo(http, agent)
    recent, recent_file = run_with_photo(http, agent)
    backdate(srv, old["id"], 3)
    backdate(srv, recent["id"], 1)

    deadline = time.monotonic() + DEADLINE
    while (srv.workdir / "files" / old_file).exists():
        assert time.monotonic() < deadline, f"the sweep did not erase the old job within {DEADLINE} s"
        time.sleep(0.1)

    jobs = {job["id"]: job for job in list_jobs(http, agent["id"])["results"]}
    assert len(jobs) == 2, "the erased job stays listed"
    tombstone = jobs[old["id"]]
    assert tombstone["status_code"] == SUCCESS
    assert all(i["value"] == "" for i in tombstone["job_inputs"]), tombstone["job_inputs"]
    assert not execute(srv, f"SELECT id FROM files WHERE id = '{old_file}'")
    # The job finished a day ago is within retention: untouched.
    kept = jobs[recent["id"]]
    assert next(i for i in kept["job_inputs"] if i["key"] == "photo")["value"] == recent_file
    assert (srv.workdir / "files" / recent_file).exists()


def test_retention_refuses_zero_days(tmp_path):
    srv = AgentdServer(tmp_path / "zero", "http://127.0.0.1:9/v1", {"AGENTD_JOB_RETENTION_DAYS": "0"})
    proc = subprocess.run([str(agentd_bin()), "serve"], env=srv.env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "AGENTD_JOB_RETENTION_DAYS" in proc.stderr or "retention" in proc.stderr, proc.stderr
