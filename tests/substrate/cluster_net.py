"""The cluster network as the test apiserver sees it: the kube-apiserver sends what it would send into
the cluster (calls to admission and conversion webhooks behind Services) through its egress selector,
configured to an HTTP CONNECT proxy on a unix socket (`--egress-selector-config-file`, the mechanism
real clusters use for Konnectivity). The proxy asks `route(host, port)` where a connection to a Service's
ClusterIP:port goes: a (host, port) on 127.0.0.1 to tunnel to, or None for "nothing answers there"
(no ready endpoint), which the apiserver sees as a failed dial, as it would on a real cluster. With
no route set every connection is refused, as before this existed.

Nothing else uses the cluster egress here (no kubelets, no aggregated APIs), and the proxy only ever
connects to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Callable
from pathlib import Path

Route = Callable[[str, int], "tuple[str, int] | None"]

EGRESS_CONFIG = """apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: {path}
"""


class ConnectProxy:
    """A small HTTP CONNECT proxy on a unix socket for the apiserver's cluster egress (one thread per
    tunnel, each ends when either side closes or the proxy closes)."""

    def __init__(self, path: Path) -> None:
        self.route: Route | None = None
        self.connects: list[tuple[str, int, bool]] = []  # (host, port, routed), in order
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(path))
        self._sock.listen(64)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="cluster-net-proxy", daemon=True)
        self._thread.start()

    def write_config(self, path: Path) -> Path:
        path.write_text(EGRESS_CONFIG.format(path=self.path))
        return path

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name="cluster-net-tunnel", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.closing(conn):
            conn.settimeout(30)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk or len(head) > 16384:
                    return
                head += chunk
            request = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            if len(request) < 2 or request[0] != "CONNECT":
                conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                return
            host, _, port = request[1].rpartition(":")
            target = None
            route = self.route
            if route is not None and port.isdigit():
                target = route(host.strip("[]"), int(port))
            self.connects.append((host, int(port) if port.isdigit() else 0, target is not None))
            if target is None or target[0] != "127.0.0.1":
                conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
                return
            try:
                upstream = socket.create_connection(target, timeout=10)
            except OSError:
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                return
            with contextlib.closing(upstream):
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                rest = head.split(b"\r\n\r\n", 1)[1]
                if rest:
                    upstream.sendall(rest)
                _pipe(conn, upstream, self._stop)


def _pipe(a: socket.socket, b: socket.socket, stop: threading.Event) -> None:
    a.settimeout(None)
    b.settimeout(None)
    peers = {a: b, b: a}
    while not stop.is_set():
        readable, _, _ = select.select(list(peers), [], [], 1.0)
        for s in readable:
            try:
                data = s.recv(65536)
            except OSError:
                return
            if not data:
                return
            try:
                peers[s].sendall(data)
            except OSError:
                return
