"""KubeV files field by field: where each documented field takes effect, the documentation's rules,
problems on the KubeV file's own lines, and `convert` with its secret files. Pure: no services."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cluster_dns import KUBEADM_COREFILE, nodelocaldns_corefile
from kvinstall.catalog import load_catalog
from kvinstall.components import kubeovn
from kvinstall.components.artifacts import offline_registry
from kvinstall.components.cdi import cdi_config
from kvinstall.components.dex import AdminCredentials, dex_config
from kvinstall.components.kubevirt import render_cr
from kvinstall.config.convert import convert_file
from kvinstall.config.loader import Loaded, load_text
from kvinstall.config.writer import to_yaml
from kvinstall.errors import ConfigError, UsageError
from kvinstall.kube.dns import with_upstream
from kvinstall.kube.nodes import node_patch
from kvinstall.kubeone.manifest import registries_auth, render_manifest
from kvinstall.phases.context import Options
from kvinstall.session import open_session

HEAD = "apiVersion: virtualization.k8c.io/v1alpha1\nkind: KubeVCluster\n"
CP = "controlPlane:\n  hosts:\n    - address: 192.168.1.10\n"


def load(text: str) -> Loaded:
    return load_text(HEAD + text, source="kubev.yaml")


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(text)
    return [str(p) for p in info.value.problems]


# -- problems on the KubeV file's lines, in its own field names ----------------------------------


def test_a_missing_section_has_no_line_and_its_kubev_name() -> None:
    found = problems("networkConfiguration:\n  dnsServerIP: 8.8.8.8\n")
    assert found[0].startswith("kubev.yaml: controlPlane: required: at least one control plane host")


def test_kvinstall_checks_speak_kubev() -> None:
    text = (
        CP
        + "staticWorkers:\n  hosts:\n    - address: 192.168.1.10\n"
        + "networkConfiguration:\n  networkCIDR: 10.244.0.0/16\n  gatewayIP: 10.1.0.1\n"
    )
    found = problems(text)
    assert (
        "kubev.yaml:8:16: staticWorkers.hosts[0].address: duplicate address '192.168.1.10' "
        "(also controlPlane.hosts[0])" in found
    )
    assert (
        "kubev.yaml:11:14: networkConfiguration.gatewayIP: gateway 10.1.0.1 is outside networkCIDR 10.244.0.0/16"
        in found
    )
    assert not any("podCIDR" in p or "hosts[1]" in p for p in found)


def test_a_kvinstall_value_error_points_at_the_kubev_value() -> None:
    found = problems(CP + "kubeletConfig:\n  evictionHard:\n    memory.available: lots\n")
    assert any(p.startswith("kubev.yaml:7:3: kubeletConfig.evictionHard:") and "lots" in p for p in found)


# -- the documentation's rules ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("loadBalancer: {}\n", "loadBalancer: exactly one load balancer option must be set, found 0"),
        (
            "storage:\n  none: {}\n  longhorn: {}\n",
            "storage: exactly one storage option must be set, found 2",
        ),
        ("idp: {}\n", "idp: exactly one identity provider option must be set, found 0"),
        ("loadBalancer:\n  metallb:\n    ipRange: 192.168.1.0/33\n", "neither a CIDR"),
        ("loadBalancer:\n  metallb:\n    ipRange: 192.168.1.10-fd00::1\n", "neither a CIDR"),
        ("networkConfiguration:\n  dnsServerIP: 8.8.8\n", "dnsServerIP '8.8.8' is not a valid IP address"),
        ("networkConfiguration:\n  dnsServerIP: 10.244.0.53\n", "lies inside networkCIDR 10.244.0.0/16"),
        ("networkConfiguration:\n  tunnelInterface: '^eth[0-9+$'\n", "not a valid regular expression"),
        ("networkConfiguration:\n  tunnelInterface: 'eth 0'\n", "'eth 0' is not a Linux interface name"),
        (
            "apiEndpoint:\n  host: api.example.com\n  alternativeNames: ['a b']\n",
            "neither an IP address nor a DNS name",
        ),
        (
            "kubevirt:\n  developerConfiguration:\n    featureGates: ['-Snapshot']\n",
            "not a feature gate name",
        ),
        ("offlineSettings:\n  enabled: true\n", "containerRegistry: required when offline mode is enabled"),
        (
            "offlineSettings:\n  enabled: true\n  containerRegistry:\n    address: r.example.com\n    username: u\n",
            "password is missing",
        ),
        ("offlineSettings:\n  packageRepositoryKeyFingerprint: ABCD\n", "is not a key fingerprint"),
        ("idp:\n  dex:\n    enablePasswordDB: true\n", "idp.dex.issuer: required field is missing"),
        ("dashboard:\n  auth:\n    basic: {}\n    oidc: {}\n", "exactly one dashboard authentication option"),
    ],
)
def test_documented_rules(text: str, message: str) -> None:
    found = problems(CP + text)
    assert any(message in p for p in found), found


def test_host_addresses_are_ipv4() -> None:
    found = problems("controlPlane:\n  hosts:\n    - address: node1.example.com\n    - address: fd00::1\n")
    assert sum("invalid IP address" in p for p in found) == 2


def test_dns_server_is_the_platform_resolver_not_a_cluster_address() -> None:
    cfg = load(CP + "networkConfiguration:\n  dnsServerIP: 8.8.8.8\n").config
    assert cfg.network.upstream_dns == "8.8.8.8"
    # KubeV's own network defaults, not kvinstall's.
    assert (cfg.network.pod_cidr, cfg.network.service_cidr) == ("10.244.0.0/16", "10.96.0.0/12")


# -- where the fields take effect -------------------------------------------------------------------


def test_dns_server_becomes_the_cluster_dns_upstream_in_the_plan(tmp_path: Path) -> None:
    path = tmp_path / "kubev.yaml"
    path.write_text(HEAD + CP + "networkConfiguration:\n  dnsServerIP: 8.8.8.8\n")
    plan = open_session(path, state_override=tmp_path / "state").plan(Options())[1].to_dict()
    boot = next(p for p in plan["phases"] if p["name"] == "bootstrap")
    dns = [a for a in boot["actions"] if a.get("kind") == "ConfigMap"]  # beside kvinstall's own state
    assert [a["target"] for a in dns] == [
        "ConfigMap kube-system/coredns",
        "ConfigMap kube-system/node-local-dns",
    ]
    assert all(a["reason"] == "Corefile: forward . 8.8.8.8" for a in dns)


def test_corefile_rewrite_of_kubeadm_and_kubeone_nodelocaldns() -> None:
    coredns = with_upstream(KUBEADM_COREFILE, "192.168.1.1")
    assert coredns is not None
    assert "    forward . 192.168.1.1 {\n       max_concurrent 1000\n    }" in coredns
    assert coredns.replace("192.168.1.1", "/etc/resolv.conf") == KUBEADM_COREFILE
    assert with_upstream(coredns, "192.168.1.1") == coredns  # already so: unchanged
    local = nodelocaldns_corefile()
    rewritten = with_upstream(local, "192.168.1.1")
    assert rewritten is not None
    # Only the root block's upstream: the cluster zones still go to the cluster DNS.
    assert (
        rewritten.count("forward . __PILLAR__CLUSTER__DNS__")
        == local.count("forward . __PILLAR__CLUSTER__DNS__")
        == 3
    )
    assert "__PILLAR__UPSTREAM__SERVERS__" not in rewritten and "forward . 192.168.1.1\n" in rewritten
    assert with_upstream("cluster.local:53 {\n    errors\n}\n", "1.1.1.1") is None
    assert (
        with_upstream(".:53 {\n    errors\n}\n", "1.1.1.1")
        == ".:53 {\n    errors\n    forward . 1.1.1.1\n}\n"
    )


def test_labels_annotations_and_their_removal() -> None:
    cfg = load(
        "controlPlane:\n  hosts:\n    - address: 192.168.1.10\n"
        "      labels: {zone: a, stale-label-: ''}\n"
        "      annotations: {example.com/owner: ops, example.com/old-: ''}\n"
    ).config
    host = render_manifest(cfg)["controlPlane"]["hosts"][0]
    assert host["labels"] == {"kube-ovn/role": "master", "stale-label-": "", "zone": "a"}
    assert host["annotations"] == {"example.com/old-": "", "example.com/owner": "ops"}
    node = {
        "metadata": {"labels": {"stale-label": "x", "zone": "b"}, "annotations": {"example.com/old": "1"}}
    }
    patch = node_patch(cfg.hosts[0].labels, cfg.hosts[0].annotations, node)
    assert patch == {
        "metadata": {
            "labels": {"stale-label": None, "zone": "a"},
            "annotations": {"example.com/owner": "ops", "example.com/old": None},
        }
    }
    done = {"metadata": {"labels": {"zone": "a"}, "annotations": {"example.com/owner": "ops"}}}
    assert node_patch(cfg.hosts[0].labels, cfg.hosts[0].annotations, done) == {}


def test_kubelet_settings_per_node_and_cluster_wide() -> None:
    cfg = load(
        "controlPlane:\n  hosts:\n    - address: 192.168.1.10\n      kubelet: {maxPods: 250, systemReserved: {cpu: 500m}}\n"
        "kubeletConfig: {maxPods: 110, imageGCHighThresholdPercent: 85, imageMinimumGCAge: 2m}\n"
    ).config
    manifest = render_manifest(cfg)
    assert manifest["controlPlane"]["hosts"][0]["kubelet"] == {
        "systemReserved": {"cpu": "500m"},
        "maxPods": 250,
    }
    assert manifest["kubeletConfig"] == {
        "maxPods": 110,
        "imageGCHighThresholdPercent": 85,
        "imageMinimumGCAge": "2m",
    }
    found = problems(
        "controlPlane:\n  hosts:\n    - address: 192.168.1.10\n      kubelet: {imageMinimumGCAge: 2m}\n"
    )
    assert any("refused: kvinstall cannot set imageMinimumGCAge per node" in p for p in found)


def test_kubevirt_migrations_devices_and_instancetypes_reach_the_kubevirt_cr() -> None:
    cfg = load(
        CP
        + "kubevirt:\n  migrations: {parallelMigrationsPerCluster: 3, progressTimeout: 300}\n"
        + "  commonInstancetypesDeployment: {enabled: false}\n"
        + "  permittedHostDevices:\n    pciHostDevices:\n"
        + "      - {pciVendorSelector: '10DE:233B', resourceName: nvidia.com/gpu}\n"
    ).config
    spec = render_cr(cfg, load_catalog())["spec"]["configuration"]
    assert spec["migrations"]["parallelMigrationsPerCluster"] == 3
    assert spec["migrations"]["progressTimeout"] == 300
    assert spec["commonInstancetypesDeployment"] == {"enabled": False}
    assert spec["permittedHostDevices"]["pciHostDevices"][0]["resourceName"] == "nvidia.com/gpu"
    assert "HostDevices" in spec["developerConfiguration"]["featureGates"]
    default = render_cr(load(CP).config, load_catalog())["spec"]["configuration"]
    assert "commonInstancetypesDeployment" not in default  # virt-operator's default: deployed


def test_password_db_next_to_connectors_keeps_both() -> None:
    cfg = load(
        CP
        + "idp:\n  dex:\n    issuer: https://dex.example.com\n    enablePasswordDB: true\n"
        + "    connectors:\n      - type: github\n        id: github\n        name: GitHub\n"
        + "        config: {clientID: id, clientSecret: s3cr3t-github}\n"
    ).config
    admin = AdminCredentials(email="admin@kvinstall.local", password="p", bcrypt_hash="$2b$10$x")
    conf = dex_config(cfg, admin)
    assert conf["enablePasswordDB"] is True
    assert conf["connectors"][0]["config"] == {"clientID": "id", "clientSecret": "s3cr3t-github"}


def test_registries_keep_their_own_login_and_insecure_means_skip_verify() -> None:
    text = (
        CP
        + "offlineSettings:\n  enabled: true\n"
        + "  containerRegistry: {address: 'https://10.0.0.10:5000', username: puller, password: pull-pw, insecure: true}\n"
        + "  helmRegistry: {address: 'https://10.0.0.10:5000', username: reader, password: read-pw}\n"
    )
    cfg = load(text).config
    off = cfg.offline
    assert (off.registry, off.insecure, off.insecure_skip_verify) == ("10.0.0.10:5000", False, True)
    # The nodes: HTTPS to the site registry without verifying its certificate, the images' login.
    registries = render_manifest(cfg)["containerRuntime"]["containerd"]["registries"]
    assert registries["10.0.0.10:5000"] == {
        "mirrors": ["https://10.0.0.10:5000"],
        "tlsConfig": {"insecureSkipVerify": True},
    }
    creds = registries_auth(cfg)
    assert creds is not None
    assert creds["registries"]["quay.io"]["auth"] == {"username": "puller", "password": "pull-pw"}
    assert cdi_config(cfg, load_catalog())["insecureRegistries"] == ["10.0.0.10:5000"]
    # kvinstall reading its charts: the helm registry's own login, certificate verified.
    images, charts = offline_registry(cfg), offline_registry(cfg, charts=True)
    assert images is not None and charts is not None
    assert (images.username, images.password, images.skip_verify) == ("puller", "pull-pw", True)
    assert (charts.username, charts.password, charts.skip_verify) == ("reader", "read-pw", False)


def test_a_plain_http_registry_is_kvinstalls_insecure() -> None:
    cfg = load(
        CP + "offlineSettings:\n  enabled: true\n  containerRegistry: {address: 'http://10.0.0.10:5000'}\n"
    ).config
    assert (cfg.offline.insecure, cfg.offline.insecure_skip_verify, cfg.offline.charts) == (True, False, None)
    registries = render_manifest(cfg)["containerRuntime"]["containerd"]["registries"]
    assert registries["docker.io"]["mirrors"] == ["http://10.0.0.10:5000"]


def test_image_pull_secret_logs_the_nodes_in() -> None:
    text = CP + 'imagePullSecret: |\n  {"auths":{"quay.io":{"auth":"bXl1c2VyOm15cGFzc3dvcmQ="}}}\n'
    loaded = load(text)
    assert [w.code for w in loaded.warnings] == ["kubev-inline-secret"]
    creds = registries_auth(loaded.config)
    assert creds == {
        "apiVersion": "kubeone.k8c.io/v1beta2",
        "kind": "ContainerRuntimeContainerd",
        "registries": {"quay.io": {"auth": {"auth": "bXl1c2VyOm15cGFzc3dvcmQ="}}},
    }
    found = problems(CP + 'imagePullSecret: \'{"auths":{"quay.io":{"auth":"<base64>"}}}\'\n')
    assert any("imagePullSecret: auths.quay.io.auth is not base64" in p for p in found)


def test_a_dashboard_that_is_off_is_said_to_do_nothing() -> None:
    loaded = load(CP + "dashboard:\n  dashboardURL: https://d.example.com\n  auth:\n    none: {}\n")
    (warning,) = loaded.warnings
    assert warning.code == "kubev-no-effect"
    assert "dashboard.dashboardURL, dashboard.auth have no effect" in warning.message


def test_a_separate_chart_registry_is_refused_by_name() -> None:
    found = problems(
        CP
        + "offlineSettings:\n  enabled: true\n  containerRegistry: {address: 'https://a.example.com'}\n"
        + "  helmRegistry: {address: 'https://b.example.com'}\n"
    )
    assert any(
        "offlineSettings.helmRegistry.address: refused: kvinstall does not read charts from a registry" in p
        for p in found
    )


# -- convert ------------------------------------------------------------------------------------------


SECRETS = (
    CP
    + "offlineSettings:\n  enabled: true\n"
    + "  containerRegistry: {address: 'https://10.0.0.10:5000', username: u, password: registry-pw-1}\n"
    + "idp:\n  dex:\n    issuer: https://dex.example.com\n    connectors:\n"
    + "      - {type: ldap, id: ldap, name: LDAP, config: {host: 'l:389', bindPW: ldap-pw-2}}\n"
    + "    staticClients:\n      - {id: web, name: Web, secret: client-pw-3}\n"
)


def test_convert_writes_each_secret_to_a_0600_file_and_refers_to_it(tmp_path: Path) -> None:
    src = tmp_path / "kubev.yaml"
    src.write_text(HEAD + SECRETS)
    out = tmp_path / "conf" / "cluster.yaml"
    out.parent.mkdir()
    result = convert_file(src, out)
    assert [s.source for s in result.secrets] == [
        "offlineSettings.containerRegistry.password",
        "idp.dex.connectors[0].config.bindPW",
        "idp.dex.staticClients[0].secret",
    ]
    for secret, value in zip(result.secrets, ("registry-pw-1", "ldap-pw-2", "client-pw-3"), strict=True):
        assert secret.path.parent == out.parent
        assert stat.S_IMODE(secret.path.stat().st_mode) == 0o600
        assert secret.path.read_text() == value + "\n"
        assert value not in result.text
        assert f"{secret.source}: read from {secret.path}" in result.text  # the header says so
    out.write_text(result.text)
    cfg = load_text(out.read_text()).config
    assert cfg.offline.credentials is not None
    assert cfg.offline.credentials.password.reveal() == "registry-pw-1"
    assert cfg.auth.static_clients[0].secret is not None
    assert cfg.auth.static_clients[0].secret.describe() == f"file {result.secrets[2].path}"


def test_convert_needs_an_output_for_secrets_and_never_writes_placeholders(tmp_path: Path) -> None:
    src = tmp_path / "kubev.yaml"
    src.write_text(HEAD + SECRETS)
    with pytest.raises(UsageError, match="3 clear-text secret"):
        convert_file(src, None)
    assert list(tmp_path.iterdir()) == [src]
    # The writer refuses an inline secret outright (it would write a placeholder where the value was).
    with pytest.raises(ValueError, match="inline secret"):
        to_yaml(load(SECRETS).config)


def test_convert_refuses_like_load_unless_told_to_drop(tmp_path: Path) -> None:
    src = tmp_path / "kubev.yaml"
    src.write_text(HEAD + CP + "dashboard:\n  enabled: true\n")
    why = "kvinstall does not deploy the KubeV API server and web dashboard"
    with pytest.raises(ConfigError) as info:
        convert_file(src, None)
    assert f"dashboard.enabled: refused: {why}" in str(info.value.problems[0])
    result = convert_file(src, None, drop_unsupported=True)
    assert f"# dashboard.enabled: dropped: {why}" in result.text
    assert [w.message for w in result.warnings] == [f"dropped: {why}"]


def test_metallb_and_longhorn_become_components() -> None:
    """KubeV's load balancer and storage options: MetalLB with the ipRange as its one pool, announced
    on the hosts' network; Longhorn with its classes (the default, and the ReadWriteMany one)."""
    cfg = load(
        CP + "loadBalancer:\n  metallb:\n    ipRange: 192.168.1.100-192.168.1.150\n"
        "storage:\n  longhorn: {}\n"
    ).config
    lb = cfg.components.metallb
    assert lb.enabled and lb.l2 and not lb.bgp_peers
    assert [(p.name, p.addresses) for p in lb.pools] == [("default", ["192.168.1.100-192.168.1.150"])]
    assert cfg.components.longhorn.enabled
    assert (cfg.default_storage_class(), cfg.rwx_storage_class()) == ("longhorn", "longhorn-rwx")
    none = load(CP + "loadBalancer:\n  none: {}\nstorage:\n  none: {}\n").config
    assert not none.components.metallb.enabled and not none.components.longhorn.enabled
    assert none.rwx_storage_class() is None


