"""Pure parts of kvinstall.mirror: references, rewrite, platform filter, progress, challenges, layout."""

from __future__ import annotations

import errno
import hashlib
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvinstall.errors import IntegrityError, LocalIOError
from kvinstall.imageref import ReferenceError_, parse_reference, rewrite_image
from kvinstall.mirror.bundle import split_registry
from kvinstall.mirror.copy import manifest_children, platform_matches
from kvinstall.mirror.layout import Layout, local_io_error
from kvinstall.mirror.model import FileItem, LockEntry, ProgressTracker
from kvinstall.mirror.registry import _parse_challenge

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("ref", "site", "want"),
    [
        ("docker.io/kubeovn/kube-ovn:v1.16.2", "SITE", "SITE/kubeovn/kube-ovn:v1.16.2"),
        ("kubeovn/kube-ovn:v1.16.2", "reg.local:5000", "reg.local:5000/kubeovn/kube-ovn:v1.16.2"),
        ("nginx", "reg:5000", "reg:5000/library/nginx"),
        ("nginx:1.27", "reg:5000", "reg:5000/library/nginx:1.27"),
        ("index.docker.io/library/busybox:1", "r.lan", "r.lan/library/busybox:1"),
        ("quay.io/kubevirt/virt-operator:v1.5.0", "r.lan", "r.lan/kubevirt/virt-operator:v1.5.0"),
        ("localhost:5000/a/b:c", "r.lan", "r.lan/a/b:c"),
        ("localhost/a", "r.lan", "r.lan/a"),
        (f"ghcr.io/dexidp/dex:v2.41.1@{D}", "r.lan:443", f"r.lan:443/dexidp/dex:v2.41.1@{D}"),
        (f"registry.k8s.io/pause@{D}", "https://r.lan/", f"r.lan/pause@{D}"),
        ("127.0.0.1:5000/x/y:v1", "10.0.0.1:5000/mirror", "10.0.0.1:5000/mirror/x/y:v1"),
    ],
)
def test_rewrite_image(ref: str, site: str, want: str) -> None:
    assert rewrite_image(ref, site) == want


@pytest.mark.parametrize("bad", ["", "UPPER/case", "a b", "x@sha256:short", "x:", "x:-bad", "/a"])
def test_parse_rejects(bad: str) -> None:
    with pytest.raises(ReferenceError_):
        parse_reference(bad)


def test_parse_port_is_not_a_tag() -> None:
    r = parse_reference("reg.local:5000/a/b")
    assert (r.registry, r.repository, r.tag, r.digest) == ("reg.local:5000", "a/b", None, None)
    assert r.ref == "latest"
    assert parse_reference("docker.io/x/y").endpoint == "registry-1.docker.io"
    pinned = parse_reference(f"a.io/b:c@{D}")
    assert pinned.ref == D and pinned.tag == "c"


@given(
    st.from_regex(r"[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}", fullmatch=True),
    st.one_of(st.none(), st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9._-]{0,10}", fullmatch=True)),
)
def test_rewrite_roundtrip(path: str, tag: str | None) -> None:
    ref = f"quay.io/{path}" + (f":{tag}" if tag else "")
    out = rewrite_image(ref, "site.lan:5000")
    parsed = parse_reference(out)
    assert parsed.registry == "site.lan:5000" and parsed.repository == path and parsed.tag == tag
    assert rewrite_image(out, "site.lan:5000") == out  # idempotent


def test_split_registry() -> None:
    assert split_registry("https://h:5000/pre/fix/") == ("h:5000", "pre/fix")
    assert split_registry("h") == ("h", "")


def test_platform_matches() -> None:
    amd = {"os": "linux", "architecture": "amd64"}
    arm = {"os": "linux", "architecture": "arm", "variant": "v7"}
    assert platform_matches(amd, ["linux/amd64"])
    assert not platform_matches(amd, ["linux/arm64"])
    assert platform_matches(arm, ["linux/arm/v7"]) and not platform_matches(arm, ["linux/arm/v6"])
    assert platform_matches(arm, ["linux/arm"])
    assert platform_matches({"os": "unknown", "architecture": "unknown"}, ["all"])
    assert not platform_matches(None, ["linux/amd64"])


def test_manifest_children() -> None:
    index = b'{"manifests":[{"digest":"sha256:1","size":1}]}'
    assert manifest_children(index, "application/vnd.oci.image.index.v1+json") == (
        [{"digest": "sha256:1", "size": 1}], [])
    manifest = b'{"config":{"digest":"c","size":2},"layers":[{"digest":"l","size":3}]}'
    children, blobs = manifest_children(manifest, "application/vnd.oci.image.manifest.v1+json")
    assert children == [] and [b["digest"] for b in blobs] == ["c", "l"]


def test_progress_is_monotonic_and_capped_under_retries() -> None:
    seen: list[tuple[int, int]] = []
    t = ProgressTracker(150, lambda d, total: seen.append((d, total)))
    t.expect("a", 100)
    t.expect("b", 50)
    t.reach("a", 60)
    t.reach("a", 20)  # a retry starts over: no step back, no double count
    t.reach("a", 80)
    t.reach("b", 50)
    t.reach("a", 500)  # more than the blob (retried bytes): capped at its size
    t.complete("a")
    assert [d for d, _ in seen] == [60, 80, 130, 150]
    assert t.done == 150


def test_progress_threads() -> None:
    seen: list[int] = []
    t = ProgressTracker(8 * 1000, lambda d, _: seen.append(d))

    def run(k: int) -> None:
        t.expect(str(k), 1000)
        for p in range(0, 1001, 10):
            t.reach(str(k), p)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert seen == sorted(seen) and seen[-1] == 8000


def test_parse_challenge() -> None:
    kind, params = _parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/nginx:pull,push"'
    )
    assert kind == "bearer"
    assert params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                      "scope": "repository:library/nginx:pull,push"}
    assert _parse_challenge('Basic realm="kv"') == ("basic", {"realm": "kv"})


def test_layout_commit_verifies_and_renames(tmp_path: Path) -> None:
    lay = Layout(tmp_path / "l").init()
    data = b"hello blob"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with lay.open_partial(digest) as fh:
        fh.write(data[:4])
    assert lay.partial_size(digest) == 4 and not lay.has_blob(digest)
    with lay.open_partial(digest, resume=True) as fh:  # continues where it stopped
        fh.write(data[4:])
    lay.commit_partial(digest, len(data), "img")
    assert lay.has_blob(digest, len(data)) and lay.partial_size(digest) == 0
    bad = "sha256:" + "b" * 64
    with lay.open_partial(bad) as fh:
        fh.write(b"not it")
    with pytest.raises(IntegrityError, match=bad):
        lay.commit_partial(bad, None, "img")
    assert not lay.has_blob(bad) and lay.partial_size(bad) == 0
    with pytest.raises(IntegrityError):
        lay.blob_path("md5:abc")
    assert lay.put_bytes(b"{}") == "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


def test_disk_full_message() -> None:
    err = local_io_error(OSError(errno.ENOSPC, "No space left on device"), "/out/bundle.tar")
    assert isinstance(err, LocalIOError) and "no space left" in str(err) and "/out/bundle.tar" in str(err)
    assert err.exit_code == 13


def test_lock_entry_json_roundtrip() -> None:
    e = LockEntry("docker.io/a/b:v1", "image", "a/b", "v1", D, "application/x", 12, D)
    assert LockEntry.from_json(e.to_json()) == e
    assert FileItem("c/d", "1", "/x", "ab" * 32, "t").digest == "sha256:" + "ab" * 32
