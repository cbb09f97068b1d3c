"""A loopback test site for the web engines (test_web.py): an article with
navigation and footer around it, a page built by JavaScript, a redirect
chain, a slow page, a huge page, a search form with its results page, and a
robots.txt that disallows /private/.

Every marker word (ARTICLEMARKER, NAVMARKER, …) appears in one place only,
so a test can tell which part of a page reached the model."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

ARTICLE_PARAGRAPHS = [
    "ARTICLEMARKER The harbour town of Lowmere rebuilt its old sea wall this spring, after two "
    "winters of storms had washed away most of the stones laid a century ago by local masons.",
    "Engineers from the county worked with the fishing cooperative to keep the quay open while "
    "the new blocks were set, and the work finished three weeks ahead of the planned schedule.",
    "The mayor said the wall should protect the lower streets for at least fifty years, and "
    "that the town would hold a small festival on the quay once the summer season begins.",
]

ARTICLE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Lowmere rebuilds its sea wall</title>
<meta name="description" content="DESCRIPTIONMARKER How a harbour town rebuilt its wall.">
<meta name="author" content="Ada Quill">
</head><body>
<header><nav><a href="/">NAVMARKER Home</a> <a href="/news">NAVMARKER News</a>
<a href="/sport">NAVMARKER Sport</a> <a href="/weather">NAVMARKER Weather</a></nav></header>
<aside class="sidebar"><h3>SIDEBARMARKER Most read</h3><ul><li><a href="/x">Other story</a></li></ul></aside>
<main><article>
<h1>Lowmere rebuilds its sea wall</h1>
<p class="byline">By Ada Quill</p>
{''.join(f'<p>{p}</p>' for p in ARTICLE_PARAGRAPHS)}
<p>Read the <a href="/report.pdf">county engineering report</a> for the details.</p>
</article></main>
<footer><p>FOOTERMARKER Copyright Lowmere Gazette. All rights reserved.</p>
<a href="/privacy">FOOTERMARKER Privacy</a></footer>
</body></html>"""

SCRIPTED = """<!doctype html>
<html><head><title>Built by script</title></head><body>
<div id="app">Loading…</div>
<script>
document.getElementById('app').innerHTML =
  '<article><h1>Scripted story</h1>' +
  '<p>' + 'SCRIPT' + 'MARKER' + ' This paragraph exists only after the script ran in a browser, ' +
  'so a static fetch never sees it; it is long enough to count as the main content ' +
  'of the page for any extractor that looks for paragraphs of running text.</p>' +
  '<p>A second paragraph adds a few more words about the scripted story so that ' +
  'the content is clearly more than a heading and a line of text.</p></article>';
</script>
</body></html>"""

FORM = """<!doctype html>
<html><head><title>Search the catalogue</title></head><body>
<main><h1>Catalogue search</h1>
<form action="/search" method="get">
<label for="q">Query</label> <input type="text" id="q" name="q" placeholder="Query">
<button type="submit">Search</button>
</form></main></body></html>"""


def results_page(query: str) -> str:
    return f"""<!doctype html>
<html><head><title>Results for {query}</title></head><body><main>
<h1>Results for {query}</h1>
<p>RESULTMARKER Found 3 books about {query}: The {query} Handbook, Programming {query},
and {query} in Action. Each is available in the main library on the second floor.</p>
</main></body></html>"""


ROBOTS = "User-agent: *\nDisallow: /private/\n"


class LoopbackSite:
    """Serves the pages above on 127.0.0.1 (port 0). ``huge_bytes`` sizes
    /huge; /slow answers only after ``release_slow()`` (or 60 s)."""

    def __init__(self, huge_bytes: int = 2_000_000) -> None:
        self.huge_bytes = huge_bytes
        self.requests: list[str] = []
        self.slow_release = threading.Event()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                site.requests.append(self.path)
                site.answer(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def release_slow(self) -> None:
        self.slow_release.set()

    def close(self) -> None:
        self.release_slow()
        self.httpd.shutdown()

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        parsed = urlparse(handler.path)
        path = parsed.path
        html = "text/html; charset=utf-8"
        pages = {
            "/article": ARTICLE,
            "/private/article": ARTICLE,
            "/scripted": SCRIPTED,
            "/form": FORM,
        }
        if path in pages:
            return send(handler, 200, pages[path].encode(), html)
        if path == "/robots.txt":
            return send(handler, 200, ROBOTS.encode(), "text/plain")
        if path == "/search":
            query = parse_qs(parsed.query).get("q", [""])[0]
            return send(handler, 200, results_page(query).encode(), html)
        if path.startswith("/redirect/"):
            hops = int(path.rsplit("/", 1)[1])
            target = "/article" if hops <= 1 else f"/redirect/{hops - 1}"
            handler.send_response(302)
            handler.send_header("Location", target)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return None
        if path == "/slow":
            self.slow_release.wait(60)
            return send(handler, 200, ARTICLE.encode(), html)
        if path == "/huge":
            return self.send_huge(handler)
        return send(handler, 404, b"not found", "text/plain")

    def send_huge(self, handler: BaseHTTPRequestHandler) -> None:
        """A page bigger than the cap, sent without Content-Length (chunk
        by chunk), so the reader has to count."""
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        handler.send_header("Connection", "close")
        handler.end_headers()
        paragraph = b"<p>" + b"filler words " * 80 + b"</p>\n"
        sent = 0
        try:
            handler.wfile.write(b"<html><body>")
            while sent < self.huge_bytes:
                handler.wfile.write(paragraph)
                sent += len(paragraph)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the reader gave up at its cap


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
