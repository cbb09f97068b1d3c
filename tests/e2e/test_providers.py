"""The model-provider layer end to end: Anthropic and Gemini requests as the fakes receive
them, costs from the price table, the operator's models file (a named OpenAI-compatible
endpoint, price overrides, per-endpoint concurrency), ``/v1/agents/models/`` filtering,
credits under concurrent jobs, and model checks at agent creation.

Most tests use one module server (``multi``) that has all three hosted providers (the
session OpenAI fake, a fake Anthropic, a fake Gemini) plus a named endpoint ``house``
(a second FakeOpenAI) from a models file, and one provider retry.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import roe

import fake_anthropic
import fake_gemini
from conftest import AgentdServer, make_http, make_roe_client
from fake_anthropic import FakeAnthropic
from fake_gemini import FakeGemini
from fake_openai import FakeOpenAI, Reply, default_answer
from helpers import (
    ENGINE,
    FAILURE,
    SUCCESS,
    SUMMARY_SCHEMA,
    TEXT_INPUT,
    assert_error,
    expect,
    extraction_config,
    parse_credits,
    png_bytes,
    unique,
    wait_for_jobs,
)

ANTHROPIC_KEY = "sk-ant-e2e-" + "a1b2c3"
GEMINI_KEY = "AIza-e2e-" + "d4e5f6"
HOUSE_KEY = "house-secret-" + "g7h8"

CLAUDE = "claude-sonnet-4-6"
GEMINI = "gemini-3-flash-preview"
GPT = "gpt-4.1-2025-04-14"
GPT_MINI = "gpt-4.1-mini-2025-04-14"  # price overridden in the models file (input only)
HOUSE_MODEL = "house-model-1"  # served by the named endpoint; text only
HOUSE_UPSTREAM = "house/upstream-v1"

# $ per million tokens: (input, output, cached input)
PRICES = {
    GPT: (2.0, 8.0, 0.5),
    CLAUDE: (3.0, 15.0, 0.3),
    "claude-haiku-4-5-20251001": (1.0, 5.0, 0.1),
    GEMINI: (0.5, 3.0, 0.05),
    "gemini-3.1-pro-preview": (2.0, 12.0, 0.2),
    GPT_MINI: (3.0, 1.6, 0.1),  # input 3.0 from the file, output/cached kept from the table (0.4/1.6/0.1)
    HOUSE_MODEL: (4.0, 16.0, 4.0),
}

ANSWER = {"title": "Quarterly report", "sentiment": "neutral", "score": 6, "tags": ["finance", "q3"]}
PHOTO_INPUTS = [
    TEXT_INPUT,
    {"key": "team", "data_type": "text/plain", "description": "Team name"},
    {"key": "photo", "data_type": "image/png", "description": "A photo"},
]
INSTRUCTION = "Summarize the text for the ${team} team."


def cost(model: str, input_tokens: int, output_tokens: int, cached: int = 0) -> float:
    price_in, price_out, price_cached = PRICES[model]
    return ((input_tokens - cached) * price_in + cached * price_cached + output_tokens * price_out) / 1e6


MODELS_TOML = """\
[[models]]
id = "{house_model}"
provider = "house"
upstream = "{house_upstream}"
context_window = 32000
max_output_tokens = 2000
capabilities = ["text"]
input_price = 4.0
output_price = 16.0

[[models]]
id = "{gpt_mini}"
input_price = 3.0

[[endpoints]]
name = "house"
base_url = "{house_url}"
api_key_env = "HOUSE_API_KEY"
models = ["{house_model}"]
max_concurrency = 1

