"""Hostile bundles through the real CLI (`python -m kvinstall mirror verify|inspect|push`): crafted
tars and layout directories, pushed at a real docker-registry. Each ends in exit 11 (integrity)
with a message naming the field, within the subprocess timeout, and reads nothing outside the
bundle: where a crafted path would lead, a FIFO waits, and opening it would hang the command.

The crafted bundles are made here byte by byte (the point is that no honest tool makes them).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kvinstall.mirror import RegistryOptions, create_bundle, verify_bundle
from kvinstall.mirror.bundle import work_dir_for
from substrate.oci_images import SeededImages
from substrate.registries import Registries

pytestmark = pytest.mark.integration

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Crafted:
    """The members of a bundle, written as a tar or a layout directory."""

    def __init__(self) -> None:
        self.members: dict[str, bytes] = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}'}
        self.entries: list[dict[str, Any]] = []

    def blob(self, data: bytes) -> dict[str, Any]:
        self.members[f"blobs/sha256/{sha(data)[7:]}"] = data
        return {"digest": sha(data), "size": len(data)}

    def image(self) -> dict[str, Any]:
        config, layer = self.blob(b"{}"), self.blob(os.urandom(64))
        doc = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
               "layers": [{"mediaType": MT_LAYER, **layer}]}  # fmt: skip
        return {"mediaType": MT_MANIFEST, **self.blob(json.dumps(doc).encode())}

    def index(self, children: list[dict[str, Any]]) -> dict[str, Any]:
        doc = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": children}
        return {"mediaType": MT_INDEX, **self.blob(json.dumps(doc).encode())}

    def lock(self, root: dict[str, Any], repository: str = "kvtest/hostile", **change: Any) -> None:
        entry = {"reference": f"docker.io/{repository}:v1", "kind": "image", "repository": repository,
                 "tag": "v1", "digest": root["digest"], "mediaType": root["mediaType"],
                 "size": root["size"], "upstreamDigest": root["digest"]}  # fmt: skip
        entry.update(change)
        self.entries.append(entry)

    def finish(self, lock: Any = None, index: Any = None) -> None:
        manifests = [{"mediaType": e.get("mediaType"), "digest": e.get("digest"), "size": e.get("size")}
                     for e in self.entries]  # fmt: skip
        self.members["index.json"] = json.dumps(
            index if index is not None else {"schemaVersion": 2, "manifests": manifests}
        ).encode()
        self.members["kvinstall-lock.json"] = json.dumps(
            lock
            if lock is not None
            else {"version": 1, "platforms": ["linux/amd64"], "entries": self.entries}
        ).encode()

    def tar(self, path: Path) -> Path:
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in self.members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return path

    def directory(self, path: Path) -> Path:
        for name, data in self.members.items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_bytes(data)
        return path


def chain(depth: int, twice: bool) -> Crafted:
    """`depth` nested indexes over one image, each listing the one below (twice when `twice`)."""
    c = Crafted()
    node = c.image()
    for _ in range(depth):
        node = c.index([node, node] if twice else [node])
    c.lock(node)
    c.finish()
    return c


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Any]:
    """Run the CLI in the test's working folder; afterwards nothing may be in its HOME or TMPDIR."""
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "TMPDIR": str(tmp), "NO_COLOR": "1"}

    def run(*args: str, memory: int | None = None) -> subprocess.CompletedProcess[str]:
        def limit() -> None:
            if memory is not None:
                resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

        return subprocess.run([sys.executable, "-m", "kvinstall", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120, preexec_fn=limit)  # fmt: skip

    yield run
    assert not list(home.iterdir()) and not list(tmp.iterdir()), "written outside the working folders"


def integrity(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 11, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    for f in fragments:
        assert f in proc.stderr, proc.stderr


def test_nested_indexes_listing_their_child_twice(cli: Any, tmp_path: Path, registries: Registries) -> None:
    # 40 levels of doubling: 2**40 paths through 41 manifests; the walk visits each manifest once and
    # stops at the nesting cap (16 levels) with an integrity error, for verify and for push alike.
    deep = chain(40, twice=True).tar(tmp_path / "deep.tar")
    integrity(cli("mirror", "verify", str(deep)), "nested more than 16 levels")
    integrity(cli("mirror", "push", "--bundle", str(deep), "--registry", registries.mirror.host, "--insecure"),
              "nested more than 16 levels")  # fmt: skip
    # Just under the cap it is a sound bundle: 2**15 paths, 16 manifests, verified at once.
    ok = chain(15, twice=True).tar(tmp_path / "ok.tar")
    proc = cli("mirror", "verify", str(ok))
    assert proc.returncode == 0, proc.stderr


def test_a_1200_deep_chain_is_an_integrity_error_not_a_recursion_error(cli: Any, tmp_path: Path) -> None:
    bundle = chain(1200, twice=False).tar(tmp_path / "chain.tar")
    integrity(cli("mirror", "verify", str(bundle)), "nested more than 16 levels")
    integrity(cli("mirror", "push", "--bundle", str(bundle), "--registry", "127.0.0.1:9", "--insecure"),
              "nested more than 16 levels")  # fmt: skip


@pytest.mark.parametrize(
    ("lock", "field"),
    [
        ("not json", "kvinstall-lock.json is not valid JSON"),
        ({"entries": {"a": 1}}, "kvinstall-lock.json: entries: expected a list"),
        ({"entries": [{"kind": "image"}]}, "entries[0].repository: missing"),
        ({"platforms": "linux", "entries": []}, "platforms: expected a list of strings"),
    ],
)
def test_malformed_lock_files(cli: Any, tmp_path: Path, lock: Any, field: str) -> None:
    c = Crafted()
    c.lock(c.image())
    c.finish(lock=lock if lock != "not json" else None)
    if lock == "not json":
        c.members["kvinstall-lock.json"] = b"{not json"
    bundle = c.tar(tmp_path / "b.tar")
    for args in (("mirror", "verify", str(bundle)), ("mirror", "inspect", str(bundle)),
                 ("mirror", "push", "--bundle", str(bundle), "--registry", "127.0.0.1:9", "--insecure")):  # fmt: skip
        integrity(cli(*args), field)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"digest": None}, "entries[0].digest"),
        ({"digest": "sha256:" + "A" * 64}, "entries[0].digest"),
        ({"repository": "../../v2/_catalog"}, "entries[0].repository"),
        ({"tag": "v1/../../x"}, "entries[0].tag"),
        ({"size": "100"}, "entries[0].size"),
        ({"mediaType": 5}, "entries[0].mediaType"),
    ],
)
def test_malformed_lock_entries(cli: Any, tmp_path: Path, change: dict[str, Any], field: str) -> None:
    c = Crafted()
    root = c.image()
    c.lock(root, **change)
    c.entries[0] = {k: v for k, v in c.entries[0].items() if v is not None}
    c.finish()
    bundle = c.tar(tmp_path / "b.tar")
    integrity(cli("mirror", "verify", str(bundle)), field)
    integrity(
        cli("mirror", "push", "--bundle", str(bundle), "--registry", "127.0.0.1:9", "--insecure"), field
    )


