"""Several agentd hosts on one database and one S3 store: a moto S3 server
on a free loopback port, ``agentd worker`` processes, and the environment
that points a process at the bucket."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from conftest import agentd_bin

MOTO_RE = re.compile(r"Running on (http://\S+)")
WORKER_RE = re.compile(r"agentd worker running")
STARTUP_TIMEOUT = 60.0


class MotoS3:
    """A moto S3 server with one bucket; ``keys()`` lists the bucket."""

    def __init__(self, workdir: Path) -> None:
        program = Path(sys.executable).parent / "moto_server"
        if not program.exists():
            pytest.fail(f"{program} is missing: install tests/e2e/requirements.txt", pytrace=False)
        self.bucket = "agentd-" + uuid.uuid4().hex[:12]
        self.log = open(workdir / "moto.log", "w", encoding="utf-8")
        self.proc = subprocess.Popen([str(program), "-H", "127.0.0.1", "-p", "0"], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.PIPE, text=True)
        self.endpoint = self._wait_for_address()
        threading.Thread(target=self._drain, daemon=True).start()
        httpx.put(f"{self.endpoint}/{self.bucket}", timeout=30).raise_for_status()

    def _wait_for_address(self) -> str:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.write(line)
            match = MOTO_RE.search(line)
            if match:
                return match.group(1).rstrip("/")
        pytest.fail(f"moto_server exited with {self.proc.wait()} before listening", pytrace=False)

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.write(line)

    def env(self, prefix: str = "files") -> dict[str, str]:
        """What an agentd process needs to keep its files in the bucket."""
        return {
            "AGENTD_OBJECT_STORE_URL": f"s3://{self.bucket}/{prefix}",
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }

    def keys(self) -> list[str]:
        """Every key in the bucket (all pages)."""
        keys: list[str] = []
        token = None
        while True:
            params = {"list-type": "2"}
            if token:
                params["continuation-token"] = token
            body = httpx.get(f"{self.endpoint}/{self.bucket}", params=params, timeout=30).text
            keys += re.findall(r"<Key>([^<]+)</Key>", body)
            found = re.search(r"<NextContinuationToken>([^<]+)</NextContinuationToken>", body)
            if not found:
                return sorted(keys)
            token = found.group(1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


def unreachable_store_env() -> dict[str, str]:
    """A bucket on a loopback port where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return {
        "AGENTD_OBJECT_STORE_URL": "s3://nowhere/files",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }


class AgentdWorker:
    """An ``agentd worker`` process (no HTTP API) with the environment
    ``env`` (a started server's, for its database) and its own data folder."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.log_path = workdir / "worker.log"
        self.env = {**env, "AGENTD_DATA_DIR": str(workdir)}
        self._ready = threading.Event()
        self._log = open(self.log_path, "a", encoding="utf-8")
        self.proc = subprocess.Popen([str(agentd_bin()), "worker"], cwd=workdir, env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"agentd worker did not start; log:\n{self.log_path.read_text()[-5000:]}",
                            pytrace=False)

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._log.write(line)
            self._log.flush()
            if WORKER_RE.search(line):
                self._ready.set()

    def kill(self) -> None:
        """``kill -9``: the process gets no chance to hand its jobs back."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

