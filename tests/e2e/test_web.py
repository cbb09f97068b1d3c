"""Web Insights (URLWebsiteExtractionEngine) and Interactive Web
(InteractiveWebExtractionEngine) against a loopback test site (websites.py):
main content (not navigation, sidebar or footer) reaches the model as
Markdown with title, metadata and links; the saved Markdown is exactly what
the model read; references download with their Content-Type through the SDK;
crawling_only makes no model call; redirects are followed (within the
bound); slow and huge pages fail with clear errors; robots.txt is obeyed
unless the agent says otherwise; with the private-address allowance off the
same URLs are refused. Tests marked ``browser`` need Chromium: a page built
by JavaScript, vision mode, screenshots, and a two-step task on a form."""

from __future__ import annotations

import json
import os
import re
import shutil
from typing import Any, Iterator

import httpx
import pytest
import roe

from conftest import make_http, make_roe_client
from fake_openai import Reply, completion_body, default_answer
from helpers import MODEL, assert_error, decode_data_url, expect, field_errors, image_parts, list_jobs, wait_for_job
from websites import ARTICLE_PARAGRAPHS, LoopbackSite

SUCCESS, FAILURE = 3, 4
STARTED = 1
PAGE_TIMEOUT_SECS = 3
MAX_PAGE_BYTES = 500_000
TEXT_ONLY_MODEL = "text-only-test-model"
SCHEMA = {
    "type": "object",
    "properties": {"headline": {"type": "string"}, "town": {"type": "string"}},
    "required": ["headline", "town"],
    "additionalProperties": False,
}
URL_INPUT = [{"key": "url", "data_type": "text/plain", "description": "The page"}]

# scripts/test.sh sets AGENTD_REQUIRE_CHROMIUM=1: there a missing browser fails.
browser = pytest.mark.skipif(
    os.environ.get("AGENTD_REQUIRE_CHROMIUM") != "1"
    and shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
    reason="Chromium is not installed (scripts/install-deps.sh installs it)",
)


@pytest.fixture(scope="module")
def site() -> Iterator[LoopbackSite]:
    s = LoopbackSite(huge_bytes=4 * MAX_PAGE_BYTES)
    yield s
    s.close()


@pytest.fixture(scope="module")
def web_server(start_module_server, tmp_path_factory):
    models = tmp_path_factory.mktemp("web-models") / "models.toml"
    models.write_text(
        f'[[models]]\nid = "{TEXT_ONLY_MODEL}"\nprovider = "openai"\nupstream = "gpt-4.1-2025-04-14"\n'
        'capabilities = ["text"]\n'
    )
    return start_module_server({
        "AGENTD_WEB_PAGE_TIMEOUT_SECS": str(PAGE_TIMEOUT_SECS),
        "AGENTD_WEB_MAX_PAGE_BYTES": str(MAX_PAGE_BYTES),
        "AGENTD_MODELS_FILE": str(models),
    })


@pytest.fixture
def web(web_server) -> Iterator[httpx.Client]:
    with make_http(web_server, web_server.api_key) as c:
        yield c


@pytest.fixture
def sdk(web_server) -> Iterator[roe.RoeClient]:
    c = make_roe_client(web_server, web_server.api_key, web_server.org_id)
    yield c
    c.close()


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def web_agent(http: httpx.Client, engine: str = "URLWebsiteExtractionEngine", **config: Any) -> dict:
    engine_config: dict[str, Any] = {"model": MODEL, "url": "${url}", "instruction": "Read the story.",
                                     "output_schema": SCHEMA}
    engine_config.update(config)
    # None leaves a field out.
    engine_config = {key: value for key, value in engine_config.items() if value is not None}
    body = {"name": "web-agent", "engine_class_id": engine, "input_definitions": URL_INPUT,
            "engine_config": engine_config}
    return expect(http.post("/v1/agents/", json=body), 201)


def run_page(http: httpx.Client, agent: dict, url: str, timeout: float = 90.0) -> dict:
    """Runs the agent on ``url`` asynchronously; returns the job's final status (with its id)."""
    job_id = expect(http.post(f"/v1/agents/run/{agent['id']}/async/", data={"url": url}), 200)
    return {"id": job_id, **wait_for_job(http, job_id, timeout=timeout)}


def succeeded(http: httpx.Client, agent: dict, url: str) -> tuple[str, dict[str, dict]]:
    status = run_page(http, agent, url)
    assert status["status"] == SUCCESS, status
    result = expect(http.get(f"/v1/agents/jobs/{status['id']}/result/"), 200)
    return status["id"], {datum["key"]: datum for datum in result["outputs"]}


def failed(http: httpx.Client, agent: dict, url: str) -> str:
    status = run_page(http, agent, url)
    assert status["status"] == FAILURE, status
    message = status.get("error_message") or ""
    assert message and "panicked" not in message, status
    return message


def model_read(fake) -> str:
    """The user text of the last model call (the page's document)."""
    return "\n".join(fake.completions[-1].message_texts("user"))


def resource_id(datum: dict) -> str:
    match = re.search(r"/v1/agents/jobs/[^/]+/references/([^/]+)/$", datum["value"])
    assert match, datum
    return match.group(1)


