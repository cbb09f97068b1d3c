"""A loopback fake of the Gemini ``generateContent`` protocol, for end-to-end tests.

It listens on 127.0.0.1 (port 0: the OS picks one) in a background thread and
answers ``POST /v1beta/models/{model}:generateContent`` the way the real
service does. ``fake.base_url`` is what the server gets as ``GEMINI_BASE_URL``.

agentd sends the schema as ``generationConfig.responseJsonSchema`` with
``responseMimeType: application/json``; the answer is the text of the first
candidate's parts.

* Every request is recorded (method, path, model, headers, raw body, parsed
  JSON body, arrival time) in ``fake.requests``.
* Scripted responses: ``fake.enqueue(reply, ...)`` queues replies used one per
  request, in order; ``fake.always(reply)`` answers every request after the
  queue with the same reply. Otherwise the default responder answers with JSON
  valid against the request's schema (``responseJsonSchema``, or the older
  OpenAPI-style ``responseSchema``).
* Failure modes: ``Reply.error(code, status, message)``,
  ``Reply.rate_limited(retry_delay="1s", retry_after=None)`` (429 with a
  ``RetryInfo`` detail, optionally a ``Retry-After`` header),
  ``Reply.overloaded()`` (503), ``Reply.server_error()`` (500),
  ``Reply.invalid_api_key()`` (400 ``API_KEY_INVALID``), ``Reply.malformed()``,
  ``Reply.content("not json")``, ``Reply.cut_off()`` (``MAX_TOKENS``),
  ``Reply.finished("SAFETY")``, ``Reply.prompt_blocked("PROHIBITED_CONTENT")``,
  and a ``delay`` on any reply (a client hang-up during the delay sets the
  request's ``disconnected`` event; ``answered`` tells whether a response was
  written).
* Protocol checks the real service also makes: a request without
  ``x-goog-api-key`` (nor ``?key=``) gets 403 ``PERMISSION_DENIED``; with
  ``fake.expected_api_key`` set, a different key gets 400 ``API_KEY_INVALID``.

Only the standard library is used (plus the schema-instance generator of
``fake_openai``, so every fake answers alike).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from fake_openai import echo_value, instance_for
from fake_server import BaseRecordedRequest, BaseReply, FakeServer, serve_until_interrupted

DEFAULT_PROMPT_TOKENS = 100
DEFAULT_CANDIDATES_TOKENS = 20
DEFAULT_MODEL = "gemini-3-flash-preview"
PATH_RE = re.compile(r"^/v1beta/models/(?P<model>[^/:]+):generateContent$")


class Reply(BaseReply):
    """One scripted HTTP response of the fake (status, body, headers, delay, build)."""

    # ---- successful answers ----------------------------------------------
    @classmethod
    def answer(
        cls,
        obj: Any,
        prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
        candidates_tokens: int = DEFAULT_CANDIDATES_TOKENS,
        thoughts_tokens: int = 0,
        cached_tokens: int = 0,
        delay: float = 0.0,
    ) -> "Reply":
        """A successful answer whose text is ``json.dumps(obj)``."""
        return cls.content(json.dumps(obj), prompt_tokens, candidates_tokens, thoughts_tokens, cached_tokens, delay)

    @classmethod
    def content(
        cls,
        text: str,
        prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
        candidates_tokens: int = DEFAULT_CANDIDATES_TOKENS,
        thoughts_tokens: int = 0,
        cached_tokens: int = 0,
        delay: float = 0.0,
    ) -> "Reply":
        """A successful answer whose text is ``text`` verbatim."""

        def build(req: RecordedRequest) -> Reply:
            usage = usage_json(prompt_tokens, candidates_tokens, thoughts_tokens, cached_tokens)
            return ok(response_body(req.model, [{"text": text}], "STOP", usage))

        return cls(delay=delay, build=build)

    @classmethod
    def default(
        cls,
        prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
        candidates_tokens: int = DEFAULT_CANDIDATES_TOKENS,
        delay: float = 0.0,
    ) -> "Reply":
        """A schema-valid answer derived from the request (the default responder)."""
        return cls(delay=delay, build=lambda req: default_answer(req, prompt_tokens, candidates_tokens))

    @classmethod
    def cut_off(cls, delay: float = 0.0) -> "Reply":
        """``finishReason: MAX_TOKENS`` with a partial JSON text."""

        def build(req: RecordedRequest) -> Reply:
            return ok(response_body(req.model, [{"text": '{"answer": "trunc'}], "MAX_TOKENS", usage_json()))

        return cls(delay=delay, build=build)

    @classmethod
    def finished(cls, reason: str = "SAFETY", delay: float = 0.0) -> "Reply":
        """A candidate that stopped for ``reason`` (SAFETY, RECITATION, OTHER, ...) without text."""

        def build(req: RecordedRequest) -> Reply:
            body = response_body(req.model, [], reason, usage_json(candidates_tokens=0))
            body["candidates"][0].pop("content")
            body["candidates"][0]["safetyRatings"] = [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
            ]
            return ok(body)

        return cls(delay=delay, build=build)

    @classmethod
    def prompt_blocked(cls, reason: str = "PROHIBITED_CONTENT", delay: float = 0.0) -> "Reply":
        """No candidates; ``promptFeedback.blockReason`` says why."""
        body = {
            "promptFeedback": {"blockReason": reason},
            "usageMetadata": {"promptTokenCount": DEFAULT_PROMPT_TOKENS, "totalTokenCount": DEFAULT_PROMPT_TOKENS},
            "modelVersion": DEFAULT_MODEL,
        }
        return cls(200, body, {"Content-Type": "application/json"}, delay)

    # ---- failures ----------------------------------------------------------
    @classmethod
    def error(
        cls,
        code: int = 500,
        status: str = "INTERNAL",
        message: str = "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
        details: list[dict] | None = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> "Reply":
        """A Google-shaped error: ``{"error": {"code", "message", "status", "details"?}}``."""
        error: dict[str, Any] = {"code": code, "message": message, "status": status}
        if details:
            error["details"] = details
        hdrs = {"Content-Type": "application/json; charset=UTF-8"}
        hdrs.update(headers or {})
        return cls(code, {"error": error}, hdrs, delay)

    @classmethod
    def server_error(cls, delay: float = 0.0) -> "Reply":
        return cls.error(500, "INTERNAL", delay=delay)

    @classmethod
    def overloaded(cls, delay: float = 0.0) -> "Reply":
        return cls.error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.", delay=delay)

    @classmethod
    def rate_limited(cls, retry_delay: str | None = "1s", retry_after: str | None = None,
                     delay: float = 0.0) -> "Reply":
        """429 ``RESOURCE_EXHAUSTED``; the wait is in a ``RetryInfo`` detail (as Google sends
        it), and in a ``Retry-After`` header only when ``retry_after`` is given."""
        details: list[dict] = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                                "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}],
            }
        ]
        if retry_delay is not None:
            details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay})
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return cls.error(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            details,
            headers,
            delay,
        )

    @classmethod
    def invalid_api_key(cls) -> "Reply":
        return cls.error(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            ],
        )

    @classmethod
    def missing_api_key(cls) -> "Reply":
        return cls.error(
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API.",
        )

    @classmethod
    def invalid_argument(cls, message: str = "Invalid JSON payload received.") -> "Reply":
        return cls.error(400, "INVALID_ARGUMENT", message)

    @classmethod
    def not_found(cls, model: str) -> "Reply":
        return cls.error(
            404,
            "NOT_FOUND",
            f"models/{model} is not found for API version v1beta, or is not supported for generateContent.",
        )

    @classmethod
    def malformed(cls, status: int = 200) -> "Reply":
        """A 200 whose body is not JSON at all."""
        return cls(status, b'{"candidates": [{"content": {"parts": [', {"Content-Type": "application/json"})


def ok(body: dict) -> Reply:
    return Reply(200, body, {"Content-Type": "application/json; charset=UTF-8"})


def usage_json(prompt_tokens: int = DEFAULT_PROMPT_TOKENS, candidates_tokens: int = DEFAULT_CANDIDATES_TOKENS,
               thoughts_tokens: int = 0, cached_tokens: int = 0) -> dict:
    usage = {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": candidates_tokens,
        "totalTokenCount": prompt_tokens + candidates_tokens + thoughts_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
    }
    if thoughts_tokens:
        usage["thoughtsTokenCount"] = thoughts_tokens
    if cached_tokens:
        usage["cachedContentTokenCount"] = cached_tokens
    return usage


def response_body(model: str, parts: list[dict], finish_reason: str, usage: dict) -> dict:
    return {
        "candidates": [
            {
                "content": {"parts": parts, "role": "model"},
                "finishReason": finish_reason,
                "index": 0,
            }
        ],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": "fake-" + str(int(time.time() * 1000)),
    }


class RecordedRequest(BaseRecordedRequest):
    """One received request (see ``BaseRecordedRequest`` for the recorded fields)."""

    # ---- helpers for assertions ---------------------------------------
    @property
    def model(self) -> str:
        """The model named in the path."""
        m = PATH_RE.match(unquote(urlsplit(self.path).path))
        return m.group("model") if m else DEFAULT_MODEL

    @property
    def api_key(self) -> str | None:
        """The key from ``x-goog-api-key`` (or the ``key`` query parameter)."""
        if self.headers.get("x-goog-api-key"):
            return self.headers["x-goog-api-key"]
        keys = parse_qs(urlsplit(self.path).query).get("key")
        return keys[0] if keys else None

    @property
    def contents(self) -> list[dict[str, Any]]:
        return list(self.body.get("contents") or [])

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The contents (``role`` is ``user`` or ``model``)."""
        return self.contents

    @property
    def generation_config(self) -> dict[str, Any]:
        return self.body.get("generationConfig") or {}

    @property
    def system(self) -> str:
        parts = (self.body.get("systemInstruction") or {}).get("parts") or []
        return "\n".join(p.get("text", "") for p in parts if isinstance(p, dict))

    def message_texts(self, role: str | None = None) -> list[str]:
        """The text of each content (text parts joined), optionally of one role.

        ``role="system"`` gives the system instruction, ``"assistant"`` means ``"model"``."""
        if role == "system":
            return [self.system] if self.system else []
        wanted = "model" if role == "assistant" else role
        out = []
        if role is None and self.system:
            out.append(self.system)
        for c in self.contents:
            if wanted is not None and c.get("role", "user") != wanted:
                continue
            out.append("\n".join(p["text"] for p in c.get("parts") or [] if isinstance(p.get("text"), str)))
        return out

    @property
    def schema(self) -> Any:
        config = self.generation_config
        if "responseJsonSchema" in config:
            return config["responseJsonSchema"]
        return config.get("responseSchema")

    def content_parts(self) -> list[dict[str, Any]]:
        """Every part of every content."""
        return [p for c in self.contents for p in c.get("parts") or [] if isinstance(p, dict)]

    def images(self) -> list[tuple[str, str]]:
        """``(mimeType, base64 data)`` of every inline-data part."""
        return [
            (p["inlineData"].get("mimeType", ""), p["inlineData"].get("data", ""))
            for p in self.content_parts()
            if isinstance(p.get("inlineData"), dict)
        ]


