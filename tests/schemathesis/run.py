"""Property-based run of Roe's OpenAPI and of agentd's own against a freshly started agentd.

Started by ``scripts/schemathesis.sh``. It starts the loopback fake OpenAI
provider of the e2e suite, an ``agentd serve`` on a fresh SQLite database in a
temporary directory (bootstrap organization and key, local model off), seeds
one agent with a finished job, and runs schemathesis twice for each document
(Roe's spec file, then the server's own ``/openapi.json``):

1. against the seeded agent, version and job (their ids fixed), so that
   success answers are checked against the response schemas; operations that
   delete the seeded objects are left to the second pass;
2. with generated ids, every implemented operation, deletes included.

Checks: no 5xx (``not_a_server_error``) and answers that match the documented
schema (``response_schema_conformance``); against agentd's own document also
that every status and content type answered is documented. The run fails when
a check fails, when schemathesis itself fails, or when the server logged a
panic. ``--documents roe`` or ``--documents agentd`` runs one document only.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))

from fake_openai import FakeOpenAI  # noqa: E402
from helpers import agent_body  # noqa: E402

LISTEN_RE = re.compile(r"agentd listening on (http://\S+)")

# Operations of the OpenAPI that agentd does not implement (yet), excluded by
# name: none left. Tags and evaluations have no operations in this OpenAPI subset.
UNIMPLEMENTED_OPERATIONS = [
]
# Operations of agentd's own document that take a webhook URL: generated
# hosts would be looked up in DNS, and only loopback may be a target here.
# (The server also sends no deliveries: AGENTD_WEBHOOK_CONCURRENCY=0.)
OUTBOUND_OPERATIONS = ["agents_webhooks_create", "agents_webhooks_partial_update"]
# Operations that would delete the seeded objects of the first pass.
DESTRUCTIVE_OPERATIONS = ["agents_destroy", "agents_versions_destroy"]
CHECKS = "not_a_server_error,response_schema_conformance"
# agentd's own document lists every status and content type it answers.
OWN_CHECKS = CHECKS + ",status_code_conformance,content_type_conformance"


def default_spec() -> Path:
    """The spec beside the repository: ``<repo>/../shared/spec/...``."""
    return REPO_ROOT.parent / "shared" / "spec" / "roe-agents-openapi.yml"


class Server:
    """``agentd serve`` on a fresh database; its output goes to a log file."""

    def __init__(self, binary: Path, workdir: Path, provider_url: str) -> None:
        self.org_id = str(uuid.uuid4())
        self.api_key = "schemathesis-" + uuid.uuid4().hex
        self.log_path = workdir / "agentd.log"
        env = {
            **os.environ,
            "AGENTD_ADDR": "127.0.0.1:0",
            "DATABASE_URL": f"sqlite://{workdir / 'agentd.db'}",
            "AGENTD_DATA_DIR": str(workdir),
            "AGENTD_BOOTSTRAP_ORG_ID": self.org_id,
            "AGENTD_BOOTSTRAP_API_KEY": self.api_key,
            "AGENTD_LOCAL_MODEL": "off",
            "OPENAI_BASE_URL": provider_url,
            "OPENAI_API_KEY": "sk-test",
            "AGENTD_PROVIDER_MAX_RETRIES": "0",
            "AGENTD_WEBHOOK_CONCURRENCY": "0",
            "RUST_LOG": "warn",
            "NO_COLOR": "1",
        }
        for var in ("ANTHROPIC_API_KEY", "GEMINI_API_KEY", "AGENTD_LOG_FORMAT", "AGENTD_PUBLIC_URL"):
            env.pop(var, None)
        self.log = open(self.log_path, "w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [str(binary), "serve"], cwd=workdir, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        self.base_url: str | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + 60
        while not self._ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"agentd did not start; log:\n{self.log_text()[-4000:]}")

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            self.log.write(line)
            self.log.flush()
            match = LISTEN_RE.search(line)
            if match and not self._ready.is_set():
                self.base_url = match.group(1).rstrip("/")
                self._ready.set()

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def seed(server: Server) -> dict[str, str]:
    """One agent with a text input, and one finished job of it."""
    headers = {"Authorization": f"Bearer {server.api_key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as http:
        created = http.post("/v1/agents/", json=agent_body(name="schemathesis seed"))
        created.raise_for_status()
        agent = created.json()
        job_id = http.post(f"/v1/agents/run/{agent['id']}/async/", json={"text": "Seed text."})
        job_id.raise_for_status()
        job = job_id.json()
        deadline = time.monotonic() + 60
        while http.get(f"/v1/agents/jobs/{job}/status/").json().get("status") not in (3, 4, 5, 6):
            if time.monotonic() > deadline:
                raise SystemExit("the seed job did not finish within 60 s")
            time.sleep(0.2)
    return {
        "agent_id": agent["id"],
        "agent_version_id": agent["current_version_id"],
        "job_id": job,
        "agent_job_id": job,
    }


def write_config(path: Path, org_id: str, ids: dict[str, str] | None) -> Path:
    """A schemathesis.toml fixing `organization_id` (else every call is a
    403 for another organization) and, for the first pass, the ids."""
    lines = ["[parameters]", f'organization_id = "{org_id}"']
    lines += [f'"path.{name}" = "{value}"' for name, value in (ids or {}).items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def schemathesis(spec: str, checks: str, server: Server, config: Path, excluded: list[str],
                 args: argparse.Namespace, report: Path) -> int:
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config),
        "run", spec,
        "--url", server.base_url or "",
        "-H", f"Authorization: Bearer {server.api_key}",
        "--checks", checks,
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(args.max_examples),
        "--max-time", str(args.max_time),
        "--workers", "1",  # 2 workers crash hypothesis on Python 3.11 (ast.parse in threads)
        "--request-timeout", "60",
        "--generation-with-security-parameters", "false",
        "--suppress-health-check", "all",
        "--seed", str(args.seed),
        "--no-color",
        "--output-truncate", "true",
        "--report", "junit", "--report-junit-path", str(report),
    ]
    for operation in excluded:
        command += ["--exclude-operation-id", operation]
    print("+", " ".join(command[:4]), "...", flush=True)
    return subprocess.call(command, cwd=config.parent)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=Path(os.environ.get("AGENTD_OPENAPI_SPEC", default_spec())))
    parser.add_argument("--binary", type=Path,
                        default=Path(os.environ.get("AGENTD_BIN", REPO_ROOT / "target" / "debug" / "agentd")))
    parser.add_argument("--max-examples", type=int, default=int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "15")))
    parser.add_argument("--max-time", type=int, default=int(os.environ.get("SCHEMATHESIS_MAX_TIME", "50")),
                        help="seconds per pass (two passes per document)")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SCHEMATHESIS_SEED", "1")))
    parser.add_argument("--documents", choices=["both", "roe", "agentd"],
                        default=os.environ.get("SCHEMATHESIS_DOCUMENTS", "both"),
                        help="Roe's spec file, agentd's /openapi.json, or both (default)")
    args = parser.parse_args()
    if args.documents != "agentd" and not args.spec.is_file():
        print(f"schemathesis: OpenAPI spec not found at {args.spec} (set AGENTD_OPENAPI_SPEC)", file=sys.stderr)
        return 2
    binary = args.binary if args.binary.is_absolute() else REPO_ROOT / args.binary
    if not binary.exists():
        print(f"schemathesis: agentd binary not found at {binary} (cargo build -p agentd)", file=sys.stderr)
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="agentd-schemathesis-"))
    fake = FakeOpenAI().start()
    server = Server(binary, workdir, fake.base_url)
    failed = False
    try:
        ids = seed(server)
        # (document, its location, checks, operations left out of both passes)
        documents = [
            ("roe", str(args.spec), CHECKS, UNIMPLEMENTED_OPERATIONS),
            ("agentd", f"{server.base_url}/openapi.json", OWN_CHECKS, OUTBOUND_OPERATIONS),
        ]
        number = 0
        for document, location, checks, unimplemented in documents:
            if args.documents not in ("both", document):
                continue
            passes = [
                ("seeded ids", ids, unimplemented + DESTRUCTIVE_OPERATIONS),
                ("generated ids", None, unimplemented),
            ]
            for name, fixed, excluded in passes:
                number += 1
                print(f"== schemathesis pass {number}: {document}'s document, {name}", flush=True)
                config = write_config(workdir / f"pass{number}.toml", server.org_id, fixed)
                report = workdir / f"pass{number}-junit.xml"
                code = schemathesis(location, checks, server, config, excluded, args, report)
                print(f"== pass {number} ({document}, {name}): exit {code}", flush=True)
                failed |= code != 0
    finally:
        server.stop()
        fake.stop()
    log = server.log_text()
    if "panicked" in log:
        failed = True
        print("schemathesis: the server logged a panic:", file=sys.stderr)
        print("\n".join(line for line in log.splitlines() if "panicked" in line)[:4000], file=sys.stderr)
    if failed:
        print(f"schemathesis: FAILED (server log and reports kept in {workdir})", file=sys.stderr)
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    print("schemathesis: no server errors, no schema violations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
