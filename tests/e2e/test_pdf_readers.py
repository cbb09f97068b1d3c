"""PDFium runs in reader processes (`agentd pdf-reader`, children of the
server), so a crash inside the PDF library ends a reader, never the server:
real readers, killed with real signals while Document Insights jobs run.

Two details of the kills (see also crates/agentd-documents/tests/reader_crashes.rs):
- Rust's runtime catches SIGSEGV to report stack overflows; on any other
  SIGSEGV its handler restores the default action and returns, so a real
  fault faults again and kills the process, but a SIGSEGV sent with kill()
  faults nothing. Each reader is therefore sent one first (which it survives),
  and the test waits until /proc says SIGSEGV is no longer caught; the next
  one kills it as a crash in PDFium would.
- To kill a reader while it serves a known request, it is stopped (SIGSTOP)
  before the request is made, and killed once the request is waiting in its
  stdin pipe (FIONREAD on /proc/PID/fd/0)."""

from __future__ import annotations

import array
import fcntl
import json
import os
import re
import signal
import termios
import threading
import time
from pathlib import Path

import pytest

import pdf_factory
from conftest import make_http
from fake_openai import Reply
from file_server import FileServer
from helpers import MODEL, alive, assert_error, expect, list_jobs, reader_pids, unique, wait_for_job

PDF = "application/pdf"
SUCCESS = 3
STARTED = 1
#: Waits for a process to change state give up after this long; nothing in
#: these tests depends on anything happening sooner.
PATIENCE = 300.0

ITEMS_SCHEMA = {
    "type": "object",
    "properties": {"items": {"type": "array", "items": {"type": "string"}}},
    "required": ["items"],
    "additionalProperties": False,
}
ITEM = re.compile(r"Item \d{4}")


def answer_items(req) -> Reply:
    text = "\n".join(req.message_texts("user"))
    return Reply.answer({"items": ITEM.findall(text)}).build(req)


def wait_until(what: str, done) -> None:
    deadline = time.monotonic() + PATIENCE
    while not done():
        assert time.monotonic() < deadline, f"waited {PATIENCE:.0f} s for {what}"
        time.sleep(0.01)


def catches_segv(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) & (1 << (signal.SIGSEGV - 1)))


def make_segv_fatal(pid: int) -> None:
    if catches_segv(pid):
        os.kill(pid, signal.SIGSEGV)
        wait_until("SIGSEGV to be no longer caught", lambda: not catches_segv(pid))
    assert alive(pid)


def pending_input(pid: int) -> int:
    """Bytes waiting in the reader's stdin pipe (a request written to it)."""
    fd = os.open(f"/proc/{pid}/fd/0", os.O_RDONLY | os.O_NONBLOCK)
    try:
        count = array.array("i", [0])
        fcntl.ioctl(fd, termios.FIONREAD, count)
        return count[0]
    finally:
        os.close(fd)


def crash(pid: int) -> None:
    """SIGSEGV, delivered now or, to a stopped reader, as it continues."""
    os.kill(pid, signal.SIGSEGV)
    os.kill(pid, signal.SIGCONT)
    wait_until(f"reader {pid} to die", lambda: not alive(pid))


def insights_agent(http) -> dict:
    return expect(http.post("/v1/agents/", json={
        "name": unique("readers-"),
        "engine_class_id": "PDFExtractionEngine",
        "input_definitions": [{"key": "pdf", "data_type": PDF, "description": "A catalogue"}],
        "engine_config": {
            "pdf_files": "${pdf}", "instructions": "List every item.", "model": MODEL,
            "output_schema": ITEMS_SCHEMA, "batch_size": 10, "convert_to_images": False,
        },
    }), 201)


def items_of(http, job_id: str) -> list[str]:
    result = expect(http.get(f"/v1/agents/jobs/{job_id}/result/"), 200)
    outputs = result["outputs"] if isinstance(result, dict) else result
    return json.loads(next(d["value"] for d in outputs if d["key"] == "output"))["items"]


def batches_done(http, agent_id: str, job_id: str) -> int:
    job = next(j for j in list_jobs(http, agent_id)["results"] if j["id"] == job_id)
    return sum(1 for e in job["status_events"]
               if e["status_code"] == STARTED and re.match(r"batch \d+/\d+ done", e.get("error_message") or ""))


def upload_job(http, agent: dict, data: bytes) -> str:
    return expect(http.post(f"/v1/agents/run/{agent['id']}/async/", files={"pdf": ("small.pdf", data, PDF)}), 200)


@pytest.fixture
def files():
    server = FileServer()
    yield server
    server.close()


