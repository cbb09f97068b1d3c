"""Hardening of the server itself (issue 8, items 2, 3 and 7): slow and idle
clients, a full disk, panics and error classes. Each attack is a test through
the public API of a real ``agentd serve``."""

from __future__ import annotations

import errno
import os
import resource
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from fake_openai import Reply
from helpers import (
    FAILURE,
    SUCCESS,
    TEXT_INPUT,
    agent_body,
    assert_error,
    expect,
    extraction_config,
    job_statuses,
    only_output,
    png_bytes,
    unique,
    wait_for_job,
    wait_for_jobs,
)

# Generous: these deadlines only stop a test that would otherwise hang.
DEADLINE = 90.0
STORAGE_FULL = "storage is full"
INTERNAL_FAILURE = "The job failed because of an internal error in agentd; the error was logged."


def client_for(srv, timeout: float = 60.0) -> httpx.Client:
    return httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {srv.api_key}"},
                        timeout=timeout)


def address(srv) -> tuple[str, int]:
    host_port = srv.base_url.removeprefix("http://")
    host, _, port = host_port.rpartition(":")
    return host, int(port)


def wait_until_closed_by_server(sock: socket.socket, deadline: float) -> bytes:
    """Reads until the server closes the connection; returns what it sent."""
    received = b""
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"the server kept the connection open; it sent {received[:200]!r}")


def assert_healthy(c: httpx.Client) -> None:
    resp = c.get("/health")
    assert resp.status_code == 200 and resp.text == "ok", resp.text


# ---------------------------------------------------------------------------
# Slow and idle clients
# ---------------------------------------------------------------------------

IDLE_CONNECTIONS = 1000


def raise_own_open_files_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        pytest.skip(f"this process may open only {hard} files; the test needs {needed}")


def open_file_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def test_requests_are_served_while_a_thousand_idle_connections_are_open(start_server):
    raise_own_open_files_limit(IDLE_CONNECTIONS + 512)
    srv = start_server()  # default limits
    baseline = open_file_count(srv.proc.pid)
    idle: list[socket.socket] = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            idle.append(socket.create_connection(address(srv), timeout=30))
        if baseline is not None:
            # The server has accepted (holds) them all, not left them in the backlog.
            deadline = time.monotonic() + DEADLINE
            while (open_file_count(srv.proc.pid) or 0) < baseline + IDLE_CONNECTIONS:
                assert time.monotonic() < deadline, (
                    f"agentd holds {open_file_count(srv.proc.pid)} files, expected at least "
                    f"{baseline + IDLE_CONNECTIONS}")
                time.sleep(0.05)
        with client_for(srv) as c:
            assert_healthy(c)
            agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
            assert expect(c.get("/v1/agents/"), 200)["count"] == 1
            only_output(expect(c.post(f"/v1/agents/run/{agent['id']}/", json={"text": unique()}), 200))
    finally:
        for sock in idle:
            sock.close()


def test_a_slowloris_client_is_disconnected_and_the_server_stays_reachable(start_server):
    srv = start_server({"AGENTD_HEADER_READ_TIMEOUT_SECS": "2", "AGENTD_IDLE_TIMEOUT_SECS": "600"})
    sock = socket.create_connection(address(srv), timeout=30)
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        deadline = time.monotonic() + DEADLINE
        sock.settimeout(0.5)
        received = b""
        closed = False
        # One header byte every half second: never idle, never a complete head.
        while time.monotonic() < deadline and not closed:
            try:
                sock.sendall(b"a")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            try:
                chunk = sock.recv(4096)
                received += chunk
                closed = not chunk
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed = True
        assert closed, "a client sending its headers byte by byte was never disconnected"
        assert b" 200 " not in received, received
    finally:
        sock.close()
    with client_for(srv) as c:
        assert_healthy(c)


