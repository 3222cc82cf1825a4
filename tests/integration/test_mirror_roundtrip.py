"""mirror create / push / verify against real docker-registry servers (tests/substrate/registries.py)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from kvinstall.errors import IntegrityError, RegistryError
from kvinstall.mirror import (
    HELM_CHART_LAYER,
    KV_BINARY_LAYER,
    KV_MANIFEST_LAYER,
    FileItem,
    RegistryClient,
    RegistryOptions,
    check_complete,
    create_bundle,
    inspect_bundle,
    push_bundle,
    rewrite_image,
    verify_bundle,
)
from substrate.oci_images import (
    OCI_INDEX,
    SeededImages,
    build_image,
    build_index,
    get_manifest,
    layer,
    push_image,
    push_index,
)
from substrate.procs import free_port
from substrate.registries import Registries, Registry

pytestmark = pytest.mark.integration

HELM = Path.home() / ".cache/kvinstall-test/v1.34.4/bin/helm"


def _opts(*regs: Registry) -> dict[str, RegistryOptions]:
    return {
        r.host: RegistryOptions(ca_file=str(r.ca) if r.ca else None, insecure=r.ca is None,
                                username=r.username, password=r.password)
        for r in regs
    }


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _chart_tgz(name: str, version: str) -> bytes:
    files = {
        f"{name}/Chart.yaml": f"apiVersion: v2\nname: {name}\nversion: {version}\n".encode(),
        f"{name}/values.yaml": b"replicas: 1\n",
        f"{name}/templates/cm.yaml": b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo\n",
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


@pytest.fixture
def files(tmp_path: Path) -> list[FileItem]:
    chart = tmp_path / "demo-0.1.0.tgz"
    chart.write_bytes(_chart_tgz("demo", "0.1.0"))
    binary = tmp_path / "kubeone"
    binary.write_bytes(os.urandom(300_000))
    manifest = tmp_path / "cdi-operator.yaml"
    manifest.write_bytes(b"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: cdi\n")
    return [
        FileItem("charts/demo", "0.1.0", str(chart), _sha(chart.read_bytes()), HELM_CHART_LAYER),
        FileItem("kvinstall/binaries/kubeone", "v1.9.0", str(binary), _sha(binary.read_bytes()),
                 KV_BINARY_LAYER),
        FileItem("kvinstall/manifests/cdi-operator", "v1.60.0", str(manifest), _sha(manifest.read_bytes()),
                 KV_MANIFEST_LAYER),
    ]


def test_round_trip_keeps_digests(
    registries: Registries, oci_images: SeededImages, files: list[FileItem], tmp_path: Path
) -> None:
    up, mirror = registries.upstream, registries.mirror
    out = tmp_path / "bundle.tar"
    seen: list[tuple[int, int]] = []
    result = create_bundle(
        [oci_images.single.ref, oci_images.multi.ref, *files], out, platforms=["all"],
        registries=_opts(up), progress=lambda d, t: seen.append((d, t)), workers=4,
    )
    assert out.is_file() and not (tmp_path / ".bundle.tar.work").exists()
    assert verify_bundle(out) == []
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == seen[-1][1] == result.bytes_downloaded
    # the shared base layer is stored once
    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert names.count(f"blobs/sha256/{oci_images.base_layer.digest.split(':')[1]}") == 1

    prefix = f"rt{uuid.uuid4().hex[:6]}"
    pushed = push_bundle(out, f"{mirror.host}/{prefix}", insecure=True, workers=4)
    assert pushed.blobs_mounted >= 1  # the base layer went to the second repository by mount
    for src in (oci_images.single, oci_images.multi):
        want, _ = get_manifest(up, src.repo, src.tag)
        got, media_type = get_manifest(mirror, f"{prefix}/{src.repo}", src.tag)
        assert got == want
    assert media_type == OCI_INDEX
    entries = {e.reference: e for e in inspect_bundle(out).entries}
    assert entries[oci_images.multi.ref].digest == oci_images.multi.digest

    # the chart is a real Helm OCI chart: helm pulls it from the mirror
    dest = tmp_path / "pulled"
    dest.mkdir()
    helm = subprocess.run(
        [str(HELM), "pull", f"oci://{mirror.host}/{prefix}/charts/demo", "--version", "0.1.0",
         "--plain-http", "-d", str(dest)],
        check=False, capture_output=True, timeout=60,
        env={**os.environ, "HELM_CONFIG_HOME": str(tmp_path / "h")},
    )
    assert helm.returncode == 0, helm.stderr.decode()
    assert (dest / "demo-0.1.0.tgz").read_bytes() == Path(files[0].source).read_bytes()
    # the binary comes back byte for byte from the layer its manifest names
    data, _ = get_manifest(mirror, f"{prefix}/kvinstall/binaries/kubeone", "v1.9.0")
    layer_desc = json.loads(data)["layers"][0]
    assert layer_desc["mediaType"] == KV_BINARY_LAYER
    assert layer_desc["digest"] == files[1].digest

    # completeness gate and rewrite, against the mirror
    site = f"{mirror.host}/{prefix}"
    refs = [rewrite_image(oci_images.single.ref, site), rewrite_image(oci_images.multi.digest_ref, site)]
    with RegistryClient(mirror.host, insecure=True) as client:
        sub = [r.replace(f"{mirror.host}/", "", 1) for r in refs]
        assert check_complete(client, [f"{mirror.host}/{s}" for s in sub], deep=True) == []
        missing = check_complete(client, [f"{site}/kvtest/absent:v1", *refs])
        assert len(missing) == 1 and "kvtest/absent" in missing[0]

    # a second push sends no blob bytes and puts no manifest
    again = push_bundle(out, f"{mirror.host}/{prefix}", insecure=True)
    assert again.bytes_sent == 0 and again.manifests_put == 0 and again.blobs_uploaded == 0


def test_platform_filter_rewrites_index(
    registries: Registries, oci_images: SeededImages, tmp_path: Path
) -> None:
    out = tmp_path / "amd64.tar"
    result = create_bundle([oci_images.multi.ref], out, registries=_opts(registries.upstream))
    (entry,) = result.entries
    assert entry.upstream_digest == oci_images.multi.digest and entry.digest != entry.upstream_digest
    prefix = f"pf{uuid.uuid4().hex[:6]}"
    push_bundle(out, f"{registries.mirror.host}/{prefix}", insecure=True)
    got, _ = get_manifest(registries.mirror, f"{prefix}/kvtest/multi", "v1")
    assert "sha256:" + _sha(got) == entry.digest
    (child,) = json.loads(got)["manifests"]
    assert child["platform"]["architecture"] == "amd64"
    assert oci_images.multi.index is not None
    assert child["digest"] == oci_images.multi.index.images[0].digest  # the platform manifest is unchanged


def test_tls_and_basic_auth_registries(
    registries: Registries, oci_images: SeededImages, tmp_path: Path
) -> None:
    out = tmp_path / "b.tar"
    create_bundle([oci_images.single.ref], out, registries=_opts(registries.upstream))
    tls, auth = registries.tls, registries.auth
    prefix = f"ta{uuid.uuid4().hex[:6]}"
    push_bundle(out, f"{tls.host}/{prefix}", ca_file=tls.ca)
    assert get_manifest(tls, f"{prefix}/kvtest/single", "v1")[0] == oci_images.single.image.manifest  # type: ignore[union-attr]
    push_bundle(out, f"{auth.host}/{prefix}", insecure=True, username=auth.username, password=auth.password)
    assert get_manifest(auth, f"{prefix}/kvtest/single", "v1")[0] == oci_images.single.image.manifest  # type: ignore[union-attr]
    # and back out of both with credentials / CA: the same digest again
    back = create_bundle(
        [f"{tls.host}/{prefix}/kvtest/single:v1", f"{auth.host}/{prefix}/kvtest/single:v1"],
        tmp_path / "back.tar", registries=_opts(tls, auth),
    )
    assert {e.digest for e in back.entries} == {oci_images.single.digest}

    with pytest.raises(RegistryError) as err:
        push_bundle(out, f"{auth.host}/{prefix}", insecure=True, username=auth.username, password="wrong")
    assert auth.host in str(err.value) and auth.password not in str(err.value)  # type: ignore[operator]
    with pytest.raises(RegistryError, match="TLS"):
        push_bundle(out, f"{tls.host}/{prefix}")  # the system trust store does not know the test CA


def _big_images(up: Registry, repo: str, n_layers: int = 4, size: int = 3 << 20) -> list[str]:
    """Two images sharing a base, each with incompressible layers (so transfers span many chunks)."""
    base = layer({"base.bin": os.urandom(size)})
    refs = []
    for name in ("a", "b"):
        own = tuple(layer({f"{name}{i}.bin": os.urandom(size)}) for i in range(n_layers - 1))
        img = build_image({f"{name}.txt": name.encode()}, "amd64", (base, *own))
        push_image(up, f"{repo}/{name}", "v1", img)
        refs.append(f"{up.host}/{repo}/{name}:v1")
    return refs


class Boom(Exception):
    pass


def test_interrupted_create_resumes(registries: Registries, tmp_path: Path) -> None:
    refs = _big_images(registries.upstream, f"ic{uuid.uuid4().hex[:6]}")
    out = tmp_path / "bundle.tar"
    seen = [0]

    def stop_after(done: int, total: int) -> None:
        seen[0] = max(seen[0], done)
        if done > total // 3:
            raise Boom()

    with pytest.raises(Boom):
        create_bundle(refs, out, registries=_opts(registries.upstream), progress=stop_after, workers=3)
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()
    first = seen[0]
    result = create_bundle(refs, out, registries=_opts(registries.upstream), workers=3)
    # exactly what was missing came over the wire: the first run's bytes were kept, partial blobs resumed
    assert 0 < first < result.bytes_total
    assert result.bytes_downloaded == result.bytes_total - first
    assert result.bytes_reused == first
    assert verify_bundle(out) == []


def _present_bytes(reg: Registry, repo_prefix: str, out: Path) -> int:
    """Blob bytes of the bundle the registry already has (asked over HTTP, independently of kvinstall)."""
    info = inspect_bundle(out)
    have = 0
    seen: set[str] = set()
    with reg.session() as s, tarfile.open(out) as tar:
        for entry in info.entries:
            data = tar.extractfile(f"blobs/sha256/{entry.digest.split(':')[1]}").read()  # type: ignore[union-attr]
            doc = json.loads(data)
            for b in [doc["config"], *doc["layers"]]:
                if b["digest"] in seen:
                    continue
                repo = f"{repo_prefix}/{entry.repository}" if repo_prefix else entry.repository
                r = s.head(f"{reg.url}/v2/{repo}/blobs/{b['digest']}", timeout=10)
                if r.status_code == 200:
                    seen.add(b["digest"])
                    have += b["size"]
    return have


def test_interrupted_push_resumes(registries: Registries, registry_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    refs = _big_images(registries.upstream, f"ip{uuid.uuid4().hex[:6]}")
    out = tmp_path / "bundle.tar"
    total = create_bundle(refs, out, registries=_opts(registries.upstream)).bytes_total
    target: Registry = registry_factory("push-int")

    def stop_after(done: int, total: int) -> None:
        if done > total // 2:
            raise Boom()

    with pytest.raises(Boom):
        push_bundle(out, target.host, insecure=True, progress=stop_after, workers=2)
    present = _present_bytes(target, "", out)
    assert 0 < present < total
    result = push_bundle(out, target.host, insecure=True, workers=2)
    assert result.bytes_sent == total - present
    for ref in refs:
        repo = ref.split("/", 1)[1].rsplit(":", 1)[0]
        assert get_manifest(target, repo, "v1")[0] == get_manifest(registries.upstream, repo, "v1")[0]


def test_killed_push_process_resumes(registries: Registries, registry_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    refs = _big_images(registries.upstream, f"kp{uuid.uuid4().hex[:6]}")
    out = tmp_path / "bundle.tar"
    total = create_bundle(refs, out, registries=_opts(registries.upstream)).bytes_total
    target: Registry = registry_factory("push-kill")
    script = (
        "import sys\n"
        "from kvinstall.mirror import push_bundle\n"
        "def p(d, t):\n    print(d, t, flush=True)\n"
        f"push_bundle({str(out)!r}, {target.host!r}, insecure=True, progress=p, workers=1)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if int(line.split()[0]) > total // 2:
            proc.kill()  # SIGKILL: no cleanup of any kind
            break
    proc.wait(timeout=30)
    # A blob whose last request was already sent may still be committed by the registry just after
    # the kill: measure once that has settled (bounded).
    present = _present_bytes(target, "", out)
    for _ in range(20):
        time.sleep(0.3)
        again = _present_bytes(target, "", out)
        if again == present:
            break
        present = again
    assert 0 < present < total
    result = push_bundle(out, target.host, insecure=True)
    assert result.bytes_sent == total - present
    assert verify_bundle(out) == []


def test_registry_restarted_mid_push(registries: Registries, registry_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    refs = _big_images(registries.upstream, f"rr{uuid.uuid4().hex[:6]}")
    out = tmp_path / "bundle.tar"
    create_bundle(refs, out, registries=_opts(registries.upstream))
    target: Registry = registry_factory("push-restart")
    restarted = [False]

    def restart_once(done: int, total: int) -> None:
        if not restarted[0] and done > total // 3:
            restarted[0] = True
            target.restart()

    result = push_bundle(out, target.host, insecure=True, progress=restart_once, workers=2)
    assert restarted[0]
    assert result.bytes_sent > 0
    for ref in refs:
        repo = ref.split("/", 1)[1].rsplit(":", 1)[0]
        assert get_manifest(target, repo, "v1")[0] == get_manifest(registries.upstream, repo, "v1")[0]


def test_flipped_bit_is_named(registries: Registries, oci_images: SeededImages, tmp_path: Path) -> None:
    out = tmp_path / "bundle.tar"
    create_bundle([oci_images.single.ref], out, registries=_opts(registries.upstream))
    assert oci_images.single.image is not None
    victim = oci_images.single.image.layers[-1].digest
    with tarfile.open(out) as tar:
        offset = tar.getmember(f"blobs/sha256/{victim.split(':')[1]}").offset_data
    with open(out, "r+b") as fh:
        fh.seek(offset + 10)
        byte = fh.read(1)
        fh.seek(offset + 10)
        fh.write(bytes([byte[0] ^ 0x01]))
    problems = verify_bundle(out)
    assert [p.digest for p in problems] == [victim]
    assert oci_images.single.ref in str(problems[0])
    with pytest.raises(IntegrityError) as err:
        push_bundle(out, f"{registries.mirror.host}/bf{uuid.uuid4().hex[:6]}", insecure=True)
    assert victim in str(err.value) and oci_images.single.ref in str(err.value)


def test_multi_arch_index_from_two_platform_filters(
    registries: Registries, tmp_path: Path
) -> None:
    """linux/amd64 + linux/arm64 of a three-platform index: a rewritten two-entry index that pushes."""
    up = registries.upstream
    repo = f"ma{uuid.uuid4().hex[:6]}/tri"
    imgs = [build_image({"a": arch.encode()}, arch) for arch in ("amd64", "arm64", "s390x")]
    push_index(up, repo, "v1", build_index(imgs))
    out = tmp_path / "b.tar"
    res = create_bundle([f"{up.host}/{repo}:v1"], out, platforms=["linux/amd64", "linux/arm64"],
                        registries=_opts(up))
    push_bundle(out, f"{registries.mirror.host}/x", insecure=True)
    got, _ = get_manifest(registries.mirror, f"x/{repo}", "v1")
    assert [m["digest"] for m in json.loads(got)["manifests"]] == [imgs[0].digest, imgs[1].digest]
    assert "sha256:" + _sha(got) == res.entries[0].digest


def test_missing_bundle_and_unreachable_registry(tmp_path: Path, oci_images: SeededImages,
                                                 registries: Registries) -> None:
    out = tmp_path / "b.tar"
    create_bundle([oci_images.single.ref], out, registries=_opts(registries.upstream))
    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(RegistryError) as err:
        push_bundle(out, host, insecure=True)
    assert host in str(err.value)
    shutil.copy(out, tmp_path / "cut.tar")
    with open(tmp_path / "cut.tar", "r+b") as fh:
        fh.truncate(2048)
    assert verify_bundle(tmp_path / "cut.tar")


def test_disk_full_is_clear_and_leaves_no_bundle(registries: Registries, tmp_path: Path) -> None:
    """create into a 4 MiB tmpfs (mounted in a user+mount namespace: no root needed)."""
    refs = _big_images(registries.upstream, f"df{uuid.uuid4().hex[:6]}", n_layers=2, size=3 << 20)
    small = tmp_path / "small"
    small.mkdir()
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from kvinstall.errors import KvError\n"
        "from kvinstall.mirror import create_bundle, RegistryOptions\n"
        "try:\n"
        f"    create_bundle({refs!r}, Path({str(small / 'bundle.tar')!r}),"
        f" registries={{{registries.upstream.host!r}: RegistryOptions(insecure=True)}})\n"
        "    print(json.dumps({'ok': True}))\n"
        "except KvError as e:\n"
        "    print(json.dumps({'ok': False, **e.to_dict()}))\n"
        "import os\n"
        f"print(json.dumps(sorted(os.listdir({str(small)!r}))))\n"
    )
    proc = subprocess.run(
        ["unshare", "-Urm", "sh", "-c",
         f'mount -t tmpfs -o size=4m tmpfs "{small}" && exec "$0" -c "$1"', sys.executable, script],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    outcome, listing = (json.loads(line) for line in proc.stdout.strip().splitlines()[-2:])
    assert outcome["ok"] is False and outcome["exitCode"] == 13, outcome
    assert "no space left" in outcome["message"]
    assert "bundle.tar" not in listing and "bundle.tar.partial" not in listing


def test_chunked_upload(registries: Registries, tmp_path: Path) -> None:
    """PATCH-chunked uploads (as some registries require) land the same digests as monolithic PUTs."""
    refs = _big_images(registries.upstream, f"ch{uuid.uuid4().hex[:6]}", n_layers=2, size=(1 << 20) + 123)
    out = tmp_path / "b.tar"
    total = create_bundle(refs, out, registries=_opts(registries.upstream)).bytes_total
    prefix = f"ch{uuid.uuid4().hex[:6]}"
    res = push_bundle(out, f"{registries.mirror.host}/{prefix}", insecure=True, chunk_size=256 << 10)
    assert res.bytes_sent == total and res.blobs_mounted == 1  # each blob once; the shared base mounted
    for ref in refs:
        repo = ref.split("/", 1)[1].rsplit(":", 1)[0]
        assert get_manifest(registries.mirror, f"{prefix}/{repo}", "v1")[0] == get_manifest(
            registries.upstream, repo, "v1")[0]
