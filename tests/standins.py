"""Stand-ins for upstream Helm charts (the real Kube-OVN and Kyverno charts cannot be fetched here).

Each stand-in is a small chart with the upstream chart's value names for what kvinstall sets
(registry, images, MASTER_NODES, CIDRs, IFACE, ...), Deployments/DaemonSets with the upstream
names, a CRD in crds/, and a hook that `helm template --no-hooks` must drop. They are packaged
with tarfile exactly like `helm package` lays a chart out (NAME/Chart.yaml, NAME/values.yaml,
NAME/templates/..., NAME/crds/...), and rendered by the REAL helm binary in the tests.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import textwrap

import yaml


def package_chart(
    name: str,
    version: str,
    values: dict,
    templates: dict[str, str],
    crds: dict[str, str] | None = None,
    kube_version: str | None = None,
) -> bytes:
    chart = {
        "apiVersion": "v2",
        "name": name,
        "version": version,
        "appVersion": version,
        "type": "application",
    }
    if kube_version:
        chart["kubeVersion"] = kube_version
    files = {
        f"{name}/Chart.yaml": yaml.safe_dump(chart),
        f"{name}/values.yaml": yaml.safe_dump(values),
        **{f"{name}/templates/{k}": v for k, v in templates.items()},
        **{f"{name}/crds/{k}": v for k, v in (crds or {}).items()},
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _crd(group: str, kind: str, plural: str, scope: str = "Cluster") -> str:
    return textwrap.dedent(f"""\
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata:
          name: {plural}.{group}
        spec:
          group: {group}
          scope: {scope}
          names:
            kind: {kind}
            plural: {plural}
            singular: {kind.lower()}
            listKind: {kind}List
          versions:
            - name: v1
              served: true
              storage: true
              subresources:
                status: {{}}
              schema:
                openAPIV3Schema:
                  type: object
                  x-kubernetes-preserve-unknown-fields: true
        """)


_WORKLOAD = """\
apiVersion: apps/v1
kind: {kind}
metadata:
  name: {name}
  namespace: {{{{ .Values.namespace }}}}
