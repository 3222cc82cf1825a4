"""Hostile registries and artifact servers: what a registry or download server may answer, and what
kvinstall does with it.

STAND-INS: the misbehaving servers are tests/substrate/hostile.py StandIns on 127.0.0.1 (TLS from
the test CA where the case is about https): no real registry sends uploads to another host or to
plain http on request, so these stand in for one that does (compromised, misconfigured, or behind
a hostile proxy). The bundle pushed at them is a real one, made from the real docker-registry of
the substrate. `mirror push` runs as the real CLI; the pull side runs in-process (what it raises
decides the exit code) against the same stand-ins.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kvinstall.components.artifacts import ArtifactCache
from kvinstall.components.base import Artifact
from kvinstall.errors import ArtifactError, IntegrityError, KvError, RegistryError
from kvinstall.mirror import RegistryOptions, create_bundle
from substrate.hostile import OCI_MANIFEST, Request, StandIn, SyntheticRegistry
from substrate.oci_images import SeededImages
from substrate.pki import CA
from substrate.registries import Registries

pytestmark = pytest.mark.integration

USER, PASSWORD = "kvpush", "s3cret-push-password"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@pytest.fixture(scope="module")
def bundle(
    registries: Registries, oci_images: SeededImages, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("hostile-registries") / "bundle.tar"
    create_bundle(
        [oci_images.single.ref], out, registries={registries.upstream.host: RegistryOptions(insecure=True)}
    )
    return out


@pytest.fixture
def servers() -> Iterator[Callable[..., StandIn]]:
    made: list[StandIn] = []

    def make(handle: Callable[[Request], None], ca: CA | None = None) -> StandIn:
        made.append(StandIn(handle, ca))
        return made[-1]

    yield make
    for s in made:
        s.close()


def site_registry(
    upload: Callable[[], str] | None = None, challenge: str | None = None
) -> Callable[[Request], None]:
    """A site registry stand-in with a login: answers as distribution does until the upload starts,
    then sends the upload wherever `upload()` says."""

    def handle(req: Request) -> None:
        if req.headers.get("Authorization") != BASIC:
            req.reply(401, b"{}", {"WWW-Authenticate": challenge or 'Basic realm="site"'})
            return
        if req.path == "/v2/":
            req.reply(200, b"{}")
        elif req.command == "HEAD":
            req.reply(404)
        elif req.command == "POST" and upload is not None:
            req.reply(202, headers={"Location": upload()})
        else:
            req.reply(404, b'{"errors":[{"code":"NOT_FOUND","message":"no"}]}')

    return handle


def no_login(seen: list[tuple[str, str, dict[str, str]]]) -> bool:
    return all("Authorization" not in headers for _, _, headers in seen)


def push(bundle: Path, registry: StandIn, ca: CA, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "NO_COLOR": "1"}
    args = ["mirror", "push", "--bundle", str(bundle), "--registry", registry.host, "--ca-file", str(ca.cert_path),
            "--username", USER, "--password-stdin", "--workers", "1"]  # fmt: skip
    return subprocess.run([sys.executable, "-m", "kvinstall", *args], input=PASSWORD + "\n", env=env,
                          capture_output=True, text=True, timeout=180)  # fmt: skip


def registry_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 10, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr and PASSWORD not in proc.stdout + proc.stderr
    for f in fragments:
        assert f in proc.stderr, proc.stderr


def test_upload_location_on_another_host_gets_no_credentials(
    bundle: Path, servers: Callable[..., StandIn], registry_ca: CA, tmp_path: Path
) -> None:
    # Another origin (same address, other port), over https, asking for a login as a registry would.
    foreign = servers(
        lambda r: r.reply(401, b"{}", {"WWW-Authenticate": 'Basic realm="elsewhere"'}), registry_ca
    )
    site = servers(site_registry(upload=lambda: f"{foreign.url}/v2/x/blobs/uploads/1?state=s"), registry_ca)
    proc = push(bundle, site, registry_ca, tmp_path)
    registry_error(proc, "not the registry's own address", "kvinstall sends credentials only to the registry")
    assert foreign.seen and no_login(foreign.seen)
    assert any(h.get("Authorization") == BASIC for _, _, h in site.seen)  # the registry itself got it


def test_upload_location_on_plain_http_is_not_followed(
    bundle: Path, servers: Callable[..., StandIn], registry_ca: CA, tmp_path: Path
) -> None:
    plain = servers(lambda r: r.reply(202, headers={"Location": "/x"}))
    site = servers(site_registry(upload=lambda: f"http://{site.host}/v2/x/blobs/uploads/1"), registry_ca)
    proc = push(bundle, site, registry_ca, tmp_path)
    registry_error(proc, "only https is followed")
    plain_again = servers(site_registry(upload=lambda: f"{plain.url}/upload"), registry_ca)
    registry_error(
        push(bundle, plain_again, registry_ca, tmp_path), f"the registry sent the upload to {plain.url}"
    )
    assert plain.seen == []  # nothing, not even the blob, went over plain http


def test_token_realm_on_plain_http_gets_no_credentials(
    bundle: Path, servers: Callable[..., StandIn], registry_ca: CA, tmp_path: Path
) -> None:
    plain = servers(lambda r: r.reply(200, b'{"token": "t"}'))
    site = servers(site_registry(challenge=f'Bearer realm="{plain.url}/token",service="site"'), registry_ca)
    registry_error(push(bundle, site, registry_ca, tmp_path), "sends credentials only over https")
    assert plain.seen == []


def test_redirect_to_plain_http_is_refused(
    bundle: Path, servers: Callable[..., StandIn], registry_ca: CA, tmp_path: Path
) -> None:
    plain = servers(lambda r: r.reply(200, b"{}"))
    site = servers(lambda r: r.reply(307, headers={"Location": f"{plain.url}{r.path}"}), registry_ca)
    registry_error(
        push(bundle, site, registry_ca, tmp_path),
        f"refused a redirect from {site.url}/v2/ to {plain.url}/v2/",
    )
    assert plain.seen == []


def test_an_oversized_answer_is_not_read(
    bundle: Path, servers: Callable[..., StandIn], registry_ca: CA, tmp_path: Path
) -> None:
    def handle(req: Request) -> None:
        if req.path == "/v2/":
            req.reply(200, b"{}")
        elif req.command == "HEAD":
            req.reply(404)
        else:  # a 2 GiB "error" body, of which at most the cap is ever read
            req.send_response(400)
            req.send_header("Content-Length", str(2 << 30))
            req.end_headers()
            for _ in range(64):
                req.wfile.write(b"x" * (1 << 20))

    site = servers(handle, registry_ca)
    proc = subprocess.run(
        [sys.executable, "-m", "kvinstall", "mirror", "push", "--bundle", str(bundle), "--registry", site.host,
         "--ca-file", str(registry_ca.cert_path), "--workers", "1"],
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    registry_error(proc, "the registry's answer is larger than 1048576 bytes")


# --- the pull side: what `mirror create` accepts from a registry ------------------------------------


def pull(registry: StandIn, ref: str, tmp_path: Path) -> KvError:
    with pytest.raises(KvError) as exc:
        create_bundle(
            [f"{registry.host}/{ref}"],
            tmp_path / "b.tar",
            registries={registry.host: RegistryOptions(insecure=True)},
        )
    return exc.value


def test_a_manifest_larger_than_the_cap(servers: Callable[..., StandIn], tmp_path: Path) -> None:
    big = json.dumps({"schemaVersion": 2, "layers": [], "pad": "x" * (5 << 20)}).encode()
    reg = servers(
        lambda r: (
            r.reply(200, big, {"Content-Type": OCI_MANIFEST})
            if "/manifests/" in r.path
            else r.reply(200, b"{}")
        )
    )
    err = pull(reg, "a/b:v1", tmp_path)
    assert isinstance(err, IntegrityError) and err.exit_code == 11 and "larger than 4194304" in str(err)


@pytest.mark.parametrize(
    ("manifest", "field"),
    [
        ({"schemaVersion": 2, "layers": {"digest": "x"}}, "layers: expected a list"),
        ({"schemaVersion": 2, "layers": [{"digest": "sha256:../../etc/passwd", "size": 3}]}, "layers[0].digest"),
        ({"schemaVersion": 2, "config": {"digest": "sha256:" + "a" * 64, "size": "1"}}, "config.size"),
        ({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [7]},
         "manifests[0]: expected an object"),
    ],
)  # fmt: skip
def test_malformed_manifests_from_a_registry(
    servers: Callable[..., StandIn], tmp_path: Path, manifest: dict[str, Any], field: str
) -> None:
    data = json.dumps(manifest).encode()
    media = manifest.get("mediaType", OCI_MANIFEST)
    reg = servers(
        lambda r: (
            r.reply(200, data, {"Content-Type": media}) if "/manifests/" in r.path else r.reply(200, b"{}")
        )
    )
    err = pull(reg, "a/b:v1", tmp_path)
    assert isinstance(err, IntegrityError) and field in str(err) and "a/b:v1" in str(err)


def test_a_blob_longer_than_its_descriptor(tmp_path: Path) -> None:
    """The registry keeps sending past the blob's size: stopped, not written to the end of the disk."""
    with SyntheticRegistry(layers=1, layer_size=4096) as reg:
        digest = next(d for d, b in reg.blobs.items() if len(b) == 4096)
        reg.blobs[digest] += b"\0" * (8 << 20)  # same name, 8 MiB more than the manifest says
        err = pull(reg, "a/b:v1", tmp_path)
    assert isinstance(err, IntegrityError) and "sent more than its 4096 bytes" in str(err)
    assert not any(p.stat().st_size > 4096 for p in tmp_path.rglob("*.partial"))


