"""Where `mirror create` pulls from: per-registry endpoints, plain HTTP and CA files (pure).

A site that cannot reach docker.io, quay.io, ... directly usually has a pull-through cache or a
mirror that serves the same repositories (containerd calls these `mirrors`). `--registry-mirror
docker.io=cache.example:5000` makes every docker.io/... reference be pulled from that endpoint with
the same repository path, tag and digest; the bundle's lock still records docker.io/... (what the
rendered objects name, and what an offline site expects). `--insecure-registry` and `--registry-ca`
name either an upstream host or an endpoint: they apply to the registry actually contacted.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from kvinstall.errors import UsageError
from kvinstall.imageref import DOCKER_HUB, DOCKER_HUB_ENDPOINT
from kvinstall.mirror.model import RegistryOptions

_HUB_ALIASES = (DOCKER_HUB_ENDPOINT, "index.docker.io")


def _host(text: str, option: str) -> str:
    host = text.strip().rstrip("/")
    for scheme in ("https://", "http://"):
        if host.startswith(scheme):
            raise UsageError(
                f"{option} {text!r}: give HOST[:PORT] without a scheme (plain HTTP is --insecure-registry)"
            )
    if not host or "/" in host or any(c.isspace() for c in host):
        raise UsageError(f"{option} {text!r}: expected HOST[:PORT]")
    return DOCKER_HUB if host in _HUB_ALIASES else host


def _pair(text: str, option: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise UsageError(f"{option} {text!r}: expected HOST=VALUE")
    return key.strip(), value.strip()


def registry_options(
    mirrors: Iterable[str] = (),
    insecure: Iterable[str] = (),
    ca_files: Iterable[str] = (),
) -> dict[str, RegistryOptions]:
    """Options per upstream host, from `HOST=ENDPOINT` mirrors, insecure `HOST`s and `HOST=FILE` CAs.

    The result is what `create_bundle(registries=...)` takes: keyed by the registry host as written
    in references (docker.io for Docker Hub, also when given as registry-1.docker.io).
    """
    endpoints: dict[str, str] = {}
    for text in mirrors:
        host, endpoint = _pair(text, "--registry-mirror")
        host = _host(host, "--registry-mirror")
        if host in endpoints and endpoints[host] != _host(endpoint, "--registry-mirror"):
            raise UsageError(f"--registry-mirror: two endpoints for {host}")
        endpoints[host] = _host(endpoint, "--registry-mirror")
    plain = {_host(h, "--insecure-registry") for h in insecure}
    cas: dict[str, str] = {}
    for text in ca_files:
        host, path = _pair(text, "--registry-ca")
        if not Path(path).expanduser().is_file():
            raise UsageError(f"--registry-ca {text!r}: no such file")
        cas[_host(host, "--registry-ca")] = str(Path(path).expanduser())
    out: dict[str, RegistryOptions] = {}
    for host in [*endpoints, *sorted(plain - set(endpoints)), *sorted(set(cas) - set(endpoints) - plain)]:
        contacted = endpoints.get(host, host)
        # Settings of the contacted registry win over those given for the upstream name.
        ca = cas.get(contacted) or cas.get(host)
        is_plain = contacted in plain or host in plain
        if ca and is_plain:
            raise UsageError(f"{contacted}: both --insecure-registry and --registry-ca given")
        out[host] = RegistryOptions(endpoint=endpoints.get(host), ca_file=ca, insecure=is_plain)
    return out