def _lower_types(schema: Any) -> Any:
    """OpenAPI-style ``responseSchema`` (``"type": "OBJECT"``) in JSON Schema spelling."""
    if isinstance(schema, dict):
        out = {k: _lower_types(v) for k, v in schema.items()}
        if isinstance(out.get("type"), str):
            out["type"] = out["type"].lower()
        return out
    if isinstance(schema, list):
        return [_lower_types(v) for v in schema]
    return schema


def validation_error(req: RecordedRequest) -> Reply | None:
    """The 400 the real service gives for a request it cannot take, if any."""
    body = req.json
    if not isinstance(body, dict):
        return Reply.invalid_argument("Invalid JSON payload received. Unexpected token.")
    contents = body.get("contents")
    if not contents:
        return Reply.invalid_argument("* GenerateContentRequest.contents: contents is not specified")
    for c in contents:
        if c.get("role", "user") not in ("user", "model"):
            return Reply.invalid_argument(f"Please use a valid role: user, model. Got {c.get('role')!r}.")
        if not c.get("parts"):
            return Reply.invalid_argument("* GenerateContentRequest.contents.parts: contents.parts must not be empty.")
    config = req.generation_config
    if "responseJsonSchema" in config and "responseSchema" in config:
        return Reply.invalid_argument("responseSchema and responseJsonSchema cannot both be set.")
    if req.schema is not None and config.get("responseMimeType") != "application/json":
        return Reply.invalid_argument("responseMimeType must be application/json when a response schema is set.")
    thinking = config.get("thinkingConfig") or {}
    if "thinkingBudget" in thinking and "thinkingLevel" in thinking:
        return Reply.invalid_argument("You can only set one of thinking budget and thinking level.")
    if "thinkingLevel" in thinking and thinking["thinkingLevel"] not in ("minimal", "low", "medium", "high",
                                                                          "MINIMAL", "LOW", "MEDIUM", "HIGH"):
        return Reply.invalid_argument(f"Invalid value at 'generation_config.thinking_config.thinking_level' "
                                      f"({thinking['thinkingLevel']!r})")
    return None


