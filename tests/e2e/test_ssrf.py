"""The outbound URL guard (issue 8, SSRF): a URL a user supplies, as a file
input or as an ``images`` URL, never reaches loopback, private or link-local
addresses, in any spelling and through any redirect, and every refusal reads
the same as a closed port.

An "internal service" on 127.0.0.1 counts the connections it accepts; each
test proves it got none. The guarded server allows exactly 127.0.0.2/32, where
a redirector runs, so that redirects start from an allowed host.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from conftest import AgentdServer, make_http
from helpers import (
    TEXT_INPUT,
    agent_body,
    assert_error,
    decode_data_url,
    expect,
    extraction_config,
    image_parts,
    only_output,
    png_bytes,
    unique,
    wait_for_jobs,
)

PHOTO_INPUTS = [TEXT_INPUT, {"key": "photo", "data_type": "image/png", "description": "A photo"}]
PNG = png_bytes(2, 2)
UNREACHABLE = "Could not fetch the URL: it is not reachable from this server."
ALLOWED_HOST = "127.0.0.2"
MAX_URL_INPUTS = 3


class CountingServer:
    """An HTTP server that counts the connections it accepts.

    ``GET /hops/N`` redirects to ``/hops/N-1`` on itself until ``/hops/0``;
    ``GET /to?url=U`` redirects to U; any other path serves a PNG.
    """

    def __init__(self, host: str) -> None:
        self.connections = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path.startswith("/hops/") and int(parts.path[6:]) > 0:
                    self.redirect(outer.url(f"/hops/{int(parts.path[6:]) - 1}"))
                elif parts.path == "/to":
                    self.redirect(parse_qs(parts.query)["url"][0])
                else:
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.send_header("Content-Length", str(len(PNG)))
                    self.end_headers()
                    self.wfile.write(PNG)

            def redirect(self, location: str) -> None:
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

        class Server(ThreadingHTTPServer):
            def verify_request(self, request, client_address) -> bool:
                with outer.lock:
                    outer.connections += 1
                return True

        self.httpd = Server((host, 0), Handler)
        self.host = host
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str = "/image.png", host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    def count(self) -> int:
        with self.lock:
            return self.connections


@pytest.fixture(scope="module")
def internal() -> Iterator[CountingServer]:
    server = CountingServer("127.0.0.1")
    yield server
    server.httpd.shutdown()


@pytest.fixture(scope="module")
def redirector() -> Iterator[CountingServer]:
    try:
        server = CountingServer(ALLOWED_HOST)
    except OSError as error:  # loopback beyond 127.0.0.1 is missing on some systems
        pytest.skip(f"cannot listen on {ALLOWED_HOST}: {error}")
    yield server
    server.httpd.shutdown()


@pytest.fixture(scope="module")
def guarded(start_module_server: Callable[..., AgentdServer]) -> AgentdServer:
    """A server with the guard on, allowing only the redirector's address."""
    return start_module_server({
        "AGENTD_ALLOW_PRIVATE_URLS": f"{ALLOWED_HOST}/32",
        "AGENTD_MAX_URL_INPUTS": str(MAX_URL_INPUTS),
    })


@pytest.fixture
def ghttp(guarded: AgentdServer) -> Iterator[httpx.Client]:
    with make_http(guarded, guarded.api_key) as client:
        yield client


def photo_agent(client: httpx.Client) -> dict:
    body = agent_body(input_definitions=PHOTO_INPUTS, engine_config=extraction_config(images="${photo}"))
    return expect(client.post("/v1/agents/", json=body), 201)


def images_agent(client: httpx.Client, url: str) -> dict:
    body = agent_body(engine_config=extraction_config(images=url))
    return expect(client.post("/v1/agents/", json=body), 201)


def run_photo(client: httpx.Client, agent: dict, url: str) -> httpx.Response:
    return client.post(f"/v1/agents/run/{agent['id']}/", json={"text": unique("t "), "photo": url})


def refused_as_input(client: httpx.Client, agent: dict, url: str) -> str:
    """Runs with ``url`` as the photo input; asserts the generic 400 naming
    the input; returns its detail."""
    body = assert_error(run_photo(client, agent, url), 400)
    assert UNREACHABLE in body["detail"] and "photo" in body["detail"], (url, body)
    return body["detail"]


def loopback_spellings(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/image.png",
        f"http://127.1:{port}/image.png",
        f"http://2130706433:{port}/image.png",
        f"http://0x7f000001:{port}/image.png",
        f"http://0177.0.0.1:{port}/image.png",
        f"http://[::ffff:127.0.0.1]:{port}/image.png",
        f"http://[::ffff:7f00:1]:{port}/image.png",
        f"http://0.0.0.0:{port}/image.png",
        f"http://0:{port}/image.png",
        f"http://user:pass@127.0.0.1:{port}/image.png",
        f"http://localhost:{port}/image.png",
        f"http://[::1]:{port}/image.png",
    ]


