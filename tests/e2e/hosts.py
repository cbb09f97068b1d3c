"""Several agentd hosts on one database and one S3 store: a moto S3 server
on a free loopback port and the environment that points a process at the
bucket (``agentd worker`` processes: ``conftest.AgentdWorker``)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import httpx
import pytest

MOTO_RE = re.compile(r"Running on (http://\S+)")


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
