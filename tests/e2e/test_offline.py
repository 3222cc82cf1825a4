"""Air-gap end to end: `kvinstall mirror list/create/inspect/verify/push` through the real CLI (subprocesses),
then an offline `apply` from the pushed site registry, a no-op re-run, the completeness gate refusing an
incomplete registry, and a corrupted bundle.

Real: docker-registry processes (upstream "internet" registries, the site mirror, a basic-auth site registry),
the private kube-apiserver, the sshd host lab. The images are small stand-ins built by tests/substrate/
oci_images.py under the upstream repository paths the catalog names; `--registry-mirror HOST=ENDPOINT` makes
`mirror create` pull docker.io/..., quay.io/..., ghcr.io/... from those local registries (the feature a site
behind a pull-through cache uses). KubeOne and the operators' controller loop are the stand-ins described in
platform_world.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from conftest import LAB_SKIPS, World, apply_in_process, lab_config
from kvinstall.imageref import parse_reference
from substrate.oci_images import base_layer, build_image, build_index, get_manifest, push_image, push_index
from substrate.procs import free_port

pytestmark = pytest.mark.e2e

ALL_PHASES = ["gate", "preflight", "host-packages", "kubeone", "bootstrap", "component/kubeovn", "component/kubevirt",
              "component/cdi", "component/dex", "component/kyverno", "component/policies", "workspaces",
              "prune", "verify"]  # fmt: skip
MULTI_ARCH = "docker.io/kubeovn/kube-ovn:v1.16.2"  # seeded as an amd64 + arm64 index
KVINSTALL_USER = "kvtest-token-admin"  # the identity of kvinstall's kubeconfig in the world
# The site registries here listen on this machine's loopback, which the lab hosts cannot reach (their
# 127.0.0.1 is their own): the hosts' reachability of the site is tested in
# tests/integration/test_host_packages.py, where the site is served on the lab's jump address.
OFFLINE_SKIPS = LAB_SKIPS | {"offline.site"}


def kv(world: World, cwd: Path, *args: str, stdin: str | None = None,
       env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess, with the world's environment (catalog, upstream CA, cache)."""
    env = {**world.env, "HOME": os.environ.get("HOME", str(cwd)), "NO_COLOR": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "kvinstall", *args], cwd=cwd, env=env, input=stdin,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc


# Every gate with images of its own (the catalog's gateImages): the bundle must carry what
# virt-operator deploys for them, and the site registry must serve it.
GATES = ["VMExport", "Template", "DecentralizedLiveMigration", "PersistentReservation", "Sidecar"]


def offline_config(world: World, lab: Any, registry: Any) -> dict[str, Any]:
    config = lab_config(world, lab, offline={"enabled": True, "registry": registry.host, "insecure": True})
    config["components"]["kubevirt"]["featureGates"] = GATES
    return config


@dataclass
class Airgap:
    world: World
    work: Path
    config: Path  # the offline config file the mirror commands read
    bundle: Path
    lock: dict[str, Any]
    listed: list[dict[str, Any]]
    seeded: dict[str, str]  # upstream image reference -> digest pushed to the stand-in upstream
    upstreams: dict[str, Any]  # upstream host -> Registry serving it
    mirror: Any  # the site registry the bundle was pushed to (plain HTTP)


def paper_lab(directory: Path) -> Any:
    """Hosts for the config `mirror list/create` read: they never connect (loopback addresses anyway)."""
    key = directory / "id_ed25519"
    key.write_text("not used: mirror commands do not connect to hosts\n")
    hosts = {f"h{i}": SimpleNamespace(ip=f"127.0.0.{10 + i}", host_key_line=None) for i in (1, 2, 3)}
    return SimpleNamespace(hosts=hosts, client_keys=SimpleNamespace(ed25519=key))


# The hosts' packages in this bundle: Debian 12's ethtool, from the local .deb files hack/ci-setup.sh cached
# (tests/substrate/debs.py); the Kubernetes repositories are out of this machine's reach.
E2E_PACKAGES = """\
families: {deb: {packages: [ethtool]}, rpm: {packages: []}}
distributions: {debian-12: {family: deb, architecture: amd64, repositories: []}}
"""