def download(http: httpx.Client, sdk: roe.RoeClient, job: str, datum: dict) -> tuple[bytes, str]:
    """The reference's bytes through the SDK, and its Content-Type over HTTP."""
    data = sdk.agents.jobs.download_reference(job, resource_id(datum))
    resp = http.get(datum["value"])
    assert resp.status_code == 200, resp.text
    assert resp.content == data
    return data, resp.headers["content-type"]


# ---------------------------------------------------------------------------
# Static pages
# ---------------------------------------------------------------------------


def test_the_main_content_reaches_the_model_as_markdown_without_boilerplate(web, fake, site):
    agent = web_agent(web)
    _, outputs = succeeded(web, agent, site.url("/article"))
    text = model_read(fake)
    for paragraph in ARTICLE_PARAGRAPHS:
        assert paragraph in " ".join(text.split()), text
    assert "# Lowmere rebuilds its sea wall" in text, text
    assert "Ada Quill" in text and "DESCRIPTIONMARKER" in text, text
    assert f"[county engineering report]({site.url('/report.pdf')})" in text, text
    for boilerplate in ("NAVMARKER", "FOOTERMARKER", "SIDEBARMARKER"):
        assert boilerplate not in text, f"{boilerplate} reached the model:\n{text}"
    answer = json.loads(outputs["output"]["value"])
    assert set(answer) == {"headline", "town"}
    page = json.loads(outputs["page"]["value"])
    assert page["final_url"] == site.url("/article") and page["rendered"] is False, page


def test_saved_references_download_with_their_content_type_and_the_markdown_is_what_the_model_read(
        web, sdk, fake, site):
    agent = web_agent(web, crawl_config={"save_html": True, "save_markdown": "true"})
    job, outputs = succeeded(web, agent, site.url("/article"))
    markdown, markdown_type = download(web, sdk, job, outputs["markdown"])
    assert markdown_type == "text/markdown; charset=utf-8"
    assert outputs["markdown"]["data_type"] == markdown_type
    assert markdown.decode() == model_read(fake)
    html, html_type = download(web, sdk, job, outputs["html"])
    assert html_type == "text/html; charset=utf-8"
    assert b"NAVMARKER" in html and b"ARTICLEMARKER" in html
    assert outputs["html"]["value"].endswith(f"/v1/agents/jobs/{job}/references/{resource_id(outputs['html'])}/")


def test_crawling_only_saves_the_page_without_a_model_call(web, sdk, fake, site):
    agent = web_agent(web, output_schema=None, crawl_config={"crawling_only": True, "save_markdown": True})
    job, outputs = succeeded(web, agent, site.url("/article"))
    assert fake.completions == []
    assert "output" not in outputs
    markdown, _ = download(web, sdk, job, outputs["markdown"])
    assert b"ARTICLEMARKER" in markdown


def test_a_redirect_chain_is_followed_to_the_page(web, fake, site):
    agent = web_agent(web)
    _, outputs = succeeded(web, agent, site.url("/redirect/3"))
    assert json.loads(outputs["page"]["value"])["final_url"] == site.url("/article")
    assert "ARTICLEMARKER" in model_read(fake)


def test_a_redirect_chain_longer_than_the_bound_fails(web, fake, site):
    message = failed(web, web_agent(web), site.url("/redirect/9"))
    assert "not reachable" in message, message
    assert fake.completions == []


def test_a_slow_page_fails_with_the_page_timeout(web, fake, site):
    try:
        message = failed(web, web_agent(web), site.url("/slow"))
    finally:
        site.release_slow()
    assert message == f"the page did not load within {PAGE_TIMEOUT_SECS} s", message
    assert fake.completions == []


def test_a_page_over_the_size_cap_fails(web, fake, site):
    message = failed(web, web_agent(web), site.url("/huge"))
    assert message == f"the page is larger than {MAX_PAGE_BYTES} bytes", message
    assert fake.completions == []


def test_robots_txt_disallow_is_obeyed_unless_the_agent_ignores_it(web, fake, site):
    message = failed(web, web_agent(web), site.url("/private/article"))
    assert "robots.txt disallows" in message and "ignore_robots_txt" in message, message
    assert "/private/article" not in site.requests
    agent = web_agent(web, crawl_config={"ignore_robots_txt": True})
    succeeded(web, agent, site.url("/private/article"))
    assert "ARTICLEMARKER" in model_read(fake)


def test_without_the_private_address_allowance_loopback_pages_are_refused(start_server, fake, site):
    guarded = start_server({"AGENTD_ALLOW_PRIVATE_URLS": "false"})
    with make_http(guarded, guarded.api_key) as http:
        agent = web_agent(http)
        before = len(site.requests)
        for path in ("/article", "/redirect/2"):
            message = failed(http, agent, site.url(path))
            assert message == f"the page {site.url(path)} is not reachable from this server", message
        assert len(site.requests) == before, site.requests[before:]
    assert fake.completions == []


