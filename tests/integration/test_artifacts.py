"""The artifact cache against real servers: a local HTTPS file server (started here, self-signed CA
from substrate.pki, passed to requests with verify=) serving the real Kube-OVN chart and small
files made here (the cache treats every file alike; a few bytes show a tampered or resumed download
better than a large one), and the TLS docker-registry of the substrate for OCI artifacts and offline mode."""

from __future__ import annotations

import hashlib
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from kvinstall.components.artifacts import ArtifactCache, NoFetch, OfflineRegistry
from kvinstall.errors import ArtifactError, IntegrityError
from kvinstall.mirror.model import artifact_oci_ref, artifact_repository, artifact_tag
from kvinstall.model import Artifact
from substrate.oci_images import OCI_MANIFEST, Blob, canonical_json, push_blob, push_manifest
from substrate.pki import CA
from substrate.registries import Registries
from upstream_pack import artifact_bytes

pytestmark = pytest.mark.integration

CHART = artifact_bytes("kubeovn", "v1.16.2")["kube-ovn-chart"]
MANIFEST = b"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kubevirt\n"


class FileServer:
    """HTTPS on 127.0.0.1 serving `files` (path -> bytes); counts GETs per path; can fail on demand."""

    def __init__(self, ca: CA) -> None:
        self.files: dict[str, bytes] = {}
        self.hits: dict[str, int] = {}
        self.fail_next: dict[str, int] = {}  # path -> how many 503s to answer first
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                if server.fail_next.get(self.path, 0) > 0:
                    server.fail_next[self.path] -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                body = server.files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        pair = ca.issue("artifact-server", common_name="127.0.0.1", ips=("127.0.0.1",))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pair.cert, pair.key)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        self.ca = str(ca.cert_path)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> FileServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FileServer]:
    srv = FileServer(CA(tmp_path / "ca")).start()
    yield srv
    srv.stop()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cache(tmp_path: Path, server: FileServer, **kw: object) -> ArtifactCache:
    return ArtifactCache(tmp_path / "cache", verify=server.ca, backoff=0.01, **kw)  # type: ignore[arg-type]


def url_artifact(server: FileServer, sha256: str | None) -> Artifact:
    return Artifact(
        name="kubevirt-operator",
        kind="url",
        source=f"{server.url}/kubevirt-operator.yaml",
        version="v1.8.4",
        sha256=sha256,
    )


def test_pinned_url_is_fetched_verified_and_cached(tmp_path: Path, server: FileServer) -> None:
    server.files["/kubevirt-operator.yaml"] = MANIFEST
    art = url_artifact(server, sha(MANIFEST))
    c = cache(tmp_path, server)
    assert c.get(art) == MANIFEST
    assert c.get(art) == MANIFEST
    assert cache(tmp_path, server).get(art) == MANIFEST  # a new process: same cache dir
    assert NoFetch(tmp_path / "cache").get(art) == MANIFEST
    assert server.hits["/kubevirt-operator.yaml"] == 1, "the cache is reused without a second fetch"
    assert c.path_for(sha(MANIFEST)).read_bytes() == MANIFEST


def test_tampered_artifact_is_refused(tmp_path: Path, server: FileServer) -> None:
    server.files["/kubevirt-operator.yaml"] = MANIFEST + b"  # injected\n"
    art = url_artifact(server, sha(MANIFEST))
    with pytest.raises(IntegrityError) as err:
        cache(tmp_path, server).get(art)
    text = str(err.value)
    assert "kubevirt-operator" in text
    assert sha(MANIFEST) in text and sha(MANIFEST + b"  # injected\n") in text
    assert err.value.exit_code == 11
    assert not (tmp_path / "cache" / "sha256").exists() or not any((tmp_path / "cache" / "sha256").iterdir())


def test_trust_on_first_use_records_and_then_enforces(tmp_path: Path, server: FileServer) -> None:
    server.files["/kubevirt-operator.yaml"] = MANIFEST
    art = url_artifact(server, None)
    c = cache(tmp_path, server)
    assert c.get(art) == MANIFEST
    lock = json.loads(c.lock_path.read_text())
    assert list(lock.values()) == [f"sha256:{sha(MANIFEST)}"]
    assert c.locked_digest(art) == sha(MANIFEST)
    # Upstream changes the file behind the same URL; the cached copy is still served ...
    server.files["/kubevirt-operator.yaml"] = b"kind: Changed\n"
    assert c.get(art) == MANIFEST
    assert server.hits["/kubevirt-operator.yaml"] == 1
    # ... and once the cache entry is gone, the changed download is refused against the lock.
    c.path_for(sha(MANIFEST)).unlink()
    with pytest.raises(IntegrityError, match="recorded in the lock file"):
        c.get(art)


def test_corrupted_cache_entry_is_fetched_again(tmp_path: Path, server: FileServer) -> None:
    server.files["/kubevirt-operator.yaml"] = MANIFEST
    art = url_artifact(server, sha(MANIFEST))
    c = cache(tmp_path, server)
    c.get(art)
    c.path_for(sha(MANIFEST)).write_bytes(b"bit rot")
    assert c.get(art) == MANIFEST
    assert server.hits["/kubevirt-operator.yaml"] == 2


def test_no_fetch_returns_none_when_not_cached(tmp_path: Path, server: FileServer) -> None:
    server.files["/kubevirt-operator.yaml"] = MANIFEST
    assert NoFetch(tmp_path / "cache").get(url_artifact(server, sha(MANIFEST))) is None
    assert NoFetch(tmp_path / "cache").get(url_artifact(server, None)) is None
    assert server.hits == {}


