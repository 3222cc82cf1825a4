"""A small Kubernetes API client over a kubeconfig: `requests` with the kubeconfig's credentials,
cached discovery (kind -> resource), retries of transient failures until a deadline, and a count
of the requests sent (so tests and benchmarks can prove that a no-op run writes nothing).

Objects in and out are plain dicts.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml
from requests.adapters import HTTPAdapter

from kvinstall.errors import ClusterError, LocalIOError
from kvinstall.kube.retry import Backoff, is_transient_status, parse_retry_after
from kvinstall.model import KubeObject

FIELD_MANAGER = "kvinstall"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Resource:
    """One served resource type, from discovery."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        return base


class ApiError(ClusterError):
    """A request the apiserver refused for good. `status` is the HTTP status, `reason` the Status reason."""

    def __init__(self, message: str, *, status: int, reason: str = "", where: str | None = None) -> None:
        super().__init__(message, where=where)
        self.status = status
        self.reason = reason


def split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


DeletedKey = tuple[str, str, str, str | None]


def deleted_key(api_version: str, kind: str, name: str, namespace: str | None) -> DeletedKey:
    """An object's identity whatever version it was named by: (group, kind, name, namespace)."""
    return split_api_version(api_version)[0], kind, name, namespace


def describe(api_version: str, kind: str, name: str | None, namespace: str | None = None) -> str:
    """How an object is named in messages: Kind/namespace/name (group added when not core)."""
    group, _ = split_api_version(api_version)
    gk = f"{kind}.{group}" if group else kind
    return f"{gk}/{namespace}/{name}" if namespace else f"{gk}/{name}"


def describe_obj(obj: KubeObject) -> str:
    meta = obj.get("metadata") or {}
    return describe(
        str(obj.get("apiVersion", "")), str(obj.get("kind", "")), meta.get("name"), meta.get("namespace")
    )


def _status_message(resp: requests.Response) -> tuple[str, str]:
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:500] or resp.reason, ""
    if isinstance(body, dict):
        return str(body.get("message") or resp.reason), str(body.get("reason") or "")
    return resp.reason, ""


