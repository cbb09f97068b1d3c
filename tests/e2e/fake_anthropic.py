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
import uuid
from typing import Any

from fake_openai import echo_value, instance_for
from fake_server import BaseRecordedRequest, BaseReply, FakeServer, serve_until_interrupted

DEFAULT_INPUT_TOKENS = 100
DEFAULT_OUTPUT_TOKENS = 20
DEFAULT_MODEL = "claude-sonnet-4-6"
MESSAGES_PATH = "/v1/messages"


class Reply(BaseReply):
    """One scripted HTTP response of the fake (status, body, headers, delay, build)."""

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
        return cls(delay=delay, build=lambda req: default_answer(req, input_tokens, output_tokens))

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


class RecordedRequest(BaseRecordedRequest):
    """One received request (see ``BaseRecordedRequest`` for the recorded fields)."""

    # ---- helpers for assertions ---------------------------------------
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


class FakeAnthropic(FakeServer):
    """The fake provider. ``start()`` it once; ``reset()`` it between tests."""

    reply_cls = Reply
    request_cls = RecordedRequest
    name = "anthropic"
    label = "the fake Anthropic"
    endpoint = "messages"

    requests: list[RecordedRequest]

    def _is_endpoint(self, req: RecordedRequest) -> bool:
        return req.path.split("?")[0].rstrip("/") == MESSAGES_PATH

    def _not_found(self, req: RecordedRequest) -> Reply:
        return Reply.error(404, "not_found_error", f"Not found: {req.method} {req.path}")

    def _check(self, req: RecordedRequest) -> Reply | None:
        rejected = super()._check(req)
        if rejected is not None:
            return rejected
        if not req.headers.get("anthropic-version"):
            return Reply.invalid_request("anthropic-version: header is required")
        if self.expected_api_key is not None and req.headers.get("x-api-key") != self.expected_api_key:
            return Reply.invalid_api_key()
        return None

    def response_headers(self) -> dict[str, str]:
        return {"request-id": "req_" + uuid.uuid4().hex[:24]}

    @property
    def base_url(self) -> str:
        """What the server gets as ANTHROPIC_BASE_URL."""
        return f"http://127.0.0.1:{self.port}"


if __name__ == "__main__":  # manual poking: python fake_anthropic.py
    serve_until_interrupted(FakeAnthropic())