def test_transient_errors_are_retried_and_missing_files_are_errors(
    tmp_path: Path, server: FileServer
) -> None:
    server.files["/kubevirt-operator.yaml"] = MANIFEST
    server.fail_next["/kubevirt-operator.yaml"] = 2
    assert cache(tmp_path, server, retries=3).get(url_artifact(server, sha(MANIFEST))) == MANIFEST
    missing = Artifact(name="cdi-operator", kind="url", source=f"{server.url}/nope.yaml", version="v1")
    with pytest.raises(ArtifactError, match="HTTP 404") as err:
        cache(tmp_path, server).get(missing)
    assert "cdi-operator" in str(err.value)


def test_untrusted_certificate_is_refused(tmp_path: Path, server: FileServer) -> None:
    server.files["/kubevirt-operator.yaml"] = MANIFEST
    with pytest.raises(ArtifactError, match="TLS"):
        ArtifactCache(tmp_path / "c").get(url_artifact(server, sha(MANIFEST)))  # system trust store only


def _chart_repo(server: FileServer, chart: bytes, listed_digest: str) -> None:
    index = {
        "apiVersion": "v1",
        "entries": {
            "kube-ovn": [
                {
                    "name": "kube-ovn",
                    "version": "v1.15.0",
                    "urls": ["kube-ovn-v1.15.0.tgz"],
                    "digest": "0" * 64,
                },
                {
                    "name": "kube-ovn",
                    "version": "v1.16.2",
                    "urls": ["charts/kube-ovn-v1.16.2.tgz"],
                    "digest": listed_digest,
                },
            ]
        },
    }
    server.files["/repo/index.yaml"] = yaml.safe_dump(index).encode()
    server.files["/repo/charts/kube-ovn-v1.16.2.tgz"] = chart


def chart_artifact(server: FileServer, sha256: str | None) -> Artifact:
    return Artifact(
        name="kube-ovn-chart",
        kind="chart",
        source=f"{server.url}/repo",
        version="v1.16.2",
        chart="kube-ovn",
        sha256=sha256,
    )


def test_chart_from_repository_index(tmp_path: Path, server: FileServer) -> None:
    chart = CHART
    _chart_repo(server, chart, sha(chart))
    assert cache(tmp_path, server).get(chart_artifact(server, None)) == chart
    assert server.hits["/repo/charts/kube-ovn-v1.16.2.tgz"] == 1


def test_chart_not_matching_the_index_digest_is_refused(tmp_path: Path, server: FileServer) -> None:
    chart = CHART
    _chart_repo(server, chart, sha(b"something else"))
    with pytest.raises(IntegrityError, match="repository index lists"):
        cache(tmp_path, server).get(chart_artifact(server, None))


def test_chart_version_missing_from_the_index(tmp_path: Path, server: FileServer) -> None:
    _chart_repo(server, CHART, "")
    art = Artifact(
        name="kube-ovn-chart", kind="chart", source=f"{server.url}/repo", version="v9.9.9", chart="kube-ovn"
    )
    with pytest.raises(ArtifactError, match=r"v9\.9\.9 is not in the repository"):
        cache(tmp_path, server).get(art)


def _push_artifact(registries: Registries, repo: str, tag: str, content: bytes) -> None:
    reg = registries.tls
    config = Blob("application/vnd.oci.empty.v1+json", b"{}")
    layer = Blob("application/vnd.kvinstall.manifest.v1+yaml", content)
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.kvinstall.artifact.v1",
            "config": config.descriptor(),
            "layers": [layer.descriptor()],
        }
    )
    with reg.session() as s:
        push_blob(s, reg, repo, config)
        push_blob(s, reg, repo, layer)
        push_manifest(s, reg, repo, tag, manifest, OCI_MANIFEST)


def test_offline_artifacts_come_from_the_site_registry(tmp_path: Path, registries: Registries) -> None:
    art = Artifact(
        name="kubevirt-operator",
        kind="url",
        version="v1.8.4",
        sha256=sha(MANIFEST),
        source="https://github.invalid/kubevirt-operator.yaml",
    )  # never contacted offline
    reg = registries.tls
    _push_artifact(registries, artifact_repository(art), artifact_tag(art), MANIFEST)
    assert artifact_oci_ref(art, reg.host) == f"{reg.host}/kvinstall/artifacts/kubevirt-operator:v1.8.4"
    offline = OfflineRegistry(host=reg.host, ca_file=str(reg.ca))
    assert ArtifactCache(tmp_path / "cache", offline_registry=offline).get(art) == MANIFEST
    # A site registry holding other bytes under the same tag is refused.
    tampered = Artifact(
        name="kubevirt-operator", kind="url", version="v1.8.4", sha256=sha(b"other"), source=art.source
    )
    with pytest.raises(IntegrityError):
        ArtifactCache(tmp_path / "cache2", offline_registry=offline).get(tampered)


def test_oci_artifact_reference(tmp_path: Path, registries: Registries) -> None:
    reg = registries.tls
    _push_artifact(registries, "charts/dex", "0.24.0", b"chart bytes")
    art = Artifact(
        name="dex-chart",
        kind="oci",
        source=f"oci://{reg.host}/charts/dex:0.24.0",
        version="0.24.0",
        sha256=sha(b"chart bytes"),
    )
    assert ArtifactCache(tmp_path / "cache", verify=str(reg.ca)).get(art) == b"chart bytes"