class Kube:
    """Client for one cluster. Thread-safe: the apply engine calls it from a thread pool."""

    def __init__(
        self,
        server: str,
        *,
        verify: str | bool = True,
        cert: tuple[str, str] | None = None,
        token: str | None = None,
        retry_deadline: float = 120.0,
        pool_size: int = 16,
        tmpdir: str | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.retry_deadline = retry_deadline
        self.backoff = Backoff()
        self._session = requests.Session()
        self._session.trust_env = False  # the kubeconfig says everything; env CA bundles/proxies must not win
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.verify = verify
        if cert:
            self._session.cert = cert
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"
        self._session.headers["User-Agent"] = "kvinstall"
        self._tmpdir = tmpdir
        self._lock = threading.Lock()
        self._discovery: dict[str, dict[str, Resource]] = {}  # api_version -> kind -> Resource
        self.retries = 0  # transient failures retried so far
        self.requests: Counter[str] = Counter()  # "GET", "PATCH", ..., "dry-run": counted once per request
        self._deleted: set[DeletedKey] | None = None  # see recording_deletes

    # ---- construction -------------------------------------------------------------------------

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str], *, context: str | None = None, **kw: Any) -> Kube:
        """A client for the kubeconfig's current context (or `context`)."""
        p = Path(path)
        try:
            cfg = yaml.safe_load(p.read_text())
        except OSError as e:
            raise LocalIOError(f"cannot read kubeconfig: {e.strerror}", where=str(p)) from e
        except yaml.YAMLError as e:
            raise LocalIOError(f"kubeconfig is not valid YAML: {e}", where=str(p)) from e
        if not isinstance(cfg, dict):
            raise LocalIOError("kubeconfig is empty or not a mapping", where=str(p))

        def pick(section: str, name: str | None) -> dict[str, Any]:
            for entry in cfg.get(section) or []:
                if entry.get("name") == name:
                    return dict(entry.get(section.rstrip("s")) or {})
            raise LocalIOError(f"kubeconfig has no {section.rstrip('s')} named {name!r}", where=str(p))

        ctx = pick("contexts", context or cfg.get("current-context"))
        cluster = pick("clusters", ctx.get("cluster"))
        user = pick("users", ctx.get("user")) if ctx.get("user") else {}
        base = p.parent
        tmpdir = tempfile.mkdtemp(prefix="kvinstall-kube-")
        atexit.register(shutil.rmtree, tmpdir, True)

        def material(data_key: str, file_key: str, src: dict[str, Any]) -> str | None:
            if src.get(data_key):
                out = Path(tmpdir) / data_key
                fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(base64.b64decode(src[data_key]))
                return str(out)
            if src.get(file_key):
                return str((base / src[file_key]).resolve())
            return None

        verify: str | bool = True
        if cluster.get("insecure-skip-tls-verify"):
            verify = False
        else:
            ca = material("certificate-authority-data", "certificate-authority", cluster)
            if ca:
                verify = ca
        crt = material("client-certificate-data", "client-certificate", user)
        key = material("client-key-data", "client-key", user)
        token = user.get("token")
        if not token and user.get("tokenFile"):
            token = (base / user["tokenFile"]).read_text().strip()
        server = cluster.get("server")
        if not server:
            raise LocalIOError("kubeconfig cluster has no server", where=str(p))
        return cls(
            server, verify=verify, cert=(crt, key) if crt and key else None, token=token, tmpdir=tmpdir, **kw
        )

    def close(self) -> None:
        self._session.close()
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    # ---- raw requests -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        allow: tuple[int, ...] = (),
        where: str | None = None,
        deadline: float | None = None,
    ) -> requests.Response:
        """Send one request, retrying transient failures with backoff until the deadline.
        Statuses in `allow` are returned instead of raised. Anything else fails at once."""
        end = time.monotonic() + (self.retry_deadline if deadline is None else deadline)
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else {}
        is_apply = content_type == "application/apply-patch+yaml"
        # An apply that 404s means "type not served yet" (e.g. right after a restart): retry for a while.
        notfound_end = time.monotonic() + min(30.0, self.retry_deadline)
        attempt = 0
        last = ""
        while True:
            dry = bool(params and params.get("dryRun"))
            with self._lock:
                self.requests["dry-run" if dry and method in WRITE_METHODS else method] += 1
            retry_after: float | None = None
            try:
                resp = self._session.request(
                    method, self.server + path, params=params, data=data, headers=headers, timeout=(5, 60)
                )
            except (requests.ConnectionError, requests.Timeout) as e:
                last = f"cannot reach the Kubernetes API at {self.server}: {type(e).__name__}"
            else:
                if resp.status_code < 400 or resp.status_code in allow:
                    return resp
                msg, reason = _status_message(resp)
                transient = is_transient_status(resp.status_code, apply_not_found=is_apply) and not (
                    resp.status_code == 404 and time.monotonic() > notfound_end
                )
                if not transient:
                    raise ApiError(
                        f"{resp.status_code} {reason or resp.reason}: {msg}",
                        status=resp.status_code,
                        reason=reason,
                        where=where or f"{method} {path}",
                    )
                last = f"{resp.status_code} {reason or resp.reason}: {msg}"
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                if resp.status_code == 404:
                    self.invalidate_discovery()
            with self._lock:
                self.retries += 1
            now = time.monotonic()
            if now >= end:
                raise ClusterError(f"gave up after retrying until the deadline: {last}", where=where or path)
            time.sleep(min(self.backoff.delay(attempt, retry_after), max(0.0, end - now)))
            attempt += 1

    def get_json(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw).json()

    def wait_healthy(self, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while True:
            with contextlib.suppress(requests.RequestException):
                if self._session.get(self.server + "/readyz", timeout=5).status_code == 200:
                    return
            if time.monotonic() > end:
                raise ClusterError("the Kubernetes API did not become ready", where=self.server)
            time.sleep(0.2)

    # ---- discovery ----------------------------------------------------------------------------

    def invalidate_discovery(self, api_version: str | None = None) -> None:
        with self._lock:
            if api_version is None:
                self._discovery.clear()
            else:
                self._discovery.pop(api_version, None)

    def _load_group_version(self, api_version: str) -> dict[str, Resource]:
        group, version = split_api_version(api_version)
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        resp = self.request("GET", path, allow=(404, 503), where=f"discovery {api_version}")
        kinds: dict[str, Resource] = {}
        if resp.status_code == 200:
            for r in resp.json().get("resources", []):
                if "/" in r["name"]:
                    continue  # subresources
                kinds[r["kind"]] = Resource(group, version, r["kind"], r["name"], bool(r["namespaced"]))
        return kinds

    def resource(self, api_version: str, kind: str, *, wait: float = 0.0) -> Resource:
        """The resource serving `kind` in `api_version`. With `wait`, keeps re-reading discovery
        for that long (a CRD just created takes a moment to be served)."""
        end = time.monotonic() + wait
        while True:
            with self._lock:
                known = self._discovery.get(api_version)
            if known is None or kind not in known:
                known = self._load_group_version(api_version)
                with self._lock:
                    self._discovery[api_version] = known
            if kind in known:
                return known[kind]
            if time.monotonic() >= end:
                raise ApiError(
                    f"the cluster does not serve kind {kind} in {api_version}",
                    status=404,
                    reason="NotFound",
                    where=f"{kind}.{api_version}",
                )
            time.sleep(0.2)

    def try_resource(self, api_version: str, kind: str) -> Resource | None:
        try:
            return self.resource(api_version, kind)
        except ApiError:
            return None

    # ---- object operations --------------------------------------------------------------------

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> KubeObject | None:
        res = self.resource(api_version, kind)
        resp = self.request(
            "GET", res.path(namespace, name), allow=(404,), where=describe(api_version, kind, name, namespace)
        )
        return None if resp.status_code == 404 else dict(resp.json())

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, *, label_selector: str | None = None
    ) -> list[KubeObject]:
        """All objects of a kind (across namespaces when `namespace` is None), following pagination."""
        res = self.resource(api_version, kind)
        items: list[KubeObject] = []
        params: dict[str, str] = {"limit": "500"}
        if label_selector:
            params["labelSelector"] = label_selector
        while True:
            body = self.get_json(res.path(namespace), params=dict(params), where=f"list {res.group_kind}")
            for it in body.get("items") or []:
                it.setdefault("apiVersion", api_version)
                it.setdefault("kind", kind)
                items.append(it)
            cont = (body.get("metadata") or {}).get("continue")
            if not cont:
                return items
            params["continue"] = cont

    def apply(self, obj: KubeObject, *, force: bool, dry_run: bool = False) -> KubeObject:
        """Server-side apply of `obj` with field manager kvinstall."""
        meta = obj["metadata"]
        res = self.resource(obj["apiVersion"], obj["kind"])
        params = {"fieldManager": FIELD_MANAGER, "force": "true" if force else "false"}
        if dry_run:
            params["dryRun"] = "All"
        resp = self.request(
            "PATCH",
            res.path(meta.get("namespace"), meta["name"]),
            params=params,
            body=obj,
            content_type="application/apply-patch+yaml",
            where=describe_obj(obj),
        )
        return dict(resp.json())

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        """Delete an object (background propagation); an object already gone is fine."""
        res = self.resource(api_version, kind)
        self.request(
            "DELETE",
            res.path(namespace, name),
            body={"propagationPolicy": "Background"},
            allow=(404,),
            where=describe(api_version, kind, name, namespace),
        )
        with self._lock:
            if self._deleted is not None:
                self._deleted.add(deleted_key(api_version, kind, name, namespace))

    @contextlib.contextmanager
    def recording_deletes(self, into: set[DeletedKey]) -> Iterator[set[DeletedKey]]:
        """While inside, every object this client deletes is added to `into` (see deleted_key)."""
        with self._lock:
            self._deleted = into
        try:
            yield into
        finally:
            with self._lock:
                self._deleted = None

    def wait_deleted(
        self, api_version: str, kind: str, name: str, namespace: str | None = None, timeout: float = 300
    ) -> None:
        end = time.monotonic() + timeout
        while self.get(api_version, kind, name, namespace) is not None:
            if time.monotonic() > end:
                from kvinstall.errors import ReadinessTimeout

                raise ReadinessTimeout(
                    f"still present after {timeout:.0f}s (finalizers?)",
                    where=describe(api_version, kind, name, namespace),
                )
            time.sleep(0.5)

    def patch_merge(
        self, api_version: str, kind: str, name: str, patch: dict[str, Any], namespace: str | None = None
    ) -> None:
        res = self.resource(api_version, kind)
        self.request(
            "PATCH",
            res.path(namespace, name),
            body=patch,
            content_type="application/merge-patch+json",
            where=describe(api_version, kind, name, namespace),
        )

    # ---- counters -----------------------------------------------------------------------------

    def write_count(self) -> int:
        """Write requests sent so far (dry-runs not included; they are counted as "dry-run")."""
        with self._lock:
            return sum(n for m, n in self.requests.items() if m in WRITE_METHODS)