def test_reader_crashes_during_a_job_are_retried_and_the_server_stays_up(start_server, fake, files):
    srv = start_server({"AGENTD_PDF_READERS": "1"})
    fake.always(Reply(build=answer_items))
    pages = 300
    files.files["/big.pdf"] = (pdf_factory.catalogue_pdf(pages, items_per_page=1), PDF)
    expected = [f"Item {n:04d}" for n in range(1, pages + 1)]
    with make_http(srv, srv.api_key) as http:
        agent = insights_agent(http)
        warm = upload_job(http, agent, pdf_factory.catalogue_pdf(2, items_per_page=1))
        assert wait_for_job(http, warm, timeout=PATIENCE)["status"] == SUCCESS
        [first] = reader_pids(srv.proc.pid)
        seen = {first}

        # 1. The reader is stopped before the job; the job's first request
        #    waits in its pipe; then it crashes. The request is retried.
        make_segv_fatal(first)
        os.kill(first, signal.SIGSTOP)
        log_mark = srv.log_size()
        job = expect(http.post(f"/v1/agents/run/{agent['id']}/async/", json={"pdf": files.url("/big.pdf")}), 200)
        wait_until("the job's request to reach the stopped reader", lambda: pending_input(first) > 0)
        crash(first)
        expect(http.get("/healthz"), 200)

        # 2. Once batches are being read, the reader that took over crashes too.
        wait_until("a batch to be done", lambda: batches_done(http, agent["id"], job) >= 1)
        [second] = reader_pids(srv.proc.pid)
        assert second not in seen
        seen.add(second)
        make_segv_fatal(second)
        crash(second)
        expect(http.get("/healthz"), 200)

        # Other jobs on other PDFs, meanwhile.
        others = [upload_job(http, agent, pdf_factory.catalogue_pdf(n, items_per_page=1)) for n in (3, 4)]

        status = wait_for_job(http, job, timeout=PATIENCE)
        assert status["status"] == SUCCESS, status
        assert items_of(http, job) == expected
        for other, n in zip(others, (3, 4)):
            assert wait_for_job(http, other, timeout=PATIENCE)["status"] == SUCCESS
            assert items_of(http, other) == [f"Item {i:04d}" for i in range(1, n + 1)]
        log = srv.log_text(log_mark)
        assert "retrying it on another reader" in log, log[-3000:]
        assert "panicked" not in log
        readers = reader_pids(srv.proc.pid)
        assert len(readers) == 1 and readers[0] not in seen, (readers, seen)

    srv.stop()
    wait_until("no reader to outlive the server", lambda: not alive(readers[0]))


def test_no_reader_outlives_a_server_killed_with_sigkill(start_server, fake):
    srv = start_server({"AGENTD_PDF_READERS": "2"})
    fake.always(Reply(build=answer_items))
    with make_http(srv, srv.api_key) as http:
        agent = insights_agent(http)
        # Two jobs at once, so that both readers start.
        jobs = [upload_job(http, agent, pdf_factory.catalogue_pdf(40, items_per_page=1)) for _ in range(2)]
        for job in jobs:
            assert wait_for_job(http, job, timeout=PATIENCE)["status"] == SUCCESS
    readers = reader_pids(srv.proc.pid)
    assert readers
    srv.proc.kill()
    srv.proc.wait(PATIENCE)
    wait_until("the readers to exit after the server's SIGKILL", lambda: not any(alive(p) for p in readers))


def test_a_hung_reader_makes_an_upload_a_400_and_is_replaced(start_server, fake):
    srv = start_server({"AGENTD_PDF_READERS": "1", "AGENTD_PDF_TIMEOUT_SECS": "3"})
    fake.always(Reply(build=answer_items))
    with make_http(srv, srv.api_key) as http:
        agent = insights_agent(http)
        small = pdf_factory.catalogue_pdf(2, items_per_page=1)
        assert wait_for_job(http, upload_job(http, agent, small), timeout=PATIENCE)["status"] == SUCCESS
        [hung] = reader_pids(srv.proc.pid)
        os.kill(hung, signal.SIGSTOP)
        response = http.post(f"/v1/agents/run/{agent['id']}/async/", files={"pdf": ("slow.pdf", small, PDF)})
        assert_error(response, 400, field="pdf", mentions="took longer than 3 s")
        wait_until("the hung reader to be killed", lambda: not alive(hung))
        job = upload_job(http, agent, pdf_factory.catalogue_pdf(3, items_per_page=1))
        assert wait_for_job(http, job, timeout=PATIENCE)["status"] == SUCCESS
        assert items_of(http, job) == ["Item 0001", "Item 0002", "Item 0003"]
        assert reader_pids(srv.proc.pid) != [hung]
