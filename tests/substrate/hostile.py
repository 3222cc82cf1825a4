"""Misbehaving servers on 127.0.0.1, for the hostile-input suite (tests/*/test_hostile_*.py).

STAND-INS: the real world cannot be asked to misbehave on cue (a registry that sends uploads to
another host, redirects to plain http, answers with gigabytes, or a link that crawls), so these
small servers do it. Each says what it stands in for; tests that use them say so too.

- ``StandIn(handle, ca=None)``: an HTTP(S) server calling ``handle(request)`` for every request;
  ``request`` is the BaseHTTPRequestHandler (``.command``, ``.path``, ``.headers``, ``.body()``,
  ``.reply(status, body=b"", headers={})``). Every request is recorded in ``.seen`` as
  (method, path, headers dict). TLS with a certificate from the test CA when ``ca`` is given.
- ``SyntheticRegistry(ca=None)``: an OCI registry (pull side only) that serves one generated image
  for every repository and tag; blobs honour Range and, while ``.slow`` is set, crawl at 1 KiB per
  half second (a stand-in for a registry behind a link that all but stalls). ``.blob_requests``
  counts blob GETs; ``.image_bytes`` is what the image's blobs weigh.
- ``SlowLink(target_port)``: a TCP proxy to 127.0.0.1:target_port that, while ``.slow`` is set,
  relays 1 KiB per half second each way (a stand-in for a crawling WAN link in front of a real
  registry); ``.sent`` counts the bytes relayed towards the target.
Every thread is a daemon and every server stops with ``.close()``; loops are bounded by ``.closed``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .pki import CA

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


class Request(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _any(self) -> None:
        self.server.owner.seen.append((self.command, self.path, dict(self.headers.items())))
        # The client may go away mid-answer: that is often what the misbehaviour is for.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.server.owner.handle(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: StandIn


class StandIn:
    def __init__(self, handle: Callable[[Request], None], ca: CA | None = None) -> None:
        self.handle = handle
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.closed = threading.Event()
        self.httpd = _Server(("127.0.0.1", 0), Request)
        self.httpd.owner = self
        if ca is not None:
            pair = ca.issue("hostile-standin", common_name="127.0.0.1", ips=("127.0.0.1",))
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(pair.cert), str(pair.key))
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"{'https' if ca is not None else 'http'}://{self.host}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.closed.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> StandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


SLOW_PIECE = 1024
SLOW_PAUSE = 0.5


class SyntheticRegistry(StandIn):
    """See the module doc."""

    def __init__(self, layers: int = 16, layer_size: int = 256 << 10, ca: CA | None = None) -> None:
        self.slow = threading.Event()
        self.blob_requests = 0
        self.blobs: dict[str, bytes] = {}
        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
        self.blobs[_sha(config)] = config
        descs = []
        for _ in range(layers):
            data = os.urandom(layer_size)
            self.blobs[_sha(data)] = data
            descs.append({"mediaType": OCI_LAYER, "digest": _sha(data), "size": len(data)})
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": _sha(config), "size": len(config)},
            "layers": descs,
        }).encode()  # fmt: skip
        self.image_bytes = sum(len(b) for b in self.blobs.values())
        super().__init__(self._serve, ca)

    def _serve(self, req: Request) -> None:
        path = req.path.split("?")[0]
        if path == "/v2/":
            req.reply(200, b"{}")
            return
        if "/manifests/" in path:
            req.reply(
                200,
                self.manifest,
                {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": _sha(self.manifest)},
            )
            return
        data = self.blobs.get(path.rsplit("/", 1)[-1]) if "/blobs/" in path else None
        if data is None:
            req.reply(404, b'{"errors":[{"code":"NOT_FOUND"}]}')
            return
        start = 0
        rng = req.headers.get("Range", "")
        if rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
        if start >= len(data):
            req.reply(416)
            return
        self.blob_requests += 1
        req.send_response(206 if start else 200)
        req.send_header("Content-Length", str(len(data) - start))
        req.end_headers()
        pos = start
        while pos < len(data) and not self.closed.is_set():
            piece = SLOW_PIECE if self.slow.is_set() else 1 << 20
            req.wfile.write(data[pos : pos + piece])
            req.wfile.flush()
            pos += piece
            if self.slow.is_set():
                time.sleep(SLOW_PAUSE)


class SlowLink:
    """See the module doc."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.slow = threading.Event()
        self.slow.set()
        self.closed = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.connections = 0
        self.sent = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for a, b, out in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(a, b, out), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, outbound: bool) -> None:
        try:
            while not self.closed.is_set():
                data = src.recv(SLOW_PIECE if self.slow.is_set() else 1 << 20)
                if not data:
                    break
                dst.sendall(data)
                if outbound:
                    self.sent += len(data)
                if self.slow.is_set():
                    time.sleep(SLOW_PAUSE)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closed.set()
        self.listener.close()
