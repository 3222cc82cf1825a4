"""A small OCI distribution client over requests.

Why not oras-py: it re-serialises manifests (digests change), reads whole blobs into memory when
pushing a layout, and its token auth breaks on Basic-auth registries. The wire protocol we need is
small, so it is spoken here directly: raw manifest bytes are PUT exactly, blobs stream in bounded
chunks, and every call retries connection errors, 5xx and 429 with exponential backoff.

A registry is not trusted beyond what it is asked for: credentials (Basic, or a Bearer token) go
only to the registry's own scheme, host and port (an upload Location elsewhere gets none); nothing
follows an https address to plain http (redirects and upload Locations alike); a token realm gets
the login only over https (or on the registry's own origin when the registry is plain HTTP by
choice); manifests and token answers are read up to a cap, and a blob no further than its size.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import urlencode, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from kvinstall.errors import IntegrityError, RegistryError
from kvinstall.httpsafe import DowngradeRefused, TooLarge, guarded_session, read_capped, same_origin
from kvinstall.mirror.cancel import CancelToken
from kvinstall.mirror.descriptor import MAX_MANIFEST, MT_DOCKER_LIST, MT_OCI_INDEX

CHUNK = 1 << 20  # streaming granularity: memory per transfer stays at about this size

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MAX_TOKEN_ANSWER = 1 << 20
MAX_ANSWER = 1 << 20  # any answer but a manifest or a blob: errors, upload sessions, HEAD
MANIFEST_TYPES = (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST)
ACCEPT = ", ".join((MT_OCI_INDEX, MT_DOCKER_LIST, MT_OCI_MANIFEST, MT_DOCKER_MANIFEST))

T = TypeVar("T")
_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class ManifestInfo:
    digest: str
    media_type: str
    size: int


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    # Parameters are key="value" pairs; values may contain commas (scopes), so walk the quotes.
    i = 0
    while i < len(rest):
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip().strip(",").strip()
        if eq + 1 < len(rest) and rest[eq + 1] == '"':
            end = rest.find('"', eq + 2)
            end = len(rest) if end < 0 else end
            params[key.lower()] = rest[eq + 2 : end]
            i = end + 1
        else:
            end = rest.find(",", eq + 1)
            end = len(rest) if end < 0 else end
            params[key.lower()] = rest[eq + 1 : end].strip()
            i = end + 1
    return scheme.lower(), params


class _HashingBody:
    """A streamed request body of known length that hashes and counts what is sent.

    requests sends an object with __iter__ and __len__ with a Content-Length and iterates it, so
    the body goes out in CHUNK pieces without being held in memory.
    """

    def __init__(
        self,
        opener: Callable[[], IO[bytes]],
        size: int,
        on_bytes: Callable[[int], None],
        name: str,
        cancel: CancelToken | None = None,
    ) -> None:
        self.name = name
        self._opener = opener
        self._size = size
        self._on_bytes = on_bytes
        self._cancel = cancel
        self.hasher = hashlib.sha256()
        self.sent = 0

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[bytes]:
        remaining = self._size
        with self._opener() as fh:
            while remaining > 0:
                if self._cancel is not None:
                    self._cancel.check()
                chunk = fh.read(min(CHUNK, remaining))
                if not chunk:
                    # Stop here rather than leave the registry waiting for the promised length.
                    raise IntegrityError(
                        f"local blob is truncated: {self.sent} of {self._size} bytes", where=self.name
                    )
                remaining -= len(chunk)
                self.hasher.update(chunk)
                self.sent += len(chunk)
                self._on_bytes(len(chunk))
                yield chunk


class RegistryClient:
    """One registry endpoint (host[:port]); thread-safe, shares a pooled session."""

    def __init__(
        self,
        host: str,
        *,
        ca_file: str | Path | None = None,
        insecure: bool = False,
        skip_verify: bool = False,
        username: str | None = None,
        password: str | None = None,
        retries: int = 6,
        backoff: float = 0.25,
        pool: int = 16,
        timeout: float = 60.0,
        cancel: CancelToken | None = None,
    ) -> None:
        self.host = host
        # insecure means plain HTTP (a lab or a loopback registry); TLS otherwise, verified
        # against the CA file when one is given, else the system trust store, unless the user
        # chose skip_verify (a registry whose certificate no CA here vouches for).
        self.base = f"{'http' if insecure else 'https'}://{host}"
        self._verify: bool | str = False if skip_verify else (str(ca_file) if ca_file else True)
        if skip_verify:
            # The user chose it (offline.insecureSkipVerify): no warning per request on stderr.
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self._username = username
        self._password = password
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.cancel = cancel
        self._session = guarded_session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(pool, 4))
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._lock = threading.Lock()
        self._basic = False
        self._tokens: dict[str, str] = {}  # scope -> bearer token

    # -- plumbing ----------------------------------------------------------------------------

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fail(self, what: str, repository: str | None, detail: str) -> RegistryError:
        where = f"{self.host}/{repository}" if repository else self.host
        return RegistryError(f"{what}: {detail}", where=where)

    def _auth_header(self, scope: str, url: str) -> dict[str, str]:
        if not same_origin(url, self.base):
            return {}  # an upload Location on another host, port or scheme never gets the login
        with self._lock:
            if scope in self._tokens:
                return {"Authorization": f"Bearer {self._tokens[scope]}"}
            if self._basic and self._username is not None:
                raw = f"{self._username}:{self._password or ''}".encode()
                return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return {}

    def _fetch_token(self, params: dict[str, str], scope: str, repository: str | None) -> None:
        realm = params.get("realm")
        if not realm:
            raise self._fail("authentication", repository, "bearer challenge without a realm")
        scheme = urlsplit(realm).scheme.lower()
        # The token server the registry names gets the login: over https only, or on the registry's
        # own origin when the registry itself is plain HTTP (the user chose that for this host).
        if scheme != "https" and not (scheme == "http" and same_origin(realm, self.base)):
            raise self._fail(
                "authentication",
                repository,
                f"the registry names the token server {realm}; kvinstall sends credentials only over "
                "https (or to a plain-HTTP registry's own address)",
            )
        query = {k: v for k, v in (("service", params.get("service")), ("scope", scope)) if v}
        auth = (self._username, self._password or "") if self._username is not None else None
        try:
            resp = self._session.get(
                realm, params=query, auth=auth, verify=self._verify, timeout=self.timeout, stream=True
            )
        except DowngradeRefused as exc:
            raise self._fail("authentication", repository, str(exc)) from None
        except requests.exceptions.SSLError as exc:
            raise self._fail(
                "authentication", repository, f"token endpoint {realm}: TLS failure: {exc}"
            ) from exc
        except requests.RequestException as exc:
            raise _Retryable(f"token endpoint {realm}: {exc}") from exc
        try:
            if resp.status_code >= 500:
                raise _Retryable(f"token endpoint {realm}: HTTP {resp.status_code}")
            if resp.status_code != 200:
                raise self._fail("authentication", repository, f"token endpoint answered {resp.status_code}")
            try:
                body = json.loads(read_capped(resp, MAX_TOKEN_ANSWER))
            except TooLarge as exc:
                raise self._fail("authentication", repository, f"token endpoint {realm}: {exc}") from None
            except (ValueError, RecursionError):
                raise self._fail(
                    "authentication", repository, f"token endpoint {realm} did not answer JSON"
                ) from None
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                raise _Retryable(f"token endpoint {realm}: {exc}") from exc
        finally:
            resp.close()
        token = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
        if not token or not isinstance(token, str):
            raise self._fail("authentication", repository, "token endpoint returned no token")
        with self._lock:
            self._tokens[scope] = token

    def _once(
        self,
        method: str,
        url: str,
        *,
        repository: str | None,
        scope: str,
        headers: dict[str, str] | None = None,
        body_factory: Callable[[], Any] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """One request, answering at most one auth challenge. Raises _Retryable for transient failures."""
        for attempt in range(2):
            if self.cancel is not None:
                self.cancel.check()
            hdrs = dict(headers or {})
            hdrs.update(self._auth_header(scope, url))
            data = body_factory() if body_factory else None
            try:
                resp = self._session.request(
                    method,
                    url,
                    headers=hdrs,
                    data=data,
                    stream=True,  # read below within a cap: a registry cannot make us hold gigabytes
                    verify=self._verify,
                    timeout=self.timeout,
                    allow_redirects=True,
                )
            except DowngradeRefused as exc:
                raise self._fail(f"{method} {url}", repository, str(exc)) from None
            except requests.exceptions.SSLError as exc:
                raise self._fail(f"{method} {url}", repository, f"TLS failure: {exc}") from exc
            except _TRANSIENT as e:
                raise _Retryable(f"{method} {url}: {e}") from e
            if resp.status_code == 401 and not same_origin(resp.url or url, self.base):
                resp.close()
                raise self._fail(
                    f"{method} {url}",
                    repository,
                    f"HTTP 401 from {resp.url or url}, which is not the registry's own address "
                    f"{self.base}; kvinstall sends credentials only to the registry",
                )
            if resp.status_code == 401 and attempt == 0:
                challenge = resp.headers.get("WWW-Authenticate", "")
                resp.close()
                kind, params = _parse_challenge(challenge)
                if kind == "basic":
                    if self._username is None:
                        raise self._fail("authentication", repository, "registry requires credentials")
                    with self._lock:
                        self._basic = True
                    continue
                if kind == "bearer":
                    self._fetch_token(params, params.get("scope") or scope, repository)
                    if params.get("scope") and params["scope"] != scope:
                        with self._lock:
                            self._tokens[scope] = self._tokens[params["scope"]]
                    continue
                raise self._fail("authentication", repository, f"unsupported challenge {challenge!r}")
            if resp.status_code == 429 or resp.status_code >= 500:
                retry_after = resp.headers.get("Retry-After")
                resp.close()
                delay = float(retry_after) if retry_after and retry_after.isdigit() else None
                raise _Retryable(f"{method} {url}: HTTP {resp.status_code}", delay)
            if resp.status_code in (401, 403):
                resp.close()
                detail = "credentials refused" if self._username is not None else "access denied"
                raise self._fail(f"{method} {url}", repository, f"HTTP {resp.status_code}: {detail}")
            if not stream and method != "HEAD":  # a HEAD's Content-Length describes a body never sent
                self._read_answer(resp, method, url, repository)
            return resp
        raise AssertionError("unreachable")

    def _read_answer(self, resp: requests.Response, method: str, url: str, repository: str | None) -> None:
        """Read a small answer's body within MAX_ANSWER; requests then serves .json()/.text from it."""
        try:
            body = read_capped(resp, MAX_ANSWER)
        except TooLarge:
            resp.close()
            raise self._fail(
                f"{method} {url}", repository, f"the registry's answer is larger than {MAX_ANSWER} bytes"
            ) from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            resp.close()
            raise _Retryable(f"{method} {url}: {exc}") from exc
        resp._content = body  # the stream is consumed (requests marked it); .json()/.text read this

    def retrying(self, what: str, repository: str | None, fn: Callable[[], T]) -> T:
        """Run fn, retrying transient failures with exponential backoff and jitter."""
        last = ""
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except _Retryable as exc:
                last = str(exc)
                if attempt == self.retries:
                    break
                delay = exc.retry_after if exc.retry_after is not None else self.backoff * (2**attempt)
                delay = min(delay, 10.0) * (1 + random.random() * 0.25)
                if self.cancel is not None:
                    self.cancel.sleep(delay)
                else:
                    time.sleep(delay)
        raise self._fail(what, repository, f"unreachable after {self.retries + 1} attempts ({last})")

    def _url(self, repository: str, tail: str) -> str:
        return f"{self.base}/v2/{repository}/{tail}"

    @staticmethod
    def _scope(repository: str, push: bool = False) -> str:
        return f"repository:{repository}:{'pull,push' if push else 'pull'}"

    @staticmethod
    def _error_text(resp: requests.Response) -> str:
        try:
            raw = read_capped(resp, 64 << 10)
        except (TooLarge, requests.RequestException):
            raw = b""
        try:
            errors = json.loads(raw).get("errors") or []
            text = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict))
        except (ValueError, AttributeError, TypeError, RecursionError):
            text = raw[:200].decode(errors="replace")
        return f"HTTP {resp.status_code}" + (f" ({text[:300]})" if text else "")

    @staticmethod
    def _length(resp: requests.Response, what: str) -> int:
        value = resp.headers.get("Content-Length", "0")
        if not value.isdigit():
            raise RegistryError(f"{what}: the registry sent Content-Length {value[:40]!r}", where=resp.url)
        return int(value)

    def _location(self, resp: requests.Response, what: str, repository: str) -> str:
        """The absolute URL of a Location header; never a step down from https."""
        loc = resp.headers.get("Location")
        if not loc:
            raise self._fail(what, repository, f"HTTP {resp.status_code} without a Location header")
        url = urljoin(self.base + "/", loc)
        if urlsplit(url).scheme.lower() not in ("https", "http") or (
            self.base.startswith("https://") and not url.lower().startswith("https://")
        ):
            raise self._fail(
                what,
                repository,
                f"the registry sent the upload to {url}; only https is followed from {self.base}",
            )
        return url

    # -- API ---------------------------------------------------------------------------------

    def ping(self) -> None:
        def go() -> None:
            resp = self._once("GET", f"{self.base}/v2/", repository=None, scope="")
            resp.close()
            if resp.status_code != 200:
                raise self._fail("GET /v2/", None, self._error_text(resp))

        self.retrying("GET /v2/", None, go)

    def blob_size(self, repository: str, digest: str) -> int | None:
        """Size of a blob the registry has in this repository, or None."""

        def go() -> int | None:
            resp = self._once(
                "HEAD",
                self._url(repository, f"blobs/{digest}"),
                repository=repository,
                scope=self._scope(repository),
            )
            resp.close()
            if resp.status_code == 200:
                return self._length(resp, f"HEAD blob {digest}")
            if resp.status_code == 404:
                return None
            raise self._fail(f"HEAD blob {digest}", repository, self._error_text(resp))

        return self.retrying(f"HEAD blob {digest}", repository, go)

    def head_manifest(self, repository: str, ref: str) -> ManifestInfo | None:
        def go() -> ManifestInfo | None:
            resp = self._once(
                "HEAD",
                self._url(repository, f"manifests/{ref}"),
                repository=repository,
                scope=self._scope(repository),
                headers={"Accept": ACCEPT},
            )
            resp.close()
            if resp.status_code == 404:
                return None
            if resp.status_code != 200:
                raise self._fail(f"HEAD manifest {ref}", repository, self._error_text(resp))
            digest = resp.headers.get("Docker-Content-Digest", "")
            return ManifestInfo(
                digest=digest,
                media_type=resp.headers.get("Content-Type", "").split(";")[0],
                size=self._length(resp, f"HEAD manifest {ref}"),
            )

        return self.retrying(f"HEAD manifest {ref}", repository, go)

    def get_manifest(self, repository: str, ref: str) -> tuple[bytes, str, str]:
        """Raw manifest bytes, media type and digest (computed from the bytes, checked when pinned)."""

        def go() -> tuple[bytes, str, str]:
            resp = self._once(
                "GET",
                self._url(repository, f"manifests/{ref}"),
                repository=repository,
                scope=self._scope(repository),
                headers={"Accept": ACCEPT},
                stream=True,
            )
            try:
                if resp.status_code == 404:
                    raise self._fail(f"manifest {ref}", repository, "not found")
                if resp.status_code != 200:
                    raise self._fail(f"GET manifest {ref}", repository, self._error_text(resp))
                data = read_capped(resp, MAX_MANIFEST)
            except TooLarge:
                raise IntegrityError(
                    f"the manifest is larger than {MAX_MANIFEST} bytes; refused",
                    where=f"{self.host}/{repository}:{ref}",
                ) from None
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                raise _Retryable(str(exc)) from exc
            finally:
                resp.close()
            digest = sha256_digest(data)
            if ref.startswith("sha256:") and digest != ref:
                raise IntegrityError(
                    f"manifest digest mismatch: got {digest}", where=f"{self.host}/{repository}@{ref}"
                )
            media_type = resp.headers.get("Content-Type", "").split(";")[0]
            return data, media_type, digest

        return self.retrying(f"GET manifest {ref}", repository, go)

    def put_manifest(self, repository: str, ref: str, data: bytes, media_type: str) -> str:
        """PUT the exact bytes (so the digest is unchanged); returns the digest."""

        def go() -> str:
            resp = self._once(
                "PUT",
                self._url(repository, f"manifests/{ref}"),
                repository=repository,
                scope=self._scope(repository, push=True),
                headers={"Content-Type": media_type},
                body_factory=lambda: data,
            )
            resp.close()
            if resp.status_code not in (200, 201):
                raise self._fail(f"PUT manifest {ref}", repository, self._error_text(resp))
            return resp.headers.get("Docker-Content-Digest") or sha256_digest(data)

        return self.retrying(f"PUT manifest {ref}", repository, go)

    def download_blob(
        self,
        repository: str,
        digest: str,
        sink: IO[bytes],
        *,
        offset: int = 0,
        on_position: Callable[[int], None] = lambda n: None,
        size: int | None = None,
    ) -> int:
        """Stream a blob into sink from offset (a Range request); returns the bytes received.

        Retries resume at the position reached. If the registry ignores the Range, the sink is
        rewound and the blob is taken whole (the caller's sink must be seekable and truncatable).
        With `size`, a registry that sends more than that is stopped (IntegrityError): it cannot
        fill the disk. The cancel token is checked before each piece is written.
        """
        pos = [offset]
        received = [0]

        def go() -> None:
            headers = {"Range": f"bytes={pos[0]}-"} if pos[0] else {}
            resp = self._once(
                "GET",
                self._url(repository, f"blobs/{digest}"),
                repository=repository,
                scope=self._scope(repository),
                headers=headers,
                stream=True,
            )
            try:
                if resp.status_code == 416:
                    return  # nothing left to send: the partial file is already complete
                if resp.status_code == 404:
                    raise self._fail(f"blob {digest}", repository, "not found")
                if resp.status_code not in (200, 206):
                    raise self._fail(f"GET blob {digest}", repository, self._error_text(resp))
                if resp.status_code == 200 and pos[0]:
                    sink.seek(0)
                    sink.truncate()
                    pos[0] = 0
                for chunk in resp.iter_content(CHUNK):
                    if self.cancel is not None:
                        self.cancel.check()
                    if size is not None and pos[0] + len(chunk) > size:
                        raise IntegrityError(
                            f"blob {digest}: the registry sent more than its {size} bytes; refused",
                            where=f"{self.host}/{repository}",
                        )
                    sink.write(chunk)
                    pos[0] += len(chunk)
                    received[0] += len(chunk)
                    on_position(pos[0])
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                raise _Retryable(f"GET blob {digest}: {exc}") from exc
            finally:
                resp.close()

        self.retrying(f"GET blob {digest}", repository, go)
        return received[0]

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Cross-repository mount; True when the registry linked the blob without an upload."""

        def go() -> bool:
            query = urlencode({"mount": digest, "from": from_repository})
            resp = self._once(
                "POST",
                self._url(repository, f"blobs/uploads/?{query}"),
                repository=repository,
                scope=self._scope(repository, push=True),
            )
            resp.close()
            if resp.status_code == 201:
                return True
            if resp.status_code == 202:
                # The registry opened an upload instead; cancel it so it does not linger.
                if resp.headers.get("Location"):
                    with contextlib.suppress(_Retryable, RegistryError):
                        self._once(
                            "DELETE",
                            self._location(resp, f"mount blob {digest}", repository),
                            repository=repository,
                            scope=self._scope(repository, push=True),
                        ).close()
                return False
            raise self._fail(f"mount blob {digest}", repository, self._error_text(resp))

        return self.retrying(f"mount blob {digest}", repository, go)

    def upload_blob(
        self,
        repository: str,
        digest: str,
        size: int,
        opener: Callable[[], IO[bytes]],
        *,
        on_position: Callable[[int], None] = lambda n: None,
        chunk_size: int | None = None,
        name: str | None = None,
    ) -> int:
        """Upload a blob (monolithic PUT, or PATCH chunks when chunk_size is set).

        opener() must return a fresh reader positioned at the blob's first byte; it is called
        again on each retry. The content is hashed on the way out: a local blob that does not
        match its digest is an IntegrityError naming it (and `name`, the image it belongs to).
        on_position(n) reports how far into the blob the current attempt got (0 again on a retry).
        Returns the bytes sent, retries included.
        """
        sent = [0]
        attempt_pos = [0]

        def count(n: int) -> None:
            sent[0] += n
            attempt_pos[0] += n
            on_position(attempt_pos[0])

        bodies: list[_HashingBody] = []

        def go() -> None:
            attempt_pos[0] = 0
            resp = self._once(
                "POST",
                self._url(repository, "blobs/uploads/"),
                repository=repository,
                scope=self._scope(repository, push=True),
            )
            resp.close()
            if resp.status_code != 202:
                raise self._fail(f"start upload of {digest}", repository, self._error_text(resp))
            location = self._location(resp, f"start upload of {digest}", repository)
            if chunk_size:
                location, body_hash = self._patch_chunks(
                    repository, location, size, opener, count, chunk_size
                )
                final_body: Callable[[], Any] | None = None
            else:

                def final_body() -> _HashingBody:
                    # A fresh body per attempt: an auth retry must not hash the content twice.
                    bodies.append(_HashingBody(opener, size, count, name or digest, self.cancel))
                    return bodies[-1]

            sep = "&" if "?" in location else "?"
            put_url = f"{location}{sep}digest={digest}"
            resp = self._once(
                "PUT",
                put_url,
                repository=repository,
                scope=self._scope(repository, push=True),
                headers={"Content-Type": "application/octet-stream"}
                | ({} if final_body else {"Content-Length": "0"}),
                body_factory=final_body,
            )
            resp.close()
            if final_body:
                body = bodies[-1]
                actual = "sha256:" + body.hasher.hexdigest()
                sent_here = body.sent
            else:
                actual, sent_here = "sha256:" + body_hash, size
            if sent_here != size:
                raise IntegrityError(
                    f"blob {digest} is truncated: {sent_here} of {size} bytes",
                    where=name or f"{self.host}/{repository}",
                )
            if actual != digest:
                raise IntegrityError(
                    f"blob {digest} is corrupt: its content hashes to {actual}",
                    where=name or f"{self.host}/{repository}",
                )
            if resp.status_code != 201:
                raise self._fail(f"upload blob {digest}", repository, self._error_text(resp))

        self.retrying(f"upload blob {digest}", repository, go)
        return sent[0]

    def _patch_chunks(
        self,
        repository: str,
        location: str,
        size: int,
        opener: Callable[[], IO[bytes]],
        count: Callable[[int], None],
        chunk_size: int,
    ) -> tuple[str, str]:
        hasher = hashlib.sha256()
        pos = 0
        with opener() as fh:
            while pos < size:
                if self.cancel is not None:
                    self.cancel.check()
                piece = fh.read(min(chunk_size, size - pos))
                if not piece:
                    break
                hasher.update(piece)
                start = pos
                resp = self._once(
                    "PATCH",
                    location,
                    repository=repository,
                    scope=self._scope(repository, push=True),
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{start}-{start + len(piece) - 1}",
                    },
                    body_factory=partial(bytes, piece),
                )
                resp.close()
                if resp.status_code != 202:
                    raise self._fail("upload chunk", repository, self._error_text(resp))
                location = self._location(resp, "upload chunk", repository)
                pos += len(piece)
                count(len(piece))
        return location, hasher.hexdigest()