def test_loopback_in_every_spelling_is_refused_as_a_file_input(ghttp, fake, internal):
    agent = photo_agent(ghttp)
    before = internal.count()
    for url in loopback_spellings(internal.port) + [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/image.png",
        "http://[fe80::1]/image.png",
    ]:
        refused_as_input(ghttp, agent, url)
    assert internal.count() == before
    assert fake.completions == []


def test_loopback_in_every_spelling_is_refused_as_an_images_url(ghttp, fake, internal):
    before = internal.count()
    for url in loopback_spellings(internal.port):
        agent = images_agent(ghttp, url)
        resp = ghttp.post(f"/v1/agents/run/{agent['id']}/", json={"text": unique("t ")})
        body = assert_error(resp, 400)
        assert UNREACHABLE in body["detail"], (url, body)
    assert internal.count() == before
    assert fake.completions == []


def test_a_redirect_from_an_allowed_host_to_loopback_is_not_followed(ghttp, fake, internal, redirector):
    agent = photo_agent(ghttp)
    before, redirects_before = internal.count(), redirector.count()
    for target in (internal.url(), internal.url(host="localhost"), internal.url(host="[::ffff:127.0.0.1]")):
        refused_as_input(ghttp, agent, redirector.url("/to?url=" + target))
        image_agent = images_agent(ghttp, redirector.url("/to?url=" + target))
        resp = ghttp.post(f"/v1/agents/run/{image_agent['id']}/", json={"text": unique("t ")})
        assert UNREACHABLE in assert_error(resp, 400)["detail"]
    assert redirector.count() == redirects_before + 6  # the redirector was asked each time ...
    assert internal.count() == before  # ... the internal service never
    assert fake.completions == []


def test_a_closed_port_reads_the_same_as_a_refused_address(ghttp, internal):
    agent = photo_agent(ghttp)
    before = internal.count()
    with socket.socket() as probe:  # a port on the allowed address that nobody listens on
        probe.bind((ALLOWED_HOST, 0))
        closed_port = probe.getsockname()[1]
    closed = refused_as_input(ghttp, agent, f"http://{ALLOWED_HOST}:{closed_port}/image.png")
    refused = refused_as_input(ghttp, agent, internal.url())
    assert closed == refused
    assert internal.count() == before


def test_at_most_five_redirects_are_followed(ghttp, fake, redirector):
    agent = photo_agent(ghttp)
    only_output(expect(run_photo(ghttp, agent, redirector.url("/hops/5")), 200))
    assert decode_data_url(image_parts(fake.only())[0]) == ("image/png", PNG)
    fake.reset()
    refused_as_input(ghttp, agent, redirector.url("/hops/6"))
    assert fake.completions == []


def test_url_inputs_per_request_are_bounded_across_a_batch(ghttp, redirector):
    agent = photo_agent(ghttp)
    before = redirector.count()
    items = [{"text": unique("t "), "photo": redirector.url()} for _ in range(MAX_URL_INPUTS + 1)]
    resp = ghttp.post(f"/v1/agents/run/{agent['id']}/async/many/", json={"inputs": items})
    assert_error(resp, 400, mentions=f"At most {MAX_URL_INPUTS} file inputs given as URLs")
    assert redirector.count() == before  # refused before fetching anything
    ids = expect(ghttp.post(f"/v1/agents/run/{agent['id']}/async/many/",
                            json={"inputs": items[:MAX_URL_INPUTS]}), 200)
    assert len(ids) == MAX_URL_INPUTS
    wait_for_jobs(ghttp, ids)  # their model calls end before the next test starts
    assert redirector.count() == before + MAX_URL_INPUTS


def test_the_guard_is_on_when_the_variable_is_unset(start_server, internal):
    before = internal.count()
    srv = start_server({"AGENTD_ALLOW_PRIVATE_URLS": None})
    with make_http(srv, srv.api_key) as client:
        refused_as_input(client, photo_agent(client), internal.url())
    assert internal.count() == before


def test_allowing_private_urls_lets_the_same_fetch_through(http, fake, internal):
    """The suite's main server runs with AGENTD_ALLOW_PRIVATE_URLS=true."""
    agent = photo_agent(http)
    before = internal.count()
    only_output(expect(run_photo(http, agent, f"http://127.1:{internal.port}/image.png"), 200))
    assert decode_data_url(image_parts(fake.only())[0]) == ("image/png", PNG)
    assert internal.count() == before + 1
