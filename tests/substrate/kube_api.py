"""A real Kubernetes API: etcd + kube-apiserver on 127.0.0.1, built by hack/build-binaries.sh.

Fixtures
- ``kube_api`` (session): a running :class:`KubeApi`. Attributes: ``.server`` (``https://127.0.0.1:PORT``),
  ``.kubeconfig`` (admin kubeconfig path; client certificate in group system:masters), ``.ca`` (cluster CA
  path), ``.client_cert`` / ``.client_key`` (admin cert), ``.token`` (a second admin identity via a static
  token file, user ``kvtest-token-admin``), ``.bin_dir`` (the binary cache: kubectl, helm, crane live there).
  ``.cluster_net`` (:class:`~substrate.cluster_net.ConnectProxy`: the apiserver's calls into the
  cluster, i.e. to webhooks behind Services, go through it; set its ``route`` to answer them).
  Methods: ``.restart()`` (stop and start kube-apiserver on the same port and etcd, wait for /readyz),
  ``.stop_apiserver()`` / ``.start_apiserver()`` (for outage tests), ``.request(method, path, **kw)`` (an
  admin ``requests`` call), ``.audit_mark()`` and ``.writes_since(mark, ...)`` (write requests seen by the
  audit log: create/update/patch/delete/deletecollection, as :class:`AuditWrite`), ``.write_count(mark)``.
  No controller-manager, scheduler or kubelet runs: namespaces stay Terminating after delete, pods never
  start, operators never act (use ``operator_sim``).
- ``kube_api_factory`` (session): ``kube_api_factory() -> KubeApi``, a private empty cluster (etcd +
  apiserver, ~4 s to start) for tests that must not share the session's; stopped at session end.
- ``kube_namespace`` (function): a fresh namespace name ``t-<random>`` created for the test (deleted after;
  it stays Terminating, which is harmless).

Writes made by the apiserver itself (leases, bootstrap objects) are excluded from ``writes_since`` by default:
it counts requests by the admin identities only (``users=None`` counts every user).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from .cluster_net import ConnectProxy
from .pki import CA, rsa_key_files
from .procs import Proc, free_port, wait_until

K8S_VERSION = "v1.34.4"
ADMIN_USER = "kvtest-admin"
TOKEN_USER = "kvtest-token-admin"
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
# A GET of this (absent) namespace is audited; its event in the log proves all earlier events were flushed.
BARRIER_NAMESPACE = "kvtest-audit-barrier"


def bin_dir() -> Path:
    env = os.environ.get("KVINSTALL_BIN_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "kvinstall-test" / K8S_VERSION / "bin"


def require_binary(name: str) -> Path:
    path = bin_dir() / name
    if not path.exists():
        # never skip: a missing binary is a broken CI setup, say how to fix it
        raise RuntimeError(f"{path} missing: run hack/build-binaries.sh (or hack/ci-setup.sh)")
    return path


AUDIT_POLICY = f"""apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  verbs: [get]
  resources: [{{group: "", resources: [namespaces], resourceNames: [{BARRIER_NAMESPACE}]}}]
- level: Metadata
  verbs: [{", ".join(sorted(WRITE_VERBS))}]