[providers.anthropic]
max_concurrency = 8
requests_per_minute = 6000
"""


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def anthropic_fake() -> Iterator[FakeAnthropic]:
    f = FakeAnthropic().start()
    yield f
    f.stop()


@pytest.fixture(scope="module")
def gemini_fake() -> Iterator[FakeGemini]:
    f = FakeGemini().start()
    yield f
    f.stop()


@pytest.fixture(scope="module")
def house_fake() -> Iterator[FakeOpenAI]:
    """The named endpoint ``house`` of the models file (a second OpenAI-compatible server)."""
    f = FakeOpenAI().start()
    yield f
    f.stop()


@pytest.fixture(autouse=True)
def _reset_fakes(anthropic_fake, gemini_fake, house_fake) -> None:
    anthropic_fake.reset()
    gemini_fake.reset()
    house_fake.reset()


@pytest.fixture(scope="module")
def multi(start_module_server, session_dir, anthropic_fake, gemini_fake, house_fake) -> AgentdServer:
    models_file = session_dir / "providers-models.toml"
    models_file.write_text(MODELS_TOML.format(
        house_model=HOUSE_MODEL, house_upstream=HOUSE_UPSTREAM, gpt_mini=GPT_MINI, house_url=house_fake.base_url,
    ))
    return start_module_server({
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "ANTHROPIC_BASE_URL": anthropic_fake.base_url,
        "GEMINI_API_KEY": GEMINI_KEY,
        "GEMINI_BASE_URL": gemini_fake.base_url,
        "HOUSE_API_KEY": HOUSE_KEY,
        "AGENTD_MODELS_FILE": str(models_file),
        "AGENTD_PROVIDER_MAX_RETRIES": "1",
    })


@pytest.fixture
def mclient(multi) -> Iterator[roe.RoeClient]:
    c = make_roe_client(multi, multi.api_key, multi.org_id)
    yield c
    c.close()


@pytest.fixture
def mhttp(multi) -> Iterator[httpx.Client]:
    with make_http(multi, multi.api_key) as c:
        yield c


def make_agent(client: roe.RoeClient, model: str, input_definitions=None, **config: Any):
    return client.agents.create(
        name=unique("prov-agent-"),
        engine_class_id=ENGINE,
        input_definitions=[TEXT_INPUT] if input_definitions is None else input_definitions,
        engine_config=extraction_config(config.pop("instruction", "Summarize the text."), model=model, **config),
    )


def create_raw(http: httpx.Client, model: str, input_definitions=None, **config: Any) -> dict:
    body = {
        "name": unique("prov-agent-"),
        "engine_class_id": ENGINE,
        "input_definitions": [TEXT_INPUT] if input_definitions is None else input_definitions,
        "engine_config": extraction_config(model=model, **config),
    }
    return expect(http.post("/v1/agents/", json=body), 201)


def datum_of(outputs) -> Any:
    assert isinstance(outputs, list) and len(outputs) == 1, outputs
    d = outputs[0]
    assert d.key == "output" and d.data_type == "application/json", d
    assert isinstance(d.cost, (int, float)), d
    return d


def job_result(http: httpx.Client, agent_id: str) -> dict:
    """The result of the agent's only job."""
    jobs = expect(http.get(f"/v1/agents/{agent_id}/jobs/"), 200)
    assert jobs["count"] == 1, jobs
    return expect(http.get(f"/v1/agents/jobs/{jobs['results'][0]['id']}/result/"), 200)


def photo_file(tmp_path: Path, width: int, height: int) -> tuple[Path, bytes]:
    png = png_bytes(width, height)
    path = tmp_path / f"photo-{width}x{height}.png"
    path.write_bytes(png)
    return path, png


def sync_run(http: httpx.Client, agent_id: str, text: str) -> httpx.Response:
    return http.post(f"/v1/agents/run/{agent_id}/", json={"text": text})


# ---------------------------------------------------------------------------
# 1. Anthropic and Gemini: the request, the answer, the cost
# ---------------------------------------------------------------------------