def test_traversal_digest_in_a_directory_bundle_reads_nothing_outside(cli: Any, tmp_path: Path) -> None:
    root = tmp_path / "site" / "bundle"
    root.mkdir(parents=True)
    # Where sha256:../../../outside would lead from blobs/sha256/: a FIFO that hangs whoever opens it.
    os.mkfifo(tmp_path / "site" / "outside")
    c = Crafted()
    c.lock({"digest": "sha256:../../../outside", "mediaType": MT_MANIFEST, "size": 10})
    c.finish()
    c.directory(root)
    for args in (("mirror", "verify", str(root)), ("mirror", "inspect", str(root)),
                 ("mirror", "push", "--bundle", str(root), "--registry", "127.0.0.1:9", "--insecure")):  # fmt: skip
        integrity(cli(*args), "entries[0].digest", "is not a sha256 digest")


def test_symlinked_blob_in_a_directory_bundle_is_not_followed(
    cli: Any, tmp_path: Path, registries: Registries
) -> None:
    """A layer that is a symlink to a file outside (of the same size): never read, so never hashed
    and never sent to the registry; the layer counts as missing."""
    root = tmp_path / "bundle"
    root.mkdir()
    c = Crafted()
    c.lock(c.image())
    c.finish()
    layer_name = next(n for n, d in c.members.items() if n.startswith("blobs/") and len(d) == 64)
    c.directory(root)
    (tmp_path / "secret").write_bytes(b"s" * 64)
    (root / layer_name).unlink()
    (root / layer_name).symlink_to(tmp_path / "secret")
    integrity(cli("mirror", "verify", str(root)), "missing from the bundle")
    integrity(cli("mirror", "push", "--bundle", str(root), "--registry", registries.mirror.host, "--insecure"),
              "is missing from the bundle")  # fmt: skip


