"""Files live as long as the jobs that refer to them, and requests cannot
amplify into storage: refused requests leave no files, deleting an agent or a
job's data removes the files no other job uses, a sweep removes orphans, URL
inputs are fetched by the worker (not in the request), and metadata is capped.

Runs against its own server, so that its files folder and database hold only
what these tests put there."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from file_server import FileServer
from helpers import (
    PHOTO_INPUTS,
    CACHED,
    FAILURE,
    STARTED,
    SUCCESS,
    TEXT_INPUT,
    agent_body,
    assert_error,
    data_url,
    decode_data_url,
    expect,
    extraction_config,
    image_parts,
    list_jobs,
    only_output,
    png_bytes,
    unique,
    wait_for_job,
    wait_for_jobs,
)

MAX_REQUEST_BYTES = 16 * 1024 * 1024
MAX_FETCH_BYTES = 1024 * 1024
MAX_CONCURRENT_FETCHES = 2
METADATA_CAP = 16 * 1024
GRACE_SECS = 300
DEADLINE = 30.0


class Server:
    """The dedicated agentd server with a client and views of its storage."""

    def __init__(self, srv) -> None:
        self.srv = srv
        self.http = httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {srv.api_key}"},
                                 timeout=60)
        self.files_dir: Path = srv.workdir / "files"

    def disk_files(self) -> set[str]:
        return {p.name for p in self.files_dir.iterdir()}

    def query(self, sql: str, *args) -> list[tuple]:
        url = self.srv.env["DATABASE_URL"]
        if url.startswith("postgres"):
            assert not args, "parameters are for SQLite only"
            out = subprocess.run(["psql", url, "-Atc", sql], check=True, capture_output=True, text=True,
                                 timeout=60).stdout
            return [tuple(line.split("|")) for line in out.splitlines()]
        db = sqlite3.connect(f"file:{self.srv.workdir / 'agentd.db'}?mode=ro", uri=True, timeout=30)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def file_rows(self) -> set[str]:
        return {row[0] for row in self.query("SELECT id FROM files")}

    def db_bytes(self) -> int:
        if self.srv.env["DATABASE_URL"].startswith("postgres"):
            return int(self.query("SELECT pg_database_size(current_database())")[0][0])
        return sum(p.stat().st_size for p in self.srv.workdir.glob("agentd.db*"))

    def photo_agent(self) -> dict:
        body = agent_body(input_definitions=PHOTO_INPUTS, engine_config=extraction_config(images="${photo}"))
        return expect(self.http.post("/v1/agents/", json=body), 201)

    def upload_run(self, agent: dict, png: bytes) -> tuple[str, str]:
        """A sync multipart run with an uploaded photo; returns (job id, file id)."""
        resp = self.http.post(f"/v1/agents/run/{agent['id']}/", data={"text": "up " + unique()},
                              files={"photo": ("p.png", png, "image/png")})
        only_output(expect(resp, 200))
        job = list_jobs(self.http, agent["id"])["results"][0]
        photo = next(i for i in job["job_inputs"] if i["key"] == "photo")
        return job["id"], photo["value"]


@pytest.fixture(scope="module")
def server(start_module_server) -> Iterator[Server]:
    srv = start_module_server({
        "AGENTD_MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES),
        "AGENTD_FILE_SWEEP_SECS": "1",
        "AGENTD_FILE_SWEEP_GRACE_SECS": str(GRACE_SECS),
        "AGENTD_MAX_FETCH_BYTES": str(MAX_FETCH_BYTES),
        "AGENTD_MAX_CONCURRENT_FETCHES": str(MAX_CONCURRENT_FETCHES),
    })
    s = Server(srv)
    yield s
    s.http.close()


def wait_until(check, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {DEADLINE} s")
        time.sleep(0.1)


# ---------------------------------------------------------------------------
# Metadata


def test_a_batch_with_huge_metadata_is_refused_and_stores_nothing(server):
    agent = server.photo_agent()
    before = server.db_bytes()
    metadata = {"blob": "x" * (8 * 1024 * 1024)}
    inputs = [{"text": f"t{i}", "photo": data_url(png_bytes(), "image/png")} for i in range(100)]
    resp = server.http.post(f"/v1/agents/run/{agent['id']}/async/many/",
                            json={"inputs": inputs, "metadata": metadata})
    assert_error(resp, 400, field="metadata", mentions=str(METADATA_CAP))
    assert list_jobs(server.http, agent["id"])["count"] == 0
    assert server.db_bytes() - before < 1024 * 1024, "the refused batch grew the database"

    # Within the cap, every job carries the batch's metadata.
    small = {"batch": unique()}
    ids = expect(server.http.post(f"/v1/agents/run/{agent['id']}/async/many/",
                                  json={"inputs": inputs[:2], "metadata": small}), 200)
    for job_id in ids:
        assert wait_for_job(server.http, job_id)["status"] in (SUCCESS, CACHED)
    jobs = list_jobs(server.http, agent["id"])["results"]
    assert [job["metadata"] for job in jobs] == [small, small]


def test_a_run_with_metadata_over_the_cap_is_a_400(server):
    agent = server.photo_agent()
    body = {"text": "t", "photo": data_url(png_bytes(), "image/png"), "metadata": {"x": "y" * METADATA_CAP}}
    for path in ("", "async/"):
        resp = server.http.post(f"/v1/agents/run/{agent['id']}/{path}", json=body)
        assert_error(resp, 400, field="metadata", mentions=str(METADATA_CAP))
    # Multipart runs send metadata as a JSON string: the same cap applies.
    resp = server.http.post(f"/v1/agents/run/{agent['id']}/async/",
                            data={"text": "t", "metadata": json.dumps(body["metadata"])},
                            files={"photo": ("p.png", png_bytes(), "image/png")})
    assert_error(resp, 400, field="metadata")
    assert list_jobs(server.http, agent["id"])["count"] == 0


# ---------------------------------------------------------------------------
# Refused requests leave nothing behind


def test_a_refused_batch_leaves_no_files_on_disk_nor_rows(server):
    agent = server.photo_agent()
    disk, rows = server.disk_files(), server.file_rows()
    good = data_url(png_bytes(2, 2), "image/png")
    not_a_png = data_url(b"plain text, not an image", "image/png")
    inputs = [{"text": "a", "photo": good}, {"text": "b", "photo": good}, {"text": "c", "photo": not_a_png}]
    resp = server.http.post(f"/v1/agents/run/{agent['id']}/async/many/", json={"inputs": inputs})
    assert_error(resp, 400, field="inputs[2].photo")
    assert server.disk_files() == disk
    assert server.file_rows() == rows


def test_a_refused_multipart_run_leaves_no_files(server):
    agent_body_ = agent_body(
        input_definitions=[TEXT_INPUT, {"key": "photo", "data_type": "image/png"},
                           {"key": "scan", "data_type": "application/pdf"}],
        engine_config=extraction_config(images="${photo}"))
    agent = expect(server.http.post("/v1/agents/", json=agent_body_), 201)
    disk, rows = server.disk_files(), server.file_rows()
    # The photo is stored first; the scan is not a PDF.
    resp = server.http.post(f"/v1/agents/run/{agent['id']}/async/", data={"text": "t"},
                            files={"photo": ("p.png", png_bytes(), "image/png"),
                                   "scan": ("s.pdf", b"not a pdf", "application/pdf")})
    assert_error(resp, 400, field="scan")
    assert server.disk_files() == disk
    assert server.file_rows() == rows


def test_an_upload_that_fails_midway_leaves_no_partial_file(server):
    agent = server.photo_agent()
    disk = server.disk_files()
    boundary = "agentd-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nhello\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"p.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    # The body ends inside the file part.
    truncated = head + png_bytes(50, 50)
    resp = server.http.post(f"/v1/agents/run/{agent['id']}/async/", content=truncated, headers=headers)
    assert_error(resp, 400)
    # A file larger than the server accepts.
    too_large = head + b"\x89PNG\r\n\x1a\n" + b"\0" * MAX_REQUEST_BYTES + f"\r\n--{boundary}--\r\n".encode()
    resp = server.http.post(f"/v1/agents/run/{agent['id']}/async/", content=too_large, headers=headers)
    assert_error(resp, 413)
    assert server.disk_files() == disk
    assert list_jobs(server.http, agent["id"])["count"] == 0


# ---------------------------------------------------------------------------
# Files go with the last job that refers to them


def test_deleting_an_agent_removes_its_files(server):
    agent = server.photo_agent()
    _, file_id = server.upload_run(agent, png_bytes(3, 3))
    assert file_id in server.disk_files() and file_id in server.file_rows()
    expect(server.http.delete(f"/v1/agents/{agent['id']}/"), 204)
    assert file_id not in server.disk_files()
    assert file_id not in server.file_rows()


def test_delete_data_keeps_a_file_another_job_still_uses(server, fake):
    agent = server.photo_agent()
    png = png_bytes(5, 4)
    first, file_id = server.upload_run(agent, png)
    # The same text and file again: a cache hit that refers to the same file.
    text = next(i for i in list_jobs(server.http, agent["id"])["results"][0]["job_inputs"]
                if i["key"] == "text")["value"]
    second = expect(server.http.post(f"/v1/agents/run/{agent['id']}/async/",
                                     json={"text": text, "photo": file_id}), 200)
    assert wait_for_job(server.http, second)["status"] == CACHED

    got = expect(server.http.post(f"/v1/agents/jobs/{first}/delete-data/"), 200)
    assert got["deleted_count"] == 0, got
    assert file_id in server.disk_files() and file_id in server.file_rows()
    # The file still serves runs that name it.
    fake.reset()
    resp = server.http.post(f"/v1/agents/run/{agent['id']}/", json={"text": "again " + unique(), "photo": file_id})
    only_output(expect(resp, 200))
    assert decode_data_url(image_parts(fake.only())[0]) == ("image/png", png)

    # That third job refers to it too; once every job's data is gone, so is the file.
    jobs = [job["id"] for job in list_jobs(server.http, agent["id"])["results"]]
    for job_id in jobs:
        expect(server.http.post(f"/v1/agents/jobs/{job_id}/delete-data/"), 200)
    assert file_id not in server.disk_files()
    assert file_id not in server.file_rows()


# ---------------------------------------------------------------------------
# The sweep


def test_the_sweep_removes_orphan_files_and_keeps_used_ones(server):
    agent = server.photo_agent()
    _, used = server.upload_run(agent, png_bytes(2, 3))
    orphan = str(uuid.uuid4())
    partial = f"{uuid.uuid4()}.part"  # left by versions before the object store
    staging = f"{uuid.uuid4()}#1"  # the object store's unfinished write
    foreign = "operator-notes.txt"
    long_ago = time.time() - 2 * GRACE_SECS
    for name in (orphan, partial, staging, foreign):
        (server.files_dir / name).write_bytes(b"left over")
    for name in (orphan, partial, staging, foreign, used):
        os.utime(server.files_dir / name, (long_ago, long_ago))
    young = str(uuid.uuid4())
    (server.files_dir / young).write_bytes(b"being stored right now")

    wait_until(lambda: not ({orphan, partial, staging} & server.disk_files()), "the sweep of orphan files")
    left = server.disk_files()
    assert used in left, "a file a job refers to was swept"
    assert foreign in left, "a file agentd did not write was swept"
    assert young in left, "a file younger than the grace period was swept"
    (server.files_dir / foreign).unlink()
    (server.files_dir / young).unlink()


# ---------------------------------------------------------------------------
# URL inputs are fetched by the worker


class HeldFileServer(FileServer):
    """A FileServer holding every response until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.hits = 0
        self.in_flight = 0
        self.max_in_flight = 0
        super().__init__()

    def before_response(self) -> None:
        with self.lock:
            self.hits += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.release.wait(DEADLINE * 2)
        with self.lock:
            self.in_flight -= 1

    def close(self) -> None:
        self.release.set()
        super().close()