def test_without_a_browser_static_pages_work_and_browser_options_name_the_package(start_server, fake, site):
    server = start_server({"AGENTD_CHROMIUM_PATH": "/nonexistent/chromium"})
    with make_http(server, server.api_key) as http:
        succeeded(http, web_agent(http), site.url("/article"))
        assert "ARTICLEMARKER" in model_read(fake)
        calls = len(fake.completions)
        message = failed(http, web_agent(http, crawl_config={"save_screenshot": True}), site.url("/article"))
        assert "`chromium` package" in message and "AGENTD_CHROMIUM_PATH" in message, message
        assert len(fake.completions) == calls


def test_configs_are_checked_at_creation(web):
    body = {"name": "bad", "engine_class_id": "URLWebsiteExtractionEngine", "input_definitions": URL_INPUT,
            "engine_config": {"model": MODEL, "url": "${url}", "output_schema": SCHEMA,
                              "crawl_config": {"min_wait_time_sec": 600, "save_html": "perhaps"}}}
    errors = field_errors(assert_error(web.post("/v1/agents/", json=body), 400))
    assert "engine_config.crawl_config.min_wait_time_sec" in errors, errors
    body["engine_config"] = {"model": TEXT_ONLY_MODEL, "url": "${url}", "output_schema": SCHEMA,
                             "vision_mode": True}
    errors = field_errors(assert_error(web.post("/v1/agents/", json=body), 400, mentions="images"))
    assert "engine_config.vision_mode" in errors, errors
    body["engine_config"] = {"model": MODEL, "url": "${url}"}
    errors = field_errors(assert_error(web.post("/v1/agents/", json=body), 400))
    assert "engine_config.output_schema" in errors, errors


def test_both_engines_are_listed_by_discovery(web):
    types = web.get("/v1/agents/types/")
    assert types.status_code == 200, types.text
    text = types.text
    assert "URLWebsiteExtractionEngine" in text and "InteractiveWebExtractionEngine" in text


# ---------------------------------------------------------------------------
# Rendered pages (Chromium)
# ---------------------------------------------------------------------------


@browser
def test_a_page_built_by_javascript_is_rendered(web, fake, site):
    _, outputs = succeeded(web, web_agent(web), site.url("/scripted"))
    assert "SCRIPTMARKER" in model_read(fake)
    assert json.loads(outputs["page"]["value"])["rendered"] is True


@browser
def test_vision_mode_sends_the_screenshot_and_saves_it(web, sdk, fake, site):
    agent = web_agent(web, vision_mode=True, crawl_config={"save_screenshot": True})
    job, outputs = succeeded(web, agent, site.url("/article"))
    images = image_parts(fake.completions[-1])
    assert len(images) == 1, images
    mime, png = decode_data_url(images[0])
    assert mime == "image/png" and png.startswith(b"\x89PNG"), mime
    saved, content_type = download(web, sdk, job, outputs["screenshot"])
    assert content_type == "image/png" and saved == png


@browser
def test_the_interactive_engine_completes_a_two_step_task(web, sdk, fake, site):
    steps: list[str] = []

    def scripted(req) -> Reply:
        properties = (req.schema or {}).get("properties", {})
        if "action" not in properties:
            return default_answer(req, 100, 20)
        text = "\n".join(req.message_texts("user"))
        elements = re.findall(r'^\[(\d+)\] (\S+) "([^"]*)"', text, re.M)
        if not steps:
            index = next(i for i, kind, label in elements if kind.startswith("input") and "Query" in label)
            step = {"action": "type", "index": int(index), "text": "rust", "submit": False}
        elif len(steps) == 1:
            index = next(i for i, kind, label in elements if "Search" in label)
            step = {"action": "click", "index": int(index)}
        else:
            assert "RESULTMARKER" in text, text
            step = {"action": "done"}
        steps.append(step["action"])
        return Reply(200, completion_body(MODEL, json.dumps(step), 100, 20), {"Content-Type": "application/json"})

    fake.always(Reply(build=scripted))
    agent = web_agent(web, engine="InteractiveWebExtractionEngine", action="Search the catalogue for rust.",
                      output_schema={"type": "object", "properties": {"summary": {"type": "string"}},
                                     "required": ["summary"]})
    job, outputs = succeeded(web, agent, site.url("/form"))
    assert steps == ["type", "click", "done"], steps
    assert "RESULTMARKER" in model_read(fake) and "Results for rust" in model_read(fake)
    recorded = json.loads(outputs["steps"]["value"])
    assert recorded["final_url"] == site.url("/search?q=rust"), recorded
    assert [s["action"].split()[0] for s in recorded["steps"]] == ["type", "click", "done"]
    for step in recorded["steps"]:
        png, content_type = download(web, sdk, job, {"value": step["screenshot"]})
        assert content_type == "image/png" and png.startswith(b"\x89PNG")
    listed = next(j for j in list_jobs(web, agent["id"])["results"] if j["id"] == job)
    progress = [e.get("error_message") or "" for e in listed["status_events"] if e["status_code"] == STARTED]
    assert [m.split(":")[0] for m in progress if m.startswith("Step ")] == ["Step 1", "Step 2", "Step 3"], progress
