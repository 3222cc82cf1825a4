"""Upstream artifacts, fetched at run time and cached by digest (an ArtifactSource).

Where the bytes come from:
- kind url / binary: an HTTPS GET of the URL;
- kind chart: the chart repository's index.yaml names the archive URL of the pinned version (its
  `digest` is checked too), then an HTTPS GET of the archive;
- kind oci: the single layer of the OCI artifact `[oci://]HOST/REPO:TAG`;
- offline (a site registry given): every artifact, whatever its kind, from the site registry at
  `artifact_oci_ref(artifact, site)` - where `kvinstall mirror push` puts it.

Integrity: the content's sha256 must equal the digest pinned in the catalog; a mismatch is an
IntegrityError naming the artifact and both digests, and nothing is cached. Artifacts whose digest
is not pinned (`sha256: null`) are trusted on first use: the digest of the first download is
recorded in `lock.json` in the cache directory, and every later download or cache read is
verified against it (delete the entry to accept a new upstream file deliberately).

The cache is `$KVINSTALL_CACHE_DIR` (default ~/.cache/kvinstall/artifacts): `sha256/<hex>` files
written atomically, verified again when read (a corrupted entry is dropped and fetched again).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import requests

from kvinstall.errors import ArtifactError, IntegrityError, LocalIOError
from kvinstall.fsutil import write_atomic
from kvinstall.mirror.model import artifact_repository, artifact_tag
from kvinstall.model import Artifact

if TYPE_CHECKING:
    from kvinstall.config.models import Config

MAX_BYTES = 1 << 30  # no upstream artifact of ours is near 1 GiB; stops a runaway download
_OCI_LAYER_TYPES_TO_SKIP = ("application/vnd.oci.empty.v1+json",)


def default_cache_dir() -> Path:
    env = os.environ.get("KVINSTALL_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "kvinstall" / "artifacts"


@dataclass(frozen=True)
class OfflineRegistry:
    """The site registry that holds the pushed bundle."""

    host: str  # HOST[:PORT]
    ca_file: str | None = None
    insecure: bool = False  # plain HTTP
    username: str | None = None
    password: str | None = None
    skip_verify: bool = False  # TLS, certificate not verified

    def __repr__(self) -> str:  # never print the password
        return f"OfflineRegistry(host={self.host!r}, insecure={self.insecure})"

    def client(self, **kw: Any) -> Any:
        from kvinstall.mirror.registry import RegistryClient

        return RegistryClient(
            self.host,
            ca_file=self.ca_file,
            insecure=self.insecure,
            skip_verify=self.skip_verify,
            username=self.username,
            password=self.password,
            **kw,
        )


def offline_registry(config: Config, *, charts: bool = False) -> OfflineRegistry | None:
    """The site registry of an offline config (None online), as the nodes' images are pulled from
    it, or with charts=True as kvinstall reads its charts and manifests (`offline.charts`, when
    set). Passwords are read from their source here; a missing one is a ConfigError naming the field."""
    off = config.offline
    if not off.enabled or not off.registry:
        return None
    creds, field, skip = off.credentials, "offline.credentials.password", off.insecure_skip_verify
    if charts and off.charts is not None:
        creds, field = off.charts.credentials, "offline.charts.credentials.password"
        skip = off.charts.insecure_skip_verify
    username = password = None
    if creds is not None:
        username = creds.username
        password = creds.password.require(field)
    return OfflineRegistry(
        host=off.registry,
        ca_file=off.ca_file,
        insecure=off.insecure,
        username=username,
        password=password,
        skip_verify=skip,
    )


def source_for(config: Config, *, fetch: bool = True, cache_dir: str | Path | None = None) -> ArtifactCache:
    """The ArtifactSource for a config: the site registry when offline, upstream otherwise."""
    return ArtifactCache(cache_dir, offline_registry=offline_registry(config, charts=True), fetch=fetch)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _strip(digest: str) -> str:
    return digest.removeprefix("sha256:").lower()


def _lock_key(artifact: Artifact) -> str:
    return f"{artifact.name} {artifact.version} {artifact.source}"


class ArtifactCache:
    """An ArtifactSource: the cache first, then the network (or the site registry), verified."""

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        *,
        offline_registry: OfflineRegistry | None = None,
        fetch: bool = True,
        verify: bool | str = True,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.offline_registry = offline_registry
        self.fetch = fetch
        self.verify = verify  # True, or a CA bundle path for requests
        self.timeout = timeout
        self.retries = max(1, retries)
        self.backoff = backoff
        self._session: requests.Session | None = None

    # -- the ArtifactSource protocol -------------------------------------------------------------

    def get(self, artifact: Artifact) -> bytes | None:
        expected = _strip(artifact.sha256) if artifact.sha256 else self.locked_digest(artifact)
        if expected is not None:
            cached = self._read_cached(expected)
            if cached is not None:
                return cached
        if not self.fetch:
            return None
        try:
            data = self._download(artifact)
        except _NotInSiteRegistry:
            # Offline, an artifact the site registry lacks is unavailable (not a registry failure):
            # the completeness gate then names it with every other missing one (exit 14).
            return None
        actual = _sha256(data)
        if expected is not None and actual != expected:
            origin = "pinned in the catalog" if artifact.sha256 else "recorded in the lock file on first use"
            raise IntegrityError(
                f"digest mismatch: expected sha256:{expected} ({origin}), got sha256:{actual}; "
                "the artifact was refused",
                where=f"artifact {artifact.name} ({artifact.describe()})",
            )
        self._store(actual, data)
        if expected is None:
            self._record_lock(artifact, actual)
        return data

    # -- cache and lock ---------------------------------------------------------------------------

    def path_for(self, digest: str) -> Path:
        return self.cache_dir / "sha256" / _strip(digest)

    @property
    def lock_path(self) -> Path:
        return self.cache_dir / "lock.json"

    def locked_digest(self, artifact: Artifact) -> str | None:
        entry = self._read_lock().get(_lock_key(artifact))
        return _strip(entry) if isinstance(entry, str) else None

    def _read_lock(self) -> dict[str, Any]:
        try:
            data = json.loads(self.lock_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise LocalIOError(
                f"cannot read the artifact lock file: {exc}", where=str(self.lock_path)
            ) from exc
        return data if isinstance(data, dict) else {}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._mkdir(self.cache_dir)
        try:
            with open(self.cache_dir / ".lock", "a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                yield
        except OSError as exc:
            raise LocalIOError(f"cannot lock the artifact cache: {exc}", where=str(self.cache_dir)) from exc

    def _record_lock(self, artifact: Artifact, digest: str) -> None:
        with self._locked():
            lock = self._read_lock()
            lock[_lock_key(artifact)] = f"sha256:{digest}"
            self._write_atomic(self.lock_path, (json.dumps(lock, indent=2, sort_keys=True) + "\n").encode())

    def _read_cached(self, digest: str) -> bytes | None:
        path = self.path_for(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LocalIOError(f"cannot read a cached artifact: {exc}", where=str(path)) from exc
        if _sha256(data) != digest:
            # A corrupted (or edited) cache entry is never used: drop it and fetch again.
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        return data

    def _store(self, digest: str, data: bytes) -> None:
        self._write_atomic(self.path_for(digest), data)

    @staticmethod
    def _mkdir(path: Path) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LocalIOError(f"cannot create the artifact cache: {exc}", where=str(path)) from exc

    def _write_atomic(self, path: Path, data: bytes) -> None:
        self._mkdir(path.parent)
        write_atomic(path, data)

    # -- fetching ---------------------------------------------------------------------------------

    def _download(self, artifact: Artifact) -> bytes:
        if self.offline_registry is not None:
            reg = self.offline_registry
            return self._pull_oci(artifact, reg, artifact_repository(artifact), artifact_tag(artifact))
        if artifact.kind in ("url", "binary"):
            return self._http_get(artifact, artifact.source)
        if artifact.kind == "chart":
            url, listed = self._chart_url(artifact)
            data = self._http_get(artifact, url)
            # The repository index lists the archive's digest: check it even when the catalog pins none.
            if listed is not None and _sha256(data) != listed:
                raise IntegrityError(
                    f"digest mismatch: the repository index lists sha256:{listed}, "
                    f"got sha256:{_sha256(data)}; the artifact was refused",
                    where=f"artifact {artifact.name} ({url})",
                )
            return data
        if artifact.kind == "oci":
            host, repository, ref = _split_oci(artifact)
            return self._pull_oci(artifact, OfflineRegistry(host=host), repository, ref)
        raise ArtifactError(f"unknown artifact kind {artifact.kind!r}", where=f"artifact {artifact.name}")

    def _http(self) -> requests.Session:
        if self._session is None:
            self._session = requests.Session()
        return self._session

    def _http_get(self, artifact: Artifact, url: str) -> bytes:
        where = f"artifact {artifact.name} ({url})"
        if not url.startswith("https://"):
            raise ArtifactError("only https:// URLs are fetched", where=where)
        last = ""
        for attempt in range(self.retries):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                with self._http().get(url, timeout=self.timeout, verify=self.verify, stream=True) as resp:
                    if resp.status_code == 429 or resp.status_code >= 500:
                        last = f"HTTP {resp.status_code}"
                        continue
                    if resp.status_code != 200:
                        raise ArtifactError(f"download failed: HTTP {resp.status_code}", where=where)
                    chunks: list[bytes] = []
                    total = 0
                    for chunk in resp.iter_content(1 << 16):
                        total += len(chunk)
                        if total > MAX_BYTES:
                            raise ArtifactError(f"larger than {MAX_BYTES} bytes", where=where)
                        chunks.append(chunk)
                    return b"".join(chunks)
            except requests.exceptions.SSLError as exc:
                raise ArtifactError(f"TLS verification failed: {exc}", where=where) from exc
            except requests.RequestException as exc:
                last = str(exc)
        raise ArtifactError(f"download failed after {self.retries} attempts: {last}", where=where)

    def _chart_url(self, artifact: Artifact) -> tuple[str, str | None]:
        repo = artifact.source if artifact.source.endswith("/") else artifact.source + "/"
        where = f"artifact {artifact.name} ({repo}index.yaml)"
        raw = self._http_get(artifact, urljoin(repo, "index.yaml"))
        from kvinstall import fastyaml

        try:
            index = fastyaml.load(raw)
        except fastyaml.YAMLError as exc:
            raise ArtifactError(f"the chart repository index is not valid YAML: {exc}", where=where) from exc
        entries = (index or {}).get("entries", {}) if isinstance(index, dict) else {}
        for entry in entries.get(artifact.chart or artifact.name) or []:
            same = str(entry.get("version", "")).lstrip("v") == artifact.version.lstrip("v")
            if same and entry.get("urls"):
                listed = _strip(str(entry["digest"])) if entry.get("digest") else None
                return urljoin(repo, str(entry["urls"][0])), listed
        raise ArtifactError(
            f"chart {artifact.chart} version {artifact.version} is not in the repository", where=where
        )

    def _pull_oci(self, artifact: Artifact, reg: OfflineRegistry, repository: str, ref: str) -> bytes:
        # The project's registry client (auth, retries, TLS); imported here to keep plans light.
        import io

        from kvinstall.mirror.registry import RegistryClient

        where = f"artifact {artifact.name} ({reg.host}/{repository}:{ref})"
        ca = reg.ca_file or (self.verify if isinstance(self.verify, str) else None)
        with RegistryClient(
            reg.host,
            ca_file=ca,
            insecure=reg.insecure,
            skip_verify=reg.skip_verify,
            username=reg.username,
            password=reg.password,
        ) as client:
            if reg is self.offline_registry and client.head_manifest(repository, ref) is None:
                raise _NotInSiteRegistry(where)
            data, _media, _digest = client.get_manifest(repository, ref)
            try:
                manifest = json.loads(data)
            except ValueError as exc:
                raise ArtifactError("the OCI manifest is not JSON", where=where) from exc
            layers = [
                layer
                for layer in manifest.get("layers") or []
                if layer.get("mediaType") not in _OCI_LAYER_TYPES_TO_SKIP
            ]
            if len(layers) != 1:
                raise ArtifactError(
                    f"expected one layer in the OCI artifact, found {len(layers)}", where=where
                )
            layer = layers[0]
            if int(layer.get("size", 0)) > MAX_BYTES:
                raise ArtifactError(f"larger than {MAX_BYTES} bytes", where=where)
            sink = io.BytesIO()
            client.download_blob(repository, str(layer["digest"]), sink)
        blob = sink.getvalue()
        if f"sha256:{_sha256(blob)}" != layer["digest"]:
            raise IntegrityError(
                f"blob digest mismatch: expected {layer['digest']}, got sha256:{_sha256(blob)}", where=where
            )
        return blob


class _NotInSiteRegistry(Exception):
    """The site registry answered that it does not have the artifact (HTTP 404)."""


class NoFetch(ArtifactCache):
    """Cache only, never the network: for `kvinstall plan` (artifacts not cached come back as None)."""

    def __init__(self, cache_dir: str | Path | None = None) -> None:
        super().__init__(cache_dir, fetch=False)


def _split_oci(artifact: Artifact) -> tuple[str, str, str]:
    ref = artifact.source.removeprefix("oci://")
    host, _, rest = ref.partition("/")
    if not rest or not ("." in host or ":" in host or host == "localhost"):
        raise ArtifactError("an OCI artifact reference must be HOST/REPOSITORY[:TAG]", where=artifact.source)
    if "@" in rest:
        repository, digest = rest.split("@", 1)
        return host, repository, digest
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        return host, rest[:colon], rest[colon + 1 :]
    return host, rest, artifact_tag(artifact)
