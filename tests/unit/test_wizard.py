"""The init wizard driven through questionary's real prompts, fed by a prompt_toolkit pipe input.

Keys are typed as a person would: Enter accepts the shown default, Ctrl-U clears it, a select
prompt filters its choices by what is typed, y/n answer a confirmation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from kvinstall import wizard
from kvinstall.catalog import load_catalog
from kvinstall.config.loader import load_file
from kvinstall.config.models import Config
from kvinstall.config.writer import to_yaml
from kvinstall.errors import DeclinedError
from kvinstall.fsutil import write_atomic

pytestmark = pytest.mark.timeout(60)

ENTER = "\r"
CLEAR = "\x15"  # Ctrl-U: discard the line (the default shown in the field)
DOWN = "\x1b[B"


def T(answer: str) -> str:
    """Replace the text field's default with `answer`."""
    return CLEAR + answer + ENTER


def S(filter_text: str) -> str:
    """Pick the first choice whose title contains `filter_text`."""
    return filter_text + ENTER


class RecordingUI(wizard.QuestionaryUI):
    """The real questionary UI; it also records the answers its validators refused."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.refused: list[tuple[str, str, str]] = []
        self.asked: list[str] = []

    def text(
        self, message: str, *, default: str = "", validate: Any = None, instruction: str | None = None
    ) -> str:
        self.asked.append(message)

        def recording(answer: str) -> str | None:
            problem = validate(answer) if validate else None
            if problem is not None:
                self.refused.append((message, answer, problem))
            return problem

        return super().text(message, default=default, validate=recording, instruction=instruction)

    def select(self, message: str, choices: Any, *, default: str | None = None) -> str:
        self.asked.append(message)
        return super().select(message, choices, default=default)

    def confirm(self, message: str, *, default: bool = False) -> bool:
        self.asked.append(message)
        return super().confirm(message, default=default)

    def checkbox(self, message: str, choices: Any, *, checked: Any = ()) -> list[str]:
        self.asked.append(message)
        return super().checkbox(message, choices, checked=checked)


def drive(keys: str, initial: Config | None = None, fetch_key: Any = None) -> tuple[Config, RecordingUI]:
    with create_pipe_input() as inp:
        inp.send_text(keys)
        inp.close()  # the write end: running out of keys ends in EOFError, not a hang
        ui = RecordingUI(input=inp, output=DummyOutput())
        ctx = wizard.Ctx(ui=ui, catalog=load_catalog())
        if fetch_key is not None:
            ctx.fetch_key = fetch_key
        try:
            return wizard.run(ctx, initial), ui
        except EOFError:
            raise AssertionError(
                f"the keys ran out; last questions: {ui.asked}, refused: {ui.refused}"
            ) from None


def write_and_load(config: Config, tmp_path: Path) -> Config:
    out = tmp_path / "kvinstall.yaml"
    write_atomic(out, to_yaml(config, header=wizard.STARTER_HEADER))
    text = out.read_text()
    assert text.startswith("# yaml-language-server: $schema=")
    return load_file(out).config


def cfg(**sections: Any) -> Config:
    return Config.model_validate(
        {"apiVersion": "kvinstall.io/v1alpha1", "kind": "VirtualizationCluster", **sections}
    )


# The answers of the steps after hosts, all defaults (the minimal path).
ENDPOINT_DEFAULT = ENTER * 2
NETWORK_DEFAULT = ENTER * 6
STORAGE_DEFAULT = ENTER * 2
KUBEVIRT_DEFAULT = ENTER * 4  # live migration yes, snapshots no, no GPUs, no emulation
AUTH_NONE = ENTER
KYVERNO_DEFAULT = ENTER * 2
SERVICES_NONE = ENTER * 4  # no MetalLB, Longhorn, cert-manager or Multus
WORKSPACES_NONE = ENTER
OFFLINE_NO = ENTER
WRITE = ENTER

MINIMAL = (
    T("lab")
    + ENTER  # name, Kubernetes version (default)
    + ENTER  # hosts: Add a host (the default while there is no control plane)
    + T("192.0.2.10")
    + ENTER
    + ENTER
    + ENTER
    + ENTER
    + "n"
    + "n"  # address, role cp, root, no key, 22
    + ENTER  # hosts: Done
    + ENDPOINT_DEFAULT
    + NETWORK_DEFAULT
    + STORAGE_DEFAULT
    + KUBEVIRT_DEFAULT
    + AUTH_NONE
    + KYVERNO_DEFAULT
    + SERVICES_NONE
    + WORKSPACES_NONE
    + OFFLINE_NO
)


def test_minimal(tmp_path: Path) -> None:
    config, ui = drive(MINIMAL + WRITE)
    expected = cfg(
        metadata={"name": "lab"},
        kubernetes={"version": "v1.34.4"},
        hosts=[{"address": "192.0.2.10", "role": "controlPlane"}],
    )
    assert config == expected
    assert write_and_load(config, tmp_path) == expected
    assert ui.refused == []
    # The review screen lists every section.
    review = "\n".join(ui.transcript)
    for title in (
        "Cluster: lab, Kubernetes v1.34.4",
        "Hosts: 1 control plane, 0 worker(s): 192.0.2.10",
        "Network: pods 10.16.0.0/16",
        "Login: none",
        "Offline: no (online install)",
    ):
        assert title in review


def test_ha_with_gpus(tmp_path: Path) -> None:
    hosts_csv = tmp_path / "hosts.csv"
    hosts_csv.write_text(
        "address,role,user,port,privateKeyFile\n"
        "192.0.2.21,controlPlane,ubuntu,2222,~/.ssh/lab\n"
        "192.0.2.22,controlPlane,ubuntu,2222,~/.ssh/lab\n"
        "192.0.2.23,controlPlane,ubuntu,2222,~/.ssh/lab\n"
    )
    keys = (
        T("gpu-lab")
        + S("v1.33")
        + S("Import")
        + T(str(hosts_csv))
        + S("Add")
        + T("192.0.2.31")
        + S("worker")
        + T("ubuntu")
        + T("~/.ssh/lab")
        + T("2222")
        + "n"
        + "n"
        + S("Add")
        + T("192.0.2.32")
        + S("worker")
        + ENTER
        + ENTER
        + ENTER
        + "n"
        + "n"  # defaults: the previous host's
        + S("Done")
        + T("192.0.2.100")
        + ENTER  # API endpoint: a load balancer
        + NETWORK_DEFAULT
        + T("ceph-rbd")
        + T("cephfs")
        + "y"
        + "y"  # live migration, snapshots
        + S("passthrough")
        + T("10de:1eb8")
        + T("nvidia.com/TU104GL_Tesla_T4")
        + "n"
        + DOWN
        + DOWN
        + DOWN
        + " "
        + ENTER  # GPU hosts: the two workers are checked; uncheck 192.0.2.31
        + "n"  # emulation
        + AUTH_NONE
        + "y"
        + S("Enforce")
        + T("ml, research")
        + SERVICES_NONE
        + S("Add")
        + T("ml")
        + "y"
        + S("group")
        + T("ml-team")
        + S("admin")
        + "n"
        + T("64")
        + T("256Gi")
        + ENTER
        + ENTER  # no VPC CIDR
        + S("Done")
        + OFFLINE_NO
        + WRITE
    )
    config, ui = drive(keys)
    cp = {"address": "", "role": "controlPlane"}
    expected = cfg(
        metadata={"name": "gpu-lab"},
        kubernetes={"version": "v1.33.8"},
        ssh={"user": "ubuntu", "port": 2222, "privateKeyFile": "~/.ssh/lab"},
        hosts=[
            {**cp, "address": "192.0.2.21"},
            {**cp, "address": "192.0.2.22"},
            {**cp, "address": "192.0.2.23"},
            {"address": "192.0.2.31", "role": "worker"},
            {"address": "192.0.2.32", "role": "worker", "pciPassthrough": True},
        ],
        apiEndpoint={"host": "192.0.2.100"},
        storage={"defaultClass": "ceph-rbd", "rwxClass": "cephfs"},
        components={
            "kubevirt": {
                "featureGates": ["Snapshot", "HostDevices"],
                "permittedHostDevices": {
                    "pciHostDevices": [
                        {"pciVendorSelector": "10DE:1EB8", "resourceName": "nvidia.com/TU104GL_Tesla_T4"}
                    ]
                },
            },
            "kyverno": {"policies": {"mode": "Enforce", "hostDevicesNamespaces": ["ml", "research"]}},
        },
        workspaces=[
            {
                "name": "ml",
                "members": [{"group": "ml-team", "role": "admin"}],
                "quota": {"cpu": "64", "memory": "256Gi"},
            }
        ],
    )
    assert config == expected
    loaded = write_and_load(config, tmp_path)
    assert loaded == expected
    assert ui.refused == []


def test_offline_with_basic_auth(tmp_path: Path) -> None:
    keys = (
        T("airgap")
        + ENTER
        + ENTER
        + T("192.0.2.10")
        + ENTER
        + ENTER
        + ENTER
        + ENTER
        + "n"
        + "n"
        + S("Add")
        + T("192.0.2.11")
        + ENTER
        + ENTER
        + ENTER
        + ENTER
        + "n"
        + "n"
        + S("Done")
        + ENDPOINT_DEFAULT
        + NETWORK_DEFAULT
        + STORAGE_DEFAULT
        + "n"
        + "n"
        + ENTER
        + "y"  # no live migration, no snapshots, no GPUs, emulation (no /dev/kvm)
        + S("Basic")
        + T("https://dex.example.com/dex")
        + T("ops@example.com")
        + S("Read it from")
        + S("a file")
        + T("/etc/kvinstall/admin-password")
        + KYVERNO_DEFAULT
        + SERVICES_NONE
        + WORKSPACES_NONE
        + "y"
        + T("registry.example.com:5000")
        + S("own CA")
        + T("/etc/kvinstall/ca.pem")
        + "y"
        + T("puller")
        + S("environment")
        + T("KV_REGISTRY_PASSWORD")
        + WRITE
    )
    config, ui = drive(keys)
    assert ui.refused == []
    expected = cfg(
        metadata={"name": "airgap"},
        hosts=[
            {"address": "192.0.2.10", "role": "controlPlane"},
            {"address": "192.0.2.11", "role": "worker"},
        ],
        components={"kubevirt": {"liveMigration": False, "useEmulation": True}},
        auth={
            "mode": "basic",
            "issuer": "https://dex.example.com/dex",
            "basic": {
                "adminEmail": "ops@example.com",
                "password": {"valueFrom": {"file": "/etc/kvinstall/admin-password"}},
            },
        },
        offline={
            "enabled": True,
            "registry": "registry.example.com:5000",
            "caFile": "/etc/kvinstall/ca.pem",
            "credentials": {"username": "puller", "password": {"valueFrom": {"env": "KV_REGISTRY_PASSWORD"}}},
        },
    )
    assert config == expected
    assert write_and_load(config, tmp_path) == expected
    text = (tmp_path / "kvinstall.yaml").read_text()
    assert "valueFrom" in text and "value:" not in text


def test_edit_from_review_only_reruns_that_step(tmp_path: Path) -> None:
    keys = (
        MINIMAL
        + S("Edit Network")
        + T("10.32.0.0/16")
        + ENTER * 5  # pod CIDR changed; gateway follows it
        + S("Edit Login")
        + S("OIDC")
        + T("https://dex.example.com/dex")
        + ENTER
        + ENTER
        + ENTER
        + ENTER  # add: type oidc, id oidc, name
        + T("https://accounts.example.com")
        + T("kvinstall")
        + ENTER
        + T("OIDC_CLIENT_SECRET")
        + S("Done")
        + WRITE
    )
    config, ui = drive(keys)
    expected = cfg(
        metadata={"name": "lab"},
        hosts=[{"address": "192.0.2.10", "role": "controlPlane"}],
        network={"podCIDR": "10.32.0.0/16"},
        auth={
            "mode": "oidc",
            "issuer": "https://dex.example.com/dex",
            "oidc": {
                "connectors": [
                    {
                        "type": "oidc",
                        "id": "oidc",
                        "name": "OpenID Connect",
                        "config": {"issuer": "https://accounts.example.com", "clientID": "kvinstall"},
                        "clientSecret": {"valueFrom": {"env": "OIDC_CLIENT_SECRET"}},
                    }
                ]
            },
        },
    )
    assert config == expected
    assert write_and_load(config, tmp_path) == expected
    # Only the edited steps ran again: the cluster name was asked once.
    assert ui.asked.count("Cluster name") == 1
    assert ui.asked.count("Pod network (CIDR)") == 2
    assert "Pod network gateway" in ui.asked
    assert any(
        "Network: pods 10.32.0.0/16, services 10.96.0.0/12, join 100.64.0.0/16, gateway 10.32.0.1" in line
        for line in ui.transcript
    )


def test_invalid_answers_are_asked_again(tmp_path: Path) -> None:
    keys = (
        T("Bad_Name")
        + T("lab")
        + ENTER
        + ENTER
        + T("not an address!")
        + T("10.16.0.5")
        + T("192.0.2.10")
        + ENTER
        + ENTER
        + ENTER
        + T("99999")
        + T("22")
        + "n"
        + "n"
        + S("Add")
        + T("192.0.2.10")
        + T("192.0.2.11")
        + ENTER
        + ENTER
        + ENTER
        + ENTER
        + "n"
        + "n"
        + S("Done")
        + ENDPOINT_DEFAULT
        + T("10.96.0.0/16")
        + T("10.16.0.1/16")
        + T("10.20.0.0/16")
        + ENTER
        + ENTER  # pod CIDR x3, service, join
        + T("10.99.0.1")
        + T("10.20.0.1")
        + ENTER
        + ENTER  # gateway outside the pod network, then inside
        + T("Not A Class")
        + T("")
        + ENTER
        + KUBEVIRT_DEFAULT
        + S("Basic")
        + T("http://dex.example.com")
        + T("https://dex.example.com")
        + ENTER
        + S("Read it from")
        + S("environment")
        + T("1BAD")
        + T("DEX_ADMIN_PASSWORD")
        + KYVERNO_DEFAULT
        + SERVICES_NONE
        + WORKSPACES_NONE
        + "y"
        + T("https://registry.example.com")
        + T("registry.example.com")
        + S("Plain HTTP")
        + "n"
        + WRITE
    )
    config, ui = drive(keys)
    refused = {(message, answer) for message, answer, _ in ui.refused}
    assert refused == {
        ("Cluster name", "Bad_Name"),
        ("Host address (IP or DNS name)", "not an address!"),
        ("Host address (IP or DNS name)", "10.16.0.5"),  # inside the default pod network
        ("SSH port", "99999"),
        ("Host address (IP or DNS name)", "192.0.2.10"),  # duplicate
        ("Pod network (CIDR)", "10.96.0.0/16"),  # overlaps the service network
        ("Pod network (CIDR)", "10.16.0.1/16"),  # host bits set
        ("Pod network gateway", "10.99.0.1"),
        ("StorageClass for VM disks", "Not A Class"),
        ("Dex issuer URL", "http://dex.example.com"),
        ("Admin password: environment variable name", "1BAD"),
        ("Site registry HOST[:PORT]", "https://registry.example.com"),
    }
    messages = {answer: problem for _, answer, problem in ui.refused}
    assert "overlaps" in messages["10.96.0.0/16"]
    assert "duplicate" in messages["192.0.2.10"]
    assert "lies inside 10.16.0.0/16" in messages["10.16.0.5"]
    assert "https" in messages["http://dex.example.com"]
    expected = cfg(
        metadata={"name": "lab"},
        hosts=[
            {"address": "192.0.2.10", "role": "controlPlane"},
            {"address": "192.0.2.11", "role": "worker"},
        ],
        network={"podCIDR": "10.20.0.0/16"},
        auth={
            "mode": "basic",
            "issuer": "https://dex.example.com",
            "basic": {"password": {"valueFrom": {"env": "DEX_ADMIN_PASSWORD"}}},
        },
        offline={"enabled": True, "registry": "registry.example.com", "insecure": True},
    )
    assert config == expected
    assert write_and_load(config, tmp_path) == expected


def test_from_existing_config_keeps_values_and_unasked_fields(tmp_path: Path) -> None:
    initial = cfg(
        metadata={"name": "prod"},
        ssh={"user": "ubuntu", "connectTimeout": 20},
        hosts=[
            {"address": "192.0.2.10", "role": "controlPlane", "labels": {"rack": "a1"}},
            {"address": "192.0.2.11", "role": "worker", "user": "admin"},
        ],
        network={"podCIDR": "10.32.0.0/16", "mtu": 1400},
        components={
            "kubevirt": {"featureGates": ["Snapshot"], "migrations": {"parallelMigrationsPerCluster": 3}}
        },
        workspaces=[{"name": "team-a", "members": [{"user": "alice", "role": "edit"}]}],
        auth={
            "mode": "basic",
            "issuer": "https://dex.example.com",
            "basic": {"password": "clear-text-password"},
        },
    )
    keys = (
        ENTER
        + ENTER  # name, version: kept
        + S("Done")
        + ENDPOINT_DEFAULT
        + NETWORK_DEFAULT
        + STORAGE_DEFAULT
        + KUBEVIRT_DEFAULT
        + ENTER
        + ENTER
        + ENTER
        + ENTER  # auth: basic, issuer, email, "read it from" (the default now)
        + ENTER
        + T("DEX_ADMIN")  # the clear-text password asked again as a reference: env
        + KYVERNO_DEFAULT
        + SERVICES_NONE
        + S("Done")
        + OFFLINE_NO
        + WRITE
    )
    # The clear-text password is replaced first, before the steps run.
    keys = S("environment") + T("DEX_ADMIN_FIRST") + keys
    config, ui = drive(keys, initial=initial)
    expected_data = initial.model_dump(by_alias=True, exclude_defaults=True, mode="json")
    expected_data["auth"]["basic"]["password"] = {"valueFrom": {"env": "DEX_ADMIN"}}
    expected = Config.model_validate(expected_data)
    assert config == expected
    assert any("clear text" in line for line in ui.transcript)
    loaded = write_and_load(config, tmp_path)
    assert loaded == expected
    assert "clear-text-password" not in (tmp_path / "kvinstall.yaml").read_text()


def test_cancel_at_review_raises_declined() -> None:
    with pytest.raises(DeclinedError):
        drive(MINIMAL + S("Cancel"))


def test_hoist_ssh_keeps_differences_on_hosts() -> None:
    data = {
        "hosts": [
            {
                "address": "a",
                "role": "controlPlane",
                "user": "u",
                "port": 22,
                "privateKeyFile": "k",
                "bastion": {},
            },
            {
                "address": "b",
                "role": "worker",
                "user": "u",
                "port": 2200,
                "privateKeyFile": "",
                "bastion": {},
            },
            {"address": "c", "role": "worker", "user": "u", "port": 22, "privateKeyFile": "k", "bastion": {}},
        ]
    }
    out = wizard.hoist_ssh(data)
    assert out["ssh"] == {"user": "u"}
    assert out["hosts"][0] == {"address": "a", "role": "controlPlane", "privateKeyFile": "k"}
    assert out["hosts"][1] == {"address": "b", "role": "worker", "port": 2200}
    assert out["hosts"][2] == {"address": "c", "role": "worker", "privateKeyFile": "k"}


def test_parse_hosts_file_yaml_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "hosts.yaml"
    good.write_text(
        "hosts:\n  - {address: 192.0.2.5, role: controlPlane, hostname: cp1}\n"
        "  - {address: 192.0.2.6, role: worker}\n"
    )
    assert wizard.parse_hosts_file(good) == [
        {"address": "192.0.2.5", "role": "controlPlane", "hostname": "cp1"},
        {"address": "192.0.2.6", "role": "worker"},
    ]
    bad = tmp_path / "hosts.csv"
    bad.write_text("address,role,port\n192.0.2.5,master,22\n192.0.2.6,worker,x\n")
    with pytest.raises(ValueError) as exc:
        wizard.parse_hosts_file(bad)
    assert "row 2: role" in str(exc.value) and "row 3: port" in str(exc.value)
    txt = tmp_path / "hosts.txt"
    txt.write_text("192.0.2.5\n")
    with pytest.raises(ValueError, match=r"give a \.csv or \.yaml"):
        wizard.parse_hosts_file(txt)
    with pytest.raises(ValueError, match="cannot read"):
        wizard.parse_hosts_file(tmp_path / "missing.csv")


def test_starter_config_is_valid_and_uses_documentation_addresses(tmp_path: Path) -> None:
    config = wizard.starter_config(load_catalog())
    loaded = write_and_load(config, tmp_path)
    assert loaded == config
    assert [(h.address, h.role) for h in loaded.hosts] == [
        ("192.0.2.10", "controlPlane"),
        ("192.0.2.11", "worker"),
        ("192.0.2.12", "worker"),
    ]


def test_vgpu_and_ldap_connector(tmp_path: Path) -> None:
    keys = (
        T("vgpu") + ENTER
        + ENTER + T("192.0.2.10") + ENTER + ENTER + ENTER + ENTER + "n" + "n" + S("Done")
        + ENDPOINT_DEFAULT + NETWORK_DEFAULT + STORAGE_DEFAULT
        + ENTER + ENTER  # live migration yes, snapshots no
        + S("vGPU") + T("GRID T4-1Q") + T("nvidia.com/GRID_T4-1Q") + "n" + T("nvidia-222") + ENTER
        + S("OIDC") + T("https://dex.example.com/dex")
        + ENTER + S("LDAP") + ENTER + ENTER  # add; type; id and name: the defaults
        + T("ldap.example.com:636") + T("cn=admin,dc=example,dc=com") + S("a file") + T("/etc/kvinstall/ldap-bind")
        + T("ou=people,dc=example,dc=com") + ENTER + S("Done")
        + ENTER + ENTER + T("gpu-vms")  # Kyverno, Audit, namespaces allowed to use the vGPUs
        + SERVICES_NONE
        + WORKSPACES_NONE + OFFLINE_NO + WRITE
    )  # fmt: skip
    config, ui = drive(keys)
    assert ui.refused == []
    expected = cfg(
        metadata={"name": "vgpu"},
        hosts=[{"address": "192.0.2.10", "role": "controlPlane"}],
        components={
            "kubevirt": {
                "featureGates": ["HostDevices"],
                "permittedHostDevices": {
                    "mediatedDevices": [{"mdevNameSelector": "GRID T4-1Q", "resourceName": "nvidia.com/GRID_T4-1Q"}]
                },
                "mediatedDevicesConfiguration": {"mediatedDeviceTypes": ["nvidia-222"]},
            },
            "kyverno": {"policies": {"hostDevicesNamespaces": ["gpu-vms"]}},
        },
        auth={
            "mode": "oidc",
            "issuer": "https://dex.example.com/dex",
            "oidc": {"connectors": [{
                "type": "ldap", "id": "ldap", "name": "LDAP",
                "config": {"host": "ldap.example.com:636", "bindDN": "cn=admin,dc=example,dc=com",
                           "bindPW": {"valueFrom": {"file": "/etc/kvinstall/ldap-bind"}},
                           "userSearch": {"baseDN": "ou=people,dc=example,dc=com", "username": "uid"}},
            }]},
        },
    )  # fmt: skip
    assert config == expected
    assert write_and_load(config, tmp_path) == expected


def test_platform_services(tmp_path: Path) -> None:
    """MetalLB with a pool (an address range inside the service network is refused as it is typed),
    Longhorn and cert-manager on, Multus off; the review lists them; asked again from the review,
    MetalLB's addresses are the default and answering no drops its section."""
    keys = (
        MINIMAL[: -len(SERVICES_NONE + WORKSPACES_NONE + OFFLINE_NO)]
        + "y" + T("10.96.0.10-10.96.0.20")  # MetalLB; a range in the service network: refused
        + T("192.0.2.200-192.0.2.220, 192.0.2.240/28")
        + "y" + "y" + "n"  # Longhorn, cert-manager, no Multus
        + WORKSPACES_NONE + OFFLINE_NO
        + S("Edit Platform services") + ENTER + ENTER + ENTER + ENTER + ENTER  # all as they are
        + S("Edit Platform services") + "n" + ENTER + ENTER + ENTER  # MetalLB off
        + WRITE
    )  # fmt: skip
    config, ui = drive(keys)
    assert [(m, a) for m, a, _ in ui.refused] == [
        ("LoadBalancer addresses (ranges or CIDRs, comma-separated)", "10.96.0.10-10.96.0.20")
    ]
    assert "overlaps 10.96.0.0/12" in ui.refused[0][2]
    review = "\n".join(ui.transcript)
    assert "Platform services: MetalLB 192.0.2.200-192.0.2.220, 192.0.2.240/28, Longhorn, cert-manager" in review
    assert "Platform services: Longhorn, cert-manager" in review
    expected = cfg(
        metadata={"name": "lab"},
        hosts=[{"address": "192.0.2.10", "role": "controlPlane"}],
        components={"longhorn": {"enabled": True}, "certManager": {"enabled": True}},
    )
    assert config == expected
    assert write_and_load(config, tmp_path) == expected
