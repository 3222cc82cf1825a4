"""Admission and conversion webhooks, served as the controllers' pods would serve them: one HTTPS
server on 127.0.0.1 that answers, for each webhook Service registered with it, under that Service's
DNS name (TLS SNI `<service>.<namespace>.svc`, the name the apiserver verifies) with a serving
certificate signed by the CA the controller put into the webhook's caBundle. Reached through the
test apiserver's cluster network (substrate/cluster_net.py).

It is a FAKE of the webhook handlers themselves: every AdmissionReview is allowed unchanged, and a
ConversionReview returns the objects relabelled with the requested apiVersion (the versions of the
CRDs converted here differ in no field the tests use). What is real: the apiserver calls the
webhooks the charts register (failurePolicy Fail), over TLS checked against the caBundle the
controller injected, only while a ready workload backs the Service.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())  # fmt: skip


def make_ca(name: str) -> tuple[bytes, bytes]:
    """A self-signed CA (cert PEM, key PEM), as a controller's cert rotator makes one."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def issue(ca_cert: bytes, ca_key: bytes, *, common_name: str, dns: tuple[str, ...] = (),
          is_ca: bool = False, days: int = 90) -> tuple[bytes, bytes]:
    """A certificate (PEM, key PEM) signed by the CA; `ca_cert == b""` makes it self-signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    if ca_cert:
        signer = serialization.load_pem_private_key(ca_key, password=None)
        issuer = x509.load_pem_x509_certificate(ca_cert).subject
    else:
        signer, issuer = key, subject
    assert isinstance(signer, ec.EllipticCurvePrivateKey)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )  # fmt: skip
    if not is_ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    cert = builder.sign(signer, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


class WebhookServer:
    """The HTTPS endpoint of every registered webhook Service (see the module doc)."""

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="kvtest-webhooks-"))
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._cas: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.reviews: list[dict[str, Any]] = []  # what the apiserver asked: name, path, kind, operation
        default = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        default.sni_callback = self._pick
        cert, key = issue(b"", b"", common_name="unknown-webhook")
        default.load_cert_chain(*self._files("default", cert, key))
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                review = json.loads(self.rfile.read(length) or b"{}")
                name = str(self.headers.get("Host", "")).rsplit(":", 1)[0]
                body = json.dumps(server.answer(name, self.path, review)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self._http.socket = default.wrap_socket(self._http.socket, server_side=True,
                                                do_handshake_on_connect=False)  # fmt: skip
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(target=self._http.serve_forever, name="webhooks", daemon=True)
        self._thread.start()

    def _files(self, name: str, cert: bytes, key: bytes) -> tuple[str, str]:
        cert_path, key_path = self._dir / f"{name}.crt", self._dir / f"{name}.key"
        cert_path.write_bytes(cert)
        key_path.write_bytes(key)
        return str(cert_path), str(key_path)

    def _pick(self, sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _ctx: ssl.SSLContext) -> None:
        with self._lock:
            ctx = self._contexts.get(name or "")
        if ctx is not None:
            sock.context = ctx

    def serve(self, service: str, namespace: str, ca_cert: bytes, ca_key: bytes) -> None:
        """Answer for Service `service` in `namespace` with a certificate from this CA (again after
        the controller rotated its CA)."""
        name = f"{service}.{namespace}.svc"
        with self._lock:
            if self._cas.get(name) == ca_cert:
                return
        cert, key = issue(ca_cert, ca_key, common_name=name,
                          dns=(name, f"{service}.{namespace}", f"{name}.cluster.local"))  # fmt: skip
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self._files(name, cert, key))
        with self._lock:
            self._contexts[name] = ctx
            self._cas[name] = ca_cert

    def serves(self, service: str, namespace: str) -> bool:
        with self._lock:
            return f"{service}.{namespace}.svc" in self._contexts

    def answer(self, name: str, path: str, review: dict[str, Any]) -> dict[str, Any]:
        request = review.get("request") or {}
        self.reviews.append({"name": name, "path": path, "kind": review.get("kind"),
                             "operation": request.get("operation")})  # fmt: skip
        if review.get("kind") == "ConversionReview":
            want = request.get("desiredAPIVersion")
            objects = [{**o, "apiVersion": want} for o in request.get("objects") or []]
            return {"apiVersion": review.get("apiVersion", "apiextensions.k8s.io/v1"), "kind": "ConversionReview",
                    "response": {"uid": request.get("uid"), "result": {"status": "Success"},
                                 "convertedObjects": objects}}  # fmt: skip
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": {"uid": request.get("uid"), "allowed": True}}  # fmt: skip

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(5)
