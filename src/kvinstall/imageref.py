"""Image reference parsing (pure), shared by the renderers (offline rewrite) and the mirror (copy, push).

Docker's normalisation rules: a first path component is a registry host only when it contains a
'.' or a ':' or is 'localhost'; otherwise the host is docker.io, and a single-component name on
docker.io lives under 'library/'.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DOCKER_HUB = "docker.io"
# The API endpoint of docker.io; the name users write is docker.io.
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"

_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_REPO_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")


class ReferenceError_(ValueError):
    """An image reference that cannot be parsed."""


@dataclass(frozen=True)
class Reference:
    registry: str  # as written (docker.io for Docker Hub), may include a port
    repository: str  # path inside the registry, e.g. kubeovn/kube-ovn
    tag: str | None = None
    digest: str | None = None

    @property
    def endpoint(self) -> str:
        """Host[:port] to talk to."""
        return DOCKER_HUB_ENDPOINT if self.registry == DOCKER_HUB else self.registry

    @property
    def ref(self) -> str:
        """What to ask the registry for: the digest when pinned (it wins), else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def _is_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


def parse_reference(text: str) -> Reference:
    """Parse an image reference like `nginx`, `quay.io/a/b:v1`, `127.0.0.1:5000/x@sha256:...`."""
    s = text.strip()
    if not s or any(c.isspace() for c in s):
        raise ReferenceError_(f"invalid image reference {text!r}")
    digest: str | None = None
    if "@" in s:
        s, digest = s.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise ReferenceError_(f"invalid digest in image reference {text!r}")
    first, sep, rest = s.partition("/")
    if sep and _is_host(first):
        registry, path = first, rest
    else:
        registry, path = DOCKER_HUB, s
    # The tag is after the last ':' of the last path component (a port lives in the host part).
    tag: str | None = None
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > last_slash:
        path, tag = path[:colon], path[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise ReferenceError_(f"invalid tag in image reference {text!r}")
    if registry in ("index.docker.io", DOCKER_HUB_ENDPOINT):
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not _REPO_RE.match(path):
        raise ReferenceError_(f"invalid repository name in image reference {text!r}")
    return Reference(registry=registry, repository=path, tag=tag, digest=digest)


def rewrite_image(ref: str, site_registry: str) -> str:
    """Point an image reference at the site registry, keeping repository path, tag and digest.

    docker.io/kubeovn/kube-ovn:v1.16.2 -> SITE/kubeovn/kube-ovn:v1.16.2; nginx -> SITE/library/nginx.
    The upstream host is dropped (the same mapping `push_bundle` uses), so quay.io/a/b and
    docker.io/a/b would meet at SITE/a/b; the catalogs this tool mirrors have no such clash.
    """
    site = site_registry.strip().rstrip("/")
    for scheme in ("https://", "http://"):
        if site.startswith(scheme):
            site = site[len(scheme) :]
    if not site:
        raise ReferenceError_("empty site registry")
    parsed = parse_reference(ref)
    return str(Reference(registry=site, repository=parsed.repository, tag=parsed.tag, digest=parsed.digest))
