"""Fixtures of the agentd end-to-end suite.

One fake OpenAI provider and one agentd server are started per test session
(against a fresh SQLite database in a temporary directory, or with
``AGENTD_E2E_DATABASE=postgres`` a fresh PostgreSQL database per server on
``AGENTD_TEST_POSTGRES_URL``, dropped at the end); the fake is reset
before every test. Tests that need an isolated organization use ``fresh_org``
(created with the admin CLI). ``start_server`` starts extra servers with other
settings. When a test fails, the server log lines written during that test are
attached to the report.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
import roe

from fake_openai import FakeOpenAI
from helpers import agent_body, expect

REPO_ROOT = Path(__file__).resolve().parents[2]
LISTEN_RE = re.compile(r"agentd listening on (http://\S+)")
STARTUP_TIMEOUT = 30.0


def agentd_bin() -> Path:
    override = os.environ.get("AGENTD_BIN")
    path = Path(override) if override else REPO_ROOT / "target" / "debug" / "agentd"
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


# ---------------------------------------------------------------------------
# Server process
# ---------------------------------------------------------------------------

_SERVERS: list["AgentdServer"] = []

# ---------------------------------------------------------------------------
# Databases
# ---------------------------------------------------------------------------

POSTGRES_ADMIN_URL = os.environ.get("AGENTD_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
# One PostgreSQL database per server working directory (a restarted server
# finds its jobs again), dropped when the session ends.
_POSTGRES_DATABASES: dict[Path, str] = {}


def use_postgres() -> bool:
    backend = os.environ.get("AGENTD_E2E_DATABASE", "sqlite")
    if backend not in ("sqlite", "postgres"):
        raise pytest.UsageError(f"AGENTD_E2E_DATABASE must be sqlite or postgres, not {backend!r}")
    return backend == "postgres"


def _psql(*sql: str) -> None:
    for statement in sql:
        subprocess.run(["psql", POSTGRES_ADMIN_URL, "-v", "ON_ERROR_STOP=1", "-qc", statement],
                       check=True, capture_output=True, text=True, timeout=60)


def _with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    scheme, _, rest = base.partition("://")
    host = rest.split("/", 1)[0]
    return f"{scheme}://{host}/{name}" + (f"?{query}" if query else "")


def database_url(workdir: Path) -> str:
    """The DATABASE_URL of a server working in ``workdir``."""
    if not use_postgres():
        return f"sqlite://{workdir / 'agentd.db'}"
    name = _POSTGRES_DATABASES.get(workdir)
    if name is None:
        name = "agentd_e2e_" + uuid.uuid4().hex
        _psql(f"CREATE DATABASE {name}")
        _POSTGRES_DATABASES[workdir] = name
    return _with_database(POSTGRES_ADMIN_URL, name)


def drop_databases() -> None:
    while _POSTGRES_DATABASES:
        _, name = _POSTGRES_DATABASES.popitem()
        _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")



class AgentdServer:
    """An ``agentd serve`` child process with its own data directory."""

    # The subcommand, and the line that says it is ready (its group: the base URL).
    COMMAND = "serve"
    READY_RE = LISTEN_RE

    def __init__(self, workdir: Path, fake_base_url: str, extra_env: dict[str, str | None] | None = None,
                 org_id: str | None = None, api_key: str | None = None) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.org_id = org_id or str(uuid.uuid4())
        self.api_key = api_key or "test-key-" + uuid.uuid4().hex
        self.log_path = workdir / "agentd.log"
        self.env = {
            **os.environ,
            "AGENTD_ADDR": "127.0.0.1:0",
            "DATABASE_URL": database_url(workdir),
            "AGENTD_DATA_DIR": str(workdir),
            "AGENTD_BOOTSTRAP_ORG_ID": self.org_id,
            "AGENTD_BOOTSTRAP_API_KEY": self.api_key,
            "OPENAI_BASE_URL": fake_base_url,
            "OPENAI_API_KEY": "sk-test",
            "RUST_LOG": "info",
            "AGENTD_PROVIDER_MAX_RETRIES": "0",
            # The suite's file servers listen on loopback; test_ssrf.py runs
            # servers with the outbound URL guard on.
            "AGENTD_ALLOW_PRIVATE_URLS": "true",
            # PDFium as scripts/fetch-pdfium.sh puts it in the checkout.
            "AGENTD_PDFIUM_PATH": os.environ.get(
                "AGENTD_PDFIUM_PATH", str(REPO_ROOT / "data" / "lib" / "libpdfium.so")),
            "NO_COLOR": "1",
        }
        # Never let a developer's real provider settings leak into the tests.
        for var in ("ANTHROPIC_API_KEY", "GEMINI_API_KEY", "AGENTD_LOG_FORMAT"):
            self.env.pop(var, None)
        # A value of None removes the variable (the server's default applies).
        for var, value in (extra_env or {}).items():
            if value is None:
                self.env.pop(var, None)
            else:
                self.env[var] = value
        self.proc: subprocess.Popen | None = None
        self.base_url: str | None = None
        self._log_lock = threading.Lock()
        self._log = None
        self._ready = threading.Event()
        self._threads: list[threading.Thread] = []

    # ---- log -------------------------------------------------------------
    def _write_log(self, line: str) -> None:
        with self._log_lock:
            if self._log is not None:
                self._log.write(line)
                self._log.flush()

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_text(self, start: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(start)
                return fh.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def _drain(self, stream, label: str, watch: bool) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            self._write_log(f"[{label}] {line}")
            if watch and not self._ready.is_set():
                m = self.ready_re().search(line)
                if m:
                    self.base_url = m.group(1).rstrip("/") if m.re.groups else None
                    self._ready.set()
        stream.close()

    def ready_re(self) -> re.Pattern:
        return self.READY_RE

    # ---- lifecycle -------------------------------------------------------
    def start(self) -> "AgentdServer":
        binary = agentd_bin()
        if not binary.exists():
            pytest.fail(f"agentd binary not found at {binary} (build it with `cargo build -p agentd`, "
                        f"or set AGENTD_BIN)", pytrace=False)
        self._log = open(self.log_path, "a", encoding="utf-8")
        self._ready.clear()
        self.base_url = None
        self.proc = subprocess.Popen(
            [str(binary), self.COMMAND],
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._threads = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, "out", True), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, "err", False), daemon=True),
        ]
        for t in self._threads:
            t.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                rc = self.proc.poll()
                self.stop()
                reason = f"exited with {rc}" if rc is not None else f"did not print its address in {STARTUP_TIMEOUT:.0f} s"
                pytest.fail(f"agentd {self.COMMAND} {reason}; log:\n{self.log_text()[-5000:]}", pytrace=False)
        _SERVERS.append(self)
        return self

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then wait; SIGKILL if it does not stop in time. Returns the exit code."""
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    rc = self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
                    rc = None
                    self._write_log("[test] agentd did not stop within %.0f s of SIGTERM; killed\n" % timeout)
            else:
                rc = self.proc.returncode
            for t in self._threads:
                t.join(5)
        with self._log_lock:
            if self._log is not None:
                self._log.close()
                self._log = None
        if self in _SERVERS:
            _SERVERS.remove(self)
        return rc

    def kill(self) -> None:
        """``kill -9``: the process gets no chance to hand its jobs back."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    # ---- admin CLI -------------------------------------------------------
    def admin_run(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(agentd_bin()), "admin", *args],
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        self._write_log(f"[test] agentd admin {' '.join(args)} -> rc {proc.returncode}\n")
        return proc

    def admin(self, *args: str) -> str:
        """Runs ``agentd admin ARGS``; returns stdout stripped; fails the test on a non-zero exit."""
        proc = self.admin_run(*args)
        assert proc.returncode == 0, (
            f"agentd admin {' '.join(args)} exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
        return proc.stdout.strip()


class AgentdWorker(AgentdServer):
    """An ``agentd worker`` process (no HTTP API) on the database of a started server, with
    its own data folder. With ``AGENTD_METRICS_ADDR`` set, its base URL is its metrics
    listener; otherwise it has none."""

    COMMAND = "worker"
    METRICS_RE = re.compile(r"agentd metrics listening on (http://\S+)")
    RUNNING_RE = re.compile(r"agentd worker running")

    @classmethod
    def beside(cls, server: AgentdServer, workdir: Path,
               extra_env: dict[str, str | None] | None = None) -> "AgentdWorker":
        """Starts a worker with ``server``'s environment (its database, provider, PDFium),
        ``extra_env`` over it, and ``workdir`` as its data folder."""
        env = {**server.env, **(extra_env or {}), "AGENTD_DATA_DIR": str(workdir)}
        return cls(workdir, server.env["OPENAI_BASE_URL"], env, org_id=server.org_id,
                   api_key=server.api_key).start()

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.log_path = self.workdir / "worker.log"

    def ready_re(self) -> re.Pattern:
        return self.METRICS_RE if self.env.get("AGENTD_METRICS_ADDR") else self.RUNNING_RE


# ---------------------------------------------------------------------------
# Session fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def session_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="agentd-e2e-"))
    yield path
    for srv in list(_SERVERS):
        srv.stop()
    drop_databases()
    if os.environ.get("AGENTD_E2E_KEEP") != "1":
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def server(fake_openai: FakeOpenAI, session_dir: Path) -> Iterator[AgentdServer]:
    srv = AgentdServer(session_dir / "main", fake_openai.base_url).start()
    yield srv
    srv.stop()


@pytest.fixture
def start_server(fake_openai: FakeOpenAI, session_dir: Path) -> Iterator[Callable[..., AgentdServer]]:
    """Factory: start another server (own database) with extra env; stopped after the test."""
    started: list[AgentdServer] = []

    def start(extra_env: dict[str, str | None] | None = None, workdir: Path | None = None, **kw: Any) -> AgentdServer:
        wd = workdir or session_dir / ("extra-" + uuid.uuid4().hex[:8])
        srv = AgentdServer(wd, fake_openai.base_url, extra_env, **kw).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture(scope="module")
def start_module_server(fake_openai: FakeOpenAI, session_dir: Path) -> Iterator[Callable[..., AgentdServer]]:
    """Like ``start_server``, for module-scoped fixtures: the servers stop after the module."""
    started: list[AgentdServer] = []

    def start(extra_env: dict[str, str | None] | None = None, workdir: Path | None = None, **kw: Any) -> AgentdServer:
        wd = workdir or session_dir / ("module-" + uuid.uuid4().hex[:8])
        srv = AgentdServer(wd, fake_openai.base_url, extra_env, **kw).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture(autouse=True)
def fake(request: pytest.FixtureRequest, fake_openai: FakeOpenAI) -> FakeOpenAI:
    """The fake provider, reset for this test (no queued replies, no recorded requests)."""
    fake_openai.reset()
    request.node._agentd_log_marks = {id(s): (s, s.log_size()) for s in _SERVERS}
    return fake_openai


@pytest.fixture
def org_id(server: AgentdServer) -> str:
    return server.org_id


@pytest.fixture
def api_key(server: AgentdServer) -> str:
    return server.api_key


@pytest.fixture
def admin(server: AgentdServer) -> Callable[..., str]:
    """``admin("org", "create", "x")`` runs the admin CLI against the server's database."""
    return server.admin


