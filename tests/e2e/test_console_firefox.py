"""The browser console in real headless Firefox ESR (Debian's /usr/bin/firefox-esr),
driven over WebDriver BiDi by the small client in bidi.py: sign in, see the
organization, find an agent made over the API, run it in the playground against
the fake provider; a wrong key is refused. Clicks and key presses are real input
actions. Screenshots go to tests/e2e/artifacts/firefox-*.png.

Skipped only when Firefox ESR is not installed and AGENTD_REQUIRE_FIREFOX is not
set (scripts/test.sh sets it; scripts/install-deps.sh installs firefox-esr)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import pytest

from bidi import Firefox, Page
from fake_openai import Reply
from helpers import unique
# The server, its organization and the API helpers of the Chromium tests.
from test_console import ARTIFACTS, ORG_NAME, console_org, console_server, create_agent_over_http, http  # noqa: F401

FIREFOX = os.environ.get("AGENTD_FIREFOX", "/usr/bin/firefox-esr")
# Generous: a shared, slow machine; nothing waits this long unless broken.
WAIT_S = 60.0

if not Path(FIREFOX).exists() and os.environ.get("AGENTD_REQUIRE_FIREFOX") != "1":
    pytest.skip(f"{FIREFOX} is not installed (scripts/install-deps.sh installs firefox-esr; "
                "AGENTD_REQUIRE_FIREFOX=1 makes this a failure)", allow_module_level=True)


@pytest.fixture(scope="module")
def firefox() -> Iterator[Firefox]:
    if not Path(FIREFOX).exists():
        pytest.fail(f"{FIREFOX} is missing and AGENTD_REQUIRE_FIREFOX=1: scripts/install-deps.sh installs it",
                    pytrace=False)
    browser = Firefox.launch(FIREFOX, startup_timeout=WAIT_S * 2, command_timeout=WAIT_S * 2)
    yield browser
    browser.close()


@pytest.fixture
def page(firefox: Firefox) -> Iterator[Page]:
    """A fresh tab: its own session storage, so every test starts signed out.
    Fails the test on any uncaught script error in it."""
    context = firefox.session.command("browsingContext.create", type="tab")["context"]
    tab = Page(firefox.session, context)
    yield tab
    errors = tab.script_errors()
    firefox.session.command("browsingContext.close", context=context)
    assert not errors, f"uncaught errors in the page: {errors}"


def screenshot(page: Page, name: str) -> Path:
    return page.screenshot(ARTIFACTS / f"firefox-{name}.png")


def text_of(selector: str) -> str:
    """A JS expression: the element's visible text, or "" while it is absent."""
    return f"document.querySelector({json.dumps(selector)})?.innerText ?? ''"


def wait_for_text(page: Page, selector: str, expected: str) -> str:
    return page.wait_for(f"(({text_of(selector)}).includes({json.dumps(expected)})) && ({text_of(selector)})",
                         WAIT_S, f"{selector} to contain {expected!r}")


def fill(page: Page, selector: str, value: str) -> None:
    """Sets a field's value the way typing does: focus, value, then input and change events."""
    page.call("""(selector, value) => {
        const field = document.querySelector(selector);
        if (!field) throw new Error(`no element matches ${selector}`);
        field.focus();
        field.value = value;
        field.dispatchEvent(new Event("input", { bubbles: true }));
        field.dispatchEvent(new Event("change", { bubbles: true }));
    }""", selector, value)


def link_selector(page: Page, text: str) -> str:
    """A CSS selector for the link with exactly this text (marked with a data attribute)."""
    marker = unique("link-")
    page.wait_for(f"""(() => {{
        const link = [...document.querySelectorAll("a")].find(a => a.textContent.trim() === {json.dumps(text)});
        if (link) link.dataset.testLink = {json.dumps(marker)};
        return Boolean(link);
    }})()""", WAIT_S, f"a link named {text!r}")
    return f'a[data-test-link="{marker}"]'


def sign_in(page: Page, base_url: str, key: str) -> None:
    page.navigate(f"{base_url}/console/")
    page.wait_for("location.pathname === '/console/signin' && document.querySelector('input[name=api_key]')",
                  WAIT_S, "the sign-in form")
    fill(page, "input[name=api_key]", key)
    page.click("form.signin button[type=submit]")


def test_sign_in_find_an_agent_and_run_it_in_the_playground(page, console_server, console_org, http, fake):
    agent = create_agent_over_http(http, name=unique("firefox-"))
    sign_in(page, console_server.base_url, console_org["key"])
    assert wait_for_text(page, "#org-name", ORG_NAME).strip() == ORG_NAME
    screenshot(page, "signed-in")

    # The agents list names the agent made over the API; its link opens it.
    page.click(link_selector(page, "Agents"))
    page.click(link_selector(page, agent["name"]))
    wait_for_text(page, "#agent-title", agent["name"])
    page.click(link_selector(page, "Playground"))
    page.wait_for("location.pathname.endsWith('/playground') && document.querySelector('#input-text')",
                  WAIT_S, "the playground's text field")

    fake.enqueue(Reply.answer({"title": "Firefox greeting", "sentiment": "positive", "score": 9, "tags": []}))
    fill(page, "#input-text", "Hello from Firefox")
    page.click("#run")
    wait_for_text(page, "#run-output table.outputs", "Firefox greeting")
    wait_for_text(page, "#run-output .outputs-json", '"score": 9')
    wait_for_text(page, "#run-progress", "SUCCESS")
    assert "Hello from Firefox" in " ".join(fake.only().message_texts("user"))
    screenshot(page, "playground")


def test_a_wrong_key_is_refused(page, console_server):
    page.navigate(f"{console_server.base_url}/console/")
    # Keyboard only, as a person would: the key field has the focus, Enter submits.
    page.wait_for("document.activeElement?.name === 'api_key'", WAIT_S, "the focused API key field")
    page.type_keys("agd_not-a-real-key\ue007")
    message = wait_for_text(page, "#signin-error", "was not accepted")
    assert message.startswith("This API key was not accepted")
    assert page.evaluate("sessionStorage.length") == 0
    assert page.evaluate("document.querySelector('input[name=api_key]').getAttribute('aria-invalid')") == "true"
    screenshot(page, "signin-refused")
