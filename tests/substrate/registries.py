"""Real OCI registries: Debian ``docker-registry`` (distribution 2.8.2) on 127.0.0.1.

Fixtures
- ``registries`` (session): a :class:`Registries` bundle with four running registries, each with its own
  storage: ``.upstream`` and ``.mirror`` (plain HTTP), ``.tls`` (HTTPS, self-signed CA at ``.tls.ca``, SAN
  IP:127.0.0.1) and ``.auth`` (plain HTTP + htpasswd basic auth, ``.auth.username`` / ``.auth.password``).
  They are shared by the session: use repository names unique to your test.
- ``registry_factory`` (session): ``registry_factory(name, tls=False, auth=False) -> Registry`` for a fresh,
  empty registry (e.g. one a test may stop or wipe); stopped at session end.

A :class:`Registry` has ``.host`` (``127.0.0.1:PORT``), ``.url`` (``http(s)://HOST``), ``.root`` (storage
dir), ``.ca`` (Path or None), ``.username``/``.password`` (or None), ``.session()`` (a ``requests.Session``
with auth and CA set), ``.stop()``, ``.start()``, ``.restart()`` (same port and storage).
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest
import requests

from .pki import CA
from .procs import Proc, free_port, wait_until

DOCKER_REGISTRY = "/usr/bin/docker-registry"


class Registry:
    def __init__(self, name: str, root: Path, *, ca: CA | None = None, auth: bool = False) -> None:
        if not Path(DOCKER_REGISTRY).exists():
            raise RuntimeError(f"{DOCKER_REGISTRY} missing: run hack/ci-setup.sh (apt: docker-registry)")
        self.name = name
        self.root = root
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.ca: Path | None = None
        self.username: str | None = None
        self.password: str | None = None
        storage = root / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        cfg = [
            "version: 0.1",
            "log: {level: warn, accesslog: {disabled: true}}",
            "storage:",
            f"  filesystem: {{rootdirectory: {storage}}}",
            "  delete: {enabled: true}",
            "http:",
            f"  addr: {self.host}",
            f"  secret: {secrets.token_hex(16)}",
        ]
        if ca is not None:
            pair = ca.issue(f"registry-{name}", common_name="127.0.0.1", ips=("127.0.0.1",),
                            dns=("localhost",))
            cfg.append(f"  tls: {{certificate: {pair.cert}, key: {pair.key}}}")
            self.ca = ca.cert_path
        if auth:
            self.username = "kvtest"
            self.password = secrets.token_urlsafe(12)
            hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=5)).decode()
            htpasswd = root / "htpasswd"
            htpasswd.write_text(f"{self.username}:{hashed}\n")
            cfg += ["auth:", f"  htpasswd: {{realm: kvinstall-test, path: {htpasswd}}}"]
        self.config = root / "config.yml"
        self.config.write_text("\n".join(cfg) + "\n")
        self.scheme = "https" if ca is not None else "http"
        self.url = f"{self.scheme}://{self.host}"
        self.proc = Proc([DOCKER_REGISTRY, "serve", str(self.config)], root / "registry.log")

    def session(self) -> requests.Session:
        """A requests session that trusts this registry's CA and sends its credentials."""
        s = requests.Session()
        # with trust_env, REQUESTS_CA_BUNDLE (set on CI machines) silently overrides Session.verify
        s.trust_env = False
        if self.ca is not None:
            s.verify = str(self.ca)
        if self.username is not None and self.password is not None:
            s.auth = (self.username, self.password)
        return s

    def _ready(self) -> bool:
        self.proc.check_alive(f"registry {self.name}")
        with self.session() as s:
            r = s.get(f"{self.url}/v2/", timeout=2)
        return r.status_code == 200

    def start(self) -> Registry:
        self.proc.start()
        try:
            wait_until(self._ready, 20, f"registry {self.name} at {self.url}")
        except BaseException:
            self.proc.stop()
            raise
        return self

    def stop(self) -> None:
        self.proc.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def wipe(self) -> None:
        """Delete every stored repository and blob (registry must be stopped or restarted after)."""
        shutil.rmtree(self.root / "storage", ignore_errors=True)
        (self.root / "storage").mkdir()

    def __repr__(self) -> str:
        return f"Registry({self.name!r}, {self.url})"


@dataclass
class Registries:
    upstream: Registry
    mirror: Registry
    tls: Registry
    auth: Registry

    def all(self) -> list[Registry]:
        return [self.upstream, self.mirror, self.tls, self.auth]


def _start(stack: ExitStack, name: str, root: Path, ca: CA | None, auth: bool) -> Registry:
    # a port taken between free_port() and the server's bind makes start fail: retry with a fresh port
    for attempt in range(3):
        reg = Registry(name, root / f"{name}-{attempt}" if attempt else root / name, ca=ca, auth=auth)
        try:
            reg.start()
        except RuntimeError:
            if attempt == 2:
                raise
            continue
        stack.callback(reg.stop)
        return reg
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def registry_ca(tmp_path_factory: pytest.TempPathFactory) -> CA:
    return CA(tmp_path_factory.mktemp("registry-ca"), "kvinstall-test-registry-ca")


@pytest.fixture(scope="session")
def registries(tmp_path_factory: pytest.TempPathFactory, registry_ca: CA) -> Iterator[Registries]:
    root = tmp_path_factory.mktemp("registries")
    with ExitStack() as stack:
        yield Registries(
            upstream=_start(stack, "upstream", root, None, False),
            mirror=_start(stack, "mirror", root, None, False),
            tls=_start(stack, "tls", root, registry_ca, False),
            auth=_start(stack, "auth", root, None, True),
        )


@pytest.fixture(scope="session")
def registry_factory(tmp_path_factory: pytest.TempPathFactory, registry_ca: CA
                     ) -> Iterator[Callable[..., Registry]]:
    root = tmp_path_factory.mktemp("registry-factory")
    count = 0
    with ExitStack() as stack:
        def make(name: str = "reg", tls: bool = False, auth: bool = False) -> Registry:
            nonlocal count
            count += 1
            return _start(stack, f"{name}-{count}", root, registry_ca if tls else None, auth)

        yield make