def make_roe_client(server: AgentdServer, api_key: str, org_id: str) -> roe.RoeClient:
    return roe.RoeClient(api_key=api_key, organization_id=org_id, base_url=server.base_url, timeout=30)


def make_http(server: AgentdServer, api_key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(base_url=server.base_url, headers=headers, timeout=30)


@pytest.fixture
def client(server: AgentdServer) -> Iterator[roe.RoeClient]:
    c = make_roe_client(server, server.api_key, server.org_id)
    yield c
    c.close()


@pytest.fixture
def http(server: AgentdServer) -> Iterator[httpx.Client]:
    """A raw httpx client with the bootstrap key (no organization_id added)."""
    with make_http(server, server.api_key) as c:
        yield c


@pytest.fixture
def anon_http(server: AgentdServer) -> Iterator[httpx.Client]:
    """A raw httpx client with no Authorization header."""
    with make_http(server, None) as c:
        yield c


@dataclass
class Org:
    id: str
    api_key: str
    client: roe.RoeClient
    http: httpx.Client
    server: AgentdServer

    def key(self, *scopes: str) -> str:
        args = ["key", "create", "--org", self.id]
        for s in scopes:
            args += ["--scope", s]
        key = self.server.admin(*args)
        assert key and "\n" not in key, f"admin key create printed {key!r}"
        return key

    def roe(self, api_key: str) -> roe.RoeClient:
        return make_roe_client(self.server, api_key, self.id)

    def http_for(self, api_key: str | None) -> httpx.Client:
        return make_http(self.server, api_key)


@pytest.fixture
def new_org(server: AgentdServer) -> Iterator[Callable[[], Org]]:
    """Factory: a new organization (admin CLI) with a full-access key, an SDK client and an httpx client."""
    made: list[Org] = []

    def make(name: str | None = None) -> Org:
        oid = server.admin("org", "create", name or ("org-" + uuid.uuid4().hex[:8]))
        uuid.UUID(oid)  # the only stdout line is the org id
        key = server.admin("key", "create", "--org", oid)
        assert key and "\n" not in key, f"admin key create printed {key!r}"
        org = Org(oid, key, make_roe_client(server, key, oid), make_http(server, key), server)
        made.append(org)
        return org

    yield make
    for org in made:
        org.client.close()
        org.http.close()


@pytest.fixture
def fresh_org(new_org: Callable[[], Org]) -> Org:
    return new_org()


@pytest.fixture
def create_agent(http: httpx.Client) -> Callable[..., dict]:
    """Factory: creates an agent over raw HTTP (bootstrap org) and returns the 201 body."""

    def create(client: httpx.Client | None = None, **kw: Any) -> dict:
        resp = (client or http).post("/v1/agents/", json=agent_body(**kw))
        return expect(resp, 201)

    return create


# ---------------------------------------------------------------------------
# Attach the server log to failing tests
# ---------------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        marks = getattr(item, "_agentd_log_marks", {})
        for srv in list(_SERVERS):
            start = marks.get(id(srv), (srv, 0))[1]
            text = srv.log_text(start)
            if len(text) > 8000:
                text = "...\n" + text[-8000:]
            report.sections.append((f"agentd log ({srv.workdir.name}) during this test", text or "(empty)"))
