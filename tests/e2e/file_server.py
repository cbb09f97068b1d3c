"""A loopback web server holding fixed bodies, standing for the web servers a
job's URL inputs point at (the worker fetches them)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """Serves `files[path] = (body, mime)` on 127.0.0.1; 404 for other paths."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.before_response()
                body, mime = server.files.get(self.path, (b"not found", "text/plain"))
                self.send_response(200 if self.path in server.files else 404)
                self.send_header("Content-Type", mime)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def before_response(self) -> None:
        """Runs in the request's thread before each response; subclasses hook in here."""

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