- level: None
"""


@dataclass(frozen=True)
class AuditWrite:
    verb: str
    user: str
    uri: str
    resource: str
    namespace: str
    name: str
    code: int
    dry_run: bool


class KubeApi:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin_dir = bin_dir()
        self.etcd_bin = require_binary("etcd")
        self.apiserver_bin = require_binary("kube-apiserver")
        pki = root / "pki"
        self._ca = CA(pki, "kvtest-kube-ca")
        self.ca = self._ca.cert_path
        serving = self._ca.issue("apiserver", common_name="kube-apiserver", ips=("127.0.0.1", "10.0.0.1"),
                                 dns=("localhost", "kubernetes", "kubernetes.default",
                                      "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"))
        admin = self._ca.issue("admin", common_name=ADMIN_USER, organizations=("system:masters",),
                               server=False, client=True)
        self.client_cert, self.client_key = admin.cert, admin.key
        sa_key, sa_pub = rsa_key_files(pki, "sa")
        self.token = secrets.token_hex(24)
        token_file = pki / "tokens.csv"
        token_file.write_text(f'{self.token},{TOKEN_USER},{TOKEN_USER},"system:masters"\n')
        token_file.chmod(0o600)
        # What the apiserver sends into the cluster (webhook calls) goes through this proxy.
        self.cluster_net = ConnectProxy(root / "cluster-net.sock")
        egress = self.cluster_net.write_config(root / "egress-selector.yaml")
        self.audit_log = root / "audit.log"
        policy = root / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)

        self.etcd_port, peer_port = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{self.etcd_port}"
        self.etcd = Proc([
            str(self.etcd_bin), "--name", "kvtest", "--data-dir", str(root / "etcd"),
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"kvtest=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync", "--log-level", "warn",
        ], root / "etcd.log")
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        self.apiserver = Proc([
            str(self.apiserver_bin),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.port}",
            f"--tls-cert-file={serving.cert}", f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={self.ca}", f"--token-auth-file={token_file}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={sa_pub}", f"--service-account-signing-key-file={sa_key}",
            "--authorization-mode=Node,RBAC", "--allow-privileged=true",
            f"--audit-policy-file={policy}", f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json", "--audit-log-mode=blocking", "--audit-log-maxbackup=0",
            f"--cert-dir={root / 'cert-dir'}",
            f"--egress-selector-config-file={egress}",
            "--v=1",
        ], root / "kube-apiserver.log")
        self.kubeconfig = root / "admin.kubeconfig"
        self.kubeconfig.write_text(self._kubeconfig_text())
        self.kubeconfig.chmod(0o600)

    def _kubeconfig_text(self) -> str:
        # JSON is valid YAML; paths (not inline data) so tools that copy the file keep working in place
        return json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "kvtest",
            "clusters": [{"name": "kvtest", "cluster": {"server": self.server,
                                                        "certificate-authority": str(self.ca)}}],
            "users": [{"name": ADMIN_USER, "user": {"client-certificate": str(self.client_cert),
                                                    "client-key": str(self.client_key)}}],
            "contexts": [{"name": "kvtest", "context": {"cluster": "kvtest", "user": ADMIN_USER}}],
        }, indent=2)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> KubeApi:
        self.etcd.start()
        wait_until(self._etcd_ready, 30, "etcd health")
        self.start_apiserver()
        return self

    def _etcd_ready(self) -> bool:
        self.etcd.check_alive("etcd")
        r = requests.get(f"http://127.0.0.1:{self.etcd_port}/health", timeout=2)
        return r.status_code == 200 and '"true"' in r.text

    def _ready(self) -> bool:
        self.apiserver.check_alive("kube-apiserver")
        r = self.request("GET", "/readyz", timeout=3)
        return r.status_code == 200

    def start_apiserver(self) -> None:
        self.apiserver.start()
        wait_until(self._ready, 90, f"kube-apiserver /readyz at {self.server}", interval=0.2)

    def stop_apiserver(self) -> None:
        self.apiserver.stop()

    def restart(self) -> None:
        """Stop and start kube-apiserver (same port, same etcd data) and wait until ready."""
        self.stop_apiserver()
        self.start_apiserver()

    def stop(self) -> None:
        self.apiserver.stop()
        self.etcd.stop()
        self.cluster_net.close()

    # ------------------------------------------------------------------ client helpers
    def session(self) -> requests.Session:
        s = requests.Session()
        s.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        s.verify = str(self.ca)
        s.cert = (str(self.client_cert), str(self.client_key))
        return s

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 10)
        with self.session() as s:
            return s.request(method, self.server + path, **kw)

    def kubectl(self) -> Path:
        return require_binary("kubectl")

    # ------------------------------------------------------------------ audit
    def audit_mark(self) -> int:
        """A position in the audit log; pass it to writes_since() to see only later requests."""
        self._barrier()
        return self.audit_log.stat().st_size if self.audit_log.exists() else 0

    def _barrier(self) -> None:
        start = self.audit_log.stat().st_size if self.audit_log.exists() else 0
        r = self.request("GET", f"/api/v1/namespaces/{BARRIER_NAMESPACE}")
        audit_id = r.headers.get("Audit-Id", "").encode()
        assert audit_id, "apiserver sent no Audit-Id header"

        def logged() -> bool:
            with open(self.audit_log, "rb") as f:
                f.seek(start)
                return audit_id in f.read()

        wait_until(logged, 10, "audit barrier event")

    def writes_since(self, mark: int = 0, users: tuple[str, ...] | None = (ADMIN_USER, TOKEN_USER),
                     include_dry_run: bool = True) -> list[AuditWrite]:
        """Write requests logged after ``mark`` (waits until everything before this call is logged)."""
        self._barrier()
        with open(self.audit_log, "rb") as f:
            f.seek(mark)
            lines = f.read().splitlines()
        out = []
        for line in lines:
            ev = json.loads(line)
            if ev.get("verb") not in WRITE_VERBS:
                continue
            user = ev.get("user", {}).get("username", "")
            if users is not None and user not in users:
                continue
            uri = ev.get("requestURI", "")
            dry = "dryRun=" in uri
            if dry and not include_dry_run:
                continue
            ref = ev.get("objectRef", {})
            out.append(AuditWrite(verb=ev["verb"], user=user, uri=uri, resource=ref.get("resource", ""),
                                  namespace=ref.get("namespace", ""), name=ref.get("name", ""),
                                  code=int(ev.get("responseStatus", {}).get("code", 0)), dry_run=dry))
        return out

    def write_count(self, mark: int = 0, **kw: Any) -> int:
        return len(self.writes_since(mark, **kw))


@pytest.fixture(scope="session")
def kube_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApi]:
    root = tmp_path_factory.mktemp("kube-api")
    api = KubeApi(root)
    try:
        api.start()
        yield api
    finally:
        api.stop()
        # etcd data can be large-ish; the logs stay for post-mortems
        shutil.rmtree(root / "etcd", ignore_errors=True)


@pytest.fixture(scope="session")
def kube_api_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], KubeApi]]:
    """``kube_api_factory() -> KubeApi``: a private, empty cluster (for tests that must not share one);
    every cluster made is stopped at session end."""
    with ExitStack() as stack:
        def make() -> KubeApi:
            api = KubeApi(tmp_path_factory.mktemp("kube-api-private"))
            stack.callback(api.stop)
            return api.start()

        yield make


@pytest.fixture
def kube_namespace(kube_api: KubeApi) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    r = kube_api.request("POST", "/api/v1/namespaces",
                         json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    r.raise_for_status()
    yield name
    kube_api.request("DELETE", f"/api/v1/namespaces/{name}")