def test_malformed_index_and_manifests(cli: Any, tmp_path: Path) -> None:
    c = Crafted()
    c.lock(c.image())
    c.finish(index={"manifests": {"x": 1}})
    integrity(
        cli("mirror", "verify", str(c.tar(tmp_path / "index.tar"))), "index.json manifests: expected a list"
    )

    for doc, field in [
        (b"{broken", "is not valid JSON"),
        (json.dumps({"schemaVersion": 2, "layers": "all"}).encode(), "layers: expected a list"),
        (json.dumps({"layers": [{"digest": "sha256:/etc/passwd", "size": 1}]}).encode(), "layers[0].digest"),
        (json.dumps({"config": {"digest": sha(b"x"), "size": -1}}).encode(), "config.size"),
    ]:
        c = Crafted()
        c.lock({"mediaType": MT_MANIFEST, **c.blob(doc)})
        c.finish()
        bundle = c.tar(tmp_path / "m.tar")
        integrity(cli("mirror", "verify", str(bundle)), field)
        integrity(
            cli("mirror", "push", "--bundle", str(bundle), "--registry", "127.0.0.1:9", "--insecure"), field
        )


def test_an_oversized_manifest_is_refused_unread(cli: Any, tmp_path: Path) -> None:
    c = Crafted()
    huge = c.blob(b"{" + b" " * (5 << 20) + b"}")  # valid JSON, 5 MiB: over the 4 MiB cap
    c.lock(c.index([{"mediaType": MT_MANIFEST, **huge}]))  # listed with its true size
    c.finish()
    bundle = c.tar(tmp_path / "huge.tar")
    integrity(cli("mirror", "verify", str(bundle)), "more than the 4194304 allowed")
    integrity(cli("mirror", "push", "--bundle", str(bundle), "--registry", "127.0.0.1:9", "--insecure"),
              "more than the 4194304 allowed")  # fmt: skip


def test_a_tar_with_a_gigantic_pax_header(cli: Any, tmp_path: Path) -> None:
    """A pax header member declaring 1 GiB (a sparse file: no disk used), which tarfile would read
    into memory whole: refused as an unreadable tar, within 512 MiB of address space."""
    bundle = tmp_path / "pax.tar"
    header = tarfile.TarInfo("././@PaxHeader")
    header.type = tarfile.XHDTYPE
    header.size = 1 << 30
    with open(bundle, "wb") as fh:
        fh.write(header.tobuf(format=tarfile.USTAR_FORMAT))
        fh.truncate(fh.tell() + (1 << 30) + 1024)
    integrity(cli("mirror", "verify", str(bundle), memory=512 << 20), "not a bundle (unreadable tar")


def test_resumed_blobs_with_the_right_size_but_wrong_content_are_fetched_again(
    registries: Registries, oci_images: SeededImages, tmp_path: Path
) -> None:
    """An interrupted create left its work directory, and a blob in it was altered (same size):
    first as a complete blob, then as a full-size .partial. Each next run re-hashes it, drops it and
    fetches exactly that blob again (against the real upstream registry)."""
    up = registries.upstream
    opts = {up.host: RegistryOptions(insecure=True)}
    out = tmp_path / "bundle.tar"
    first = create_bundle([oci_images.single.ref], out, registries=opts, keep_work_dir=True)
    blobs = work_dir_for(out) / "blobs" / "sha256"
    manifest = json.loads((blobs / first.entries[0].digest[7:]).read_bytes())
    layer = blobs / manifest["layers"][0]["digest"][7:]
    size = layer.stat().st_size

    layer.write_bytes(b"\0" * size)  # a complete blob of the right size, wrong content
    out.unlink()
    again = create_bundle([oci_images.single.ref], out, registries=opts, keep_work_dir=True)
    assert again.bytes_downloaded == size
    assert verify_bundle(out) == []

    layer.rename(layer.with_name(layer.name + ".partial"))
    layer.with_name(layer.name + ".partial").write_bytes(b"\1" * size)  # a "finished" partial, wrong
    out.unlink()
    third = create_bundle([oci_images.single.ref], out, registries=opts)
    assert third.bytes_downloaded == size
    assert verify_bundle(out) == [] and third.bytes_total == first.bytes_total


# -- host packages: the lock's records name paths on the jump host -----------------------------------

DEB = b"!<arch>\ndebian-binary   0           0     0     100644  4         `\n2.0\n"


