"""A loopback fake of the Anthropic Messages protocol, for end-to-end tests.

It listens on 127.0.0.1 (port 0: the OS picks one) in a background thread and
answers ``POST /v1/messages`` the way the real service does. ``fake.base_url``
is what the server gets as ``ANTHROPIC_BASE_URL`` (no ``/v1``: the provider
appends ``/v1/messages``).

agentd asks Anthropic for structured output through one forced tool call
(``tools[0].input_schema`` = the schema, ``tool_choice: {type: tool, name}``),
so a successful answer is a ``tool_use`` content block whose ``input`` is the
answer object.

* Every request is recorded (method, path, headers, raw body, parsed JSON body,
  arrival time) in ``fake.requests``.
* Scripted responses: ``fake.enqueue(reply, ...)`` queues replies used one per
  request, in order; ``fake.always(reply)`` answers every request after the
  queue with the same reply. Otherwise the default responder answers with a
  tool call whose input is valid against the requested tool's ``input_schema``.
* Failure modes: ``Reply.error(status, type_, message)``,
  ``Reply.rate_limited(retry_after="1")`` (429), ``Reply.overloaded()`` (529),
  ``Reply.server_error()`` (500), ``Reply.invalid_api_key()`` (401),
  ``Reply.malformed()``, ``Reply.cut_off()`` (``stop_reason: max_tokens``),
  ``Reply.text_only("...")`` (no tool call), ``Reply.refusal()``, and a
  ``delay`` on any reply. While a reply is delayed the fake watches the
  connection: when the client hangs up the request's ``disconnected`` event is
  set and no answer is sent; ``answered`` tells whether a response was written.
* Protocol checks the real service also makes: a request without the
  ``anthropic-version`` header gets 400; with ``fake.expected_api_key`` set, a
  request whose ``x-api-key`` differs gets 401.

Only the standard library is used (plus the schema-instance generator of
``fake_openai``, so every fake answers alike).
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from fake_openai import echo_value, instance_for

DEFAULT_INPUT_TOKENS = 100
DEFAULT_OUTPUT_TOKENS = 20
DEFAULT_MODEL = "claude-sonnet-4-6"
MESSAGES_PATH = "/v1/messages"


@dataclass
class Reply:
    """One scripted HTTP response of the fake."""

    status: int = 200
    body: Any = None  # dict/list -> JSON; str/bytes -> sent as-is; None -> empty
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    # When set, the body is built from the request: fn(request) -> Reply.
    build: Callable[["RecordedRequest"], "Reply"] | None = None

    # ---- successful answers ----------------------------------------------
    @classmethod
    def answer(
        cls,
        obj: Any,
        input_tokens: int = DEFAULT_INPUT_TOKENS,
        output_tokens: int = DEFAULT_OUTPUT_TOKENS,
        cache_read_input_tokens: int = 0,
        cache_creation_input_tokens: int = 0,
        delay: float = 0.0,
    ) -> "Reply":
        """A tool call of the requested tool whose ``input`` is ``obj``."""

        def build(req: RecordedRequest) -> Reply:
            usage = usage_json(input_tokens, output_tokens, cache_read_input_tokens, cache_creation_input_tokens)
            return ok(message_body(req.model, [tool_use_block(req.tool_name, obj)], "tool_use", usage))

        return cls(delay=delay, build=build)

    @classmethod
    def default(
        cls,
        input_tokens: int = DEFAULT_INPUT_TOKENS,
        output_tokens: int = DEFAULT_OUTPUT_TOKENS,
        delay: float = 0.0,
    ) -> "Reply":
        """A schema-valid tool call derived from the request (the default responder)."""

        def build(req: RecordedRequest) -> Reply:
            return default_answer(req, input_tokens, output_tokens)

        return cls(delay=delay, build=build)

    @classmethod
    def text_only(cls, text: str = "I can't help with that.", delay: float = 0.0) -> "Reply":
        """An answer in prose without the tool call (agentd: no usable answer)."""

        def build(req: RecordedRequest) -> Reply:
            return ok(message_body(req.model, [{"type": "text", "text": text}], "end_turn", usage_json()))

        return cls(delay=delay, build=build)

    @classmethod
    def cut_off(cls, delay: float = 0.0) -> "Reply":
        """The answer stopped at ``max_tokens`` (a partial tool call)."""

        def build(req: RecordedRequest) -> Reply:
            block = tool_use_block(req.tool_name, {})
            return ok(message_body(req.model, [block], "max_tokens", usage_json(output_tokens=req.max_tokens or 1)))

        return cls(delay=delay, build=build)

    @classmethod
    def refusal(cls, delay: float = 0.0) -> "Reply":
        """``stop_reason: refusal`` (the model declined for safety reasons)."""

        def build(req: RecordedRequest) -> Reply:
            return ok(message_body(req.model, [], "refusal", usage_json()))

        return cls(delay=delay, build=build)

    # ---- failures ----------------------------------------------------------
    @classmethod
    def error(
        cls,
        status: int = 500,
        type_: str = "api_error",
        message: str = "Internal server error",
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> "Reply":
        """An Anthropic-shaped error: ``{"type": "error", "error": {"type", "message"}}``."""
        body = {
            "type": "error",
            "error": {"type": type_, "message": message},
            "request_id": "req_" + uuid.uuid4().hex[:24],
        }
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(headers or {})
        return cls(status, body, hdrs, delay)

    @classmethod
    def server_error(cls, delay: float = 0.0) -> "Reply":
        return cls.error(500, "api_error", "Internal server error", delay=delay)

    @classmethod
    def overloaded(cls, delay: float = 0.0) -> "Reply":
        """529: Anthropic's "overloaded" status."""
        return cls.error(529, "overloaded_error", "Overloaded", delay=delay)

    @classmethod
    def rate_limited(cls, retry_after: str | None = "1", delay: float = 0.0) -> "Reply":
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        headers["anthropic-ratelimit-requests-remaining"] = "0"
        return cls.error(
            429,
            "rate_limit_error",
            "This request would exceed the rate limit for your organization of 50 requests per minute.",
            headers,
            delay,
        )

    @classmethod
    def invalid_api_key(cls) -> "Reply":
        return cls.error(401, "authentication_error", "invalid x-api-key")

    @classmethod
    def invalid_request(cls, message: str = "messages: at least one message is required") -> "Reply":
        return cls.error(400, "invalid_request_error", message)

    @classmethod
    def malformed(cls, status: int = 200) -> "Reply":
        """A 200 whose body is not JSON at all."""
        return cls(status, b'{"id": "msg_broken", "content": [', {"Content-Type": "application/json"})