@pytest.fixture
def held() -> Iterator[HeldFileServer]:
    server = HeldFileServer()
    yield server
    server.close()


def test_a_url_input_is_fetched_by_the_worker_not_the_request(server, held, fake):
    agent = server.photo_agent()
    png = png_bytes(6, 6)
    held.files["/held.png"] = (png, "image/png")
    url = held.url("/held.png")
    # The URL server answers nothing until released: the request must not wait for it.
    job_id = expect(server.http.post(f"/v1/agents/run/{agent['id']}/async/",
                                     json={"text": "held " + unique(), "photo": url}), 200)
    job = list_jobs(server.http, agent["id"])["results"][0]
    assert job["id"] == job_id
    photo = next(i for i in job["job_inputs"] if i["key"] == "photo")
    assert photo["value"] == url, "until fetched, the URL stands for the file"
    wait_until(lambda: held.hits >= 1, "the worker's fetch")
    held.release.set()

    assert wait_for_job(server.http, job_id)["status"] == SUCCESS
    assert decode_data_url(image_parts(fake.only())[0]) == ("image/png", png)
    job = list_jobs(server.http, agent["id"])["results"][0]
    photo = next(i for i in job["job_inputs"] if i["key"] == "photo")
    assert photo["file_name"] == "held.png"
    assert photo["value"] in server.disk_files() and photo["value"] in server.file_rows()


