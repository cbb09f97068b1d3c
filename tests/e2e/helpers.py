"""Shared constants and helpers of the end-to-end suite."""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import httpx

MODEL = "gpt-4.1-2025-04-14"
# $ per token for MODEL: $2.00 / 1M input, $8.00 / 1M output.
PRICE_IN = 2.00 / 1_000_000
PRICE_OUT = 8.00 / 1_000_000
ENGINE = "MultimodalExtractionEngine"

SUMMARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "description": "A short title"},
        "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
        "score": {"type": "integer", "description": "A score from 1 to 10"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["title", "sentiment", "score", "tags"],
    "additionalProperties": False,
}

TEXT_INPUT = {"key": "text", "data_type": "text/plain", "description": "Text to be processed"}
PHOTO_INPUTS = [TEXT_INPUT, {"key": "photo", "data_type": "image/png", "description": "A photo"}]


def cost_of(prompt_tokens: int, completion_tokens: int) -> float:
    return prompt_tokens * PRICE_IN + completion_tokens * PRICE_OUT


def unique(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def extraction_config(
    instruction: str = "Summarize the text.",
    schema: Any = None,
    text: str = "${text}",
    **extra: Any,
) -> dict[str, Any]:
    cfg = {
        "model": MODEL,
        "text": text,
        "instruction": instruction,
        "output_schema": SUMMARY_SCHEMA if schema is None else schema,
    }
    cfg.update(extra)
    return cfg


def agent_body(
    name: str | None = None,
    input_definitions: list[dict[str, Any]] | None = None,
    engine_config: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body = {
        "name": name or unique("agent-"),
        "engine_class_id": ENGINE,
        "input_definitions": [TEXT_INPUT] if input_definitions is None else input_definitions,
        "engine_config": extraction_config() if engine_config is None else engine_config,
    }
    body.update(extra)
    return body


def describe(resp: httpx.Response) -> str:
    """One line that says what was sent and what came back (for assertion messages)."""
    req = resp.request
    sent = req.content[:300] if req.content else b""
    return (
        f"{req.method} {req.url} (content-type {req.headers.get('content-type')!r}, body {sent!r}) "
        f"-> {resp.status_code} {resp.text[:600]!r}"
    )


def expect(resp: httpx.Response, status: int) -> Any:
    """Asserts the status and returns the JSON body (None for an empty body)."""
    assert resp.status_code == status, describe(resp)
    if not resp.content:
        return None
    return resp.json()


def assert_error(
    resp: httpx.Response,
    status: int,
    *,
    field: str | None = None,
    mentions: str | tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Asserts an error answer: status, JSON body with equal ``detail`` and ``message``.

    ``field``: the 400 body also carries ``field`` beside ``detail`` and ``message`` (Roe's flat
    field map): a non-empty list of strings.
    ``mentions``: the message mentions (one of) these words, case-insensitively.
    """
    assert resp.status_code == status, describe(resp)
    ctype = resp.headers.get("content-type", "")
    assert ctype.startswith("application/json"), f"error body is not JSON ({ctype!r}): {describe(resp)}"
    body = resp.json()
    assert isinstance(body, dict), describe(resp)
    assert isinstance(body.get("detail"), str) and body["detail"].strip(), describe(resp)
    assert body.get("message") == body["detail"], describe(resp)
    low = body["detail"].lower()
    assert "traceback" not in low and "panicked" not in low, describe(resp)
    if field is not None:
        assert "errors" not in body, f"field errors must be flat, not under 'errors': {describe(resp)}"
        assert field in body, f"the body lacks the field {field!r}: {describe(resp)}"
        msgs = body[field]
        assert isinstance(msgs, list) and msgs and all(isinstance(m, str) and m for m in msgs), describe(resp)
    if mentions is not None:
        words = (mentions,) if isinstance(mentions, str) else mentions
        text = json.dumps(body).lower()
        assert any(w.lower() in text for w in words), f"error mentions none of {words}: {describe(resp)}"
    return body


def field_errors(body: dict[str, Any]) -> dict[str, list[str]]:
    """The flat field map of a 400 body: every key but ``detail`` and ``message``."""
    return {k: v for k, v in body.items() if k not in ("detail", "message")}


def only_output(data: Any) -> dict[str, Any]:
    """The single AgentDatum of an extraction run, checked for shape."""
    assert isinstance(data, list) and len(data) == 1, data
    datum = data[0]
    assert datum["key"] == "output", datum
    assert datum["data_type"] == "application/json", datum
    assert isinstance(datum["value"], str), datum
    assert isinstance(datum.get("cost"), (int, float)), datum
    return datum


# ---------------------------------------------------------------------------
# Small valid files
# ---------------------------------------------------------------------------


def png_bytes(width: int = 1, height: int = 1) -> bytes:
    """A valid PNG image (opaque red pixels)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def pdf_bytes(text: str = "Hello") -> bytes:
    """A small, valid one-page PDF."""
    stream = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def image_parts(request) -> list[str]:
    """The image URLs (usually data: URLs) in a recorded provider request."""
    urls = []
    for part in request.content_parts():
        if part.get("type") == "image_url":
            iu = part.get("image_url")
            url = iu.get("url") if isinstance(iu, dict) else iu
            if isinstance(url, str):
                urls.append(url)
    return urls


def decode_data_url(url: str) -> tuple[str, bytes]:
    assert url.startswith("data:"), url[:80]
    header, _, payload = url[5:].partition(",")
    mime = header.split(";")[0]
    assert header.endswith(";base64"), header
    return mime, base64.b64decode(payload)


def parse_credits(text: str) -> dict[str, float | str]:
    """Parses `agentd admin credits show` output (`balance: <x>` and `spent: <y>` lines)."""
    values: dict[str, float | str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        value = value.strip()
        try:
            values[key.strip()] = float(value.split()[0].lstrip("$"))
        except (ValueError, IndexError):
            values[key.strip()] = value
    return values


# ---------------------------------------------------------------------------
# Jobs
# ---------------------------------------------------------------------------

PENDING, STARTED, RETRY, SUCCESS, FAILURE, CANCELLED, CACHED = range(7)
FINAL_STATUSES = (SUCCESS, FAILURE, CANCELLED, CACHED)


def job_statuses(client: httpx.Client, ids: list[str]) -> list[dict[str, Any]]:
    """``POST /v1/agents/jobs/statuses/``; checks that the answer follows the order asked."""
    got = expect(client.post("/v1/agents/jobs/statuses/", json={"job_ids": ids}), 200)
    assert isinstance(got, list) and [s.get("id") for s in got] == ids, got
    return got


def wait_for_jobs(
    client: httpx.Client,
    ids: list[str],
    timeout: float = 30.0,
    statuses: tuple[int, ...] = FINAL_STATUSES,
    interval: float = 0.1,
) -> list[dict[str, Any]]:
    """Polls the bulk statuses endpoint until every job has one of ``statuses``; returns the statuses."""
    deadline = time.monotonic() + timeout
    while True:
        got: list[dict[str, Any]] = []
        for i in range(0, len(ids), 1000):
            got += job_statuses(client, ids[i : i + 1000])
        if all(s.get("status") in statuses for s in got):
            return got
        if time.monotonic() > deadline:
            waiting = {s["id"]: s.get("status") for s in got if s.get("status") not in statuses}
            raise AssertionError(
                f"{len(waiting)} of {len(ids)} jobs did not reach {statuses} in {timeout} s: "
                f"{dict(list(waiting.items())[:10])}"
            )
        time.sleep(interval)


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 30.0,
                 statuses: tuple[int, ...] = FINAL_STATUSES) -> dict[str, Any]:
    """Polls ``GET /v1/agents/jobs/{id}/status/`` until the status is one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        got = expect(client.get(f"/v1/agents/jobs/{job_id}/status/"), 200)
        if got.get("status") in statuses:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still has status {got} after {timeout} s")
        time.sleep(0.05)


def list_jobs(client: httpx.Client, agent_id: str, **params: Any) -> dict[str, Any]:
    """``GET /v1/agents/{agent_id}/jobs/`` with query parameters (page_size 100 unless given)."""
    params.setdefault("page_size", 100)
    return expect(client.get(f"/v1/agents/{agent_id}/jobs/", params=params), 200)


def event_codes(job: dict[str, Any]) -> list[int]:
    """The status codes of a ListAgentJob's status_events, in order."""
    return [e["status_code"] for e in job["status_events"]]


def reader_pids(server_pid: int) -> list[int]:
    """The server's children that are PDF reader processes (`agentd pdf-reader`)."""
    pids = set()
    for task in Path(f"/proc/{server_pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        for child in children:
            try:
                argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except (FileNotFoundError, ProcessLookupError):
                continue
            if b"pdf-reader" in argv and alive(int(child)):
                pids.add(int(child))
    return sorted(pids)


def alive(pid: int) -> bool:
    """The process runs (it exists and is no zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"