def default_answer(req: RecordedRequest, prompt_tokens: int, candidates_tokens: int) -> Reply:
    problem = validation_error(req)
    if problem is not None:
        return problem
    config = req.generation_config
    schema = config.get("responseJsonSchema")
    if schema is None and config.get("responseSchema") is not None:
        schema = _lower_types(config["responseSchema"])
    snippet = echo_value(" ".join(req.message_texts("user")))
    obj: Any = {"answer": snippet} if schema is None else instance_for(schema, schema, snippet)
    thoughts = 10 if config.get("thinkingConfig") else 0
    usage = usage_json(prompt_tokens, candidates_tokens, thoughts)
    return ok(response_body(req.model, [{"text": json.dumps(obj)}], "STOP", usage))


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------


class FakeGemini(FakeServer):
    """The fake provider. ``start()`` it once; ``reset()`` it between tests."""

    reply_cls = Reply
    request_cls = RecordedRequest
    name = "gemini"
    label = "the fake Gemini"
    endpoint = "generateContent"
    content_type = "application/json; charset=UTF-8"

    requests: list[RecordedRequest]

    def _is_endpoint(self, req: RecordedRequest) -> bool:
        return PATH_RE.match(unquote(urlsplit(req.path).path)) is not None

    def _not_found(self, req: RecordedRequest) -> Reply:
        return Reply.error(404, "NOT_FOUND", f"Requested entity was not found: {req.method} {req.path}")

    def _check(self, req: RecordedRequest) -> Reply | None:
        rejected = super()._check(req)
        if rejected is not None:
            return rejected
        if not req.api_key:
            return Reply.missing_api_key()
        if self.expected_api_key is not None and req.api_key != self.expected_api_key:
            return Reply.invalid_api_key()
        return None

    def response_headers(self) -> dict[str, str]:
        return {"Server": "scaffolding on HTTPServer2"}

    @property
    def base_url(self) -> str:
        """What the server gets as GEMINI_BASE_URL."""
        return f"http://127.0.0.1:{self.port}"


if __name__ == "__main__":  # manual poking: python fake_gemini.py
    serve_until_interrupted(FakeGemini())