def ok(body: dict) -> Reply:
    return Reply(200, body, {"Content-Type": "application/json"})


def usage_json(input_tokens: int = DEFAULT_INPUT_TOKENS, output_tokens: int = DEFAULT_OUTPUT_TOKENS,
               cache_read_input_tokens: int = 0, cache_creation_input_tokens: int = 0) -> dict:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": cache_read_input_tokens,
        "cache_creation_input_tokens": cache_creation_input_tokens,
    }


def tool_use_block(name: str, obj: Any) -> dict:
    return {"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:24], "name": name, "input": obj}


def message_body(model: str, content: list[dict], stop_reason: str, usage: dict) -> dict:
    return {
        "id": "msg_" + uuid.uuid4().hex[:24],
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    raw: bytes
    json: Any
    at: float  # time.monotonic() on arrival
    # Set when the client closed the connection before the (delayed) answer was sent.
    disconnected: threading.Event = field(default_factory=threading.Event, repr=False)
    disconnected_at: float | None = None
    # Set once a response was written (or the request was given up); ``answered`` says which.
    finished: threading.Event = field(default_factory=threading.Event, repr=False)
    answered: bool = False

    # ---- helpers for assertions ---------------------------------------
    @property
    def body(self) -> dict[str, Any]:
        return self.json if isinstance(self.json, dict) else {}

    @property
    def model(self) -> str:
        return self.body.get("model") or DEFAULT_MODEL

    @property
    def max_tokens(self) -> int | None:
        return self.body.get("max_tokens")

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])

    @property
    def system(self) -> str:
        """The system prompt (a string, or text blocks joined)."""
        system = self.body.get("system")
        if isinstance(system, list):
            return "\n".join(b.get("text", "") for b in system if isinstance(b, dict))
        return system or ""

    def message_texts(self, role: str | None = None) -> list[str]:
        """The text of each message (text blocks joined), optionally of one role.

        ``role="system"`` gives the system prompt (Anthropic sends it apart)."""
        if role == "system":
            return [self.system] if self.system else []
        out = []
        if role is None and self.system:
            out.append(self.system)
        for m in self.messages:
            if role is not None and m.get("role") != role:
                continue
            out.append(message_text(m))
        return out

    def all_text(self) -> str:
        return "\n".join(self.message_texts())

    @property
    def tool(self) -> dict[str, Any]:
        """The tool that ``tool_choice`` forces (else the first tool)."""
        tools = [t for t in self.body.get("tools") or [] if isinstance(t, dict)]
        chosen = (self.body.get("tool_choice") or {}).get("name")
        for t in tools:
            if t.get("name") == chosen:
                return t
        return tools[0] if tools else {}

    @property
    def tool_name(self) -> str:
        return self.tool.get("name") or "output"

    @property
    def schema(self) -> Any:
        return self.tool.get("input_schema")

    def content_parts(self) -> list[dict[str, Any]]:
        """Every content block of every message."""
        parts = []
        for m in self.messages:
            c = m.get("content")
            if isinstance(c, list):
                parts.extend(p for p in c if isinstance(p, dict))
        return parts

    def images(self) -> list[tuple[str, str]]:
        """``(media_type, base64 data)`` of every image block."""
        out = []
        for p in self.content_parts():
            source = p.get("source") or {}
            if p.get("type") == "image" and source.get("type") == "base64":
                out.append((source.get("media_type", ""), source.get("data", "")))
        return out


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        )
    return ""