def package_bundle(tmp_path: Path, name: str, change: Any = None, index: bytes | None = None) -> Path:
    """A bundle holding one host package (socat) and its site index, made by create_bundle from
    crafted files; `change(section)` edits the lock's packages section, `index` replaces the index."""
    from kvinstall.mirror.model import FileItem

    work = tmp_path / f"{name}-files"
    work.mkdir()
    deb = work / "socat.deb"
    deb.write_bytes(DEB)
    filename = "socat_1.7.4.4-2_amd64.deb"
    stanza = (f"Package: socat\nVersion: 1.7.4.4-2\nArchitecture: amd64\nFilename: pool/main/socat/{filename}\n"
              f"Size: {len(DEB)}\nSHA256: {sha(DEB)[7:]}\n").encode()  # fmt: skip
    (work / "Packages").write_bytes(index if index is not None else stanza)
    record = {"name": "socat", "version": "1.7.4.4-2", "architecture": "amd64", "filename": filename,
              "sha256": sha(DEB)[7:], "size": len(DEB), "source": str(deb)}  # fmt: skip
    section: dict[str, Any] = {
        "debian-12": {"family": "deb", "architecture": "amd64", "needed": ["socat"],
                      "index": {"reference": "kvinstall/package-index/debian-12:packages",
                                "sha256": sha((work / "Packages").read_bytes())[7:]},
                      "packages": [record]},
    }  # fmt: skip
    if change is not None:
        change(section)
    items = [
        FileItem(name="kvinstall/packages/debian-12", tag="socat", source=str(deb), sha256=sha(DEB),
                 media_type="application/vnd.debian.binary-package", filename=filename),
        FileItem(name="kvinstall/package-index/debian-12", tag="packages", source=str(work / "Packages"),
                 sha256=sha((work / "Packages").read_bytes()), media_type="application/vnd.kvinstall.apt-packages.v1",
                 filename="Packages"),
    ]  # fmt: skip
    out = tmp_path / f"{name}.tar"
    create_bundle(items, out, extra_lock={"packages": section})
    return out


def record(field: str, value: Any) -> Any:
    return lambda section: section["debian-12"]["packages"][0].update({field: value})


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (record("filename", "../../../../etc/cron.d/x.deb"), "packages.debian-12.packages[0].filename"),
        (record("filename", "/etc/cron.d/x.deb"), "packages.debian-12.packages[0].filename"),
        (record("name", "../socat"), "packages.debian-12.packages[0].name"),
        (record("name", "/socat"), "packages.debian-12.packages[0].name"),
        (record("sha256", "sha256:../../../etc/shadow"), "packages.debian-12.packages[0].sha256"),
        (record("size", "12"), "packages.debian-12.packages[0].size"),
        (record("version", "1.0/../../x"), "packages.debian-12.packages[0].version"),
        (
            lambda s: s.update({"../../tmp": s.pop("debian-12")}),
            "packages: '../../tmp' is not a valid distribution",
        ),
        (lambda s: s["debian-12"]["index"].update(sha256="/etc/passwd"), "packages.debian-12.index.sha256"),
        (lambda s: s["debian-12"].update(architecture="amd64/../.."), "packages.debian-12.architecture"),
        (
            lambda s: s["debian-12"]["packages"].append(dict(s["debian-12"]["packages"][0])),
            "socat listed twice",
        ),
        (lambda s: s["debian-12"].update(needed=["\x1b]0;owned\x07"]), "packages.debian-12.needed[0]"),
    ],
)
def test_package_records_naming_paths_or_bad_digests(
    cli: Any, tmp_path: Path, change: Any, field: str
) -> None:
    """Each refused from the lock alone, before any path is built: verify and serve exit 11 naming
    the field, and serve makes no state directory (where it would write the repository)."""
    sound = package_bundle(tmp_path, "sound")
    proc = cli("mirror", "verify", str(sound))
    assert proc.returncode == 0, proc.stderr
    bundle = package_bundle(tmp_path, "bad", change)
    integrity(cli("mirror", "verify", str(bundle)), field)
    state = tmp_path / "serve-state"
    integrity(cli("mirror", "serve", "--bundle", str(bundle), "--state-dir", str(state), "--address", "127.0.0.1",
                  "--foreground"), field)  # fmt: skip
    assert not state.exists()


def test_package_index_oversized_or_another_than_the_lock_names(cli: Any, tmp_path: Path) -> None:
    # 33 MiB of index: over the 32 MiB cap, refused from the size its manifest declares.
    huge = package_bundle(tmp_path, "huge", index=b"Package: x\n" + b"X-Pad: " + b"p" * (33 << 20) + b"\n")
    integrity(cli("mirror", "verify", str(huge), memory=512 << 20),
              "packages.debian-12.index: unreadable package index", "more than the 33554432 allowed")  # fmt: skip
    # A well-formed digest of another index.
    other = package_bundle(tmp_path, "other", lambda s: s["debian-12"]["index"].update(sha256="0" * 64))
    integrity(cli("mirror", "verify", str(other)), "packages.debian-12.index.sha256")
    # The index sends apt to another path than the lock's pool path: refused (apt would fetch it).
    moved = package_bundle(
        tmp_path, "moved",
        index=(f"Package: socat\nVersion: 1.7.4.4-2\nArchitecture: amd64\nFilename: ../../../etc/shadow\n"
               f"Size: {len(DEB)}\nSHA256: {sha(DEB)[7:]}\n").encode(),
    )  # fmt: skip
    integrity(cli("mirror", "verify", str(moved)), "package socat: the index lists another file")
