"""FAKE CONTROLLERS for cert-manager, MetalLB and Longhorn, part of the suite's controller loop
(platform_world.ClusterSim): no pod runs here, so these act on the real CRDs and objects of the real
charts as the real controllers do, each only once its workload is ready, and only writing what
differs (a converged cluster sees no writes from them). Multus needs none: its daemon acts on nodes
only, and its DaemonSet becomes ready like every workload.

- Webhooks: MetalLB's controller (cert rotator) fills the chart's Secret metallb-webhook-cert with a CA
  and serving certificate and puts the CA into the caBundle of its ValidatingWebhookConfiguration and
  of the BGPPeer CRD's conversion webhook; cert-manager's webhook makes its serving CA
  (Secret cert-manager-webhook-ca) and the cainjector copies it into every webhook configuration
  annotated cert-manager.io/inject-ca-from-secret. The Services then answer (substrate/webhooks.py)
  through the apiserver's cluster network, while a ready workload backs them.
- cert-manager's controller: ClusterIssuers Ready (selfSigned; ca once its key pair Secret exists;
  acme as if the account registered: no ACME server here); each Certificate whose issuer is Ready gets
  its Secret (tls.crt, tls.key, ca.crt: self-signed, or signed by the issuer's CA) and Ready=True,
  again when the Secret is deleted. It writes no CertificateRequests (the real one does).
- MetalLB's controller and speakers: the ConfigurationState `controller` (Valid, or Invalid when pools
  overlap, as MetalLB reports it) and `speaker-<node>` per node; each IPAddressPool's address counts.
- longhorn-manager: the Settings of the chart's default-setting ConfigMap, the StorageClass of its
  storageclass ConfigMap (re-made when it changes), a Longhorn Node (finalizer longhorn.io) per node,
  the engine image DaemonSet; the driver deployer: CSIDriver driver.longhorn.io and the CSI workloads
  (substrate/operators.py). The uninstaller Job (longhorn-manager uninstall) fails unless
  deleting-confirmation-flag is "true", else removes all of that (finalizers first), the manager and
  the driver deployer, and completes. Longhorn's own admission webhooks are not played.
"""

from __future__ import annotations

import base64
import ipaddress
import time
from dataclasses import dataclass
from typing import Any

import yaml

from substrate.operators import longhorn_driver_operands, longhorn_manager_operands
from substrate.webhooks import WebhookServer, issue, make_ca

MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
CERT_API = "/apis/cert-manager.io/v1"
METALLB_API = "/apis/metallb.io/v1beta1"
LONGHORN_API = "/apis/longhorn.io/v1beta2"
INJECT = "cert-manager.io/inject-ca-from-secret"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text or "")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _ready(condition_status: str, reason: str, message: str, generation: Any = None) -> list[dict[str, Any]]:
    cond = {"type": "Ready", "status": condition_status, "reason": reason, "message": message,
            "lastTransitionTime": _now()}  # fmt: skip
    if generation is not None:
        cond["observedGeneration"] = generation
    return [cond]


def _is_ready(obj: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])  # fmt: skip