def test_a_stalled_request_body_fails_and_the_server_stays_reachable(start_server):
    srv = start_server({"AGENTD_BODY_READ_TIMEOUT_SECS": "1"})
    sock = socket.create_connection(address(srv), timeout=30)
    try:
        head = (f"POST /v1/agents/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {srv.api_key}\r\n"
                "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
        sock.sendall(head.encode() + b'{"name": "stalled')
        # The body never completes: the server must answer or hang up on its own.
        received = wait_until_closed_by_server(sock, time.monotonic() + DEADLINE)
        if received:
            status = int(received.split(b" ", 2)[1])
            assert 400 <= status < 500, received[:300]
    finally:
        sock.close()
    with client_for(srv) as c:
        assert_healthy(c)
        assert expect(c.get("/v1/agents/"), 200)["count"] == 0


def test_idle_connections_are_reaped_so_capped_slots_come_back(start_server):
    srv = start_server({"AGENTD_MAX_CONNECTIONS": "4", "AGENTD_IDLE_TIMEOUT_SECS": "1"})
    idle = [socket.create_connection(address(srv), timeout=30) for _ in range(4)]
    try:
        # Every slot is taken by an idle client; this request gets one once they are reaped.
        with client_for(srv, timeout=DEADLINE) as c:
            assert_healthy(c)
        deadline = time.monotonic() + DEADLINE
        for sock in idle:
            assert wait_until_closed_by_server(sock, deadline) == b""
    finally:
        for sock in idle:
            sock.close()


# ---------------------------------------------------------------------------
# A full disk
# ---------------------------------------------------------------------------


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 16 MiB tmpfs for the database and files, unmounted afterwards."""
    mount_point = Path(tempfile.mkdtemp(prefix="agentd-small-disk-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        mount_point.rmdir()
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
        shutil.rmtree(mount_point, ignore_errors=True)


def fill(directory: Path) -> Path:
    """Writes a filler file until the file system has no byte left."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as fh:
        for size in (1 << 20, 4096, 1):
            block = b"\0" * size
            while True:
                try:
                    fh.write(block)
                except OSError as error:
                    assert error.errno == errno.ENOSPC, error
                    break
    return filler


def assert_storage_full(resp: httpx.Response) -> None:
    assert_error(resp, 503, mentions=STORAGE_FULL)


def test_a_full_disk_answers_503_loses_no_job_and_recovers_without_restart(start_server, fake, small_disk):
    srv = start_server({
        "DATABASE_URL": f"sqlite://{small_disk / 'agentd.db'}",
        "AGENTD_DATA_DIR": str(small_disk),
        "AGENTD_JOB_LEASE_SECS": "3",
    })
    photo_inputs = [TEXT_INPUT, {"key": "photo", "data_type": "image/png", "description": "A photo"}]
    with client_for(srv) as c:
        agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
        photo_agent = expect(c.post("/v1/agents/", json=agent_body(
            input_definitions=photo_inputs, engine_config=extraction_config(images="${photo}"))), 201)
        run_url = f"/v1/agents/run/{agent['id']}/"

        # Jobs accepted before the disk fills, one of them a synchronous run; their model
        # answers arrive once it is full.
        fake.enqueue(*[Reply.default(delay=2.0) for _ in range(4)])
        sync_answer: list[httpx.Response] = []

        def run_sync() -> None:
            with client_for(srv, timeout=600) as own:
                sync_answer.append(own.post(run_url, json={"text": f"sync before {unique()}"}))

        sync_run = threading.Thread(target=run_sync)
        sync_run.start()
        before = [expect(c.post(run_url + "async/", json={"text": f"before {i} {unique()}"}), 200)
                  for i in range(3)]
        fake.wait_for_requests(4, timeout=DEADLINE)
        filler = fill(small_disk)

        # Writes go on until the database runs out of room too (its files may have some left).
        accepted: list[str] = []
        refused = None
        for i in range(300):
            resp = c.post(run_url + "async/", json={"text": f"filling {i} " + "x" * 50_000})
            if resp.status_code != 200:
                refused = resp
                break
            accepted.append(resp.json())
        assert refused is not None, "300 writes of 50 kB each succeeded on a full 16 MiB disk"
        assert_storage_full(refused)
        assert refused.headers.get("retry-after"), refused.headers

        # While it is full: writes answer 503 (never 400 or 500), reads still work.
        assert_storage_full(c.post("/v1/agents/", json=agent_body()))
        assert_storage_full(c.post(run_url, json={"text": "sync while full " + unique()}))
        assert_storage_full(c.post(f"/v1/agents/run/{photo_agent['id']}/", data={"text": "x"},
                                   files={"photo": ("p.png", png_bytes(64, 64), "image/png")}))
        expect(c.get(f"/v1/agents/{agent['id']}/"), 200)

        # The jobs accepted before get their answers while the disk is full: wait until
        # recording one failed (the worker retries it), or all were recorded anyway.
        deadline = time.monotonic() + DEADLINE
        while "recording a job outcome failed" not in srv.log_text():
            if all(s["status"] == SUCCESS for s in job_statuses(c, before)):
                break
            assert time.monotonic() < deadline, "the jobs accepted before the disk filled neither ended nor failed to record"
            time.sleep(0.1)

        # Space comes back: no restart, everything works, and no accepted job is lost.
        filler.unlink()
        created = expect(c.post("/v1/agents/", json=agent_body()), 201)
        only_output(expect(c.post(f"/v1/agents/run/{created['id']}/", json={"text": unique()}), 200))
        only_output(expect(c.post(f"/v1/agents/run/{photo_agent['id']}/", data={"text": "x"},
                                  files={"photo": ("p.png", png_bytes(64, 64), "image/png")}), 200))
        # The synchronous run ends: its answer, or a JSON error naming its job (never a hang).
        sync_run.join(DEADLINE * 2)
        assert not sync_run.is_alive(), "a synchronous run accepted before the disk filled never ended"
        if sync_answer[0].status_code == 200:
            only_output(sync_answer[0].json())
        else:
            assert_error(sync_answer[0], sync_answer[0].status_code)
            assert sync_answer[0].status_code in (503, 504), sync_answer[0].text
        statuses = wait_for_jobs(c, before + accepted, timeout=DEADLINE * 2)
        assert all(s["status"] == SUCCESS for s in statuses), [s for s in statuses if s["status"] != SUCCESS][:5]
    assert "begin_with" not in srv.log_text()


# ---------------------------------------------------------------------------
# Panics and error classes
# ---------------------------------------------------------------------------


@pytest.fixture
def panicky_server(start_server):
    """A server with the debug-only panic hook on (a release build compiles it out)."""
    return start_server({"AGENTD_TEST_PANIC_ON": "request,job", "AGENTD_WORKERS": "1"})


def test_a_panicking_request_answers_a_generic_json_500_and_the_server_keeps_serving(panicky_server):
    with client_for(panicky_server) as c:
        resp = c.get("/v1/agents/", headers={"X-Agentd-Test-Panic": "1"})
        if resp.status_code == 200:
            pytest.skip("this agentd binary is a release build: its panic hook is compiled out")
        body = assert_error(resp, 500)
        assert body["detail"] == "Internal server error.", body
        for _ in range(3):
            expect(c.get("/v1/agents/"), 200)
    assert "a request handler panicked" in panicky_server.log_text()


def test_a_panicking_job_fails_with_a_generic_message_and_the_worker_runs_the_next(panicky_server):
    with client_for(panicky_server) as c:
        agent = expect(c.post("/v1/agents/", json=agent_body()), 201)
        run_url = f"/v1/agents/run/{agent['id']}/"
        job = expect(c.post(run_url + "async/", json={"text": "please AGENTD_TEST_PANIC now"}), 200)
        status = wait_for_job(c, job, timeout=DEADLINE)
        if status["status"] == SUCCESS:
            pytest.skip("this agentd binary is a release build: its panic hook is compiled out")
        assert status["status"] == FAILURE, status
        result = expect(c.get(f"/v1/agents/jobs/{job}/result/"), 200)
        assert result["error_message"] == INTERNAL_FAILURE, result
        # The only worker survived: it runs the next job.
        only_output(expect(c.post(run_url, json={"text": unique()}), 200))
    assert "a job panicked" in panicky_server.log_text()


@pytest.mark.parametrize("path", ["/v1/agents/", "/v1/agents/{agent}/jobs/"])
def test_huge_page_numbers_do_not_overflow(http, create_agent, path):
    url = path.format(agent=create_agent()["id"])
    assert_error(http.get(url, params={"page": "9223372036854775807"}), 404)
    assert_error(http.get(url, params={"page": "9223372036854775807", "page_size": "9223372036854775807"}), 404)
    assert expect(http.get(url, params={"page_size": "9223372036854775807"}), 200) is not None
    for bad in ("-1", "0", "-9223372036854775808", "9223372036854775808"):
        assert_error(http.get(url, params={"page": bad}), 400)
        assert_error(http.get(url, params={"page_size": bad}), 400)
    # Still serving.
    expect(http.get("/v1/agents/"), 200)

