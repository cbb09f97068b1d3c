"""A loopback fake of the OpenAI chat-completions protocol, for end-to-end tests.

It listens on 127.0.0.1 (port 0: the OS picks one) in a background thread and
answers ``POST /v1/chat/completions`` the way the real service does.

* Every request is recorded (method, path, headers, raw body, parsed JSON body,
  arrival time) in ``fake.requests``.
* Scripted responses: ``fake.enqueue(resp, ...)`` queues responses that are used
  one per request, in order; ``fake.always(resp)`` answers every request with
  the same response (for "the provider is down" tests). When neither applies,
  the default responder builds an answer that is valid against the request's
  ``response_format.json_schema.schema``.
* Failure modes: ``Reply.error(500)``, ``Reply.rate_limited(retry_after="1")``,
  ``Reply.invalid_api_key()``, ``Reply.malformed()``, ``Reply.content("not json")``,
  and a ``delay`` on any reply. While a reply is delayed the fake watches the
  connection: when the client hangs up (a cancelled job, a client-side
  timeout, a killed server) the request's ``disconnected`` event is set and no
  answer is sent; ``answered`` tells whether a response was written.

Only the standard library is used.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from typing import Any

from fake_server import BaseRecordedRequest, BaseReply, FakeServer, serve_until_interrupted

DEFAULT_PROMPT_TOKENS = 100
DEFAULT_COMPLETION_TOKENS = 20


class Reply(BaseReply):
    """One scripted HTTP response of the fake (status, body, headers, delay, build)."""

    # ---- constructors -------------------------------------------------
    @classmethod
    def answer(
        cls,
        obj: Any,
        prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
        completion_tokens: int = DEFAULT_COMPLETION_TOKENS,
        delay: float = 0.0,
    ) -> "Reply":
        """A successful completion whose message content is ``json.dumps(obj)``."""
        return cls.content(json.dumps(obj), prompt_tokens, completion_tokens, delay)

    @classmethod
    def content(
        cls,
        text: str,
        prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
        completion_tokens: int = DEFAULT_COMPLETION_TOKENS,
        delay: float = 0.0,
    ) -> "Reply":
        """A successful completion whose message content is ``text`` verbatim."""

        def build(req: RecordedRequest) -> Reply:
            model = (req.json or {}).get("model", "gpt-4.1-2025-04-14")
            return cls(
                200,
                completion_body(model, text, prompt_tokens, completion_tokens),
                {"Content-Type": "application/json"},
            )

        return cls(delay=delay, build=build)

    @classmethod
    def default(
        cls,
        prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
        completion_tokens: int = DEFAULT_COMPLETION_TOKENS,
        delay: float = 0.0,
    ) -> "Reply":
        """A schema-valid answer derived from the request (the default responder)."""
        return cls(delay=delay, build=lambda req: default_answer(req, prompt_tokens, completion_tokens))

    @classmethod
    def error(
        cls,
        status: int = 500,
        message: str = "The server had an error while processing your request.",
        type_: str = "server_error",
        code: str | None = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> "Reply":
        """An OpenAI-shaped error: ``{"error": {"message", "type", "param", "code"}}``."""
        body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(headers or {})
        return cls(status, body, hdrs, delay)

    @classmethod
    def rate_limited(cls, retry_after: str | None = "1", delay: float = 0.0) -> "Reply":
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return cls.error(
            429,
            "Rate limit reached for gpt-4.1 in organization org-fake on tokens per min.",
            "tokens",
            "rate_limit_exceeded",
            headers,
            delay,
        )

    @classmethod
    def invalid_api_key(cls) -> "Reply":
        return cls.error(
            401,
            "Incorrect API key provided: sk-***st. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        )

    @classmethod
    def malformed(cls, status: int = 200) -> "Reply":
        """A 200 whose body is not JSON at all."""
        return cls(status, b'{"id": "chatcmpl-broken", "choices": [', {"Content-Type": "application/json"})


class RecordedRequest(BaseRecordedRequest):
    """One received request (see ``BaseRecordedRequest`` for the recorded fields)."""

    # ---- helpers for assertions ---------------------------------------
    @property
    def messages(self) -> list[dict[str, Any]]:
        return list((self.json or {}).get("messages") or [])

    def message_texts(self, role: str | None = None) -> list[str]:
        """The text of each message (text parts joined), optionally of one role."""
        out = []
        for m in self.messages:
            if role is not None and m.get("role") != role:
                continue
            out.append(message_text(m))
        return out

    @property
    def schema(self) -> Any:
        rf = (self.json or {}).get("response_format") or {}
        return (rf.get("json_schema") or {}).get("schema")

    def content_parts(self) -> list[dict[str, Any]]:
        """Every structured content part of every message."""
        parts = []
        for m in self.messages:
            c = m.get("content")
            if isinstance(c, list):
                parts.extend(p for p in c if isinstance(p, dict))
        return parts


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part, str):
                texts.append(part)
        return "\n".join(texts)
    return ""


def completion_body(model: str, content: str, prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex[:24],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": "fp_fake",
    }


# ---------------------------------------------------------------------------
# Schema-valid answer generation
# ---------------------------------------------------------------------------


def _resolve_ref(ref: str, root: Any) -> Any:
    if not ref.startswith("#"):
        return {}
    node = root
    for part in ref.lstrip("#").strip("/").split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return {}
    return node


def instance_for(schema: Any, root: Any = None, text: str = "", depth: int = 0) -> Any:
    """A value valid against ``schema`` (the subset of JSON Schema that extraction uses)."""
    if root is None:
        root = schema
    if depth > 20 or schema is True or not isinstance(schema, dict):
        return text or "x"
    if "$ref" in schema:
        return instance_for(_resolve_ref(schema["$ref"], root), root, text, depth + 1)
    if "const" in schema:
        return copy.deepcopy(schema["const"])
    if "enum" in schema and schema["enum"]:
        non_null = [v for v in schema["enum"] if v is not None]
        return copy.deepcopy(non_null[0] if non_null else schema["enum"][0])
    for key in ("anyOf", "oneOf"):
        if key in schema and schema[key]:
            options = schema[key]
            pick = next(
                (o for o in options if not (isinstance(o, dict) and o.get("type") == "null")),
                options[0],
            )
            return instance_for(pick, root, text, depth + 1)
    if "allOf" in schema and schema["allOf"]:
        merged: dict[str, Any] = {}
        for sub in schema["allOf"]:
            if isinstance(sub, dict):
                merged.update(sub)
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        merged.update(rest)
        return instance_for(merged, root, text, depth + 1)

    typ = schema.get("type")
    if isinstance(typ, list):
        non_null = [t for t in typ if t != "null"]
        typ = non_null[0] if non_null else "null"
    if typ is None:
        if "properties" in schema:
            typ = "object"
        elif "items" in schema:
            typ = "array"
        else:
            typ = "string"

    if typ == "object":
        out = {}
        props = schema.get("properties") or {}
        for name, sub in props.items():
            out[name] = instance_for(sub, root, text, depth + 1)
        return out
    if typ == "array":
        items = schema.get("items", {})
        n = max(1, int(schema.get("minItems", 1) or 1))
        if "maxItems" in schema:
            n = min(n, int(schema["maxItems"]))
        return [instance_for(items, root, text, depth + 1) for _ in range(n)]
    if typ == "integer":
        lo = schema.get("minimum", schema.get("exclusiveMinimum"))
        if isinstance(lo, (int, float)):
            return int(lo) + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
        return 1
    if typ == "number":
        lo = schema.get("minimum")
        if isinstance(lo, (int, float)):
            return float(lo)
        hi = schema.get("maximum")
        if isinstance(hi, (int, float)) and hi < 1:
            return float(hi)
        return 1.0
    if typ == "boolean":
        return True
    if typ == "null":
        return None
    # string
    value = text or "fake"
    if "maxLength" in schema:
        value = value[: int(schema["maxLength"])]
    min_len = int(schema.get("minLength", 0) or 0)
    if len(value) < min_len:
        value = value + "x" * (min_len - len(value))
    return value


def echo_value(user_text: str) -> str:
    """The string the default responder puts in every string field for this user text."""
    words = user_text.split()
    return ("answer: " + " ".join(words[:8])).strip() if words else "answer"


def _snippet(req: RecordedRequest) -> str:
    return echo_value(" ".join(req.message_texts("user")))


def default_answer(req: RecordedRequest, prompt_tokens: int, completion_tokens: int) -> Reply:
    body = req.json
    if not isinstance(body, dict):
        return Reply.error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
    if not body.get("messages"):
        return Reply.error(400, "[] is too short - 'messages'", "invalid_request_error")
    schema = req.schema
    if schema is None:
        obj: Any = {"answer": _snippet(req)}
    else:
        obj = instance_for(schema, schema, _snippet(req))
    model = body.get("model", "gpt-4.1-2025-04-14")
    return Reply(
        200,
        completion_body(model, json.dumps(obj), prompt_tokens, completion_tokens),
        {"Content-Type": "application/json"},
    )


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------


COMPLETIONS_PATH = "/v1/chat/completions"


class FakeOpenAI(FakeServer):
    """The fake provider. ``start()`` it once; ``reset()`` it between tests."""

    reply_cls = Reply
    request_cls = RecordedRequest
    name = "openai"
    label = "the fake provider"
    endpoint = "chat-completions"

    requests: list[RecordedRequest]

    def _is_endpoint(self, req: RecordedRequest) -> bool:
        return req.path.split("?")[0].rstrip("/") == COMPLETIONS_PATH

    def _not_found(self, req: RecordedRequest) -> Reply:
        return Reply.error(404, f"Invalid URL ({req.method} {req.path})", "invalid_request_error")

    def response_headers(self) -> dict[str, str]:
        return {"x-request-id": "req_" + uuid.uuid4().hex[:16]}

    @property
    def base_url(self) -> str:
        """What the server gets as OPENAI_BASE_URL."""
        return f"http://127.0.0.1:{self.port}/v1"


if __name__ == "__main__":  # manual poking: python fake_openai.py
    serve_until_interrupted(FakeOpenAI())