def test_anthropic_request_answer_and_cost(multi, mclient, mhttp, anthropic_fake, gemini_fake, house_fake,
                                           fake, tmp_path):
    agent = make_agent(mclient, CLAUDE, input_definitions=PHOTO_INPUTS, instruction=INSTRUCTION,
                       images="${photo}", temperature=0.2, reasoning="high")
    path, png = photo_file(tmp_path, 2, 3)
    text = "Revenue grew four percent in the third quarter " + unique()
    anthropic_fake.enqueue(fake_anthropic.Reply.answer(
        ANSWER, input_tokens=1000, output_tokens=300, cache_read_input_tokens=2000, cache_creation_input_tokens=500))

    outputs = mclient.agents.run_sync(str(agent.id), text=text, team="Finance", photo=str(path))

    d = datum_of(outputs)
    assert json.loads(d.value) == ANSWER
    # input = 1000 + 2000 read + 500 written = 3500, of which 2000 cached
    expected = cost(CLAUDE, 3500, 300, cached=2000)
    assert expected == pytest.approx(0.0096)
    assert d.cost == pytest.approx(expected, rel=1e-9, abs=1e-12)
    res = job_result(mhttp, str(agent.id))
    assert res["status"] == SUCCESS, res
    assert (res["input_tokens"], res["output_tokens"]) == (3500, 300), res
    assert res["cost"] == pytest.approx(expected, rel=1e-9, abs=1e-12)

    req = anthropic_fake.only()
    assert req.method == "POST" and req.path == "/v1/messages"
    assert req.headers.get("x-api-key") == ANTHROPIC_KEY
    assert req.headers.get("anthropic-version") == "2023-06-01"
    assert req.headers.get("content-type", "").startswith("application/json")
    assert "authorization" not in req.headers, "the Anthropic key goes in x-api-key, not a bearer token"
    body = req.body
    assert body["model"] == CLAUDE
    assert isinstance(body.get("max_tokens"), int) and body["max_tokens"] >= 1, body.get("max_tokens")
    assert "response_format" not in body and "reasoning_effort" not in body
    assert "thinking" not in body, "reasoning must not be sent to Anthropic (it forbids a forced tool call)"
    assert body.get("temperature") == pytest.approx(0.2)
    # structured output: one forced tool whose input_schema is the output schema
    tools = body["tools"]
    assert isinstance(tools, list) and len(tools) == 1, tools
    assert tools[0]["input_schema"] == SUMMARY_SCHEMA
    assert body["tool_choice"] == {"type": "tool", "name": tools[0]["name"]}
    # the instruction (rendered) is the system prompt; the input is the user turn
    assert isinstance(body.get("system"), (str, list)), body.get("system")
    assert "Summarize the text for the Finance team." in req.system
    assert "${team}" not in json.dumps(body)
    assert [m["role"] for m in req.messages] == ["user"], req.messages
    assert text in req.message_texts("user")[0]
    assert text not in req.system
    assert req.images() == [("image/png", base64.b64encode(png).decode())]
    assert all(set(p) <= {"type", "text", "source", "cache_control"} for p in req.content_parts()), req.content_parts()

    # only Anthropic was called
    assert gemini_fake.completions == [] and house_fake.completions == [] and fake.completions == []


