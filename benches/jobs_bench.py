#!/usr/bin/env python3
"""Job throughput of agentd against a fake model with a fixed latency.

Not a test (pytest does not collect it); run it with scripts/bench-jobs.sh, which builds
target/release/agentd first. For each worker count (default 1, 16, 64) it starts the
release agentd on a fresh SQLite database, submits N jobs (default 1000) in one
``POST /v1/agents/run/{id}/async/many/``, polls ``POST /v1/agents/jobs/statuses/`` until
every job is final, and prints:

  workers | wall s | jobs/s | ideal jobs/s | % of ideal | server CPU ms/job | not SUCCESS

* wall: from sending the batch to seeing every job final (includes the batch insert).
* ideal jobs/s: N / (ceil(N / workers) * latency): workers/latency, capped by the batch
  (every model call takes exactly ``latency`` and nothing else costs time).
* server CPU ms/job: utime+stime of the agentd process (from /proc/PID/stat, in clock
  ticks of 1/SC_CLK_TCK s, usually 10 ms) over the same interval, divided by N. It includes
  serving the status polls (the ids not yet final, every ideal-wall/100 s, 0.05..0.5 s).

The fake model: a ThreadingHTTPServer (a thread per connection, HTTP/1.1 keep-alive, a
large listen backlog) that reads the request, sleeps ``latency`` seconds, and answers a
fixed, schema-valid chat completion. It does not parse the request body.

``--database postgres`` runs each measurement on a fresh PostgreSQL database (created with
``psql`` on ``AGENTD_BENCH_POSTGRES_URL``, default the local server as user postgres, named
``$AGENTD_BENCH_DB_PREFIX<random>``, default prefix ``agentd_bench_``, dropped after).
``--processes N`` runs N processes on the one database: ``agentd serve`` and N-1
``agentd worker`` processes, each with the given worker count (the ideal and the CPU figure
cover all of them).

Only the standard library (and ``psql`` for PostgreSQL) is used.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL = "gpt-4.1-2025-04-14"
SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string"}},
    "required": ["label"],
    "additionalProperties": False,
}
FINAL = {3, 4, 5, 6}


# ---------------------------------------------------------------------------
# The fake model
# ---------------------------------------------------------------------------


class FakeModel:
    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.count = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        body = json.dumps({
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": json.dumps({"label": "ok"})},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55},
        }).encode()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without TCP_NODELAY, Nagle plus the
            # client's delayed ACK hold the body back ~40 ms.
            disable_nagle_algorithm = True

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                with fake._lock:
                    fake.count += 1
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                time.sleep(fake.latency)
                with fake._lock:
                    fake.in_flight -= 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 1024

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> "FakeModel":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def reset(self) -> None:
        with self._lock:
            self.count = 0
            self.max_in_flight = 0


# ---------------------------------------------------------------------------
# agentd
# ---------------------------------------------------------------------------


class Database:
    """Where one measurement keeps its jobs: a SQLite file in its directory, or a fresh
    PostgreSQL database dropped afterwards."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind = kind
        if kind == "sqlite":
            self.url = f"sqlite://{workdir / 'agentd.db'}"
            return
        self.admin_url = os.environ.get("AGENTD_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
        self.name = os.environ.get("AGENTD_BENCH_DB_PREFIX", "agentd_bench_") + uuid.uuid4().hex[:12]
        self._psql(f"CREATE DATABASE {self.name}")
        self.url = self.admin_url.rsplit("/", 1)[0] + "/" + self.name

    def _psql(self, statement: str) -> None:
        subprocess.run(["psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", self.admin_url, "-c", statement], check=True)

    def drop(self) -> None:
        if self.kind == "postgres":
            self._psql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


class Agentd:
    """``agentd serve`` and ``processes - 1`` ``agentd worker`` processes on one database."""

    def __init__(self, binary: Path, workdir: Path, fake_url: str, workers: int, database_url: str,
                 processes: int = 1) -> None:
        self.api_key = "bench-" + uuid.uuid4().hex
        self.org_id = str(uuid.uuid4())
        env = {
            **os.environ,
            "AGENTD_ADDR": "127.0.0.1:0",
            "DATABASE_URL": database_url,
            "AGENTD_DATA_DIR": str(workdir),
            "AGENTD_BOOTSTRAP_ORG_ID": self.org_id,
            "AGENTD_BOOTSTRAP_API_KEY": self.api_key,
            "OPENAI_BASE_URL": fake_url,
            "OPENAI_API_KEY": "sk-bench",
            "AGENTD_WORKERS": str(workers),
            "AGENTD_PROVIDER_MAX_RETRIES": "0",
            "RUST_LOG": os.environ.get("BENCH_RUST_LOG", "warn"),
            "NO_COLOR": "1",
        }
        for var in ("ANTHROPIC_API_KEY", "GEMINI_API_KEY", "AGENTD_LOG_FORMAT"):
            env.pop(var, None)
        self.log = open(workdir / "agentd.log", "wb")
        self.proc = subprocess.Popen([str(binary), "serve"], cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self.log)
        self.workers: list[subprocess.Popen] = []
        self.base_url = self._read_line(self.proc, r"agentd listening on (http://\S+)").rstrip("/")
        for _ in range(processes - 1):
            worker = subprocess.Popen([str(binary), "worker"], cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=self.log)
            self.workers.append(worker)
            self._read_line(worker, r"(agentd worker running)")

    def _read_line(self, proc: subprocess.Popen, pattern: str) -> str:
        """Waits for the line `pattern` matches, returns its group 1, then drains the rest."""
        deadline = time.monotonic() + 30
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline().decode(errors="replace")
            if not line:
                break
            m = re.search(pattern, line)
            if m:
                threading.Thread(target=self._drain, args=(proc,), daemon=True).start()
                return m.group(1)
        self.stop()
        raise SystemExit(f"agentd did not start; see {self.log.name}")

    @staticmethod
    def _drain(proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for _ in iter(proc.stdout.readline, b""):
            pass

    def cpu_ticks(self) -> int:
        total = 0
        for proc in [self.proc, *self.workers]:
            with open(f"/proc/{proc.pid}/stat") as fh:
                stat = fh.read()
            fields = stat[stat.rindex(")") + 2:].split()
            # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
            total += int(fields[11]) + int(fields[12])
        return total

    def request(self, method: str, path: str, body=None, timeout: float = 120):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.api_key}",
            "Content-Type": "application/json",
        })
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            raise SystemExit(f"{method} {path} -> {e.code} {e.read()[:500]!r}")

    def stop(self) -> None:
        for proc in [self.proc, *self.workers]:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        self.log.close()