def validation_error(req: RecordedRequest) -> Reply | None:
    """The 400 the real service gives for a request it cannot take, if any."""
    body = req.json
    if not isinstance(body, dict):
        return Reply.invalid_request("There was an issue with the format of your request: invalid JSON body")
    if not body.get("model"):
        return Reply.invalid_request("model: Field required")
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return Reply.invalid_request("max_tokens: Field required")
    messages = body.get("messages")
    if not messages:
        return Reply.invalid_request("messages: at least one message is required")
    if messages[0].get("role") != "user":
        return Reply.invalid_request("messages: first message must use the \"user\" role")
    for m in messages:
        if m.get("role") not in ("user", "assistant"):
            return Reply.invalid_request(f"messages: Unexpected role \"{m.get('role')}\"")
    temperature = body.get("temperature")
    if temperature is not None and not 0 <= temperature <= 1:
        return Reply.invalid_request("temperature: Input should be less than or equal to 1")
    choice = body.get("tool_choice") or {}
    if choice.get("type") == "tool" and (body.get("thinking") or {}).get("type") == "enabled":
        return Reply.invalid_request("Thinking may not be enabled when tool_choice forces tool use.")
    if choice.get("type") == "tool" and choice.get("name") not in {t.get("name") for t in body.get("tools") or []}:
        return Reply.invalid_request("tool_choice: the named tool is not in tools")
    for t in body.get("tools") or []:
        schema = t.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            return Reply.invalid_request("tools.0.custom.input_schema.type: Field required")
    return None


def default_answer(req: RecordedRequest, input_tokens: int, output_tokens: int) -> Reply:
    problem = validation_error(req)
    if problem is not None:
        return problem
    schema = req.schema
    snippet = echo_value(" ".join(req.message_texts("user")))
    obj: Any = {"answer": snippet} if schema is None else instance_for(schema, schema, snippet)
    usage = usage_json(input_tokens, output_tokens)
    if not req.body.get("tools"):
        # No tool offered: answer in prose, like the real model would.
        return ok(message_body(req.model, [{"type": "text", "text": json.dumps(obj)}], "end_turn", usage))
    return ok(message_body(req.model, [tool_use_block(req.tool_name, obj)], "tool_use", usage))


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Many workers connect at once; the default backlog of 5 would drop SYNs (1 s retransmits).
    request_queue_size = 256