@dataclass
class PlatformControllers:
    sim: Any  # platform_world.ClusterSim: its apiserver access and operand helpers
    webhooks: WebhookServer

    @property
    def api(self) -> Any:
        return self.sim.api

    def _get(self, path: str) -> Any:
        return self.sim._get(path)

    def _items(self, path: str) -> list[dict[str, Any]]:
        return (self._get(path) or {}).get("items", [])

    def _post(self, path: str, obj: dict[str, Any], manager: str) -> None:
        self.api.request("POST", path, json=obj, params={"fieldManager": manager}, timeout=5)

    def _merge(self, path: str, patch: dict[str, Any], manager: str) -> None:
        self.api.request("PATCH", path, json=patch, headers=MERGE, params={"fieldManager": manager}, timeout=5)

    def _workload_ready(self, ns: str, kind: str, name: str) -> dict[str, Any] | None:
        obj = self._get(f"/apis/apps/v1/namespaces/{ns}/{kind.lower()}s/{name}")
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return None
        st = obj.get("status") or {}
        ready = st.get("readyReplicas") if kind == "Deployment" else st.get("numberReady")
        return obj if (ready or 0) > 0 else None

    def tick(self) -> None:
        self._metallb_webhook()
        self._cert_manager_webhook()
        self._cert_manager()
        self._metallb()
        self._longhorn()

    # -- the cluster network: which Service answers -------------------------------------------------

    def route(self, host: str, port: int) -> tuple[str, int] | None:
        """A connection to ClusterIP host:port reaches the webhook server when the Service has a ready
        workload behind it (template labels matching its selector) and a registered certificate."""
        for svc in self._items("/api/v1/services"):
            spec, meta = svc.get("spec") or {}, svc["metadata"]
            if spec.get("clusterIP") != host or not any(p.get("port") == port for p in spec.get("ports") or []):
                continue
            selector = spec.get("selector") or {}
            if not selector or not self.webhooks.serves(meta["name"], meta["namespace"]):
                return None
            for plural in ("deployments", "daemonsets"):
                for obj in self._items(f"/apis/apps/v1/namespaces/{meta['namespace']}/{plural}"):
                    labels = ((obj["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
                    st = obj.get("status") or {}
                    ready = st.get("readyReplicas") or st.get("numberReady") or 0
                    if ready > 0 and all(labels.get(k) == v for k, v in selector.items()):
                        return ("127.0.0.1", self.webhooks.port)
            return None
        return None

    # -- webhook certificates ---------------------------------------------------------------------

    def _serving_ca(self, ns: str, secret: str, manager: str) -> tuple[bytes, bytes]:
        """The CA kept in `secret` (ca.crt/ca.key), made (with a serving pair) when absent or empty."""
        path = f"/api/v1/namespaces/{ns}/secrets/{secret}"
        live = self._get(path)
        data = (live or {}).get("data") or {}
        if data.get("ca.crt") and data.get("ca.key"):
            return _unb64(data["ca.crt"]), _unb64(data["ca.key"])
        ca, key = make_ca(f"{secret}-ca")
        cert, cert_key = issue(ca, key, common_name=secret)
        fresh = {"ca.crt": _b64(ca), "ca.key": _b64(key), "tls.crt": _b64(cert), "tls.key": _b64(cert_key)}
        if live is None:
            self._post(f"/api/v1/namespaces/{ns}/secrets", {"apiVersion": "v1", "kind": "Secret",
                       "metadata": {"name": secret, "namespace": ns}, "data": fresh}, manager)  # fmt: skip
        else:
            self._merge(path, {"data": fresh}, manager)
        return ca, key

    def _inject(self, path: str, ca: bytes, manager: str) -> None:
        """caBundle = ca in every webhook of a webhook configuration (JSON patch: one field each)."""
        obj = self._get(path)
        if obj is None:
            return
        want = _b64(ca)
        ops = [{"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": want}
               for i, w in enumerate(obj.get("webhooks") or []) if (w.get("clientConfig") or {}).get("caBundle") != want]  # fmt: skip
        if ops:
            self.api.request("PATCH", path, json=ops, headers=JSON_PATCH, params={"fieldManager": manager}, timeout=5)

    def _inject_conversion(self, crd: str, ca: bytes, manager: str) -> None:
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}"
        obj = self._get(path)
        conversion = ((obj or {}).get("spec") or {}).get("conversion") or {}
        if obj is None or conversion.get("strategy") != "Webhook":
            return
        if ((conversion.get("webhook") or {}).get("clientConfig") or {}).get("caBundle") != _b64(ca):
            ops = [{"op": "add", "path": "/spec/conversion/webhook/clientConfig/caBundle", "value": _b64(ca)}]
            self.api.request("PATCH", path, json=ops, headers=JSON_PATCH, params={"fieldManager": manager}, timeout=5)

    def _metallb_webhook(self) -> None:
        ns = "metallb-system"
        if self._workload_ready(ns, "Deployment", "metallb-controller") is None:
            return
        if self._get(f"/api/v1/namespaces/{ns}/secrets/metallb-webhook-cert") is None:
            return  # the chart's Secret, which the controller fills
        ca, key = self._serving_ca(ns, "metallb-webhook-cert", "metallb-controller")
        self._inject("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/metallb-webhook-configuration",
                     ca, "metallb-controller")  # fmt: skip
        self._inject_conversion("bgppeers.metallb.io", ca, "metallb-controller")
        self.webhooks.serve("metallb-webhook-service", ns, ca, key)

    def _cert_manager_webhook(self) -> None:
        ns = "cert-manager"
        if self._workload_ready(ns, "Deployment", "cert-manager-webhook") is None:
            return
        ca, key = self._serving_ca(ns, "cert-manager-webhook-ca", "cert-manager-webhook")
        self.webhooks.serve("cert-manager-webhook", ns, ca, key)
        if self._workload_ready(ns, "Deployment", "cert-manager-cainjector") is None:
            return
        for kind in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations"):
            base = f"/apis/admissionregistration.k8s.io/v1/{kind}"
            for obj in self._items(base):
                source = (obj["metadata"].get("annotations") or {}).get(INJECT, "")
                if "/" not in source:
                    continue
                src_ns, src_name = source.split("/", 1)
                data = (self._get(f"/api/v1/namespaces/{src_ns}/secrets/{src_name}") or {}).get("data") or {}
                if data.get("ca.crt"):
                    self._inject(f"{base}/{obj['metadata']['name']}", _unb64(data["ca.crt"]), "cert-manager-cainjector")

    # -- cert-manager ---------------------------------------------------------------------------------

    def _issuer_keypair(self, issuer: dict[str, Any]) -> tuple[bytes, bytes] | None:
        secret = ((issuer.get("spec") or {}).get("ca") or {}).get("secretName")
        data = (self._get(f"/api/v1/namespaces/cert-manager/secrets/{secret}") or {}).get("data") or {}
        if data.get("tls.crt") and data.get("tls.key"):
            return _unb64(data["tls.crt"]), _unb64(data["tls.key"])
        return None

    def _cert_manager(self) -> None:
        if self._workload_ready("cert-manager", "Deployment", "cert-manager") is None:
            return
        issuers = {}
        for issuer in self._items(f"{CERT_API}/clusterissuers"):
            name, spec = issuer["metadata"]["name"], issuer.get("spec") or {}
            if "ca" in spec:
                ok = self._issuer_keypair(issuer) is not None
                cond = _ready("True", "KeyPairVerified", "Signing CA verified") if ok else _ready(
                    "False", "ErrGetKeyPair", f"Error getting keypair for CA issuer: secret {spec['ca'].get('secretName')} not found")  # fmt: skip
            elif "acme" in spec:
                cond = _ready("True", "ACMEAccountRegistered", "The ACME account was registered with the ACME server")
            else:
                cond = _ready("True", "IsReady", "")
            issuers[name] = (issuer, cond[0]["status"] == "True")
            have = [(c.get("type"), c.get("status"), c.get("reason"))
                    for c in (issuer.get("status") or {}).get("conditions") or []]  # fmt: skip
            if have != [("Ready", cond[0]["status"], cond[0]["reason"])]:
                self.sim._status(f"{CERT_API}/clusterissuers/{name}", {"conditions": cond})
        for cert in self._items(f"{CERT_API}/certificates"):
            self._certificate(cert, issuers)

    def _certificate(self, cert: dict[str, Any], issuers: dict[str, tuple[dict[str, Any], bool]]) -> None:
        meta, spec = cert["metadata"], cert.get("spec") or {}
        ns, name = meta["namespace"], meta["name"]
        ref = spec.get("issuerRef") or {}
        issuer, issuer_ready = issuers.get(ref.get("name", ""), ({}, False))
        if ref.get("kind") != "ClusterIssuer" or not issuer_ready:
            return
        secret_path = f"/api/v1/namespaces/{ns}/secrets/{spec['secretName']}"
        secret = self._get(secret_path)
        issued = secret is not None and ((secret["metadata"].get("annotations") or {})
                                         .get("cert-manager.io/certificate-name") == name)  # fmt: skip
        if not issued:
            common = spec.get("commonName") or (spec.get("dnsNames") or [name])[0]
            if "ca" in (issuer.get("spec") or {}):
                pair = self._issuer_keypair(issuer)
                if pair is None:
                    return
                ca_cert, ca_key = pair
                crt, key = issue(ca_cert, ca_key, common_name=common, dns=tuple(spec.get("dnsNames") or ()),
                                 is_ca=bool(spec.get("isCA")))  # fmt: skip
            else:  # selfSigned (ACME has no server here: signed like a self-signed one)
                crt, key = issue(b"", b"", common_name=common, dns=tuple(spec.get("dnsNames") or ()),
                                 is_ca=bool(spec.get("isCA")))  # fmt: skip
                ca_cert = crt
            body = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                    "metadata": {"name": spec["secretName"], "namespace": ns, "annotations": {
                        "cert-manager.io/certificate-name": name, "cert-manager.io/issuer-name": ref["name"],
                        "cert-manager.io/issuer-kind": "ClusterIssuer"}},
                    "data": {"tls.crt": _b64(crt), "tls.key": _b64(key), "ca.crt": _b64(ca_cert)}}  # fmt: skip
            if secret is None:
                self._post(f"/api/v1/namespaces/{ns}/secrets", body, "cert-manager-certificates-issuing")
            else:
                self._merge(secret_path, {"metadata": body["metadata"], "data": body["data"]},
                            "cert-manager-certificates-issuing")  # fmt: skip
        if not issued or not _is_ready(cert):
            now = _now()
            self.sim._status(f"{CERT_API}/namespaces/{ns}/certificates/{name}", {
                "conditions": _ready("True", "Ready", "Certificate is up to date and has not expired",
                                     meta.get("generation")),
                "notBefore": now, "notAfter": "2099-01-01T00:00:00Z", "renewalTime": "2098-12-01T00:00:00Z",
                "revision": 1})  # fmt: skip

    # -- MetalLB ----------------------------------------------------------------------------------

    def _state(self, ns: str, name: str, labels: dict[str, str], status: dict[str, Any]) -> None:
        path = f"{METALLB_API}/namespaces/{ns}/configurationstates"
        live = self._get(f"{path}/{name}")
        if live is None:
            self._post(path, {"apiVersion": "metallb.io/v1beta1", "kind": "ConfigurationState",
                              "metadata": {"name": name, "namespace": ns, "labels": labels}}, "metallb")  # fmt: skip
            live = {"status": {}}
        if any((live.get("status") or {}).get(k) != v for k, v in status.items()):
            self.sim._status(f"{path}/{name}", status)

    def _metallb(self) -> None:
        ns = "metallb-system"
        if self._workload_ready(ns, "Deployment", "metallb-controller") is None:
            return
        seen: list[tuple[str, int, int]] = []
        errors = []
        for pool in self._items(f"{METALLB_API}/namespaces/{ns}/ipaddresspools"):
            counts = {"assignedIPv4": 0, "assignedIPv6": 0, "availableIPv4": 0, "availableIPv6": 0}
            for text in (pool.get("spec") or {}).get("addresses") or []:
                if "/" in text:
                    net = ipaddress.ip_network(text, strict=False)
                    first, last = int(net[0]), int(net[-1])
                    version = net.version
                else:
                    a, b = (ipaddress.ip_address(x.strip()) for x in text.split("-", 1))
                    first, last, version = int(a), int(b), a.version
                for other, o_first, o_last in seen:
                    if first <= o_last and o_first <= last:
                        errors.append(f"CIDR {text!r} in pool {pool['metadata']['name']!r} overlaps with {other!r}")
                seen.append((text, first, last))
                counts[f"availableIPv{version}"] += last - first + 1
            if any((pool.get("status") or {}).get(k) != v for k, v in counts.items()):
                self.sim._status(f"{METALLB_API}/namespaces/{ns}/ipaddresspools/{pool['metadata']['name']}", counts)
        status = ({"result": "Invalid", "errorSummary": "poolReconcilerValid: " + "; ".join(errors)} if errors
                  else {"result": "Valid", "errorSummary": ""})  # fmt: skip
        self._state(ns, "controller", {"metallb.io/component-type": "controller"}, status)
        if self._workload_ready(ns, "DaemonSet", "metallb-speaker") is None:
            return
        for node in self._items("/api/v1/nodes"):
            name = node["metadata"]["name"]
            self._state(ns, f"speaker-{name}", {"metallb.io/component-type": "speaker", "metallb.io/node-name": name},
                        {"result": "Valid", "errorSummary": ""})  # fmt: skip

    # -- Longhorn ---------------------------------------------------------------------------------

    def _longhorn(self) -> None:
        ns = "longhorn-system"
        for job in self._items(f"/apis/batch/v1/namespaces/{ns}/jobs"):
            if job["metadata"]["name"] == "longhorn-uninstall":
                self._uninstall(ns, job)
        manager = self._workload_ready(ns, "DaemonSet", "longhorn-manager")
        deployer = self._workload_ready(ns, "Deployment", "longhorn-driver-deployer")
        want = longhorn_manager_operands(manager) if manager is not None else []
        want += longhorn_driver_operands(deployer) if deployer is not None else []
        if manager is None and deployer is None:
            return
        self.sim._operands("longhorn", ns, want)
        if manager is not None:
            self._longhorn_settings(ns)
            self._longhorn_storageclass(ns)
            self._longhorn_nodes(ns)
        if deployer is not None and self._get("/apis/storage.k8s.io/v1/csidrivers/driver.longhorn.io") is None:
            self._post("/apis/storage.k8s.io/v1/csidrivers", {"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
                       "metadata": {"name": "driver.longhorn.io"},
                       "spec": {"attachRequired": True, "podInfoOnMount": True}}, "longhorn-driver-deployer")  # fmt: skip

    def _longhorn_settings(self, ns: str) -> None:
        cm = self._get(f"/api/v1/namespaces/{ns}/configmaps/longhorn-default-setting") or {}
        settings = yaml.safe_load(((cm.get("data") or {}).get("default-setting.yaml")) or "") or {}
        path = f"{LONGHORN_API}/namespaces/{ns}/settings"
        for key, value in settings.items():
            live = self._get(f"{path}/{key}")
            text = str(value).lower() if isinstance(value, bool) else str(value)
            if live is None:
                self._post(path, {"apiVersion": "longhorn.io/v1beta2", "kind": "Setting",
                                  "metadata": {"name": key, "namespace": ns}, "value": text}, "longhorn-manager")  # fmt: skip
            elif live.get("value") != text and key != "deleting-confirmation-flag":
                self._merge(f"{path}/{key}", {"value": text}, "longhorn-manager")

    def _longhorn_storageclass(self, ns: str) -> None:
        cm = self._get(f"/api/v1/namespaces/{ns}/configmaps/longhorn-storageclass") or {}
        want = yaml.safe_load(((cm.get("data") or {}).get("storageclass.yaml")) or "")
        if not want:
            return
        path = f"/apis/storage.k8s.io/v1/storageclasses/{want['metadata']['name']}"
        live = self._get(path)
        if live is not None and (live.get("parameters") != want.get("parameters")
                                 or (live["metadata"].get("annotations") or {}) != (want["metadata"].get("annotations") or {})):  # fmt: skip
            self.api.request("DELETE", path, timeout=5)  # parameters are immutable: re-made, as the manager does
            live = None
        if live is None:
            self._post("/apis/storage.k8s.io/v1/storageclasses", want, "longhorn-manager")

    def _longhorn_nodes(self, ns: str) -> None:
        path = f"{LONGHORN_API}/namespaces/{ns}/nodes"
        have = {n["metadata"]["name"] for n in self._items(path)}
        for node in self._items("/api/v1/nodes"):
            name = node["metadata"]["name"]
            if name not in have:
                self._post(path, {"apiVersion": "longhorn.io/v1beta2", "kind": "Node",
                                  "metadata": {"name": name, "namespace": ns, "finalizers": ["longhorn.io"]},
                                  "spec": {"name": name, "allowScheduling": True}}, "longhorn-manager")  # fmt: skip

    def _uninstall(self, ns: str, job: dict[str, Any]) -> None:
        """longhorn-manager uninstall --force, run by the Job."""
        done = {c.get("type") for c in (job.get("status") or {}).get("conditions") or [] if c.get("status") == "True"}
        if done & {"Complete", "Failed"}:
            return
        path = f"/apis/batch/v1/namespaces/{ns}/jobs/longhorn-uninstall"
        now = _now()
        flag = self._get(f"{LONGHORN_API}/namespaces/{ns}/settings/deleting-confirmation-flag") or {}
        if flag.get("value") != "true":
            message = "cannot uninstall Longhorn because deleting-confirmation-flag is set to `false`"
            self.sim._status(path, {"startTime": now, "failed": 1, "conditions": [
                {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": message,
                 "lastTransitionTime": now},
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": message,
                 "lastTransitionTime": now}]})  # fmt: skip
            return
        for plural in ("nodes", "settings", "engineimages", "volumes"):
            for obj in self._items(f"{LONGHORN_API}/namespaces/{ns}/{plural}"):
                obj_path = f"{LONGHORN_API}/namespaces/{ns}/{plural}/{obj['metadata']['name']}"
                if obj["metadata"].get("finalizers"):
                    self._merge(obj_path, {"metadata": {"finalizers": None}}, "longhorn-uninstall")
                self.api.request("DELETE", obj_path, timeout=5)
        self.sim._operands("longhorn", ns, [])
        for path_ in ("/apis/storage.k8s.io/v1/csidrivers/driver.longhorn.io",
                      "/apis/storage.k8s.io/v1/storageclasses/longhorn",
                      f"/apis/apps/v1/namespaces/{ns}/daemonsets/longhorn-manager",
                      f"/apis/apps/v1/namespaces/{ns}/deployments/longhorn-driver-deployer"):  # fmt: skip
            self.api.request("DELETE", path_, timeout=5)
        self.sim._status(path, {"startTime": now, "completionTime": now, "succeeded": 1, "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now},
            {"type": "Complete", "status": "True", "lastTransitionTime": now}]})  # fmt: skip