# ---------------------------------------------------------------------------
# One measurement
# ---------------------------------------------------------------------------


def measure(binary: Path, fake: FakeModel, workers: int, n_jobs: int, poll: float, keep: bool,
            database: str = "sqlite", processes: int = 1) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"agentd-bench-{workers}-"))
    db = Database(database, workdir)
    try:
        srv = Agentd(binary, workdir, fake.base_url, workers, db.url, processes)
    except BaseException:
        db.drop()
        raise
    try:
        agent = srv.request("POST", "/v1/agents/", {
            "name": "bench",
            "engine_class_id": "MultimodalExtractionEngine",
            "input_definitions": [{"key": "text", "data_type": "text/plain", "description": "Text"}],
            "engine_config": {"model": MODEL, "text": "${text}", "instruction": "Label it.", "output_schema": SCHEMA},
        })
        # Warm-up: one job (connection pool, prepared statements), not measured.
        warm = srv.request("POST", f"/v1/agents/run/{agent['id']}/", {"text": "warm-up"})
        assert isinstance(warm, list), warm
        fake.reset()
        inputs = [{"text": f"bench item {i} {uuid.uuid4().hex[:8]}"} for i in range(n_jobs)]

        cpu0 = srv.cpu_ticks()
        own0 = os.times()
        t0 = time.monotonic()
        ids = srv.request("POST", f"/v1/agents/run/{agent['id']}/async/many/", {"inputs": inputs})
        t_submitted = time.monotonic()
        assert isinstance(ids, list) and len(ids) == n_jobs, ids
        ideal_wall = math.ceil(n_jobs / (workers * processes)) * fake.latency
        ideal = n_jobs / ideal_wall
        # Poll often enough to time the end to ~1% of the ideal wall time, but no more than
        # 20 times a second; ask only about the jobs not yet final.
        interval = poll if poll > 0 else min(0.5, max(0.05, ideal_wall / 100))
        pending = list(ids)
        final: dict[str, int] = {}
        polls = 0
        while pending:
            statuses = srv.request("POST", "/v1/agents/jobs/statuses/", {"job_ids": pending})
            polls += 1
            for s in statuses:
                if s.get("status") in FINAL:
                    final[s["id"]] = s["status"]
            pending = [i for i in pending if i not in final]
            if not pending:
                break
            if time.monotonic() - t0 > max(600.0, 3 * n_jobs * fake.latency):
                raise SystemExit(f"workers={workers}: jobs did not finish in time")
            time.sleep(interval)
        wall = time.monotonic() - t0
        print(f"  submit {t_submitted - t0:.2f} s, polls {polls}", flush=True)
        cpu1 = srv.cpu_ticks()
        own1 = os.times()
        not_ok = sum(1 for v in final.values() if v != 3)
        ticks = os.sysconf("SC_CLK_TCK")
        cpu_ms = (cpu1 - cpu0) * 1000.0 / ticks
        return {
            "database": database,
            "processes": processes,
            "workers": workers,
            "wall_s": wall,
            "submit_s": t_submitted - t0,
            "jobs_per_s": n_jobs / wall,
            "ideal_jobs_per_s": ideal,
            "pct_of_ideal": 100.0 * (n_jobs / wall) / ideal,
            "cpu_ms_per_job": cpu_ms / n_jobs,
            # This process: the fake model and the poller (what else competes for the CPUs).
            "bench_cpu_ms_per_job": ((own1.user - own0.user) + (own1.system - own0.system)) * 1000.0 / n_jobs,
            "not_success": not_ok,
            "model_calls": fake.count,
            "max_concurrent_calls": fake.max_in_flight,
            "polls": polls,
            "poll_interval_s": interval,
        }
    finally:
        srv.stop()
        db.drop()
        if keep:
            print(f"  (kept {workdir})", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("AGENTD_BIN", str(REPO_ROOT / "target" / "release" / "agentd")))
    ap.add_argument("--workers", default="1,16,64", help="comma-separated worker counts")
    ap.add_argument("--jobs", type=int, default=1000, help="jobs per run (1..1000: one async/many request)")
    ap.add_argument("--latency", type=float, default=0.1, help="fake model latency in seconds")
    ap.add_argument("--poll", type=float, default=0.0,
                    help="seconds between status polls (default: ideal wall time / 100, within 0.05..0.5)")
    ap.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite",
                    help="where the jobs are kept (postgres: a fresh database per run, dropped after)")
    ap.add_argument("--processes", type=int, default=1,
                    help="agentd processes on one database: serve plus N-1 `agentd worker`, each with --workers")
    ap.add_argument("--json", action="store_true", help="also print the rows as JSON lines")
    ap.add_argument("--keep", action="store_true", help="keep the data directories")
    args = ap.parse_args()

    binary = Path(args.bin).resolve()
    if not binary.exists():
        raise SystemExit(f"agentd binary not found at {binary} (cargo build --release -p agentd)")
    if not 1 <= args.jobs <= 1000:
        raise SystemExit("--jobs must be 1..1000")
    workers = [int(w) for w in args.workers.split(",") if w.strip()]

    fake = FakeModel(args.latency).start()
    print(f"agentd: {binary}")
    print(f"{args.database}, {args.processes} process(es); "
          f"{args.jobs} jobs per run, model latency {args.latency * 1000:.0f} ms, {os.cpu_count()} CPUs, "
          f"clock tick {1000 / os.sysconf('SC_CLK_TCK'):.0f} ms, load average {os.getloadavg()[0]:.2f}")
    rows = []
    try:
        for w in workers:
            row = measure(binary, fake, w, args.jobs, args.poll, args.keep, args.database, args.processes)
            rows.append(row)
            print(f"  workers={w}: {row['wall_s']:.2f} s", file=sys.stderr, flush=True)
    finally:
        fake.stop()

    header = (f"{'workers':>7} | {'wall s':>7} | {'jobs/s':>7} | {'ideal jobs/s':>12} | {'% of ideal':>10} | "
              f"{'CPU ms/job':>10} | {'bench CPU':>9} | {'max calls':>9} | {'not OK':>6}")
    print()
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['workers']:>7} | {r['wall_s']:>7.2f} | {r['jobs_per_s']:>7.1f} | {r['ideal_jobs_per_s']:>12.1f} | "
              f"{r['pct_of_ideal']:>9.1f}% | {r['cpu_ms_per_job']:>10.2f} | {r['bench_cpu_ms_per_job']:>9.2f} | "
              f"{r['max_concurrent_calls']:>9} | "
              f"{r['not_success']:>6}")
    print()
    print("CPU ms/job: agentd utime+stime / jobs (includes serving the status polls); bench CPU: the same for\n"
          "this process (fake model + poller), which shares the machine; max calls: most model calls in flight.")
    if args.json:
        for r in rows:
            print(json.dumps(r))


if __name__ == "__main__":
    main()
