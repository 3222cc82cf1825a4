"""Real Debian packages for the host-package tests, and bundles and `mirror serve` services made of them.

This machine's Debian mirror (deb.debian.org, bookworm) is the one "internet" the tests may reach. The
Kubernetes and Docker repositories (kubelet, kubeadm, containerd.io) are out of reach, so a test package
catalog stands in for the shipped one: its Debian family needs containerd, conntrack and socat, which
bookworm main has. Downloads are bounded (timeouts, retries, one fetch per changed upstream file): the
package cache is ~/.cache/kvinstall-test/packages, kept between runs, so the mirror is asked again only for
its small InRelease file.

Fixtures
- ``package_env`` (session): environment for kvinstall (``KVINSTALL_PACKAGES`` = the test catalog,
  ``KVINSTALL_CACHE_DIR`` = the persistent cache).
- ``local_debs`` (session): a folder of .deb files fetched with the machine's own ``apt-get download``
  (ethtool and its library), for ``--package-dir``.
- ``package_bundle`` (session): :class:`PackageBundle` made by kvinstall's own collection from the mirror
  (verified signatures and digests) plus ``local_debs``: ``.path``, ``.lock``, ``.config`` (a config file
  naming debian-12), ``.versions`` (name -> version in the bundle).

Helpers: ``serve(argv_prefix, bundle, state_dir, address, ...)`` runs ``kvinstall mirror serve`` and
registers nothing; ``stop_serve(state_dir)`` stops it and kills anything its serve.json still names.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CACHE = Path.home() / ".cache" / "kvinstall-test" / "packages"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
MIRROR = "http://deb.debian.org/debian"
NEEDED = ("containerd", "conntrack", "socat")
LOCAL = ("ethtool", "libmnl0")  # from `apt-get download`, served next to the mirror's
CATALOG = f"""\
families:
  deb:
    packages: [{", ".join(NEEDED)}]
  rpm:
    packages: []
distributions:
  debian-12:
    family: deb
    architecture: amd64
    repositories:
      - url: {MIRROR}
        suite: bookworm
        components: [main]
        keyring: {KEYRING}
"""


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
def package_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    catalog = tmp_path_factory.mktemp("package-catalog") / "packages.yaml"
    catalog.write_text(CATALOG)
    CACHE.mkdir(parents=True, exist_ok=True)
    return {"KVINSTALL_PACKAGES": str(catalog), "KVINSTALL_CACHE_DIR": str(CACHE)}


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
def local_debs() -> Path:
    folder = CACHE / "apt-get-download"
    folder.mkdir(parents=True, exist_ok=True)
    missing = [n for n in LOCAL if not list(folder.glob(f"{n}_*.deb"))]
    if missing:
        res = subprocess.run(["apt-get", "download", *missing], cwd=folder, capture_output=True, text=True,
                             timeout=300)
        assert res.returncode == 0, f"apt-get download {missing}: {res.stderr}"
    return folder


@dataclass(frozen=True)
class PackageBundle:
    path: Path
    lock: dict[str, Any]
    config: Path
    env: dict[str, str]

    @property
    def versions(self) -> dict[str, str]:
        return {p["name"]: p["version"] for p in self.lock["packages"]["debian-12"]["packages"]}


def make_bundle(out: Path, env: Mapping[str, str], *, extra: Sequence[str] = (),
                dirs: Sequence[Path] = ()) -> PackageBundle:
    """A bundle holding only host packages, made the way `mirror create` makes its package part."""
    from kvinstall.catalog.packages import load_package_catalog
    from kvinstall.config.loader import load_file
    from kvinstall.mirror.aptfetch import PackageSources, collect_packages
    from kvinstall.mirror.bundle import BundleReader, create_bundle

    config = out.with_suffix(".yaml")
    config.write_text(config_text(extra=extra))
    with environ(env):
        cfg = load_file(config).config
        sources = PackageSources.from_options(
            [f"debian-12=deb [signed-by={KEYRING}] {MIRROR} bookworm main"] if dirs else [],
            [f"debian-12={d}" for d in dirs],
        )
        got = collect_packages(cfg, load_package_catalog(), sources, workers=4)
        create_bundle(got.items, out, workers=4,
                      extra_lock={"packages": {s.distribution: s.to_json() for s in got.sets}})
    return PackageBundle(out, BundleReader(out).lock(), config, dict(env))


@pytest.fixture(scope="session")
def package_bundle(tmp_path_factory: pytest.TempPathFactory, package_env: dict[str, str],
                   local_debs: Path) -> PackageBundle:
    return make_bundle(tmp_path_factory.mktemp("package-bundle") / "bundle.tar", package_env,
                       extra=["ethtool"], dirs=[local_debs])


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