spec:
  {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
        - name: {container}
          image: {{{{ .Values.global.registry.address }}}}/{{{{ .Values.global.images.kubeovn.repository }}}}:{{{{ .Values.global.images.kubeovn.tag }}}}
          args:
{args}
"""


def _ovn_workload(
    kind: str, name: str, args: list[str], replicas: str = "", container: str | None = None
) -> str:
    arg_lines = "\n".join(f"            - {a!s}" for a in args) or "            []"
    return _WORKLOAD.format(
        kind=kind, name=name, replicas=replicas, args=arg_lines, container=container or name
    )


def kubeovn_chart(version: str = "v1.16.2") -> bytes:
    """A stand-in for the kube-ovn chart: upstream value names, upstream workload names."""
    values = {
        "global": {
            "registry": {"address": "docker.io/kubeovn", "imagePullSecrets": []},
            "images": {
                "kubeovn": {"repository": "kube-ovn", "tag": version},
                "natgateway": {"repository": "vpc-nat-gateway", "tag": version},
            },
        },
        "namespace": "kube-system",
        "MASTER_NODES": "",
        "MASTER_NODES_LABEL": "kube-ovn/role=master",
        "networking": {
            "NET_STACK": "ipv4",
            "NETWORK_TYPE": "geneve",
            "TUNNEL_TYPE": "geneve",
            "IFACE": "",
            "DEFAULT_SUBNET": "ovn-default",
            "DEFAULT_VPC": "ovn-cluster",
            "NODE_SUBNET": "join",
        },
        "func": {"ENABLE_LB": True, "ENABLE_NP": True, "ENABLE_NAT_GW": True},
        "ipv4": {
            "POD_CIDR": "10.16.0.0/16",
            "POD_GATEWAY": "10.16.0.1",
            "SVC_CIDR": "10.96.0.0/12",
            "JOIN_CIDR": "100.64.0.0/16",
        },
    }
    central = _ovn_workload(
        "Deployment",
        "ovn-central",
        ['"--node-ips={{ required "MASTER_NODES" .Values.MASTER_NODES }}"'],
        replicas='replicas: {{ len (splitList "," .Values.MASTER_NODES) }}',
    )
    controller = _ovn_workload(
        "Deployment",
        "kube-ovn-controller",
        [
            '"--default-cidr={{ .Values.ipv4.POD_CIDR }}"',
            '"--default-gateway={{ .Values.ipv4.POD_GATEWAY }}"',
            '"--service-cluster-ip-range={{ .Values.ipv4.SVC_CIDR }}"',
            '"--node-switch-cidr={{ .Values.ipv4.JOIN_CIDR }}"',
            '"--enable-lb={{ .Values.func.ENABLE_LB }}"',
            '"--enable-np={{ .Values.func.ENABLE_NP }}"',
            '"--network-type={{ .Values.networking.TUNNEL_TYPE }}"',
        ],
        replicas='replicas: {{ len (splitList "," .Values.MASTER_NODES) }}',
    )
    cni = _ovn_workload(
        "DaemonSet",
        "kube-ovn-cni",
        [
            '"--iface={{ .Values.networking.IFACE }}"',
            '"--network-type={{ .Values.networking.TUNNEL_TYPE }}"',
        ],
        container="cni-server",  # upstream's container name; it has no MTU value
    )
    templates = {
        "central.yaml": central,
        "ovs-ovn.yaml": _ovn_workload("DaemonSet", "ovs-ovn", []),
        "controller.yaml": controller,
        "cni.yaml": cni,
        "pinger.yaml": _ovn_workload("DaemonSet", "kube-ovn-pinger", []),
        "monitor.yaml": _ovn_workload("Deployment", "kube-ovn-monitor", []),
        "nat-config.yaml": textwrap.dedent("""\
            {{- if .Values.func.ENABLE_NAT_GW }}
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: ovn-vpc-nat-config
              namespace: {{ .Values.namespace }}
            data:
              image: {{ .Values.global.registry.address }}/{{ .Values.global.images.natgateway.repository }}:{{ .Values.global.images.natgateway.tag }}
            {{- end }}
            """),
        "pre-delete-hook.yaml": textwrap.dedent("""\
            apiVersion: batch/v1
            kind: Job
            metadata:
              name: kube-ovn-pre-delete-hook
              namespace: {{ .Values.namespace }}
              annotations:
                helm.sh/hook: pre-delete
            spec:
              template:
                spec:
                  restartPolicy: Never
                  containers:
                    - name: remove-subnet-finalizer
                      image: {{ .Values.global.registry.address }}/{{ .Values.global.images.kubeovn.repository }}:{{ .Values.global.images.kubeovn.tag }}
            """),
    }
    crds = {
        "kube-ovn-crd.yaml": "---\n".join(
            [
                _crd("kubeovn.io", "Subnet", "subnets"),
                _crd("kubeovn.io", "Vpc", "vpcs"),
                _crd("kubeovn.io", "IP", "ips"),
                _crd("kubeovn.io", "VpcNatGateway", "vpc-nat-gateways"),
                _crd("kubeovn.io", "IPPool", "ippools"),
                _crd("kubeovn.io", "Vip", "vips"),
                _crd("kubeovn.io", "VpcDns", "vpc-dnses"),
            ]
        )
    }
    return package_chart("kube-ovn", version, values, templates, crds, kube_version=">= 1.29.0-0")


def kyverno_chart(version: str = "3.8.2", app_version: str = "v1.18.2") -> bytes:
    """A stand-in for the kyverno chart: per-component image registries, the four controllers."""

    def image(reg: str, repo: str) -> dict:
        return {"registry": None, "repository": repo, "tag": None, "defaultRegistry": reg}

    values = {
        "global": {"image": {"registry": None}},
        "admissionController": {
            "container": {"image": image("reg.kyverno.io", "kyverno/kyverno")},
            "initContainer": {"image": image("reg.kyverno.io", "kyverno/kyvernopre")},
        },
        "backgroundController": {"image": image("reg.kyverno.io", "kyverno/background-controller")},
        "cleanupController": {"image": image("reg.kyverno.io", "kyverno/cleanup-controller")},
        "reportsController": {"image": image("reg.kyverno.io", "kyverno/reports-controller")},
        "webhooksCleanup": {
            "image": {"registry": "ghcr.io", "repository": "kyverno/kyverno-cli", "tag": None}
        },
        "test": {
            "image": {"registry": "ghcr.io", "repository": "kyverno/readiness-checker", "tag": "v0.1.0"}
        },
    }
    helpers = textwrap.dedent("""\
        {{- define "img" -}}
        {{- $reg := .image.registry | default .global.image.registry | default .image.defaultRegistry -}}
        {{ $reg }}/{{ .image.repository }}:{{ .image.tag | default .appVersion }}
        {{- end -}}
        """)

    def deploy(name: str, path: str, init: str | None = None) -> str:
        init_block = ""
        if init:
            init_block = (
                "      initContainers:\n        - name: init\n          image: "
                f'{{{{ include "img" (dict "image" .Values.{init} "global" .Values.global '
                '"appVersion" .Chart.AppVersion) }}\n'
            )
        return (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n"
            f"  name: kyverno-{name}\n  namespace: {{{{ .Release.Namespace }}}}\n"
            f"spec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: {name}\n"
            f"  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n{init_block}"
            f"      containers:\n        - name: {name}\n          image: "
            f'{{{{ include "img" (dict "image" .Values.{path} "global" .Values.global '
            '"appVersion" .Chart.AppVersion) }}\n'
        )

    templates = {
        "_helpers.tpl": helpers,
        "admission.yaml": deploy(
            "admission-controller",
            "admissionController.container.image",
            init="admissionController.initContainer.image",
        ),
        "background.yaml": deploy("background-controller", "backgroundController.image"),
        "cleanup.yaml": deploy("cleanup-controller", "cleanupController.image"),
        "reports.yaml": deploy("reports-controller", "reportsController.image"),
        "webhooks-cleanup.yaml": textwrap.dedent("""\
            apiVersion: batch/v1
            kind: Job
            metadata:
              name: kyverno-clean-webhooks
              namespace: {{ .Release.Namespace }}
              annotations:
                helm.sh/hook: pre-delete
            spec:
              template:
                spec:
                  restartPolicy: Never
                  containers:
                    - name: cleanup
                      image: {{ .Values.webhooksCleanup.image.registry }}/{{ .Values.webhooksCleanup.image.repository }}:{{ .Values.webhooksCleanup.image.tag | default .Chart.AppVersion }}
            """),
        "config.yaml": textwrap.dedent("""\
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: kyverno
              namespace: {{ .Release.Namespace }}
            data:
              webhooksCleanupImage: {{ .Values.webhooksCleanup.image.registry }}/{{ .Values.webhooksCleanup.image.repository }}
            """),
    }
    crds = {
        "crds.yaml": "---\n".join(
            [
                _crd("policies.kyverno.io", "ValidatingPolicy", "validatingpolicies"),
                _crd("kyverno.io", "ClusterPolicy", "clusterpolicies"),
            ]
        )
    }
    data = package_chart("kyverno", version, values, templates, crds)
    # appVersion differs from the chart version upstream: patch Chart.yaml accordingly.
    return _with_app_version(data, "kyverno", app_version)


def _with_app_version(data: bytes, name: str, app_version: str) -> bytes:
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as src,
        tarfile.open(fileobj=out, mode="w:gz") as dst,
    ):
        for member in src.getmembers():
            f = src.extractfile(member)
            content = f.read() if f else b""
            if member.name == f"{name}/Chart.yaml":
                chart = yaml.safe_load(content)
                chart["appVersion"] = app_version
                content = yaml.safe_dump(chart).encode()
                member.size = len(content)
            dst.addfile(member, io.BytesIO(content))
    return out.getvalue()