def test_a_registry_redirecting_a_blob_to_plain_http(
    servers: Callable[..., StandIn], registry_ca: CA, tmp_path: Path
) -> None:
    plain = servers(lambda r: r.reply(200, b"x"))
    with SyntheticRegistry(layers=1, layer_size=1024, ca=registry_ca) as reg:
        redirecting = servers(
            lambda r: (
                r.reply(302, headers={"Location": f"{plain.url}/blob"})
                if "/blobs/" in r.path
                else reg.handle(r)
            ),
            registry_ca,
        )
        with pytest.raises(RegistryError) as exc:
            create_bundle([f"{redirecting.host}/a/b:v1"], tmp_path / "b.tar",
                          registries={redirecting.host: RegistryOptions(ca_file=str(registry_ca.cert_path))})  # fmt: skip
    assert f"to {plain.url}/blob: only https is followed" in str(exc.value) and exc.value.exit_code == 10
    assert plain.seen == []


# --- artifact downloads --------------------------------------------------------------------------------


def artifact(url: str) -> Artifact:
    return Artifact(name="kubevirt-operator", kind="url", source=url, version="v1.8.4")


def test_artifact_redirect_to_plain_http_is_refused_naming_both(
    servers: Callable[..., StandIn], registry_ca: CA, tmp_path: Path
) -> None:
    plain = servers(lambda r: r.reply(200, b"kind: Namespace\n"))
    files = servers(lambda r: r.reply(302, headers={"Location": f"{plain.url}/operator.yaml"}), registry_ca)
    cache = ArtifactCache(tmp_path / "cache", verify=str(registry_ca.cert_path), backoff=0.01)
    with pytest.raises(ArtifactError) as exc:
        cache.get(artifact(f"{files.url}/operator.yaml"))
    assert f"{files.url}/operator.yaml" in str(exc.value) and f"{plain.url}/operator.yaml" in str(exc.value)
    assert exc.value.exit_code == 12
    assert plain.seen == [] and not (tmp_path / "cache" / "lock.json").exists()  # nothing trusted