@pytest.fixture(scope="module")
def airgap(world: World, registry_factory: Callable[..., Any], local_debs: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Airgap:
    """Upstream registries seeded with every image the config needs; `mirror list` + `create` + `push`."""
    work = tmp_path_factory.mktemp("airgap")
    mirror = registry_factory("site-mirror")
    config = work / "offline.yaml"
    cfg = offline_config(world, paper_lab(work), mirror)
    cfg["offline"]["hostPackages"] = {"distributions": ["debian-12"]}
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    (work / "packages.yaml").write_text(E2E_PACKAGES)
    packages = {"KVINSTALL_PACKAGES": str(work / "packages.yaml")}

    # What the config needs, as the CLI says it (--fetch: the images inside charts and manifests too).
    listed = json.loads(ok(kv(world, work, "mirror", "list", "-f", str(config), "--fetch", "--output", "json",
                              env_extra=packages)).stdout)  # fmt: skip
    assert [r for r in listed if r["kind"] == "package"] == [
        {"kind": "package", "reference": "ethtool", "digest": None, "component": "debian-12"}]
    listed = [r for r in listed if r["kind"] != "package"]
    images = [r["reference"] for r in listed if r["kind"] == "image"]
    hosts = {parse_reference(i).registry for i in images}
    assert {"docker.io", "quay.io", "registry.k8s.io", "reg.kyverno.io", "ghcr.io"} <= hosts, hosts
    # The list names upstream references even though the config is the offline one.
    assert not [i for i in images if i.startswith(mirror.host)], images
    assert {r["kind"] for r in listed} == {"image", "chart", "manifest", "binary"}

    # Three stand-in "internet" registries: quay.io on its own, ghcr.io over TLS, the rest on one.
    plain = registry_factory("upstream-a")
    quay = registry_factory("upstream-quay")
    tls = registry_factory("upstream-tls", tls=True)
    upstreams = {h: plain for h in hosts} | {"quay.io": quay, "ghcr.io": tls}
    base = base_layer()
    seeded: dict[str, str] = {}
    for ref in images:
        r = parse_reference(ref)
        reg = upstreams[r.registry]
        assert r.tag, ref
        if ref == MULTI_ARCH:
            index = build_index([build_image({"image": ref.encode(), "arch": a.encode()}, a, (base,))
                                 for a in ("amd64", "arm64")])  # fmt: skip
            seeded[ref] = push_index(reg, r.repository, r.tag, index)
        else:
            seeded[ref] = push_image(reg, r.repository, r.tag, build_image({"image": ref.encode()}, "amd64", (base,)))
    assert MULTI_ARCH in seeded

    bundle = work / "bundle.tar"
    mirrors = [f"--registry-mirror={h}={reg.host}" for h, reg in sorted(upstreams.items())]
    created = ok(kv(world, work, "mirror", "create", "-f", str(config), "-o", str(bundle), *mirrors,
                    f"--insecure-registry={plain.host}", f"--insecure-registry={quay.host}",
                    f"--registry-ca={tls.host}={tls.ca}", f"--package-dir=debian-12={local_debs}", "--output", "json",
                    env_extra=packages))  # fmt: skip
    result = json.loads(created.stdout)
    assert result["path"] == str(bundle) and bundle.is_file()
    ethtool = next(local_debs.glob("ethtool_*.deb"))
    pinned = {p["name"]: p for p in result["packages"]["debian-12"]["packages"]}
    assert pinned["ethtool"]["sha256"] == __import__("hashlib").sha256(ethtool.read_bytes()).hexdigest()
    assert "libmnl0" in pinned  # its dependency, from the same folder
    assert not (work / ".bundle.tar.work").exists()  # the work directory is gone after success
    with tarfile.open(bundle) as tar:
        member = tar.extractfile("kvinstall-lock.json")
        assert member is not None
        lock = json.load(member)
    return Airgap(world=world, work=work, config=config, bundle=bundle, lock=lock, listed=listed, seeded=seeded,
                  upstreams=upstreams, mirror=mirror)  # fmt: skip


def test_bundle_names_upstream_references_with_their_digests(airgap: Airgap) -> None:
    entries = {e["reference"]: e for e in airgap.lock["entries"]}
    # Every listed image and artifact is in the lock, under its upstream name.
    assert set(airgap.seeded) <= set(entries)
    artifacts = [e for e in entries.values() if e["kind"] == "file" and not e["repository"].startswith("kvinstall/pack")]
    assert len(artifacts) == len([r for r in airgap.listed if r["kind"] != "image"])
    assert all(e["repository"].startswith("kvinstall/artifacts/") for e in artifacts)
    # The hosts' packages: one artifact per .deb, one for the OS release's index, pinned in the lock.
    packages = {e["reference"] for e in entries.values() if e["repository"].startswith("kvinstall/pack")}
    assert packages == {"kvinstall/packages/debian-12:ethtool", "kvinstall/packages/debian-12:libmnl0",
                        "kvinstall/package-index/debian-12:packages"}
    assert airgap.lock["packages"]["debian-12"]["needed"] == ["ethtool"]
    for ref, digest in airgap.seeded.items():
        e = entries[ref]
        assert e["upstreamDigest"] == digest, ref
        assert e["repository"] == parse_reference(ref).repository
        if ref != MULTI_ARCH:
            assert e["digest"] == digest, ref  # manifest bytes kept: the digest an offline site expects
    # The multi-arch index was filtered to linux/amd64 (the default): a new index, upstream digest recorded.
    multi = entries[MULTI_ARCH]
    assert multi["digest"] != multi["upstreamDigest"]
    assert airgap.lock["platforms"] == ["linux/amd64"]

    info = json.loads(ok(kv(airgap.world, airgap.work, "mirror", "inspect", str(airgap.bundle),
                            "--output", "json")).stdout)  # fmt: skip
    assert {e["reference"] for e in info["entries"]} == set(entries)
    assert info["platforms"] == ["linux/amd64"]
    verified = ok(kv(airgap.world, airgap.work, "mirror", "verify", str(airgap.bundle)))
    assert "every blob matches its digest" in verified.stdout


def test_push_to_the_mirror_and_to_a_basic_auth_registry(airgap: Airgap, registry_factory: Callable[..., Any]
                                                         ) -> None:  # fmt: skip
    w = airgap.world
    pushed = json.loads(ok(kv(w, airgap.work, "mirror", "push", "--bundle", str(airgap.bundle),
                              "--registry", airgap.mirror.host, "--insecure", "--output", "json")).stdout)  # fmt: skip
    assert set(pushed["pushed"]) == {e["reference"] for e in airgap.lock["entries"]}
    assert pushed["blobsUploaded"] > 0
    for e in airgap.lock["entries"]:
        data, _ = get_manifest(airgap.mirror, e["repository"], e["tag"])
        assert "sha256:" + __import__("hashlib").sha256(data).hexdigest() == e["digest"], e["reference"]
    # Only amd64 in the mirror's kube-ovn index, its child the upstream's amd64 manifest byte for byte.
    index = json.loads(get_manifest(airgap.mirror, "kubeovn/kube-ovn", "v1.16.2")[0])
    up_index = json.loads(get_manifest(airgap.upstreams["docker.io"], "kubeovn/kube-ovn", "v1.16.2")[0])
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64"]
    assert index["manifests"][0] in up_index["manifests"]

    # A re-push sends nothing.
    again = json.loads(ok(kv(w, airgap.work, "mirror", "push", "--bundle", str(airgap.bundle),
                             "--registry", airgap.mirror.host, "--insecure", "--output", "json")).stdout)  # fmt: skip
    assert again["bytesSent"] == 0 and again["blobsUploaded"] == 0

    auth = registry_factory("site-auth", auth=True)
    refused = kv(w, airgap.work, "mirror", "push", "--bundle", str(airgap.bundle), "--registry", auth.host,
                 "--insecure")
    assert refused.returncode == 10, refused.stderr
    assert "credentials" in refused.stderr
    with_auth = ok(kv(w, airgap.work, "mirror", "push", "--bundle", str(airgap.bundle), "--registry", auth.host,
                      "--insecure", "--username", auth.username, "--password-stdin", stdin=auth.password + "\n"))
    assert f"pushed {len(airgap.lock['entries'])} references to {auth.host}" in with_auth.stdout
    assert auth.password not in with_auth.stdout + with_auth.stderr
    data, _ = get_manifest(auth, "kubevirt/virt-operator", "v1.8.4")
    assert data  # the session sends the credentials


def _images_of(obj: dict[str, Any]) -> list[str]:
    spec = obj["spec"]["template"]["spec"]
    out = []
    for c in [*(spec.get("initContainers") or []), *spec["containers"]]:
        out.append(c["image"])
        out += [e["value"] for e in c.get("env") or [] if e["name"].endswith("_IMAGE") and e.get("value")]
    return out


def test_offline_apply_from_the_site_registry_then_again_is_a_no_op(
    airgap: Airgap, world_env: World, host_lab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = world_env
    lab = host_lab(3)
    # A cache of its own, empty: the artifacts must come from the site registry, not from `mirror create`'s cache.
    cache = tmp_path / "cache"
    monkeypatch.setenv("KVINSTALL_CACHE_DIR", str(cache))
    site = airgap.mirror.host
    ok(kv(world, airgap.work, "mirror", "push", "--bundle", str(airgap.bundle), "--registry", site, "--insecure"))
    config = offline_config(world, lab, airgap.mirror)
    state = tmp_path / "state"
    upstream_before = len(world.upstream_requests)
    assert not cache.exists()

    first = apply_in_process(world, lab, config, state, skip_checks=OFFLINE_SKIPS)
    assert first.code == 0, first.error
    phases = first.events.phases()
    assert list(phases) == ALL_PHASES
    # No offline.packageRepository in this config: the hosts keep their own package sources.
    assert phases.pop("host-packages") == "skipped"
    assert all(status == "ok" for status in phases.values()), phases
    gate = next(e for e in first.events.of("phase.end") if e["phase"] == "gate")
    assert site in gate["summary"]

    # No request reached the HTTPS upstream; every artifact came from the site registry into the empty cache.
    assert world.upstream_requests[upstream_before:] == []
    artifact_digests = {e["digest"] for e in airgap.lock["entries"] if e["kind"] == "file"}
    cached = {p.name for p in (cache / "sha256").iterdir()}
    assert cached, "nothing was fetched from the site registry"
    assert len(cached) <= len(artifact_digests)

    # Every image in every workload the apiserver holds (and the operators' *_IMAGE env) is at the site
    # registry, and is there: kvinstall's objects and what the operators (the controller loop, as the
    # real ones do for these gates) deployed from their rewritten references, virt-template included.
    seen: list[str] = []
    for plural in ("deployments", "daemonsets", "statefulsets"):
        for obj in world.api.request("GET", f"/apis/apps/v1/{plural}").json()["items"]:
            for img in _images_of(obj):
                seen.append(img)
                assert img.startswith(site + "/"), f"{obj['kind']} {obj['metadata']['name']}: {img}"
    for img in sorted(set(seen)):
        ref = parse_reference(img)
        assert get_manifest(airgap.mirror, ref.repository, ref.tag or "")[0], img
    for want in ("virt-template-apiserver:v0.1.8", "virt-exportproxy:v1.8.4", "virt-synchronization-controller:v1.8.4",
                 "pr-helper:v1.8.4", "virt-handler:v1.8.4", "virt-launcher:v1.8.4"):  # fmt: skip
        assert f"{site}/kubevirt/{want}" in seen, want
    for want in ("kubevirt/virt-operator:v1.8.4", "kubevirt/cdi-importer:v1.65.0", "kubeovn/kube-ovn:v1.16.2",
                 "dexidp/dex:v2.44.0", "kyverno/kyverno:v1.18.2"):  # fmt: skip
        assert f"{site}/{want}" in seen, want  # cdi-importer: in cdi-operator's *_IMAGE env only
    # virt-operator derives virt-handler, virt-launcher, ... from its own reference (VIRT_OPERATOR_IMAGE).
    operator = world.api.request("GET", "/apis/apps/v1/namespaces/kubevirt/deployments/virt-operator").json()
    env = {e["name"]: e.get("value") for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["VIRT_OPERATOR_IMAGE"] == f"{site}/kubevirt/virt-operator:v1.8.4"
    # KubeOne (once) was told to pull the cluster's images through the site registry.
    calls = [json.loads(c) for c in (world.root / "kubeone-calls.log").read_text().splitlines()]
    assert sum(1 for c in calls if c[0] == "apply") == 1
    manifest = yaml.safe_load((state / "kubeone.yaml").read_text())
    mirrors = manifest["containerRuntime"]["containerd"]["registries"]
    assert mirrors["registry.k8s.io"]["mirrors"] == [f"http://{site}"]

    mark = world.api.audit_mark()
    second = apply_in_process(world, lab, config, state, skip_checks=OFFLINE_SKIPS)
    assert second.code == 0, second.error
    assert second.events.phases()["kubeone"] == "skipped"
    assert second.events.phases()["gate"] == "ok"
    assert second.events.objects() == []
    writes = world.api.writes_since(mark, users=(KVINSTALL_USER,))
    assert writes == [], [f"{w.verb} {w.uri}" for w in writes]
    assert world.upstream_requests[upstream_before:] == []


def test_gate_refuses_a_site_registry_missing_an_image(
    airgap: Airgap, world_env: World, host_lab: Any, tmp_path: Path, registry_factory: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    world = world_env
    lab = host_lab(3)
    monkeypatch.setenv("KVINSTALL_CACHE_DIR", str(tmp_path / "cache"))
    site = registry_factory("site-incomplete")
    ok(kv(world, airgap.work, "mirror", "push", "--bundle", str(airgap.bundle), "--registry", site.host,
          "--insecure"))  # fmt: skip
    # virt-handler is in no rendered object (virt-operator derives it), and the KubeVirt operator manifest
    # is an artifact the render itself needs from the site registry.
    image = next(e for e in airgap.lock["entries"] if e["reference"] == "quay.io/kubevirt/virt-handler:v1.8.4")
    artifact = next(e for e in airgap.lock["entries"] if e["kind"] == "file" and "kubevirt" in e["repository"])
    with site.session() as s:
        for victim in (image, artifact):
            r = s.delete(f"{site.url}/v2/{victim['repository']}/manifests/{victim['digest']}", timeout=10)
            assert r.status_code == 202, r.text

    config = offline_config(world, lab, site)
    kubeone_log = world.root / "kubeone-calls.log"
    calls_before = kubeone_log.read_text() if kubeone_log.exists() else ""
    mark = world.api.audit_mark()
    result = apply_in_process(world, lab, config, tmp_path / "state")
    assert result.code == 14, result.error
    assert result.error is not None
    assert f"{site.host}/kubevirt/virt-handler:v1.8.4" in result.error.message
    assert f"{site.host}/{artifact['repository']}:{artifact['tag']}" in result.error.message
    assert "2 of " in result.error.message  # only the deleted ones are named
    phases = result.events.phases()
    assert phases.get("gate") == "failed", phases
    assert "preflight" not in phases and "kubeone" not in phases  # stopped before any host was touched
    assert (kubeone_log.read_text() if kubeone_log.exists() else "") == calls_before
    assert world.api.writes_since(mark, users=(KVINSTALL_USER,)) == []
    assert result.events.of("host") == []


def test_gate_refuses_a_site_package_repository_missing_host_packages(
    airgap: Airgap, world_env: World, host_lab: Any, tmp_path: Path, package_bundle: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A complete site registry, but a package repository (`mirror serve` of a bundle made for other
    packages) without what KubeOne installs for Kubernetes v1.34.4: the gate names each missing package."""
    from substrate.debs import kvinstall, stop_serve

    world = world_env
    lab = host_lab(3)
    monkeypatch.setenv("KVINSTALL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("KVINSTALL_PACKAGES", raising=False)  # the shipped package catalog
    ok(kv(world, airgap.work, "mirror", "push", "--bundle", str(airgap.bundle), "--registry", airgap.mirror.host,
          "--insecure"))  # fmt: skip
    state = tmp_path / "serve"
    served = kvinstall(["mirror", "serve", "--bundle", str(package_bundle.path), "--address", "127.0.0.1",
                        "--registry-port", str(free_port()), "--repo-port", str(free_port()), "--state-dir",
                        str(state), "-o", "json"], package_bundle.env)  # fmt: skip
    try:
        assert served.returncode == 0, served.stderr
        site = json.loads(served.stdout)
        config = offline_config(world, lab, airgap.mirror)
        config["offline"]["hostPackages"] = {"distributions": ["debian-12"]}
        config["offline"]["packageRepository"] = {"url": site["packageRepository"], "caFile": site["caFile"],
                                                  "signingKey": site["signingKey"]}  # fmt: skip
        kubeone_log = world.root / "kubeone-calls.log"
        calls_before = kubeone_log.read_text() if kubeone_log.exists() else ""
        result = apply_in_process(world, lab, config, tmp_path / "state")
        assert result.code == 14, result.error
        assert result.error is not None and result.error.where == site["packageRepository"]
        for spec in ("kubelet=1.34.4-*", "kubeadm=1.34.4-*", "kubectl=1.34.4-*", "containerd.io=2.2.*"):
            assert f"debian-12: {spec}" in result.error.message, result.error.message
        assert "missing from the site package repository" in result.error.message
        phases = result.events.phases()
        assert phases.get("gate") == "failed" and "preflight" not in phases, phases
        assert result.events.of("host") == []  # no host was touched
        assert (kubeone_log.read_text() if kubeone_log.exists() else "") == calls_before
    finally:
        stop_serve(state, package_bundle.env)


def _flip_a_byte_in_a_layer(bundle: Path, out: Path) -> str:
    shutil.copyfile(bundle, out)
    with tarfile.open(out) as tar:
        blobs = [m for m in tar.getmembers() if m.name.startswith("blobs/sha256/")]
    # The largest blob is a layer or an artifact's content (manifests are small).
    member = max(blobs, key=lambda m: m.size)
    with open(out, "r+b") as fh:
        fh.seek(member.offset_data + member.size // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0x01]))
    return "sha256:" + member.name.rsplit("/", 1)[1]


def test_a_flipped_bit_is_named_by_verify_and_push(airgap: Airgap, registry_factory: Callable[..., Any],
                                                   tmp_path: Path) -> None:  # fmt: skip
    bad = tmp_path / "corrupt.tar"
    digest = _flip_a_byte_in_a_layer(airgap.bundle, bad)
    verify = kv(airgap.world, tmp_path, "mirror", "verify", str(bad))
    assert verify.returncode == 11, verify.stdout + verify.stderr
    assert digest in verify.stderr and "corrupt" in verify.stderr
    site = registry_factory("site-corrupt")
    push = kv(airgap.world, tmp_path, "mirror", "push", "--bundle", str(bad), "--registry", site.host, "--insecure")
    assert push.returncode == 11, push.stdout + push.stderr
    assert digest in push.stderr
    # The corrupt blob never became a blob of the registry.
    with site.session() as s:
        repos = s.get(f"{site.url}/v2/_catalog", timeout=10).json().get("repositories") or []
        for repo in repos:
            assert s.head(f"{site.url}/v2/{repo}/blobs/{digest}", timeout=10).status_code == 404
