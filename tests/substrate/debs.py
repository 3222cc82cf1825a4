"""Real Debian packages for the host-package tests, and bundles and `mirror serve` services made of them.

No test reaches deb.debian.org. hack/ci-setup.sh fetches, once, a partial bookworm mirror into
~/.cache/kvinstall-test/debian-bookworm (hack/debian-mirror.py: the signed InRelease as published, the
main/binary-amd64 Packages.gz it pins, the .debs of the closure the tests collect, and copies of two of
them as local .deb files). The ``debian_mirror`` fixture serves that folder over HTTP on 127.0.0.1 and the
test catalog names that URL; kvinstall then checks the real Debian signature (the machine's
debian-archive-keyring, gpgv) and the real digests, as with the public mirror. Nothing is faked: the
files are Debian's, only the address is local. The Kubernetes and Docker repositories (kubelet, kubeadm,
containerd.io) are out of reach, so a test package catalog stands in for the shipped one: its Debian
family needs containerd, conntrack and socat, which bookworm main has.

Fixtures
- ``debian_mirror`` (session): :class:`DebianMirror`, the cached mirror served on 127.0.0.1 (``.url``,
  ``.root``, ``.local_debs``, ``.server.hits``). Fails (never skips) naming hack/ci-setup.sh when the
  cache is missing or lacks a package these tests need.
- ``package_env`` (session): environment for kvinstall (``KVINSTALL_PACKAGES`` = the test catalog, whose
  every repository URL is checked to be a loopback one; ``KVINSTALL_CACHE_DIR`` = a fresh cache for the
  session, so every run downloads from the served mirror and checks the digests again).
- ``local_debs`` (session): a folder of .deb files (ethtool and its library) for ``--package-dir``.
- ``package_bundle`` (session): :class:`PackageBundle` made by kvinstall's own collection from the mirror
  (verified signatures and digests) plus ``local_debs``: ``.path``, ``.lock``, ``.config`` (a config file
  naming debian-12), ``.versions`` (name -> version in the bundle).

Helpers: ``MirrorServer(root)`` serves a folder on 127.0.0.1 (a context manager; the unshare -n test
runs it inside an empty network namespace); ``serve(argv_prefix, bundle, state_dir, address, ...)`` runs
``kvinstall mirror serve`` and registers nothing; ``stop_serve(state_dir)`` stops it and kills anything
its serve.json still names.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

MIRROR_CACHE = Path.home() / ".cache" / "kvinstall-test" / "debian-bookworm"  # see hack/debian-mirror.py
SETUP = "hack/ci-setup.sh"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
NEEDED = ("containerd", "conntrack", "socat")
LOCAL = ("ethtool", "libmnl0")  # given as local .deb files, next to the mirror's
CATALOG = """\
families:
  deb:
    packages: [{needed}]
  rpm:
    packages: []
distributions:
  debian-12:
    family: deb
    architecture: amd64
    repositories:
      - url: {url}
        suite: bookworm
        components: [main]
        keyring: {keyring}
"""


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# The server runs in a process of its own: nothing the test process does to its own file descriptors
# or threads can take the mirror's socket away (a shared listening socket once answered another
# server's HTTP 405 in a full run). Each request is one line "STATUS PATH" on its stdout.
_SERVER = r"""
import functools, http.server, sys