class FakeAnthropic:
    """The fake provider. ``start()`` it once; ``reset()`` it between tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[Reply] = []
        self._always: Reply | None = None
        self._default = Reply.default()
        self.requests: list[RecordedRequest] = []
        # When set, requests with another x-api-key get 401 (checked before the script).
        self.expected_api_key: str | None = None
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------
    def start(self) -> "FakeAnthropic":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    parsed = json.loads(raw) if raw else None
                except ValueError:
                    parsed = None
                req = RecordedRequest(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    raw=raw,
                    json=parsed,
                    at=time.monotonic(),
                )
                reply = fake._record_and_pick(req)
                try:
                    if reply.delay and not self._wait(reply.delay, req):
                        self.close_connection = True
                        return
                    if reply.build is not None:
                        built = reply.build(req)
                        reply = Reply(built.status, built.body, {**reply.headers, **built.headers})
                    req.answered = self._send(reply)
                finally:
                    req.finished.set()

            def _wait(self, delay: float, req: RecordedRequest) -> bool:
                """Sleeps ``delay`` seconds; False (early) when the client hangs up meanwhile."""
                end = time.monotonic() + delay
                sock = self.connection
                while True:
                    left = end - time.monotonic()
                    if left <= 0:
                        return True
                    try:
                        readable, _, _ = select.select([sock], [], [], min(left, 0.05))
                    except (OSError, ValueError):
                        readable = [sock]
                    if not readable:
                        continue
                    try:
                        peek = sock.recv(1, socket.MSG_PEEK)
                    except BlockingIOError:
                        continue
                    except OSError:
                        peek = b""
                    if not peek:
                        req.disconnected_at = time.monotonic()
                        req.disconnected.set()
                        return False
                    time.sleep(max(0.0, end - time.monotonic()))
                    return True

            def _send(self, reply: Reply) -> bool:
                body = reply.body
                if isinstance(body, (dict, list)):
                    data = json.dumps(body).encode()
                elif isinstance(body, str):
                    data = body.encode()
                elif body is None:
                    data = b""
                else:
                    data = bytes(body)
                try:
                    self.send_response(reply.status)
                    headers = {"Content-Type": "application/json", **reply.headers}
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("request-id", "req_" + uuid.uuid4().hex[:24])
                    self.end_headers()
                    self.wfile.write(data)
                    return True
                except (BrokenPipeError, ConnectionResetError):
                    return False

            do_POST = _handle
            do_GET = _handle
            do_PUT = _handle
            do_DELETE = _handle

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-anthropic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """What the server gets as ANTHROPIC_BASE_URL."""
        return f"http://127.0.0.1:{self.port}"

    # ---- scripting ------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._always = None
            self._default = Reply.default()
            self.expected_api_key = None
            self.requests.clear()

    def enqueue(self, *replies: Reply) -> None:
        """Queue replies, used one per request before the default responder."""
        with self._lock:
            self._queue.extend(replies)

    def always(self, reply: Reply | None) -> None:
        """Answer every request (after the queue is used up) with ``reply``."""
        with self._lock:
            self._always = reply

    def set_default_usage(self, input_tokens: int, output_tokens: int) -> None:
        with self._lock:
            self._default = Reply.default(input_tokens, output_tokens)

    @staticmethod
    def _is_messages(req: RecordedRequest) -> bool:
        return req.path.split("?")[0].rstrip("/") == MESSAGES_PATH

    def _record_and_pick(self, req: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(req)
            if req.method != "POST" or not self._is_messages(req):
                return Reply.error(404, "not_found_error", f"Not found: {req.method} {req.path}")
            if not req.headers.get("anthropic-version"):
                return Reply.invalid_request("anthropic-version: header is required")
            if self.expected_api_key is not None and req.headers.get("x-api-key") != self.expected_api_key:
                return Reply.invalid_api_key()
            if self._queue:
                return self._queue.pop(0)
            if self._always is not None:
                return self._always
            return self._default

    # ---- assertions helpers ----------------------------------------------
    @property
    def completions(self) -> list[RecordedRequest]:
        """Recorded requests to the messages endpoint."""
        with self._lock:
            return [r for r in self.requests if self._is_messages(r)]

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """Waits until at least ``n`` messages requests arrived; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            reqs = self.completions
            if len(reqs) >= n:
                return reqs
            if time.monotonic() > deadline:
                raise AssertionError(f"the fake Anthropic got {len(reqs)} requests in {timeout} s, expected {n}")
            time.sleep(0.02)

    def last(self) -> RecordedRequest:
        reqs = self.completions
        assert reqs, "the fake Anthropic received no messages request"
        return reqs[-1]

    def only(self) -> RecordedRequest:
        reqs = self.completions
        assert len(reqs) == 1, f"expected exactly 1 provider request, got {len(reqs)}: {[r.path for r in reqs]}"
        return reqs[0]


if __name__ == "__main__":  # manual poking: python fake_anthropic.py
    f = FakeAnthropic().start()
    print(f.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        f.stop()
