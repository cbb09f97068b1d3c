"""The server machinery shared by the loopback provider fakes (fake_openai,
fake_anthropic, fake_gemini).

Each fake subclasses three things from here:

* ``BaseReply``: one scripted HTTP response (status, body, headers, delay, and an
  optional ``build(request) -> Reply`` that makes the answer from the request).
  A fake's ``Reply`` adds the protocol's constructors (``answer``, ``error``, ...).
* ``BaseRecordedRequest``: one request as received (method, path, lower-cased
  headers, raw and parsed body, arrival time), with the ``disconnected`` /
  ``finished`` events and ``answered`` flag set by the server. A fake's
  ``RecordedRequest`` adds the protocol's assertion helpers.
* ``FakeServer``: a ThreadingHTTPServer on 127.0.0.1 (port 0) in a daemon thread
  that records every request, picks its reply (protocol checks, then the
  ``enqueue``d queue, then ``always``, then the default responder), waits out a
  reply's ``delay`` while watching for the client hanging up, and sends it.

Only the standard library is used.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, ClassVar


@dataclass
class BaseReply:
    """One scripted HTTP response of a fake."""

    status: int = 200
    body: Any = None  # dict/list -> JSON; str/bytes -> sent as-is; None -> empty
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    # When set, the body is built from the request: fn(request) -> Reply.
    build: Callable[[Any], "BaseReply"] | None = None

    @classmethod
    def default(cls, *args: Any, **kwargs: Any) -> "BaseReply":
        """The default responder (a schema-valid answer); each fake defines it."""
        raise NotImplementedError

    def encoded_body(self) -> bytes:
        body = self.body
        if isinstance(body, (dict, list)):
            return json.dumps(body).encode()
        if isinstance(body, str):
            return body.encode()
        if body is None:
            return b""
        return bytes(body)


@dataclass
class BaseRecordedRequest:
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

    def message_texts(self, role: str | None = None) -> list[str]:
        raise NotImplementedError

    def all_text(self) -> str:
        return "\n".join(self.message_texts())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Many workers connect at once; the default backlog of 5 would drop SYNs (1 s retransmits).
    request_queue_size = 256
    fake: "FakeServer"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle plus the
    # client's delayed ACK hold the body back ~40 ms.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def _handle(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        req = fake.request_cls(
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
                reply = type(built)(built.status, built.body, {**reply.headers, **built.headers})
            req.answered = self._send(reply, fake)
        finally:
            req.finished.set()

    def _wait(self, delay: float, req: BaseRecordedRequest) -> bool:
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
            # The client sent more bytes (not expected): just finish the delay.
            time.sleep(max(0.0, end - time.monotonic()))
            return True

    def _send(self, reply: BaseReply, fake: "FakeServer") -> bool:
        data = reply.encoded_body()
        try:
            self.send_response(reply.status)
            headers = {"Content-Type": fake.content_type, **reply.headers}
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            for k, v in fake.response_headers().items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    do_POST = _handle
    do_GET = _handle
    do_PUT = _handle
    do_DELETE = _handle


class FakeServer:
    """A fake provider. ``start()`` it once; ``reset()`` it between tests.

    Subclasses set ``reply_cls``, ``request_cls``, ``name`` (the thread's
    ``fake-<name>``), ``label`` and ``endpoint`` (for assertion messages) and
    implement ``_is_endpoint`` and ``_not_found``; ``_check`` adds protocol checks
    made before the script, ``response_headers`` the headers of every response.
    """

    reply_cls: ClassVar[type[BaseReply]] = BaseReply
    request_cls: ClassVar[type[BaseRecordedRequest]] = BaseRecordedRequest
    name: ClassVar[str] = "provider"
    label: ClassVar[str] = "the fake provider"
    endpoint: ClassVar[str] = "model"
    content_type: ClassVar[str] = "application/json"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[BaseReply] = []
        self._always: BaseReply | None = None
        self._default = self.reply_cls.default()
        self.requests: list[Any] = []
        # Fakes whose protocol checks the key (anthropic, gemini) reject another one in
        # ``_check`` while this is set; ``reset()`` clears it.
        self.expected_api_key: str | None = None
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- protocol hooks -------------------------------------------------
    def _is_endpoint(self, req: BaseRecordedRequest) -> bool:
        raise NotImplementedError

    def _not_found(self, req: BaseRecordedRequest) -> BaseReply:
        raise NotImplementedError

    def _check(self, req: BaseRecordedRequest) -> BaseReply | None:
        """The reply the service gives before looking at the script (404, auth), if any."""
        if req.method != "POST" or not self._is_endpoint(req):
            return self._not_found(req)
        return None

    def response_headers(self) -> dict[str, str]:
        """Headers sent (after Content-Length) with every response."""
        return {}

    # ---- lifecycle ------------------------------------------------------
    def start(self):
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"fake-{self.name}", daemon=True)
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

    # ---- scripting ------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._always = None
            self._default = self.reply_cls.default()
            self.expected_api_key = None
            self.requests.clear()

    def enqueue(self, *replies: BaseReply) -> None:
        """Queue replies, used one per request before the default responder."""
        with self._lock:
            self._queue.extend(replies)

    def always(self, reply: BaseReply | None) -> None:
        """Answer every request (after the queue is used up) with ``reply``."""
        with self._lock:
            self._always = reply

    def set_default_usage(self, *usage: int) -> None:
        """The token counts of the default responder (the protocol's two usage numbers)."""
        with self._lock:
            self._default = self.reply_cls.default(*usage)

    def _record_and_pick(self, req: BaseRecordedRequest) -> BaseReply:
        with self._lock:
            self.requests.append(req)
            rejected = self._check(req)
            if rejected is not None:
                return rejected
            if self._queue:
                return self._queue.pop(0)
            if self._always is not None:
                return self._always
            return self._default

    # ---- assertions helpers ----------------------------------------------
    @property
    def completions(self) -> list[Any]:
        """Recorded requests to the model endpoint."""
        with self._lock:
            return [r for r in self.requests if self._is_endpoint(r)]

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> list[Any]:
        """Waits until at least ``n`` model-endpoint requests arrived; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            reqs = self.completions
            if len(reqs) >= n:
                return reqs
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.label} got {len(reqs)} requests in {timeout} s, expected {n}")
            time.sleep(0.02)

    def last(self) -> Any:
        reqs = self.completions
        assert reqs, f"{self.label} received no {self.endpoint} request"
        return reqs[-1]

    def only(self) -> Any:
        reqs = self.completions
        assert len(reqs) == 1, f"expected exactly 1 provider request, got {len(reqs)}: {[r.path for r in reqs]}"
        return reqs[0]


def serve_until_interrupted(fake: FakeServer) -> None:
    """Manual poking (``python fake_xxx.py``): runs ``fake`` and prints its base URL."""
    fake.start()
    print(fake.base_url, flush=True)  # type: ignore[attr-defined]
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
