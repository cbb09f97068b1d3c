"""Running agents through the official roe-ai SDK, checked against what the fake provider saw.

Note: the SDK's run_sync sends text-only inputs as application/x-www-form-urlencoded
(httpx picks that when there is no file part) and inputs with files as multipart/form-data.
"""

from __future__ import annotations

import json
import re

import pytest
import roe
from roe import FileUpload

from fake_openai import Reply
from helpers import (
    ENGINE,
    MODEL,
    SUMMARY_SCHEMA,
    TEXT_INPUT,
    cost_of,
    decode_data_url,
    extraction_config,
    image_parts,
    png_bytes,
    unique,
)


def make_agent(client: roe.RoeClient, instruction: str = "Summarize the text.", schema=None,
               input_definitions=None, **config):
    return client.agents.create(
        name=unique("run-agent-"),
        engine_class_id=ENGINE,
        input_definitions=[TEXT_INPUT] if input_definitions is None else input_definitions,
        engine_config=extraction_config(instruction, schema, **config),
    )


def datum_of(outputs):
    assert isinstance(outputs, list) and len(outputs) == 1, outputs
    d = outputs[0]
    assert d.key == "output"
    assert d.data_type == "application/json"
    assert isinstance(d.value, str)
    return d


def test_run_sync_end_to_end(client, fake):
    agent = make_agent(client, instruction="Extract a title and a sentiment.")
    text = "The new espresso machine is wonderful " + unique()
    answer = {"title": "Espresso", "sentiment": "positive", "score": 9, "tags": ["coffee"]}
    fake.enqueue(Reply.answer(answer, prompt_tokens=1234, completion_tokens=567))

    outputs = client.agents.run_sync(str(agent.id), metadata={"source": "e2e", "n": 1}, text=text)

    d = datum_of(outputs)
    assert json.loads(d.value) == answer
    assert d.cost == pytest.approx(cost_of(1234, 567), rel=1e-9, abs=1e-12)
    assert d.cost == pytest.approx(0.007004)

    req = fake.only()
    assert req.method == "POST" and req.path == "/v1/chat/completions"
    assert req.headers.get("authorization") == "Bearer sk-test"
    assert req.headers.get("content-type", "").startswith("application/json")
    body = req.json
    assert body["model"] == MODEL
    rf = body["response_format"]
    assert rf["type"] == "json_schema"
    js = rf["json_schema"]
    assert js["strict"] is True
    assert isinstance(js["name"], str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", js["name"]), js["name"]
    assert js["schema"]["type"] == "object"
    assert set(js["schema"]["properties"]) == set(SUMMARY_SCHEMA["properties"])
    roles = [m["role"] for m in body["messages"]]
    assert "user" in roles
    assert all(r in ("system", "developer", "user", "assistant") for r in roles), roles
    assert any(text in t for t in req.message_texts("user")), req.messages
    assert "Extract a title and a sentiment." in req.all_text()


def test_run_sync_default_answer_is_schema_valid(client, fake):
    """The fake's default responder: the server accepts and returns its answer unchanged."""
    agent = make_agent(client)
    outputs = client.agents.run_sync(str(agent.id), text="default " + unique())
    value = json.loads(datum_of(outputs).value)
    assert set(value) == set(SUMMARY_SCHEMA["properties"])
    assert value["sentiment"] == "positive"
    assert value["score"] == 1
    assert datum_of(outputs).cost == pytest.approx(cost_of(100, 20))


def test_output_schema_as_json_string(client, fake):
    """engine_config.output_schema may be the schema JSON-encoded as a string (the Roe docs' example)."""
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    agent = make_agent(client, schema=json.dumps(schema))
    fake.enqueue(Reply.answer({"city": "Lisbon"}))
    outputs = client.agents.run_sync(str(agent.id), text="I live in Lisbon " + unique())
    assert json.loads(datum_of(outputs).value) == {"city": "Lisbon"}
    sent = fake.only().schema
    assert sent["properties"] == {"city": {"type": "string"}}


def test_schema_sent_is_strict_mode_compatible(client, fake):
    """OpenAI strict mode rejects schemas whose objects do not list every property as required
    and set additionalProperties false; the server must send a schema the real API accepts,
    even when the user's schema (like the SDK README example) leaves those out."""
    loose = {
        "type": "object",
        "properties": {
            "is_counterfeit": {"type": "boolean"},
            "confidence": {"type": "number"},
            "seller": {"type": "object", "properties": {"name": {"type": "string"}}},
        },
    }
    agent = make_agent(client, schema=loose)
    client.agents.run_sync(str(agent.id), text="Authentic bag, $50 " + unique())
    sent = fake.only().schema

    def check(node, path="$"):
        if isinstance(node, dict):
            if node.get("type") == "object" or (isinstance(node.get("type"), list) and "object" in node["type"]):
                props = node.get("properties", {})
                assert node.get("additionalProperties") is False, f"{path}: additionalProperties must be false"
                assert set(node.get("required", [])) == set(props), f"{path}: every property must be required"
            for k, v in node.items():
                check(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                check(v, f"{path}[{i}]")

    check(sent)


def test_templates_and_defaults(client, fake):
    """${key} and $key are filled from text inputs; an input with a default is optional."""
    defs = [
        TEXT_INPUT,
        {"key": "audience", "data_type": "text/plain", "description": "Who reads it", "default": "engineers"},
        {"key": "lang", "data_type": "text/plain", "description": "Language"},
    ]
    agent = make_agent(client, instruction="Write for ${audience} in $lang.", input_definitions=defs)
    text = "templated " + unique()
    client.agents.run_sync(str(agent.id), text=text, lang="Portuguese")
    req = fake.only()
    all_text = req.all_text()
    assert "Write for engineers in Portuguese." in all_text
    assert "${" not in all_text and "$lang" not in all_text
    assert any(text in t for t in req.message_texts("user"))

    fake.reset()
    client.agents.run_sync(str(agent.id), text=text + "b", lang="French", audience="lawyers")
    assert "Write for lawyers in French." in fake.only().all_text()


def test_temperature_passes_through(client, fake):
    agent = make_agent(client, temperature=0.25)
    client.agents.run_sync(str(agent.id), text="temp " + unique())
    assert fake.only().json.get("temperature") == pytest.approx(0.25)


def test_run_version_sync_runs_that_version(client, fake):
    agent = make_agent(client, instruction="Instruction of version one.")
    aid, v1 = str(agent.id), str(agent.current_version_id)
    v2 = client.agents.versions.create(aid, input_definitions=[TEXT_INPUT],
                                       engine_config=extraction_config("Instruction of version two."))

    client.agents.run_sync(aid, text="current " + unique())
    assert "Instruction of version two." in fake.only().all_text()

    fake.reset()
    fake.enqueue(Reply.answer({"title": "t", "sentiment": "neutral", "score": 5, "tags": []},
                              prompt_tokens=10, completion_tokens=10))
    outputs = client.agents.run_version_sync(aid, v1, metadata={"run": "v1"}, text="old " + unique())
    req = fake.only()
    assert "Instruction of version one." in req.all_text()
    assert "Instruction of version two." not in req.all_text()
    d = datum_of(outputs)
    assert json.loads(d.value)["sentiment"] == "neutral"
    assert d.cost == pytest.approx(cost_of(10, 10))
    assert str(v2.id) != v1


def test_schema_retry_then_success(client, fake):
    """An answer that fails output_schema is retried once with the validation error; cost covers both calls."""
    agent = make_agent(client)
    fake.enqueue(
        Reply.answer({"title": 12345, "sentiment": "positive", "score": 1, "tags": []},
                     prompt_tokens=100, completion_tokens=10),
        Reply.answer({"title": "fixed", "sentiment": "negative", "score": 2, "tags": ["x"]},
                     prompt_tokens=200, completion_tokens=30),
    )
    outputs = client.agents.run_sync(str(agent.id), text="retry " + unique())
    d = datum_of(outputs)
    assert json.loads(d.value) == {"title": "fixed", "sentiment": "negative", "score": 2, "tags": ["x"]}

    reqs = fake.completions
    assert len(reqs) == 2
    first, second = reqs
    assert len(second.messages) > len(first.messages)
    added = json.dumps(second.messages[len(first.messages):]).lower()
    assert "title" in added or "string" in added, f"the retry does not carry the validation error: {added}"
    assert d.cost == pytest.approx(cost_of(300, 40))


def test_non_json_answer_is_retried(client, fake):
    agent = make_agent(client)
    fake.enqueue(Reply.content("Sure! Here is the summary you asked for."))
    outputs = client.agents.run_sync(str(agent.id), text="nonjson " + unique())
    assert len(fake.completions) == 2
    assert set(json.loads(datum_of(outputs).value)) == set(SUMMARY_SCHEMA["properties"])


def test_run_sync_with_image_file(client, fake, tmp_path):
    """A file input sent by the SDK as a multipart part reaches the model as an image."""
    defs = [TEXT_INPUT, {"key": "photo", "data_type": "image/png", "description": "A photo"}]
    agent = make_agent(client, input_definitions=defs, images="${photo}")
    png = png_bytes(2, 2)
    path = tmp_path / "red.bin"
    path.write_bytes(png)
    # (FileUpload(file_obj=BytesIO(...)) fails the SDK's own pydantic check, so use a path.)
    outputs = client.agents.run_sync(
        str(agent.id),
        metadata={"kind": "image"},
        text="describe the photo " + unique(),
        photo=FileUpload(path=str(path), filename="red.png", mime_type="image/png"),
    )
    datum_of(outputs)
    urls = image_parts(fake.only())
    assert len(urls) == 1, fake.only().messages
    mime, data = decode_data_url(urls[0])
    assert mime == "image/png"
    assert data == png


def test_run_sync_with_file_path(client, fake, tmp_path):
    """The SDK opens an existing path and uploads it with a guessed MIME type."""
    defs = [TEXT_INPUT, {"key": "photo", "data_type": "image/png", "description": "A photo"}]
    agent = make_agent(client, input_definitions=defs, images="${photo}")
    path = tmp_path / "pic.png"
    png = png_bytes(3, 1)
    path.write_bytes(png)
    client.agents.run_sync(str(agent.id), text="path " + unique(), photo=str(path))
    mime, data = decode_data_url(image_parts(fake.only())[0])
    assert data == png


def test_run_records_job_with_metadata(client, fake):
    """Every run is recorded as a job that keeps its metadata, outputs, tokens and cost."""
    agent = make_agent(client)
    fake.enqueue(Reply.answer({"title": "j", "sentiment": "neutral", "score": 3, "tags": []},
                              prompt_tokens=50, completion_tokens=5))
    client.agents.run_sync(str(agent.id), metadata={"ticket": "T-1"}, text="job " + unique())
    jobs = client.agents.jobs.list(str(agent.id))
    assert jobs.count == 1
    job = jobs.results[0]
    assert job.status_code == 3
    assert job.metadata.to_dict() == {"ticket": "T-1"}
    result = client.agents.jobs.retrieve_result(str(job.id))
    assert result.input_tokens == 50
    assert result.output_tokens == 5
    assert json.loads(result.outputs[0].value)["title"] == "j"