def test_gemini_request_answer_and_cost(multi, mclient, mhttp, anthropic_fake, gemini_fake, house_fake,
                                        fake, tmp_path):
    agent = make_agent(mclient, GEMINI, input_definitions=PHOTO_INPUTS, instruction=INSTRUCTION,
                       images="${photo}", temperature=0.3, reasoning="low")
    path, png = photo_file(tmp_path, 3, 2)
    text = "The onboarding flow confused most new users " + unique()
    gemini_fake.enqueue(fake_gemini.Reply.answer(
        ANSWER, prompt_tokens=1200, candidates_tokens=100, thoughts_tokens=50, cached_tokens=200))

    outputs = mclient.agents.run_sync(str(agent.id), text=text, team="Design", photo=str(path))

    d = datum_of(outputs)
    assert json.loads(d.value) == ANSWER
    # input = promptTokenCount (includes the 200 cached); output = candidates + thoughts
    expected = cost(GEMINI, 1200, 150, cached=200)
    assert expected == pytest.approx(0.00096)
    assert d.cost == pytest.approx(expected, rel=1e-9, abs=1e-12)
    res = job_result(mhttp, str(agent.id))
    assert (res["input_tokens"], res["output_tokens"]) == (1200, 150), res

    req = gemini_fake.only()
    assert req.method == "POST"
    assert req.path == f"/v1beta/models/{GEMINI}:generateContent", req.path
    assert req.headers.get("x-goog-api-key") == GEMINI_KEY
    assert "key=" not in req.path, "the key belongs in the x-goog-api-key header, not the URL"
    assert "authorization" not in req.headers
    assert req.headers.get("content-type", "").startswith("application/json")
    body = req.body
    config = body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == SUMMARY_SCHEMA
    assert "responseSchema" not in config
    assert config.get("temperature") == pytest.approx(0.3)
    assert config.get("thinkingConfig") == {"thinkingLevel": "low"}, config
    assert "model" not in body and "messages" not in body and "tools" not in body
    assert "Summarize the text for the Design team." in req.system
    assert "${team}" not in json.dumps(body)
    assert [c.get("role") for c in req.contents] == ["user"], req.contents
    assert text in req.message_texts("user")[0]
    assert text not in req.system
    assert req.images() == [("image/png", base64.b64encode(png).decode())]

    assert anthropic_fake.completions == [] and house_fake.completions == [] and fake.completions == []


def test_anthropic_429_retry_after_then_success(mclient, anthropic_fake):
    agent = make_agent(mclient, CLAUDE)
    anthropic_fake.enqueue(fake_anthropic.Reply.rate_limited(retry_after="2"),
                           fake_anthropic.Reply.answer(ANSWER, input_tokens=100, output_tokens=10))
    outputs = mclient.agents.run_sync(str(agent.id), text="rate limited " + unique())
    d = datum_of(outputs)
    assert json.loads(d.value) == ANSWER
    first, second = anthropic_fake.completions
    gap = second.at - first.at
    assert 1.9 <= gap < 10, f"retried {gap:.2f} s after a 429 with Retry-After: 2"
    assert first.json == second.json, "the retry sent a different request"
    assert d.cost == pytest.approx(cost(CLAUDE, 100, 10)), "the 429 must cost nothing"


@pytest.mark.parametrize("retry_delay, retry_after, wait", [
    pytest.param("1.5s", None, 1.5, id="retry-info"),  # how Google sends it: a RetryInfo detail
    pytest.param(None, "2", 2.0, id="retry-after-header"),
])
def test_gemini_429_then_success(mclient, gemini_fake, retry_delay, retry_after, wait):
    agent = make_agent(mclient, GEMINI)
    gemini_fake.enqueue(fake_gemini.Reply.rate_limited(retry_delay=retry_delay, retry_after=retry_after),
                        fake_gemini.Reply.answer(ANSWER, prompt_tokens=100, candidates_tokens=10))
    outputs = mclient.agents.run_sync(str(agent.id), text="quota " + unique())
    d = datum_of(outputs)
    assert json.loads(d.value) == ANSWER
    first, second = gemini_fake.completions
    gap = second.at - first.at
    # Without the hint, the first retry's backoff is at most 0.5 s.
    assert wait - 0.1 <= gap < 10, f"retried {gap:.2f} s after a 429 asking for {wait} s"
    assert first.json == second.json
    assert d.cost == pytest.approx(cost(GEMINI, 100, 10))


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_invalid_key_is_502_and_the_server_keeps_serving(provider, mhttp, anthropic_fake, gemini_fake):
    target, model, key = {
        "anthropic": (anthropic_fake, CLAUDE, ANTHROPIC_KEY),
        "gemini": (gemini_fake, GEMINI, GEMINI_KEY),
    }[provider]
    agent = create_raw(mhttp, model)
    target.expected_api_key = "some-other-key"  # anthropic: 401; gemini: 400 API_KEY_INVALID

    resp = sync_run(mhttp, agent["id"], "bad key " + unique())
    body = assert_error(resp, 502)
    assert "rejected the API key" in body["detail"], body
    assert key not in resp.text, "the provider key leaked into the error"
    time.sleep(0.3)
    assert len(target.completions) == 1, "a rejected key must not be retried"

    jobs = expect(mhttp.get(f"/v1/agents/{agent['id']}/jobs/"), 200)["results"]
    assert len(jobs) == 1
    res = expect(mhttp.get(f"/v1/agents/jobs/{jobs[0]['id']}/result/"), 200)
    assert res["status"] == FAILURE and "rejected the API key" in (res["error_message"] or ""), res
    assert not res["cost"]

    # The server answers the next request, and the same agent works once the key is accepted.
    expect(mhttp.get("/v1/agents/models/"), 200)
    target.expected_api_key = key
    text = "good key " + unique()
    datum = expect(sync_run(mhttp, agent["id"], text), 200)[0]
    assert json.loads(datum["value"])["title"].startswith("answer:"), datum
    assert len(target.completions) == 2


