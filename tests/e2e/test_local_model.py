"""The in-process local model (SmolLM2-135M-Instruct through llama.cpp),
through the public API: agents that name no model run on it, with no
provider key and no network, and its answers always match output_schema.

Needs the default weights (scripts/fetch-model.sh); skipped without them
unless AGENTD_REQUIRE_LOCAL_MODEL=1, which turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import jsonschema
import pytest

from conftest import REPO_ROOT, AgentdServer, make_http, make_roe_client
from helpers import expect, assert_error, wait_for_job

MODEL_ID = "local/smollm2-135m-instruct"


def weights() -> Path:
    override = os.environ.get("AGENTD_LOCAL_MODEL_PATH")
    return Path(override) if override else REPO_ROOT / "data" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def local_server(session_dir: Path) -> Iterator[AgentdServer]:
    if not weights().exists():
        if os.environ.get("AGENTD_REQUIRE_LOCAL_MODEL") == "1":
            pytest.fail(f"local model weights missing at {weights()} (run scripts/fetch-model.sh)")
        pytest.skip(f"local model weights missing at {weights()} (run scripts/fetch-model.sh)")
    srv = AgentdServer(session_dir / ("local-" + uuid.uuid4().hex[:8]), "unused", {
        "AGENTD_LOCAL_MODEL": "on",
        "AGENTD_LOCAL_MODEL_PATH": str(weights()),
        "AGENTD_LOCAL_MAX_OUTPUT_TOKENS": "256",
        "AGENTD_WORKERS": "4",
    })
    # No provider key at all: the local model is all there is.
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        srv.env.pop(var, None)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def lhttp(local_server: AgentdServer) -> Iterator[httpx.Client]:
    with make_http(local_server, local_server.api_key) as client:
        client.timeout = httpx.Timeout(120)
        yield client


def create(lhttp: httpx.Client, schema: Any, instruction: str, **config: Any) -> dict:
    body = {
        "name": "local " + uuid.uuid4().hex[:6],
        "engine_class_id": "MultimodalExtractionEngine",
        "input_definitions": [{"key": "text", "data_type": "text/plain", "description": "Text"}],
        "engine_config": {"text": "${text}", "instruction": instruction, "output_schema": schema, **config},
    }
    return expect(lhttp.post("/v1/agents/", json=body), 201)


SCHEMAS = {
    "strings": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "company": {"type": "string"}},
        "required": ["name", "company"],
    },
    "numbers": {
        "type": "object",
        "properties": {"amount": {"type": "number"}, "quantity": {"type": "integer"}},
        "required": ["amount", "quantity"],
    },
    "enum": {
        "type": "object",
        "properties": {"sentiment": {"enum": ["positive", "negative", "neutral"]}},
        "required": ["sentiment"],
    },
    "array": {
        "type": "object",
        "properties": {"colors": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 5}},
        "required": ["colors"],
    },
    "nested": {
        "type": "object",
        "properties": {
            "person": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                "required": ["name", "age"],
            },
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        },
        "required": ["person"],
    },
}

TEXT = "Ada Lovelace (36) from Analytical Engines Ltd ordered 3 red and blue widgets for 19.99 dollars. She loved them."


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_answers_match_the_schema(lhttp, kind):
    schema = SCHEMAS[kind]
    agent = create(lhttp, schema, "Extract the fields from the text.")
    outputs = expect(lhttp.post(f"/v1/agents/run/{agent['id']}/", json={"inputs": {"text": TEXT}}), 200)
    assert len(outputs) == 1 and outputs[0]["key"] == "output"
    value = json.loads(outputs[0]["value"])
    jsonschema.validate(value, schema)
    assert outputs[0]["cost"] == 0.0


def test_the_job_records_tokens_and_the_local_model(lhttp, local_server):
    agent = create(lhttp, SCHEMAS["strings"], "Extract the sender.")
    job_id = expect(lhttp.post(f"/v1/agents/run/{agent['id']}/async/", json={"text": TEXT}), 200)
    wait_for_job(lhttp, job_id, timeout=60)
    result = expect(lhttp.get(f"/v1/agents/jobs/{job_id}/result/"), 200)
    assert result["status"] == 3
    assert result["input_tokens"] > 20 and result["output_tokens"] > 3
    assert result["cost"] == 0.0


def test_discovery_shows_the_local_model_as_usable(lhttp):
    models = expect(lhttp.get("/v1/agents/models/"), 200)["models"]
    assert [m["id"] for m in models] == [MODEL_ID]
    assert models[0]["usable"] is True and models[0]["capabilities"] == ["text"]


def test_a_schema_the_grammar_cannot_express_is_refused_at_creation(lhttp):
    impossible = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 5, "maximum": 1}}, "required": ["n"]}
    resp = lhttp.post("/v1/agents/", json={
        "name": "impossible",
        "engine_class_id": "MultimodalExtractionEngine",
        "input_definitions": [{"key": "text", "data_type": "text/plain", "description": "Text"}],
        "engine_config": {"text": "${text}", "instruction": "x", "output_schema": impossible},
    })
    assert_error(resp, 400, field="engine_config.output_schema")


def test_concurrent_runs_complete(local_server):
    client = make_roe_client(local_server, local_server.api_key, local_server.org_id)
    with make_http(local_server, local_server.api_key) as http:
        agent = create(http, SCHEMAS["enum"], "Classify the sentiment of the text.")
        batch = client.agents.run_many(
            agent_id=agent["id"],
            batch_inputs=[{"text": f"Review {i}: I {'loved' if i % 2 else 'hated'} it."} for i in range(6)],
        )
        results = batch.wait(interval=0.5, timeout=120)
    assert len(results) == 6
    for item in results:
        assert item.status == 3
        jsonschema.validate(json.loads(item.result[0].value), SCHEMAS["enum"])


LONG = {
    "type": "object",
    "properties": {"words": {"type": "array", "items": {"type": "string"}, "minItems": 400}},
    "required": ["words"],
}


def test_a_cancelled_job_stops_and_frees_the_model(lhttp):
    agent = create(lhttp, LONG, "List every word of the text, many times over.")
    job_id = expect(lhttp.post(f"/v1/agents/run/{agent['id']}/async/", json={"text": TEXT}), 200)
    deadline = time.monotonic() + 30
    while expect(lhttp.get(f"/v1/agents/jobs/{job_id}/status/"), 200)["status"] != 1:
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    time.sleep(0.3)
    cancelled_at = time.monotonic()
    assert lhttp.post(f"/v1/agents/jobs/{job_id}/cancel/").status_code == 204
    assert expect(lhttp.get(f"/v1/agents/jobs/{job_id}/status/"), 200)["status"] == 5
    # The model is free again: a short run right after completes quickly.
    quick = create(lhttp, SCHEMAS["enum"], "Classify the sentiment.")
    expect(lhttp.post(f"/v1/agents/run/{quick['id']}/", json={"text": "Great!"}), 200)
    assert time.monotonic() - cancelled_at < 20
    job = wait_for_job(lhttp, job_id, timeout=10)
    assert job["status"] == 5


def test_hitting_the_token_cap_is_a_clear_failure(lhttp):
    agent = create(lhttp, LONG, "List every word of the text, many times over.")
    resp = lhttp.post(f"/v1/agents/run/{agent['id']}/", json={"text": TEXT})
    assert resp.status_code == 502, resp.text
    assert "token cap" in resp.json()["detail"]


def test_models_without_a_key_fall_back_to_the_local_model(session_dir):
    if not weights().exists():
        pytest.skip("local model weights missing")
    srv = AgentdServer(session_dir / ("fallback-" + uuid.uuid4().hex[:8]), "unused", {
        "AGENTD_LOCAL_MODEL": "on",
        "AGENTD_LOCAL_MODEL_PATH": str(weights()),
        "AGENTD_LOCAL_FALLBACK": "true",
    })
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        srv.env.pop(var, None)
    srv.start()
    try:
        with make_http(srv, srv.api_key) as http:
            http.timeout = httpx.Timeout(120)
            agent = create(http, SCHEMAS["strings"], "Extract the sender.", model="gpt-4.1-2025-04-14")
            outputs = expect(http.post(f"/v1/agents/run/{agent['id']}/", json={"text": TEXT}), 200)
            jsonschema.validate(json.loads(outputs[0]["value"]), SCHEMAS["strings"])
            assert outputs[0]["cost"] == 0.0
            listed = expect(http.get("/v1/agents/models/", params={"all": "true"}), 200)["models"]
            assert all(m["usable"] for m in listed)
    finally:
        srv.stop()