class Handler(http.server.SimpleHTTPRequestHandler):
    timeout = 60  # a stuck client cannot hold a server thread for longer

    def log_request(self, code="-", size="-"):
        print(f"{code} {self.path}", flush=True)

    def log_message(self, format, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=sys.argv[1]))
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever(poll_interval=0.2)
"""


@dataclass
class MirrorServer:
    """A folder over plain HTTP on 127.0.0.1 (an ephemeral port), answered by a child process."""

    root: Path
    hits: list[tuple[int, str]] = field(default_factory=list)  # (HTTP status, path) of every request
    _proc: subprocess.Popen[str] | None = None
    _reader: threading.Thread | None = None
    _port: int = 0

    @property
    def url(self) -> str:
        assert self._proc is not None, "not started"
        return f"http://127.0.0.1:{self._port}"

    def __enter__(self) -> MirrorServer:
        self._proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(self.root)], stdout=subprocess.PIPE,
                                      stdin=subprocess.DEVNULL, text=True)  # fmt: skip
        assert self._proc.stdout is not None
        first = self._proc.stdout.readline()  # its port, or EOF when it could not start
        if not first.strip().isdigit():
            self._proc.kill()
            self._proc.wait(30)
            raise RuntimeError(f"the Debian mirror server did not start: {first!r}")
        self._port = int(first)
        self._reader = threading.Thread(target=self._read, args=(self._proc.stdout,), name="debian-mirror-log",
                                        daemon=True)  # fmt: skip
        self._reader.start()
        return self

    def _read(self, out: Any) -> None:
        for line in out:
            if not line.strip():
                continue
            code, _, path = line.rstrip("\n").partition(" ")
            self.hits.append((int(code) if code.isdigit() else 0, path))

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        assert self._proc is not None and self._reader is not None
        self._proc.terminate()
        try:
            self._proc.wait(60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(60)
        self._reader.join(timeout=60)


@dataclass(frozen=True)
class DebianMirror:
    url: str  # http://127.0.0.1:PORT, the mirror's base (dists/, pool/)
    root: Path
    local_debs: Path
    server: MirrorServer


def cached_mirror(cache: Path = MIRROR_CACHE) -> Path:
    """The folder hack/debian-mirror.py filled; a clear failure naming the setup step if it did not."""
    try:
        recipe = json.loads((cache / "stamp.json").read_text())["recipe"]
    except (OSError, ValueError, KeyError):
        recipe = None
    if not isinstance(recipe, dict):
        pytest.fail(f"no cached Debian mirror in {cache}: run {SETUP} once (it fetches the packages these tests "
                    "serve on 127.0.0.1; the tests never reach deb.debian.org)", pytrace=False)
    lacking = [p for p in (*NEEDED, *LOCAL) if p not in [*recipe["packages"], *recipe["local"]]]
    if lacking:
        pytest.fail(f"the cached Debian mirror in {cache} lacks {', '.join(lacking)}: add them to "
                    f"hack/debian-mirror.py and run {SETUP} again", pytrace=False)
    return cache


@pytest.fixture(scope="session")
def debian_mirror() -> Iterator[DebianMirror]:
    root = cached_mirror()
    with MirrorServer(root / "mirror") as server:
        yield DebianMirror(server.url, root / "mirror", root / "local-debs", server)


def package_env_for(url: str, directory: Path) -> dict[str, str]:
    """The test catalog naming the mirror at url, and a kvinstall cache, both in directory."""
    catalog = directory / "packages.yaml"
    catalog.write_text(CATALOG.format(needed=", ".join(NEEDED), url=url, keyring=KEYRING))
    # The rule the whole file exists for: the tests' package traffic goes to loopback only.
    urls = [r["url"] for d in yaml.safe_load(catalog.read_text())["distributions"].values()
            for r in d["repositories"]]
    assert urls and all(is_loopback(u) for u in urls), f"the test catalog names non-loopback repositories: {urls}"
    return {"KVINSTALL_PACKAGES": str(catalog), "KVINSTALL_CACHE_DIR": str(directory / "cache")}


def config_text(*, registry: str = "192.0.2.1:5000", hosts: Sequence[str] = ("192.0.2.11",),
                extra: Sequence[str] = (), offline: Mapping[str, Any] | None = None) -> str:
    """A config naming debian-12 for its hosts (addresses in TEST-NET: never contacted)."""
    lines = ["apiVersion: kvinstall.io/v1alpha1", "kind: VirtualizationCluster", "metadata: {name: pkgs}",
             "storage: {rwxClass: shared}", "hosts:"]
    lines += [f"  - {{address: {h}, role: {'controlPlane' if i == 0 else 'worker'}}}" for i, h in enumerate(hosts)]
    lines += ["offline:", "  enabled: true", f"  registry: {json.dumps(registry)}",
              f"  hostPackages: {{distributions: [debian-12], extra: {json.dumps(list(extra))}}}"]
    for key, value in (offline or {}).items():
        lines.append(f"  {key}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def package_env(tmp_path_factory: pytest.TempPathFactory, debian_mirror: DebianMirror) -> dict[str, str]:
    return package_env_for(debian_mirror.url, tmp_path_factory.mktemp("package-env"))


@contextlib.contextmanager
def environ(values: Mapping[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def local_debs(debian_mirror: DebianMirror) -> Path:
    return debian_mirror.local_debs


@dataclass(frozen=True)
class PackageBundle:
    path: Path
    lock: dict[str, Any]
    config: Path
    env: dict[str, str]

    @property
    def versions(self) -> dict[str, str]:
        return {p["name"]: p["version"] for p in self.lock["packages"]["debian-12"]["packages"]}


def make_bundle(out: Path, env: Mapping[str, str], *, extra: Sequence[str] = (), dirs: Sequence[Path] = (),
                mirror: str = "") -> PackageBundle:
    """A bundle holding only host packages, made the way `mirror create` makes its package part (with
    dirs, the mirror at the URL mirror is named as a --package-repo beside them)."""
    from kvinstall.catalog.packages import load_package_catalog
    from kvinstall.config.loader import load_file
    from kvinstall.mirror.aptfetch import PackageSources, collect_packages
    from kvinstall.mirror.bundle import BundleReader, create_bundle

    config = out.with_suffix(".yaml")
    config.write_text(config_text(extra=extra))
    with environ(env):
        cfg = load_file(config).config
        sources = PackageSources.from_options(
            [f"debian-12=deb [signed-by={KEYRING}] {mirror} bookworm main"] if dirs else [],
            [f"debian-12={d}" for d in dirs],
        )
        got = collect_packages(cfg, load_package_catalog(), sources, workers=4)
        create_bundle(got.items, out, workers=4,
                      extra_lock={"packages": {s.distribution: s.to_json() for s in got.sets}})
    return PackageBundle(out, BundleReader(out).lock(), config, dict(env))


@pytest.fixture(scope="session")
def package_bundle(tmp_path_factory: pytest.TempPathFactory, package_env: dict[str, str],
                   debian_mirror: DebianMirror, local_debs: Path) -> PackageBundle:
    from kvinstall.errors import ArtifactError

    try:
        return make_bundle(tmp_path_factory.mktemp("package-bundle") / "bundle.tar", package_env,
                           extra=["ethtool"], dirs=[local_debs], mirror=debian_mirror.url)
    except ArtifactError:
        gone = [path for code, path in debian_mirror.server.hits if code == 404]
        if gone:  # a mirror cached for another package list: say how to refresh it
            pytest.fail(f"the cached Debian mirror ({debian_mirror.root}) lacks {gone}: run {SETUP} again",
                        pytrace=False)
        raise


def kvinstall(argv: Sequence[str], env: Mapping[str, str], *, prefix: Sequence[str] = (), cwd: Path | None = None,
              timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess (optionally behind a prefix such as `ip netns exec LAB`)."""
    full = {**os.environ, **env, "NO_COLOR": "1"}
    return subprocess.run([*prefix, sys.executable, "-m", "kvinstall", *argv], env=full, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def stop_serve(state_dir: Path, env: Mapping[str, str], prefix: Sequence[str] = ()) -> None:
    """`mirror serve --stop`, then make sure nothing it started is left (a failed test must not leak)."""
    kvinstall(["mirror", "serve", "--stop", "--state-dir", str(state_dir)], env, prefix=prefix, timeout=120)
    with contextlib.suppress(OSError, ValueError):
        state = json.loads((state_dir / "serve.json").read_text())
        for pid in [state.get("supervisor_pid"), *state.get("children", {}).values()]:
            if pid and _ours(int(pid)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)


def _ours(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"kvinstall" in cmdline or b"docker-registry" in cmdline