def test_fetches_at_once_are_capped(server, held, fake):
    agent = server.photo_agent()
    png = png_bytes(7, 7)
    held.files["/same.png"] = (png, "image/png")
    url = held.url("/same.png")
    ids = expect(server.http.post(f"/v1/agents/run/{agent['id']}/async/many/",
                                  json={"inputs": [{"text": f"cap {i} " + unique(), "photo": url}
                                                   for i in range(2 * MAX_CONCURRENT_FETCHES)]}), 200)
    # Every job is running (so each one's worker is fetching or waiting for a
    # fetch slot) and the cap is reached; only then are the answers released.
    wait_for_jobs(server.http, ids, statuses=(STARTED,))
    wait_until(lambda: held.in_flight >= MAX_CONCURRENT_FETCHES, "fetches up to the cap")
    held.release.set()
    assert {s["status"] for s in wait_for_jobs(server.http, ids)} == {SUCCESS}
    assert held.hits == len(ids)
    assert held.max_in_flight == MAX_CONCURRENT_FETCHES


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_fetch_that_fails_fails_the_job_and_stores_nothing(server, held, fake):
    agent = server.photo_agent()
    disk, rows = server.disk_files(), server.file_rows()
    held.release.set()
    held.files["/notes.png"] = (b"plain text, not an image", "image/png")
    held.files["/huge.png"] = (png_bytes() + b"\0" * (2 * MAX_FETCH_BYTES), "image/png")
    cases = {
        held.url("/missing.png"): "404",
        held.url("/notes.png"): "data_type",
        held.url("/huge.png"): "larger than",
        f"http://127.0.0.1:{closed_port()}/x.png": "could not fetch",
    }
    for url, mention in cases.items():
        job_id = expect(server.http.post(f"/v1/agents/run/{agent['id']}/async/",
                                         json={"text": "t " + unique(), "photo": url}), 200)
        status = wait_for_job(server.http, job_id)
        assert status["status"] == FAILURE, (url, status)
        message = status["error_message"].lower()
        assert "photo" in message and mention in message, (url, status)
    assert fake.completions == []
    assert server.disk_files() == disk
    assert server.file_rows() == rows