# ---------------------------------------------------------------------------
# 2. One agent config, two providers
# ---------------------------------------------------------------------------


def test_same_config_on_two_providers_costs_follow_the_table(mclient, fake, anthropic_fake):
    agent = make_agent(mclient, GPT)
    aid, v_gpt = str(agent.id), str(agent.current_version_id)
    v_claude = str(mclient.agents.versions.create(
        aid, input_definitions=[TEXT_INPUT], engine_config=extraction_config(model=CLAUDE)).id)
    text = "Same input for both providers " + unique()
    fake.enqueue(Reply.answer(ANSWER, prompt_tokens=1000, completion_tokens=200))
    anthropic_fake.enqueue(fake_anthropic.Reply.answer(ANSWER, input_tokens=1000, output_tokens=200))

    out_gpt = datum_of(mclient.agents.run_version_sync(aid, v_gpt, text=text))
    out_claude = datum_of(mclient.agents.run_version_sync(aid, v_claude, text=text))

    assert json.loads(out_gpt.value) == json.loads(out_claude.value) == ANSWER
    assert out_gpt.cost == pytest.approx(0.0036, rel=1e-9)  # 1000 x $2 + 200 x $8 per M
    assert out_claude.cost == pytest.approx(0.006, rel=1e-9)  # 1000 x $3 + 200 x $15 per M
    assert fake.only().json["model"] == GPT
    assert anthropic_fake.only().body["model"] == CLAUDE
    assert any(text in t for t in fake.only().message_texts("user"))
    assert text in anthropic_fake.only().message_texts("user")[0]
    # the same schema reached both, each in its own place
    assert fake.only().schema["properties"].keys() == anthropic_fake.only().schema["properties"].keys()


# ---------------------------------------------------------------------------
# 3. The models file: named endpoint, custom and overridden prices, concurrency
# ---------------------------------------------------------------------------


