"""The browser console, end to end in headless Chromium (Debian's /usr/bin/chromium,
driven by Playwright): sign in, create an agent, run it in the playground against the
fake provider, open the job, run a CSV batch and download its results; bad keys, server
errors and oversize files. Screenshots of the main pages go to tests/e2e/artifacts/."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from fake_openai import Reply
from helpers import MODEL, TEXT_INPUT, agent_body, expect, extraction_config, unique

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("AGENTD_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
# Small, so that the oversize check needs only a small file.
UPLOAD_LIMIT = 65536
ORG_NAME = "Console Test Org"
# Generous: a shared, slow machine; nothing waits this long unless broken.
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def console_server(start_module_server):
    return start_module_server({"AGENTD_MAX_REQUEST_BYTES": str(UPLOAD_LIMIT)})


@pytest.fixture(scope="module")
def console_org(console_server) -> dict:
    org_id = console_server.admin("org", "create", ORG_NAME)
    key = console_server.admin("key", "create", "--org", org_id)
    return {"id": org_id, "key": key}


@pytest.fixture
def http(console_server, console_org) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=console_server.base_url, timeout=30,
                      headers={"Authorization": f"Bearer {console_org['key']}"}) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/install-deps.sh installs Debian's chromium", pytrace=False)
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, console_server):
    context = browser.new_context(base_url=console_server.base_url, viewport={"width": 1280, "height": 900},
                                  accept_downloads=True)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


playwright_api.expect.set_options(timeout=WAIT_MS)


def expect_ui(locator):
    return playwright_api.expect(locator)


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page, key: str) -> None:
    page.goto("/")
    page.wait_for_url("**/console/signin**")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect_ui(page.locator("#org-name")).to_be_visible()


def create_agent_over_http(http: httpx.Client, **kw) -> dict:
    return expect(http.post("/v1/agents/", json=agent_body(**kw)), 201)


def download_text(page, button_id: str) -> tuple[str, str]:
    with page.expect_download() as info:
        page.click(f"#{button_id}")
    download = info.value
    return download.suggested_filename, Path(download.path()).read_text(encoding="utf-8")


# ---------------------------------------------------------------------------
# The checked flow
# ---------------------------------------------------------------------------


def test_sign_in_create_run_open_job_and_batch(page, console_org, fake):
    sign_in(page, console_org["key"])
    expect_ui(page.locator("#org-name")).to_have_text(ORG_NAME)
    expect_ui(page.locator("#key-scopes")).to_contain_text("all")
    screenshot(page, "agents-empty")

    # Create an agent: the schema editor checks JSON as it is typed, the
    # builder edits flat objects.
    page.click("#new-agent")
    name = unique("console-")
    page.fill("#agent-name", name)
    page.select_option("#agent-model", MODEL)
    page.fill("#agent-instruction", "Summarize the text.")
    page.fill("#output-schema", "{not json")
    expect_ui(page.locator("#output-schema-status")).to_contain_text("Not valid JSON")
    page.fill("#output-schema", json.dumps({
        "type": "object",
        "properties": {"title": {"type": "string"}, "sentiment": {"type": "string"}},
        "required": ["title", "sentiment"],
    }))
    expect_ui(page.locator("#output-schema-status")).to_have_text("Valid JSON schema.")
    expect_ui(page.locator("#schema-builder-rows .builder-row")).to_have_count(2)
    page.click("#add-schema-field")
    page.locator("#schema-builder-rows .builder-name").last.fill("score")
    page.locator("#schema-builder-rows .builder-type").last.select_option("integer")
    schema = json.loads(page.input_value("#output-schema"))
    assert schema["properties"]["score"] == {"type": "integer"}
    assert schema["required"] == ["title", "sentiment", "score"]
    screenshot(page, "agent-form")
    page.click("#save-agent")
    expect_ui(page.locator("#agent-title")).to_have_text(name)
    agent_id = page.url.rstrip("/").split("/")[-1]

    # Playground: one field per input, the outputs as a table and as JSON.
    fake.enqueue(Reply.answer({"title": "Greeting", "sentiment": "positive", "score": 7}))
    page.get_by_role("link", name="Playground", exact=True).click()
    page.fill("#input-text", "Hello from the console")
    page.click("#run")
    outputs = page.locator("#run-output table.outputs")
    expect_ui(outputs).to_contain_text("Greeting")
    expect_ui(outputs).to_contain_text("positive")
    expect_ui(page.locator("#run-output .outputs-json")).to_contain_text('"score": 7')
    assert page.locator("#run-output .job-cost").inner_text().startswith("$")
    expect_ui(page.locator("#run-output")).to_contain_text("100 in / 20 out")
    expect_ui(page.locator("#run-progress")).to_contain_text("SUCCESS")
    assert "Hello from the console" in " ".join(fake.only().message_texts("user"))
    screenshot(page, "playground")

    # The job's page: inputs, outputs, status events.
    page.click("#open-job")
    detail = page.locator("#job-detail")
    expect_ui(detail).to_contain_text("Hello from the console")
    expect_ui(detail).to_contain_text("Greeting")
    expect_ui(detail.locator("ol.events")).to_contain_text("PENDING")
    expect_ui(detail.locator("ol.events")).to_contain_text("SUCCESS")
    expect_ui(page.locator("#delete-job-data")).to_be_visible()
    screenshot(page, "job")

    # A CSV batch with quoted commas and newlines; results as CSV and JSONL.
    page.get_by_role("link", name="Batch", exact=True).click()
    rows = ["first, with a comma", "second\non two lines", "third"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["text"])
    writer.writerows([row] for row in rows)
    page.set_input_files("#batch-file", files=[{"name": "rows.csv", "mimeType": "text/csv",
                                                "buffer": buffer.getvalue().encode()}])
    expect_ui(page.locator("#batch-preview")).to_contain_text("3 row(s)")
    page.click("#run-batch")
    expect_ui(page.locator("#download-csv")).to_be_visible()
    expect_ui(page.locator("#batch-progress-text")).to_contain_text("3 of 3 finished")
    assert page.locator("#batch-progress").evaluate("p => p.value === p.max")
    screenshot(page, "batch")
    file_name, text = download_text(page, "download-csv")
    assert file_name.endswith(".csv")
    downloaded = list(csv.DictReader(io.StringIO(text)))
    assert [row["text"] for row in downloaded] == rows
    assert {row["status"] for row in downloaded} == {"SUCCESS"}
    assert all(row["output.title"] for row in downloaded)
    file_name, text = download_text(page, "download-jsonl")
    assert file_name.endswith(".jsonl")
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["text"] for line in lines] == rows
    assert all(line["job_id"] and line["status"] == "SUCCESS" for line in lines)

    # The jobs table, with the status filter.
    page.get_by_role("link", name="Jobs", exact=True).click()
    expect_ui(page.locator("#jobs-table tbody tr")).to_have_count(4)
    page.select_option("#job-status-filter", label="FAILURE")
    expect_ui(page.locator("#jobs-table")).to_contain_text("No job has this status.")
    page.select_option("#job-status-filter", label="SUCCESS")
    expect_ui(page.locator("#jobs-table tbody tr")).to_have_count(4)
    screenshot(page, "jobs")

    # Usage: the four jobs of today, under the agent's model.
    page.get_by_role("link", name="Usage", exact=True).click()
    expect_ui(page.locator("#usage-totals")).to_contain_text("4 jobs")
    expect_ui(page.locator("#usage-models")).to_contain_text(MODEL)
    assert page.locator(".chart svg rect").count() >= 2
    screenshot(page, "usage")

    # The agents list, at phone width and in dark mode.
    page.get_by_role("link", name="Agents", exact=True).click()
    expect_ui(page.get_by_role("link", name=name)).to_be_visible()
    screenshot(page, "agents")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "agents-phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.emulate_media(color_scheme="dark")
    page.goto(f"/console/agents/{agent_id}/jobs")
    expect_ui(page.locator("#jobs-table tbody tr")).to_have_count(4)
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != "rgb(247, 248, 250)"
    screenshot(page, "jobs-dark")


def test_search_edit_versions_duplicate_and_delete(page, http, console_org):
    agent = create_agent_over_http(http, name=unique("versioned-"))
    create_agent_over_http(http, name=unique("other-"))
    sign_in(page, console_org["key"])
    page.fill("input[name=search]", agent["name"])
    page.get_by_role("button", name="Filter").click()
    expect_ui(page.locator("main table tbody tr")).to_have_count(1)

    page.get_by_role("link", name=agent["name"]).click()
    page.get_by_role("link", name="Edit", exact=True).click()
    page.fill("#agent-instruction", "A second instruction.")
    page.fill("input[name=version_name]", "second")
    page.click("#save-agent")
    versions = page.locator("#versions tbody tr")
    expect_ui(versions).to_have_count(2)
    current = http.get(f"/v1/agents/{agent['id']}/versions/current/").json()
    assert current["engine_config"]["instruction"] == "A second instruction."

    # The first version made current again.
    page.locator("#versions tbody tr", has_not_text="second").get_by_role("button", name="Make current").click()
    expect_ui(page.locator("#flash")).to_contain_text("is now current")
    assert http.get(f"/v1/agents/{agent['id']}/").json()["current_version_id"] == agent["current_version_id"]

    page.click("#duplicate-agent")
    expect_ui(page.locator("#flash")).to_contain_text("Duplicated")
    expect_ui(page.locator("#agent-title")).not_to_have_text(agent["name"])
    copy_id = page.url.rstrip("/").split("/")[-1]
    assert copy_id != agent["id"]

    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#delete-agent")
    expect_ui(page.locator("#agent-title")).to_be_visible()
    assert http.get(f"/v1/agents/{copy_id}/").status_code == 200
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete-agent")
    expect_ui(page.locator("#flash")).to_contain_text("Deleted")
    assert http.get(f"/v1/agents/{copy_id}/").status_code == 404


def test_a_long_run_shows_progress_and_is_cancelled(page, http, console_org, fake):
    agent = create_agent_over_http(http, name=unique("slow-"))
    # Held far longer than the test waits: only the cancel ends it.
    fake.enqueue(Reply.answer({"title": "late"}, delay=600))
    sign_in(page, console_org["key"])
    page.goto(f"/console/agents/{agent['id']}/playground")
    page.fill("#input-text", "take your time")
    page.click("#run")
    expect_ui(page.locator("#run-progress")).to_contain_text("STARTED")
    page.click("#cancel-run")
    expect_ui(page.locator("#run-progress h2")).to_contain_text("CANCELLED")
    expect_ui(page.locator("#run-output")).to_contain_text("CANCELLED")

    # A final job's data can be deleted from its page; status and cost stay.
    page.click("#open-job")
    detail = page.locator("#job-detail")
    expect_ui(detail).to_contain_text("take your time")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete-job-data")
    expect_ui(page.locator("#flash")).to_contain_text("The job's data was deleted.")
    expect_ui(detail).not_to_contain_text("take your time")
    expect_ui(detail.locator("ol.events")).to_contain_text("CANCELLED")


def test_a_jsonl_batch(page, http, console_org):
    agent = create_agent_over_http(http, name=unique("jsonl-"))
    sign_in(page, console_org["key"])
    page.goto(f"/console/agents/{agent['id']}/batch")
    lines = [{"text": "one"}, {"text": "two \"quoted\""}]
    page.set_input_files("#batch-file", files=[{"name": "rows.jsonl", "mimeType": "application/x-ndjson",
                                                "buffer": "\n".join(json.dumps(l) for l in lines).encode()}])
    expect_ui(page.locator("#batch-preview")).to_contain_text("2 row(s)")
    page.click("#run-batch")
    expect_ui(page.locator("#batch-progress-text")).to_contain_text("2 of 2 finished")
    _, text = download_text(page, "download-jsonl")
    assert [json.loads(line)["text"] for line in text.splitlines()] == ["one", 'two "quoted"']


def test_a_batch_file_with_an_unknown_column_is_refused(page, http, console_org):
    agent = create_agent_over_http(http, name=unique("columns-"))
    sign_in(page, console_org["key"])
    page.goto(f"/console/agents/{agent['id']}/batch")
    page.set_input_files("#batch-file", files=[{"name": "rows.csv", "mimeType": "text/csv",
                                                "buffer": b"txt\nhello\n"}])
    expect_ui(page.locator("#batch-error")).to_contain_text("Unknown column(s) txt: the inputs are text.")
    expect_ui(page.locator("#run-batch")).to_be_disabled()


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


def test_a_wrong_key_is_refused(page):
    page.goto("/console/")
    # Keyboard only: the key field has the focus, Enter submits.
    expect_ui(page.get_by_label("API key")).to_be_focused()
    page.keyboard.type("agd_not-a-real-key")
    page.keyboard.press("Enter")
    expect_ui(page.locator("#signin-error")).to_contain_text("was not accepted")
    assert page.evaluate("sessionStorage.length") == 0
    screenshot(page, "signin-refused")


def test_a_revoked_key_signs_the_user_out(page, console_server, console_org):
    key = console_server.admin("key", "create", "--org", console_org["id"], "--scope", "read", "--scope", "run")
    sign_in(page, key)
    expect_ui(page.locator("#key-scopes")).to_contain_text("read")
    expect_ui(page.locator("#key-scopes")).to_contain_text("run")
    console_server.admin("key", "revoke", "--key", key)
    page.get_by_role("link", name="Usage", exact=True).click()
    page.wait_for_url("**/console/signin**")
    expect_ui(page.locator("#flash")).to_contain_text("Signed out")
    expect_ui(page.locator("#org-name")).to_have_count(0)
    assert page.evaluate("sessionStorage.length") == 0


def test_a_server_error_shows_a_readable_message(page, console_org):
    sign_in(page, console_org["key"])
    page.route("**/v1/agents/?*", lambda route: route.fulfill(status=500, body="<html>oops</html>",
                                                               content_type="text/html"))
    page.goto("/console/")
    expect_ui(page.locator("main")).to_contain_text("The server failed to answer (HTTP 500")
    page.unroute("**/v1/agents/?*")
    page.route("**/v1/agents/usage/**", lambda route: route.fulfill(
        status=503, content_type="application/json",
        body=json.dumps({"detail": "The database is unavailable.", "message": "The database is unavailable."})))
    page.goto("/console/usage")
    expect_ui(page.locator("#page-error")).to_have_text("The database is unavailable.")


def test_a_file_over_the_limit_is_refused_before_upload(page, http, console_org):
    agent = create_agent_over_http(
        http, name=unique("photo-"),
        input_definitions=[{"key": "text", "data_type": "text/plain", "description": "Text"},
                           {"key": "photo", "data_type": "image/png", "description": "A photo"}])
    sign_in(page, console_org["key"])
    sent: list[int] = []
    page.on("request", lambda request: sent.append(len(request.post_data_buffer or b""))
            if "/v1/agents/run/" in request.url else None)
    page.goto(f"/console/agents/{agent['id']}/playground")
    expect_ui(page.locator("#input-photo")).to_have_attribute("accept", "image/png")
    page.set_input_files("#input-photo", files=[{"name": "huge.png", "mimeType": "image/png",
                                                 "buffer": b"\x89PNG" + b"\0" * UPLOAD_LIMIT}])
    expect_ui(page.locator("#run-error")).to_contain_text(f"over the server's limit of 64 KiB ({UPLOAD_LIMIT} bytes)")
    assert page.eval_on_selector("#input-photo", "input => input.files.length") == 0
    page.fill("#input-text", "no photo")
    page.click("#run")
    # The refused file was cleared: the run goes without it and the server
    # answers that the photo is missing; the big file never left the browser.
    expect_ui(page.locator("#run-error")).to_contain_text("photo")
    assert sent and max(sent) < UPLOAD_LIMIT
    assert http.get(f"/v1/agents/{agent['id']}/jobs/").json()["count"] == 0


# ---------------------------------------------------------------------------
# What the console reads from the server
# ---------------------------------------------------------------------------


def test_console_files_are_served_with_a_strict_policy(console_server):
    with httpx.Client(base_url=console_server.base_url, timeout=30) as anon:
        root = anon.get("/")
        assert root.status_code in (303, 307, 308) and root.headers["location"] == "/console/"
        for path in ("/console/", "/console/agents/x/jobs"):
            page = anon.get(path)
            assert page.status_code == 200
            assert page.headers["content-type"] == "text/html; charset=utf-8"
            csp = page.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        script = anon.get("/console/assets/app.js")
        assert script.headers["content-type"] == "text/javascript; charset=utf-8"
        assert anon.get("/console/assets/app.css").headers["content-type"] == "text/css; charset=utf-8"
        missing = anon.get("/console/assets/nope.js")
        assert missing.status_code == 404 and "nope.js" in missing.json()["detail"]


def test_an_agent_is_switched_to_one_of_its_versions_over_http(http):
    agent = create_agent_over_http(http, name=unique("switch-"))
    second = expect(http.post(f"/v1/agents/{agent['id']}/versions/",
                              json={"version_name": "second", "input_definitions": [TEXT_INPUT],
                                    "engine_config": extraction_config("Second.")}), 201)
    assert http.get(f"/v1/agents/{agent['id']}/").json()["current_version_id"] == second["id"]
    switched = expect(http.patch(f"/v1/agents/{agent['id']}/",
                                 json={"current_version_id": agent["current_version_id"]}), 200)
    assert switched["current_version_id"] == agent["current_version_id"]
    other = create_agent_over_http(http, name=unique("other-"))
    for foreign in (other["current_version_id"], "not-a-uuid"):
        refused = http.patch(f"/v1/agents/{agent['id']}/", json={"current_version_id": foreign})
        assert refused.status_code == 400 and "current_version_id" in refused.json(), refused.text
    assert http.get(f"/v1/agents/{agent['id']}/").json()["current_version_id"] == agent["current_version_id"]


def test_current_user_names_the_organization_and_the_upload_limit(http):
    user = expect(http.get("/v1/users/current_user/"), 200)
    assert user["organization_name"] == ORG_NAME
    assert user["max_upload_bytes"] == UPLOAD_LIMIT
    assert user["scopes"] == []


def test_usage_counts_days_and_checks_its_parameter(http, fake):
    before = expect(http.get("/v1/agents/usage/"), 200)
    assert before["days"] == 30 and len(before["daily"]) == 30
    agent = create_agent_over_http(http, name=unique("usage-"))
    fake.enqueue(Reply.answer({"title": "t", "sentiment": "neutral", "score": 1, "tags": []}))
    expect(http.post(f"/v1/agents/run/{agent['id']}/", json={"text": "count me"}), 200)
    after = expect(http.get("/v1/agents/usage/", params={"days": 7}), 200)
    assert len(after["daily"]) == 7
    assert after["daily"][-1]["jobs"] >= 1
    assert after["total_jobs"] == before["total_jobs"] + 1
    assert MODEL in {m["model"] for m in after["models"]}
    for bad in ("0", "400", "x"):
        resp = http.get("/v1/agents/usage/", params={"days": bad})
        assert resp.status_code == 400 and "days" in resp.json(), resp.text
    assert http.get("/v1/agents/usage/", params={"weeks": 2}).status_code == 400


@pytest.fixture(scope="module", autouse=True)
def copy_readme_screenshots():
    """The README shows two of the screenshots: copied when the run made them."""
    yield
    target = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    for name in ("playground", "usage"):
        source = ARTIFACTS / f"{name}.png"
        if source.exists() and os.environ.get("AGENTD_UPDATE_SCREENSHOTS") == "1":
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target / f"console-{name}.png")