def test_artifact_redirects_within_https_are_followed(
    servers: Callable[..., StandIn], registry_ca: CA, tmp_path: Path
) -> None:
    body = b"apiVersion: v1\nkind: Namespace\nmetadata: {name: kubevirt}\n"
    target = servers(lambda r: r.reply(200, body), registry_ca)
    files = servers(lambda r: r.reply(302, headers={"Location": f"{target.url}/o.yaml"}), registry_ca)
    cache = ArtifactCache(tmp_path / "cache", verify=str(registry_ca.cert_path), backoff=0.01)
    assert cache.get(artifact(f"{files.url}/o.yaml")) == body
    assert json.loads((tmp_path / "cache" / "lock.json").read_text())  # trusted on first use, recorded


def test_require_pinned_refuses_trust_on_first_use(
    servers: Callable[..., StandIn], registry_ca: CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = servers(lambda r: r.reply(200, b"kind: Namespace\n"), registry_ca)
    monkeypatch.setenv("KVINSTALL_REQUIRE_PINNED", "1")
    cache = ArtifactCache(tmp_path / "cache", verify=str(registry_ca.cert_path), backoff=0.01)
    with pytest.raises(ArtifactError, match="refuses trust on first use"):
        cache.get(artifact(f"{files.url}/o.yaml"))
    assert files.seen == []