def test_models_file_endpoint_and_price_override(mclient, mhttp, fake, house_fake, anthropic_fake):
    house_agent = make_agent(mclient, HOUSE_MODEL)
    mini_agent = make_agent(mclient, GPT_MINI)
    house_fake.enqueue(Reply.answer(ANSWER, prompt_tokens=1000, completion_tokens=500))
    fake.enqueue(Reply.answer(ANSWER, prompt_tokens=1000, completion_tokens=500))

    text = "custom endpoint " + unique()
    d_house = datum_of(mclient.agents.run_sync(str(house_agent.id), text=text))
    assert json.loads(d_house.value) == ANSWER
    assert d_house.cost == pytest.approx(cost(HOUSE_MODEL, 1000, 500), rel=1e-9)  # $4 / $16 per M
    assert d_house.cost == pytest.approx(0.012)
    req = house_fake.only()
    assert req.path == "/v1/chat/completions"
    assert req.headers.get("authorization") == f"Bearer {HOUSE_KEY}"
    assert req.json["model"] == HOUSE_UPSTREAM, "the endpoint must get the model's upstream name"
    assert any(text in t for t in req.message_texts("user"))
    assert fake.completions == [], "the house model went to the default OpenAI provider"

    d_mini = datum_of(mclient.agents.run_sync(str(mini_agent.id), text="override " + unique()))
    # input price 3.0 from the file; the output price (1.6) stays the table's
    assert d_mini.cost == pytest.approx(cost(GPT_MINI, 1000, 500), rel=1e-9)
    assert d_mini.cost == pytest.approx(0.0038)
    assert fake.only().json["model"] == GPT_MINI
    assert fake.only().headers.get("authorization") == "Bearer sk-test"
    assert len(house_fake.completions) == 1 and anthropic_fake.completions == []

    models = {m["id"]: m for m in expect(mhttp.get("/v1/agents/models/"), 200)["models"]}
    house = models.get(HOUSE_MODEL)
    assert house is not None, sorted(models)
    assert house["providers"] == ["house"]
    assert house["capabilities"] == ["text"]
    assert (house["context_window"], house["max_output_tokens"]) == (32000, 2000)
    assert house["usable"] is True
    assert house["input_price_per_million_tokens"] == pytest.approx(4.0)
    assert house["output_price_per_million_tokens"] == pytest.approx(16.0)
    mini = models[GPT_MINI]
    assert mini["input_price_per_million_tokens"] == pytest.approx(3.0)
    assert mini["output_price_per_million_tokens"] == pytest.approx(1.6)
    assert set(mini["capabilities"]) == {"text", "image"}, "fields left out must keep the built-in entry"


