"""A small WebDriver BiDi client for Firefox (no geckodriver, no Playwright build).

Firefox speaks WebDriver BiDi itself when started with ``--remote-debugging-port``:
``Firefox.launch`` starts a headless Firefox ESR on a fresh profile, reads the
websocket address it prints, and opens a session on it. ``Session`` sends
commands and returns their results, and keeps the events it subscribed to
(``log.entryAdded``: uncaught script errors) in ``events``.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

LISTENING = re.compile(r"WebDriver BiDi listening on (ws://\S+)")
# Quiet first start: no default-browser prompt, no telemetry or updates.
PROFILE_PREFS = {
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.disabledForTesting": True,
}


class BidiError(Exception):
    """A command the browser answered with an error, or a script that threw."""


class Session:
    """One WebDriver BiDi session over one websocket."""

    def __init__(self, connection: ClientConnection, command_timeout: float) -> None:
        self._connection = connection
        self._ids = itertools.count(1)
        self._command_timeout = command_timeout
        self.events: list[dict] = []

    def command(self, method: str, **params: Any) -> dict:
        command_id = next(self._ids)
        self._connection.send(json.dumps({"id": command_id, "method": method, "params": params}))
        deadline = time.monotonic() + self._command_timeout
        while True:
            message = json.loads(self._connection.recv(timeout=max(deadline - time.monotonic(), 0.1)))
            if message.get("type") == "event":
                self.events.append(message)
                continue
            if message.get("id") != command_id:
                continue  # the late answer to an earlier command
            if message.get("type") == "error":
                raise BidiError(f"{method}: {message.get('error')}: {message.get('message')}")
            return message["result"]

    def close(self) -> None:
        try:
            self.command("session.end")
        finally:
            self._connection.close()


class Page:
    """One browsing context (a tab) of a session."""

    def __init__(self, session: Session, context: str) -> None:
        self.session = session
        self.context = context

    def navigate(self, url: str) -> None:
        self.session.command("browsingContext.navigate", context=self.context, url=url, wait="complete")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited)."""
        return self._script_result(self.session.command(
            "script.evaluate", expression=expression, target={"context": self.context},
            awaitPromise=True, resultOwnership="none"))

    def call(self, function: str, *args: Any) -> Any:
        """Calls a JavaScript function declaration with JSON-like arguments."""
        return self._script_result(self.session.command(
            "script.callFunction", functionDeclaration=function, target={"context": self.context},
            arguments=[serialize(arg) for arg in args], awaitPromise=True, resultOwnership="none"))

    def element(self, selector: str) -> dict:
        """A shared reference to the first element matching ``selector``, for input actions."""
        result = self.session.command(
            "script.evaluate", expression=f"document.querySelector({json.dumps(selector)})",
            target={"context": self.context}, awaitPromise=False)
        if result.get("type") == "exception":
            raise BidiError(result["exceptionDetails"].get("text", "script error"))
        node = result["result"]
        if node.get("type") != "node":
            raise BidiError(f"no element matches {selector!r}")
        return {"sharedId": node["sharedId"]}

    def click(self, selector: str) -> None:
        """A real (trusted) mouse click in the middle of the element."""
        origin = {"type": "element", "element": self.element(selector)}
        self.session.command("input.performActions", context=self.context, actions=[{
            "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": [{"type": "pointerMove", "x": 0, "y": 0, "origin": origin},
                        {"type": "pointerDown", "button": 0}, {"type": "pointerUp", "button": 0}]}])

    def type_keys(self, text: str) -> None:
        """Real key presses into the focused element (\\ue007 is Enter)."""
        keys = []
        for char in text:
            keys += [{"type": "keyDown", "value": char}, {"type": "keyUp", "value": char}]
        self.session.command("input.performActions", context=self.context,
                             actions=[{"type": "key", "id": "keyboard", "actions": keys}])

    def wait_for(self, expression: str, timeout: float, what: str | None = None) -> Any:
        """Polls ``expression`` until it is truthy and returns its value."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            try:
                last = self.evaluate(expression)
            except BidiError as error:  # e.g. during a navigation
                last = error
            if last and not isinstance(last, BidiError):
                return last
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout:.0f}s for {what or expression}; last value: {last!r}")
            time.sleep(0.1)

    def script_errors(self) -> list[str]:
        """Uncaught JavaScript errors of this tab seen so far (needs a ``log.entryAdded`` subscription)."""
        return [f"{event['params'].get('text')}"
                for event in self.session.events
                if event.get("method") == "log.entryAdded"
                and event["params"].get("type") == "javascript"
                and event["params"].get("level") == "error"
                and event["params"].get("source", {}).get("context") == self.context]

    def screenshot(self, path: Path) -> Path:
        data = self.session.command("browsingContext.captureScreenshot", context=self.context, origin="document")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    @staticmethod
    def _script_result(result: dict) -> Any:
        if result.get("type") == "exception":
            details = result["exceptionDetails"]
            raise BidiError(f"script threw: {details.get('text')}")
        return deserialize(result["result"])


def serialize(value: Any) -> dict:
    """A Python value as a BiDi LocalValue."""
    if value is None:
        return {"type": "null"}
    if isinstance(value, bool):
        return {"type": "boolean", "value": value}
    if isinstance(value, (int, float)):
        return {"type": "number", "value": value}
    if isinstance(value, str):
        return {"type": "string", "value": value}
    if isinstance(value, (list, tuple)):
        return {"type": "array", "value": [serialize(item) for item in value]}
    if isinstance(value, dict):
        return {"type": "object", "value": [[str(key), serialize(item)] for key, item in value.items()]}
    raise TypeError(f"cannot send {type(value).__name__} to the browser")


def deserialize(remote: dict) -> Any:
    """A BiDi RemoteValue as a Python value (nodes and other objects as their type name)."""
    kind = remote["type"]
    if kind in ("undefined", "null"):
        return None
    if kind in ("string", "boolean"):
        return remote["value"]
    if kind == "number":
        value = remote["value"]
        return float(value) if isinstance(value, str) else value  # "NaN", "Infinity", "-0"
    if kind == "array":
        return [deserialize(item) for item in remote.get("value", [])]
    if kind == "object":
        return {key if isinstance(key, str) else str(deserialize(key)): deserialize(item)
                for key, item in remote.get("value", [])}
    return f"<{kind}>"


class Firefox:
    """A headless Firefox process with one BiDi session and its first tab."""

    def __init__(self, process: subprocess.Popen, profile: Path, session: Session, page: Page) -> None:
        self.process = process
        self.profile = profile
        self.session = session
        self.page = page

    @classmethod
    def launch(cls, binary: str, startup_timeout: float, command_timeout: float,
               width: int = 1280, height: int = 900) -> "Firefox":
        profile = Path(tempfile.mkdtemp(prefix="agentd-firefox-"))
        (profile / "user.js").write_text("".join(
            f'user_pref("{name}", {json.dumps(value)});\n' for name, value in PROFILE_PREFS.items()))
        process = subprocess.Popen(
            [binary, "--headless", "--remote-debugging-port=0", "--profile", str(profile), "--no-remote",
             f"--width={width}", f"--height={height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            url = _listening_address(process, startup_timeout)
            connection = connect(f"{url}/session" if not url.endswith("/session") else url,
                                 open_timeout=startup_timeout, max_size=None)
            session = Session(connection, command_timeout)
            session.command("session.new", capabilities={})
            session.command("session.subscribe", events=["log.entryAdded"])
            tree = session.command("browsingContext.getTree", maxDepth=0)
            contexts = tree["contexts"]
            context = contexts[0]["context"] if contexts else \
                session.command("browsingContext.create", type="tab")["context"]
            return cls(process, profile, session, Page(session, context))
        except BaseException:
            _stop(process)
            shutil.rmtree(profile, ignore_errors=True)
            raise

    def close(self) -> None:
        try:
            self.session.close()
        finally:
            _stop(self.process)
            shutil.rmtree(self.profile, ignore_errors=True)


def _listening_address(process: subprocess.Popen, timeout: float) -> str:
    """Reads Firefox's stderr until it names its BiDi websocket; the rest is drained."""
    found: list[str] = []
    seen: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in process.stderr:
            if not found:
                seen.append(line)
                match = LISTENING.search(line)
                if match:
                    found.append(match.group(1))
                    ready.set()
        ready.set()  # the process ended

    threading.Thread(target=read, daemon=True).start()
    ready.wait(timeout)
    if not found:
        raise RuntimeError(f"Firefox did not open WebDriver BiDi within {timeout:.0f}s; "
                           f"its output:\n{''.join(seen[-40:])}")
    return found[0]


def _stop(process: subprocess.Popen, timeout: float = 30.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