def test_a_metallb_range_on_a_host_or_the_pod_network_is_reported_on_the_kubev_line() -> None:
    found = problems(CP + "loadBalancer:\n  metallb:\n    ipRange: 192.168.1.0/28\n")
    assert found == [
        "kubev.yaml:8:14: loadBalancer.metallb.ipRange: 192.168.1.0/28 contains 192.168.1.10 "
        "(controlPlane.hosts[0].address) (a LoadBalancer address must not be a machine's own)"
    ]
    found = problems(CP + "loadBalancer:\n  metallb:\n    ipRange: 10.244.3.1-10.244.3.9\n")
    assert len(found) == 1 and "10.244.3.1-10.244.3.9 overlaps 10.244.0.0/16 (networkConfiguration.networkCIDR)" in found[0]


def test_convert_cli_reports_what_it_wrote(tmp_path: Path) -> None:
    src = tmp_path / "kubev.yaml"
    src.write_text(HEAD + SECRETS)
    out = tmp_path / "cluster.yaml"
    res = subprocess.run(
        [sys.executable, "-m", "kvinstall", "convert", "-f", str(src), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("(mode 0600); the output reads it from there") == 3
    assert "clear-text secret" not in res.stderr  # each went to its file, as said
    for pw in ("registry-pw-1", "ldap-pw-2", "client-pw-3"):
        assert pw not in res.stdout + res.stderr + out.read_text()
    res = subprocess.run(
        [sys.executable, "-m", "kvinstall", "convert", "-f", str(src)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 64 and "give -o OUT" in res.stderr


def test_tunnel_interfaces_reach_kube_ovn() -> None:
    cfg = load(
        "networkConfiguration:\n  tunnelInterface: '^ens[0-9]+$'\n"
        "controlPlane:\n  hosts:\n    - {address: 192.168.1.10, tunnelInterface: bond0}\n"
    ).config
    release = load_catalog().component("kubeovn", cfg.components.kube_ovn.version)
    values = kubeovn.chart_values(cfg, release)
    assert values["networking"]["IFACE"] == "bond0,^ens[0-9]+$"
    assert values["ipv4"]["POD_CIDR"] == "10.244.0.0/16"


def test_plan_cli_of_a_kubev_file_equals_that_of_its_conversion(tmp_path: Path) -> None:
    """The commands themselves, in an empty network namespace (the hosts named do not exist here)."""
    import json

    root = Path(__file__).resolve().parents[2]
    src = root / "tests/unit/kubev_corpus/30-reference-dex-google.yaml"
    out = tmp_path / "cluster.yaml"
    env = {
        **os.environ,
        "KVINSTALL_STATE_DIR": str(tmp_path / "state"),
        "KVINSTALL_CACHE_DIR": str(tmp_path / "c"),
    }

    def kv(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = ["unshare", "-n", sys.executable, "-m", "kvinstall", *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)

    assert kv("convert", "-f", str(src), "-o", str(out)).returncode == 0
    plans = []
    for path in (src, out):
        res = kv("plan", "-f", str(path), "-o", "json")
        assert res.returncode == 0, res.stderr
        plan = json.loads(res.stdout)
        plans.append({k: v for k, v in plan.items() if k != "warnings"})
    assert plans[0] == plans[1]
    assert plans[0]["cluster"] == "kubev-cluster" and "component/dex" in [
        p["name"] for p in plans[0]["phases"]
    ]