class InFlight:
    """A reply that takes ``delay`` seconds and records how many requests overlapped."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def reply(self) -> Reply:
        def build(req):
            with self.lock:
                self.now += 1
                self.peak = max(self.peak, self.now)
            try:
                time.sleep(self.delay)
                return default_answer(req, 100, 20)
            finally:
                with self.lock:
                    self.now -= 1

        return Reply(build=build)


def test_endpoint_max_concurrency_is_one(mclient, mhttp, fake, house_fake):
    """4 async jobs at once: the house endpoint (max_concurrency = 1) sees one request at a
    time, while the unlimited OpenAI provider, fed the same way, sees them overlap."""
    house_agent = create_raw(mhttp, HOUSE_MODEL)
    gpt_agent = create_raw(mhttp, GPT)
    house_load, gpt_load = InFlight(0.5), InFlight(0.5)
    house_fake.always(house_load.reply())
    fake.always(gpt_load.reply())

    def submit(agent_id: str) -> str:
        return expect(mhttp.post(f"/v1/agents/run/{agent_id}/async/", json={"text": "load " + unique()}), 200)

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(submit, [house_agent["id"]] * 4 + [gpt_agent["id"]] * 4))
    statuses = wait_for_jobs(mhttp, ids, timeout=20)
    assert [s["status"] for s in statuses] == [SUCCESS] * 8, statuses

    assert len(house_fake.completions) == 4
    assert house_load.peak == 1, f"the house endpoint saw {house_load.peak} requests in flight"
    arrivals = sorted(r.at for r in house_fake.completions)
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert min(gaps) >= 0.45, f"house requests started {gaps} s apart; each takes 0.5 s"
    assert gpt_load.peak >= 2, "control: the unlimited provider should have seen concurrent requests"


# ---------------------------------------------------------------------------
# 4. /v1/agents/models/ filtering
# ---------------------------------------------------------------------------


def list_models(http: httpx.Client, **params: Any) -> list[dict]:
    got = expect(http.get("/v1/agents/models/", params=params), 200)
    assert got["total_count"] == len(got["models"]), got
    ids = [m["id"] for m in got["models"]]
    assert len(ids) == len(set(ids)), f"duplicate ids: {ids}"
    return got["models"]


def test_models_listing_only_configured_providers(http):
    """The session server has only OpenAI configured."""
    default = list_models(http)
    ids = {m["id"] for m in default}
    assert GPT in ids
    assert all(m["providers"] == ["openai"] for m in default), [(m["id"], m["providers"]) for m in default]
    assert all(m["usable"] is True for m in default)
    assert CLAUDE not in ids and GEMINI not in ids

    everything = list_models(http, all="true")
    by_id = {m["id"]: m for m in everything}
    assert ids < set(by_id), "all=true must list more than the usable models"
    assert by_id[CLAUDE]["usable"] is False and by_id[CLAUDE]["providers"] == ["anthropic"]
    assert by_id[GEMINI]["usable"] is False and by_id[GEMINI]["providers"] == ["gemini"]
    assert by_id[GPT]["usable"] is True
    assert {m["id"] for m in everything if m["usable"]} == ids
    for m in everything:
        for field in ("id", "providers", "capabilities", "context_window", "max_output_tokens",
                      "supports_json_schema", "supports_temperature", "supports_reasoning_effort"):
            assert field in m, (field, m)
    assert by_id[GPT]["context_window"] == 1_047_576 and by_id[GPT]["max_output_tokens"] == 32_768
    assert by_id[GPT]["supports_reasoning_effort"] is False


def test_models_listing_on_a_server_with_every_provider(mhttp):
    default = {m["id"]: m for m in list_models(mhttp)}
    for model, provider in [(GPT, "openai"), (CLAUDE, "anthropic"), (GEMINI, "gemini"), (HOUSE_MODEL, "house")]:
        assert model in default, f"{model} missing from {sorted(default)}"
        assert default[model]["providers"] == [provider] and default[model]["usable"] is True

    images = list_models(mhttp, capability="image")
    image_ids = {m["id"] for m in images}
    assert all("image" in m["capabilities"] for m in images)
    assert HOUSE_MODEL not in image_ids
    assert {GPT, CLAUDE, GEMINI} <= image_ids

    text = {m["id"] for m in list_models(mhttp, capability="text")}
    assert HOUSE_MODEL in text and image_ids <= text

    # Roe's other capabilities are answered, with no model here; unknown ones are a 400.
    assert expect(mhttp.get("/v1/agents/models/", params={"capability": "audio"}), 200)["models"] == []
    assert_error(mhttp.get("/v1/agents/models/", params={"capability": "smell"}), 400, mentions="capability")


@pytest.mark.parametrize("value", ["1", "True"])
def test_models_all_flag_spellings(http, value):
    got = expect(http.get("/v1/agents/models/", params={"all": value}), 200)
    assert {m["id"] for m in got["models"]} == {m["id"] for m in list_models(http, all="true")}


def test_models_all_flag_garbage_is_a_json_400(http):
    assert_error(http.get("/v1/agents/models/", params={"all": "maybe"}), 400, mentions="all")


# ---------------------------------------------------------------------------
# 5. Credits under concurrent jobs
# ---------------------------------------------------------------------------


def test_concurrent_jobs_against_a_tiny_balance(start_server, fake):
    srv = start_server({"AGENTD_WORKERS": "2"})
    per_job = cost(GPT, 1000, 500)  # 0.006
    initial = 0.011  # a little under 2 jobs
    srv.admin("credits", "set", "--org", srv.org_id, str(initial))
    fake.always(Reply.default(prompt_tokens=1000, completion_tokens=500, delay=0.3))
    client = make_roe_client(srv, srv.api_key, srv.org_id)
    http = make_http(srv, srv.api_key)
    try:
        agent = make_agent(client, GPT)
        batch = client.agents.run_many(str(agent.id), batch_inputs=[{"text": f"credit {i} " + unique()}
                                                                    for i in range(10)])
        ids = [str(i) for i in batch.job_ids]
        assert len(ids) == 10
        statuses = wait_for_jobs(http, ids, timeout=30)
        results = [expect(http.get(f"/v1/agents/jobs/{i}/result/"), 200) for i in ids]

        ok = [r for r in results if r["status"] == SUCCESS]
        refused = [s for s in statuses if s["status"] == FAILURE
                   and "insufficient credits" in (s.get("error_message") or "").lower()]
        assert len(ok) + len(refused) == 10, statuses
        for r in ok:
            assert r["cost"] == pytest.approx(per_job, rel=1e-9), r
        for r in results:
            if r["status"] != SUCCESS:
                assert not r["cost"], r
        assert len(fake.completions) == len(ok), "a refused job called the provider"

        values = parse_credits(srv.admin("credits", "show", "--org", srv.org_id))
        spent, balance = values["spent"], values["balance"]
        total = sum(r["cost"] for r in ok)
        assert spent >= total - 1e-12, values
        assert spent == pytest.approx(total, rel=1e-9, abs=1e-12), values
        assert balance == pytest.approx(initial - spent, rel=1e-9, abs=1e-12), values
        assert balance <= 0, values
        assert refused, "no job was refused for insufficient credits"
        # Only jobs that started while the balance was positive ran: at most one per worker
        # beyond what the balance covered.
        assert -balance <= 2 * per_job + 1e-12, f"overspent {-balance} with 2 workers and {per_job} per job"
        assert len(ok) <= 2 + 2, f"{len(ok)} jobs ran on a balance for fewer than 2"

        resp = http.post(f"/v1/agents/run/{agent.id}/async/", json={"text": "after " + unique()})
        assert_error(resp, 402, mentions="credits")
        resp = http.post(f"/v1/agents/run/{agent.id}/", json={"text": "after sync " + unique()})
        assert_error(resp, 402, mentions="credits")
    finally:
        client.close()
        http.close()


# ---------------------------------------------------------------------------
# 6. Model checks at creation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("typo, suggestion", [
    ("gpt-4.1-2025-04-15", GPT),
    ("claude-sonet-4-6", CLAUDE),
    ("gemini-3-flash", GEMINI),
])
def test_unknown_model_is_400_with_suggestions(http, fake, typo, suggestion):
    body = {"name": unique("typo-"), "engine_class_id": ENGINE, "input_definitions": [TEXT_INPUT],
            "engine_config": extraction_config(model=typo)}
    err = assert_error(http.post("/v1/agents/", json=body), 400, field="engine_config.model")
    text = " ".join(err["engine_config.model"])
    assert typo in text, err
    assert suggestion in text, f"no suggestion of {suggestion}: {err}"
    assert fake.completions == []


def test_image_input_with_text_only_model_is_400(mhttp, house_fake, tmp_path):
    defs = [TEXT_INPUT, {"key": "photo", "data_type": "image/png", "description": "A photo"}]
    png_url = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    for images in ("${photo}", png_url, ["${photo}"]):
        body = {"name": unique("text-only-"), "engine_class_id": ENGINE, "input_definitions": defs,
                "engine_config": extraction_config(model=HOUSE_MODEL, images=images)}
        err = assert_error(mhttp.post("/v1/agents/", json=body), 400, field="engine_config.images")
        assert HOUSE_MODEL in json.dumps(err), err
    # control: the same config with a model that takes images is accepted, and the text-only
    # model is accepted without images
    create_raw(mhttp, CLAUDE, input_definitions=defs, images="${photo}")
    create_raw(mhttp, HOUSE_MODEL, input_definitions=defs)
    assert house_fake.completions == []
