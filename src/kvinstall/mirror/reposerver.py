"""The package repository server `mirror serve` runs: static files over HTTPS (Python's http.server
with TLS), GET and HEAD only, no directory listings.

    python -m kvinstall.mirror.reposerver --root DIR --address ADDR --port PORT --cert CRT --key KEY
"""

from __future__ import annotations

import argparse
import functools
import http.server
import signal
import socket
import ssl
import sys
from typing import Any


class _Handler(http.server.SimpleHTTPRequestHandler):
    server_version = "kvinstall-repo"
    sys_version = ""

    def list_directory(self, path: Any) -> None:
        self.send_error(404, "Not found")
        return None

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any, context: ssl.SSLContext) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._context = context
        super().__init__(address, handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        sock.settimeout(60)  # a client that stalls the handshake does not hold a thread forever
        return self._context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        sys.stderr.write(f"{client_address}: {type(exc).__name__}: {exc}\n")


def serve(root: str, address: str, port: int, cert: str, key: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    handler = functools.partial(_Handler, directory=root)
    with _Server((address, port), handler, context) as server:
        sys.stderr.write(f"serving {root} on https://{address}:{port}\n")
        sys.stderr.flush()
        server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="kvinstall-reposerver")
    p.add_argument("--root", required=True)
    p.add_argument("--address", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    a = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        serve(a.root, a.address, a.port, a.cert, a.key)
    except OSError as exc:
        sys.stderr.write(f"cannot serve on {a.address}:{a.port}: {exc.strerror or exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
