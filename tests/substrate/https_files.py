"""An HTTPS file server on 127.0.0.1 (certificate from the test CA): the tests' stand-in for the upstream
hosts (chart repositories, release downloads), serving a dict of path -> bytes."""

from __future__ import annotations

import contextlib
import http.server
import ssl
import threading
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def serve_https(files: dict[str, bytes], ca: Any) -> Iterator[str]:
    """Serve `files` (path -> bytes) over HTTPS on 127.0.0.1 with a certificate from the test CA;
    yields the base URL."""
    pair = ca.issue("artifact-server", common_name="127.0.0.1", ips=("127.0.0.1",))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pair.cert), str(pair.key))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
