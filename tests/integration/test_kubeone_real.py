"""Every KubeOne manifest kvinstall renders, checked by the real kubeone binary (v1.13.7, built from
its release sources; see substrate/kubeone_bin.py for what is safe to run here).

`kubeone config dump -m` loads, defaults and validates a manifest, then resolves every host over SSH
(hostname, OS) and prints the result. Each example, each wizard path and each air-gapped variant is
rendered onto real sshd hosts (host_lab: direct, behind a bastion, one with several host keys) with
the host keys kvinstall verified, and dumped from inside the lab's network namespace. Also here: the
catalog against the binary (supported Kubernetes range, image list), and the runner's failure paths
with the real binary (rejected manifest, SSH agent, unreachable host).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml

from kvinstall.catalog import load_catalog, minor_of
from kvinstall.components import components_for
from kvinstall.components.dex import AdminCredentialsFile
from kvinstall.config.loader import load_file
from kvinstall.config.models import OIDC_CA_PATH, Bastion, Config, RegistryCredentials
from kvinstall.errors import KubeOneError, KvError, SSHError
from kvinstall.hosts.hostkeys import HostKeyPolicy
from kvinstall.hosts.kubeone_view import kubeone_host_keys, record_kubeone_keys
from kvinstall.hosts.ssh import SSHPool, resolve_targets
from kvinstall.kubeone.manifest import registries_auth, render_manifest, to_yaml
from kvinstall.kubeone.runner import diagnose, display_line, run_kubeone
from kvinstall.mirror.items import needed
from kvinstall.plan.desired import desire_upstream
from substrate.host_lab import ClientKeys, HostSpec, Lab, open_lab
from substrate.kubeone_bin import isolated_kubeone, kubeone
from unit.test_wizard import (
    AUTH_NONE,
    ENDPOINT_DEFAULT,
    ENTER,
    KUBEVIRT_DEFAULT,
    KYVERNO_DEFAULT,
    MINIMAL,
    NETWORK_DEFAULT,
    OFFLINE_NO,
    SERVICES_NONE,
    STORAGE_DEFAULT,
    WORKSPACES_NONE,
    WRITE,
    S,
    T,
    drive,
)
from upstream_pack import PackSource

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LAB_USER = "kvadmin"  # the lab hosts' sudo user

# The lab: a bastion with six hosts behind it (ha-gpu), five reached directly, one with ed25519, ECDSA
# and RSA host keys (KubeOne's client is shown the ECDSA one, kvinstall's the ed25519 one).
SPECS = [
    HostSpec("bastion", bastion=True),
    *(HostSpec(f"b{i}", behind_bastion=True) for i in range(1, 7)),
    *(HostSpec(f"d{i}") for i in range(1, 6)),
    HostSpec("multi", host_key_types=("ed25519", "ecdsa", "rsa")),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, ssh_client_keys: ClientKeys) -> Iterator[Lab]:
    with ExitStack() as stack:
        yield open_lab(stack, tmp_path_factory.mktemp("kubeone-lab"), ssh_client_keys, SPECS)


@pytest.fixture(scope="module")
def agent(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ssh-agent holding the lab's client key: the socket of configs that log in with the agent."""
    sock = tmp_path_factory.mktemp("agent") / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.PIPE, text=True)
    try:
        # It prints its environment once the socket listens (nothing, if it exits).
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("SSH_AUTH_SOCK="), "ssh-agent did not start"
        subprocess.run(["ssh-add", "-q", str(lab.client_keys.ed25519)], env={"SSH_AUTH_SOCK": str(sock)},
                       check=True, capture_output=True)  # fmt: skip
        yield str(sock)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- configs onto the lab ------------------------------------------------------------------------


def on_lab(config: Config, lab: Lab, tmp: Path) -> Config:
    """`config` with its hosts replaced by lab hosts of the same roles, names and SSH settings kind:
    behind the lab's bastion when it uses one, its key file replaced by the lab's client key (or the
    agent when it names none), pinned host keys replaced by the lab hosts' keys, the site registry's
    password in a file. Everything else (secrets included) as it is."""
    ssh = config.ssh
    uses_bastion = ssh.bastion is not None or any(h.bastion for h in config.hosts)
    has_key = bool(ssh.private_key_file) or any(h.private_key_file for h in config.hosts)
    non_root = ssh.user != "root" or any((h.user or "root") != "root" for h in config.hosts)
    pool = [lab[f"b{i}"] for i in range(1, 7)] if uses_bastion else [lab[f"d{i}"] for i in range(1, 6)]
    assert len(config.hosts) <= len(pool), f"the lab has {len(pool)} hosts for this kind of config"
    assert lab.bastion is not None
    hosts = []
    for h, host in zip(config.hosts, pool, strict=False):
        update: dict[str, Any] = {"address": host.ip, "private_address": None, "port": None, "user": None,
                                  "private_key_file": None, "bastion": None}  # fmt: skip
        if h.host_public_key:
            update["host_public_key"] = host.host_key_line
        hosts.append(h.model_copy(update=update))
    ssh = ssh.model_copy(update={
        "port": 22, "user": LAB_USER if non_root else "root", "connect_timeout": 5.0,
        "bastion": Bastion(address=lab.bastion.ip, user="root") if uses_bastion else None,
        "private_key_file": str(lab.client_keys.ed25519) if has_key else None,
    })  # fmt: skip
    offline = config.offline
    if offline.credentials is not None:
        pw = tmp / "registry-password"
        pw.write_text("not-a-real-password\n")
        creds = RegistryCredentials.model_validate(
            {"username": offline.credentials.username, "password": {"valueFrom": {"file": str(pw)}}}
        )
        offline = offline.model_copy(update={"credentials": creds})
    return config.model_copy(update={"hosts": hosts, "ssh": ssh, "offline": offline})


def manifest_for(config: Config, lab: Lab, tmp: Path) -> tuple[Path, Path | None, dict[str, str]]:
    """The manifest (and credentials file) the KubeOne phase would give KubeOne for `config`: with
    the host keys on record (the lab's known_hosts, and kvinstall's own file in `tmp`)."""
    keys, missing = kubeone_host_keys(config, tmp / "known_hosts", user_known_hosts=[lab.known_hosts])
    assert not missing, missing
    manifest = tmp / "kubeone.yaml"
    manifest.write_text(to_yaml(render_manifest(config, host_keys=keys)))
    creds = None
    auth = registries_auth(config)
    if auth is not None:
        creds = tmp / "credentials.yaml"
        creds.write_text(to_yaml({"registriesAuth": to_yaml(auth)}))
    return manifest, creds, keys


def dump(binary: Path, lab: Lab, manifest: Path, creds: Path | None, agent: str) -> dict[str, Any]:
    args = ["config", "dump", "-m", str(manifest)] + (["-c", str(creds)] if creds else [])
    env = {"PATH": os.environ["PATH"], "HOME": str(manifest.parent), "SSH_AUTH_SOCK": agent}
    out = kubeone(binary, *args, netns=lab.netns, env=env)
    assert out.returncode == 0, f"kubeone config dump failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert [d["kind"] for d in docs] == ["KubeOneCluster"], [d.get("kind") for d in docs]
    cluster: dict[str, Any] = docs[0]
    return cluster


def check_dumped(dumped: dict[str, Any], config: Config, lab: Lab, keys: dict[str, str]) -> None:
    """KubeOne resolved every host, with the host key kvinstall passed (the key body); containerd
    hands devices to the pod's user (KubeVirt)."""
    assert dumped["containerRuntime"]["containerd"]["deviceOwnershipFromSecurityContext"] is True
    hosts = [*dumped["controlPlane"]["hosts"], *(dumped.get("staticWorkers") or {}).get("hosts", [])]
    assert sorted(h["publicAddress"] for h in hosts) == sorted(h.address for h in config.hosts)
    by_ip = {h.ip: h for h in lab.hosts.values()}
    for h in hosts:
        assert h["sshHostPublicKey"] == keys[h["publicAddress"]].split()[1]
        want = next(c.hostname for c in config.hosts if c.address == h["publicAddress"])
        assert h["hostname"] == (want or by_ip[h["publicAddress"]].name)  # `hostname -f` over SSH
        assert h["operatingSystem"]  # read from /etc/os-release over SSH


# --- every manifest kvinstall renders ------------------------------------------------------------


def example_configs() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("*.yaml"))


@pytest.mark.parametrize("name", example_configs())
def test_every_example_passes_kubeone_config_dump(
    name: str, lab: Lab, agent: str, kubeone_bin: Path, tmp_path: Path
) -> None:
    config = on_lab(load_file(EXAMPLES / name).config, lab, tmp_path)  # the KubeV file is converted
    manifest, creds, keys = manifest_for(config, lab, tmp_path)
    check_dumped(dump(kubeone_bin, lab, manifest, creds, agent), config, lab, keys)


KUBEV_CORPUS = Path(__file__).resolve().parents[1] / "unit" / "kubev_corpus"


def accepted_kubev_files() -> list[Path]:
    return sorted(p for p in KUBEV_CORPUS.glob("*.yaml") if "\n# expect: accepted\n" in p.read_text())


@pytest.mark.parametrize("path", accepted_kubev_files(), ids=lambda p: p.stem)
def test_every_accepted_kubev_file_passes_kubeone_config_dump(
    path: Path, lab: Lab, agent: str, kubeone_bin: Path, tmp_path: Path
) -> None:
    # The Kubermatic Virtualization docs' own files, as kvinstall converts them on loading.
    config = on_lab(load_file(path).config, lab, tmp_path)
    manifest, creds, keys = manifest_for(config, lab, tmp_path)
    check_dumped(dump(kubeone_bin, lab, manifest, creds, agent), config, lab, keys)


def offline(**over: Any) -> dict[str, Any]:
    return {"enabled": True, "registry": "registry.site.internal:5000", **over}


AIRGAP = {
    "plain-http": offline(insecure=True),
    "tls-system-ca": offline(),
    "tls-own-ca": offline(caFile="/etc/kvinstall/ca.pem"),
    "login": offline(credentials={"username": "puller", "password": {"valueFrom": {"env": "X"}}}),
    "login-and-own-ca": offline(caFile="/etc/kvinstall/ca.pem",
                                credentials={"username": "puller", "password": {"valueFrom": {"env": "X"}}}),
    # `mirror serve`'s site: the hosts install from its package repository (phase host-packages)
    "site-packages": offline(caFile="/etc/kvinstall/ca.pem", hostPackages={"distributions": ["debian-12"]},
                             packageRepository={"url": "https://registry.site.internal:8443",
                                                "signingKey": "/etc/kvinstall/site.gpg"}),
}  # fmt: skip


@pytest.mark.parametrize("variant", sorted(AIRGAP))
def test_air_gapped_manifests_pass_kubeone_config_dump(
    variant: str, lab: Lab, agent: str, kubeone_bin: Path, tmp_path: Path
) -> None:
    base = load_file(EXAMPLES / "airgapped.yaml").config.model_dump(mode="json", by_alias=True, exclude_none=True)
    base["offline"] = AIRGAP[variant]
    config = on_lab(Config.model_validate(base), lab, tmp_path)
    manifest, creds, keys = manifest_for(config, lab, tmp_path)
    assert (creds is not None) == ("login" in variant)
    dumped = dump(kubeone_bin, lab, manifest, creds, agent)
    check_dumped(dumped, config, lab, keys)
    # KubeOne defaults it to true unless given; false is omitted from its output. Every offline
    # variant: the hosts' packages come from their own sources or the site package repository.
    assert dumped["systemPackages"].get("configureRepositories", False) is False
    regs = dumped["containerRuntime"]["containerd"]["registries"]
    scheme = "http" if variant == "plain-http" else "https"
    assert regs["registry.k8s.io"]["mirrors"] == [f"{scheme}://registry.site.internal:5000"]
    if creds is not None:  # the credentials file reached every registry's auth
        assert regs["quay.io"]["auth"]["username"] == "puller"


@pytest.mark.parametrize("prefix", ["oidc:", ""], ids=["prefixed", "bare"])
def test_oidc_settings_pass_kubeone_config_dump(
    prefix: str, lab: Lab, agent: str, kubeone_bin: Path, tmp_path: Path
) -> None:
    data = load_file(EXAMPLES / "ha-gpu.yaml").config.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["auth"] |= {"usernamePrefix": prefix, "groupsPrefix": prefix, "issuerCAFile": "/etc/kvinstall/idp-ca.pem"}
    config = on_lab(Config.model_validate(data), lab, tmp_path)
    manifest, creds, keys = manifest_for(config, lab, tmp_path)
    dumped = dump(kubeone_bin, lab, manifest, creds, agent)
    check_dumped(dumped, config, lab, keys)
    oidc = dumped["features"]["openidConnect"]["config"]
    assert oidc["caFile"] == OIDC_CA_PATH
    assert oidc["usernamePrefix"] == oidc["groupsPrefix"] == (prefix or "-")


# The wizard's paths (answers as a person types them), each rendered and dumped.
WIZARD_BASTION_OIDC = (
    T("bastion-oidc") + ENTER
    + ENTER + T("192.0.2.11") + ENTER + T(LAB_USER) + T("~/.ssh/lab") + ENTER + "y"
    + T("198.51.100.5") + ENTER + T("root")
    + S("Add") + T("192.0.2.12") + S("worker") + ENTER + ENTER + ENTER + "y" + ENTER + ENTER + ENTER
    + S("Done") + T("192.0.2.100") + ENTER + NETWORK_DEFAULT + STORAGE_DEFAULT + KUBEVIRT_DEFAULT
    + S("OIDC") + T("https://dex.example.com/dex") + ENTER + ENTER + ENTER + ENTER
    + T("https://accounts.example.com") + T("kvinstall") + ENTER + T("OIDC_CLIENT_SECRET") + S("Done")
    + KYVERNO_DEFAULT + SERVICES_NONE + WORKSPACES_NONE + OFFLINE_NO + WRITE
)  # fmt: skip
WIZARD_OFFLINE_CA_LOGIN = (
    T("airgap") + ENTER + ENTER + T("192.0.2.10") + ENTER + ENTER + ENTER + ENTER + "n" + "n"
    + S("Done") + ENDPOINT_DEFAULT + NETWORK_DEFAULT + STORAGE_DEFAULT + KUBEVIRT_DEFAULT
    + S("Basic") + T("https://dex.example.com/dex") + ENTER + S("Generate")
    + KYVERNO_DEFAULT + SERVICES_NONE + WORKSPACES_NONE
    + "y" + T("registry.example.com:5000") + S("own CA") + T("/etc/kvinstall/ca.pem")
    + "y" + T("puller") + S("environment") + T("KV_REGISTRY_PASSWORD") + WRITE
)  # fmt: skip
WIZARD_OFFLINE_PLAIN = (
    T("plain") + ENTER + ENTER + T("192.0.2.10") + ENTER + ENTER + ENTER + ENTER + "n" + "n"
    + S("Done") + ENDPOINT_DEFAULT + NETWORK_DEFAULT + STORAGE_DEFAULT + KUBEVIRT_DEFAULT + AUTH_NONE
    + KYVERNO_DEFAULT + SERVICES_NONE + WORKSPACES_NONE + "y" + T("registry.example.com:5000") + S("Plain") + "n" + WRITE
)  # fmt: skip
WIZARD_PATHS = {
    "minimal": MINIMAL + WRITE,
    "bastion-oidc": WIZARD_BASTION_OIDC,
    "offline-ca-login": WIZARD_OFFLINE_CA_LOGIN,
    "offline-plain": WIZARD_OFFLINE_PLAIN,
}
# What each path wrote, so that the paths stay distinct.
WIZARD_SHAPES = {
    "minimal": lambda c: c.ssh.private_key_file is None and c.ssh.use_agent and not c.offline.enabled,
    "bastion-oidc": lambda c: c.ssh.bastion is not None and c.ssh.user == LAB_USER and c.auth.mode == "oidc",
    "offline-ca-login": lambda c: c.offline.ca_file is not None and c.offline.credentials is not None
    and c.auth.mode == "basic",
    "offline-plain": lambda c: c.offline.insecure and c.offline.credentials is None,
}


@pytest.mark.parametrize("path", sorted(WIZARD_PATHS))
def test_every_wizard_path_passes_kubeone_config_dump(
    path: str, lab: Lab, agent: str, kubeone_bin: Path, tmp_path: Path
) -> None:
    written, ui = drive(WIZARD_PATHS[path])
    assert ui.refused == [] and WIZARD_SHAPES[path](written)
    config = on_lab(written, lab, tmp_path)
    manifest, creds, keys = manifest_for(config, lab, tmp_path)
    check_dumped(dump(kubeone_bin, lab, manifest, creds, agent), config, lab, keys)


# --- host keys: the one KubeOne is shown ---------------------------------------------------------


def multi_config(lab: Lab, **host: Any) -> Config:
    return Config.model_validate({
        "apiVersion": "kvinstall.io/v1alpha1", "kind": "VirtualizationCluster", "metadata": {"name": "keys"},
        "ssh": {"privateKeyFile": str(lab.client_keys.ed25519), "useAgent": False, "connectTimeout": 5},
        "hosts": [{"address": lab["multi"].ip, "role": "controlPlane", "hostname": "multi", **host}],
    })  # fmt: skip


def record(config: Config, lab: Lab, own: Path, *, accept_new: bool = False) -> dict[str, SSHError]:
    policy = HostKeyPolicy(own, user_known_hosts=[lab.known_hosts], accept_new=accept_new)
    with SSHPool(policy, socket_factory=lambda a, p, t: lab.connect(a, p, t)) as pool:
        targets = resolve_targets(config)
        for t in targets:  # kvinstall's own login, verified with the ed25519 key on record
            pool.connect(t)
        errors, _ = record_kubeone_keys(config, pool, targets)
    return errors


@pytest.mark.parametrize("pinned", [False, True], ids=["known_hosts", "pinned"])
def test_the_host_key_kubeone_is_shown_is_verified_and_passed(
    pinned: bool, lab: Lab, kubeone_bin: Path, tmp_path: Path
) -> None:
    host = lab["multi"]
    config = multi_config(lab, **({"hostPublicKey": host.host_key_line} if pinned else {}))
    own = tmp_path / "known_hosts"
    # before preflight: only the ed25519 key is on record, the KubeOne phase would pass that one
    keys, _ = kubeone_host_keys(config, own, user_known_hosts=[lab.known_hosts])
    assert keys[host.ip] == host.host_key_line
    # preflight checks the key KubeOne's client gets (ECDSA) against the host's /etc/ssh and records it
    assert record(config, lab, own) == {}
    keys, _ = kubeone_host_keys(config, own, user_known_hosts=[lab.known_hosts])
    assert keys[host.ip] == host.host_key_lines["ecdsa"]
    manifest = tmp_path / "kubeone.yaml"
    manifest.write_text(to_yaml(render_manifest(config, host_keys=keys)))
    dumped = dump(kubeone_bin, lab, manifest, None, "")
    assert dumped["controlPlane"]["hosts"][0]["sshHostPublicKey"] == host.host_key_lines["ecdsa"].split()[1]


def test_keys_behind_a_bastion_and_of_the_bastion_are_checked_as_kubeone_connects(lab: Lab, tmp_path: Path) -> None:
    config = on_lab(load_file(EXAMPLES / "ha-gpu.yaml").config, lab, tmp_path)
    assert config.ssh.bastion is not None
    assert record(config, lab, tmp_path / "known_hosts") == {}  # every host through the bastion, and it
    keys, missing = kubeone_host_keys(config, tmp_path / "known_hosts", user_known_hosts=[lab.known_hosts])
    assert missing == [] and lab.bastion is not None
    assert keys[lab.bastion.ip] == lab.bastion.host_key_line
    by_ip = {h.ip: h for h in lab.hosts.values()}
    assert all(keys[h.address] == by_ip[h.address].host_key_line for h in config.hosts)


def first_failure(binary: Path, prefix: list[str], manifest: Path) -> str:
    """Run `config dump` (after `prefix`: where) until KubeOne reports its first failed attempt (it
    would retry for minutes); that line of its JSON log."""
    argv = [*prefix, str(binary), "config", "dump", "-m", str(manifest), "-l", "json"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={"PATH": os.environ["PATH"]}, start_new_session=True)  # fmt: skip
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if "Task failed" in line:
                return line
        raise AssertionError(f"kubeone ended ({proc.wait()}) without a failed attempt")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_the_key_kvinstall_itself_verified_would_fail_kubeone(lab: Lab, kubeone_bin: Path, tmp_path: Path) -> None:
    # Why the ECDSA key: with the ed25519 key kvinstall's own client saw, KubeOne's check fails.
    host = lab["multi"]
    config = multi_config(lab)
    manifest = tmp_path / "kubeone.yaml"
    manifest.write_text(to_yaml(render_manifest(config, host_keys={host.ip: host.host_key_line})))
    line = first_failure(kubeone_bin, ["ip", "netns", "exec", lab.netns], manifest)
    diag = diagnose(display_line(line))
    assert diag is not None and not diag.transient  # the runner stops KubeOne at once on this
    assert diag.what == "a host presented another SSH host key than the one kvinstall verified"


def test_an_unreachable_host_is_named_from_kubeones_words(kubeone_bin: Path, tmp_path: Path) -> None:
    # KubeOne says exit 10 in the end; its words say which host and why (and it keeps retrying).
    manifest = tmp_path / "kubeone.yaml"
    manifest.write_text(to_yaml(render_manifest(runner_config(privateKeyFile=str(tmp_path / "id")))))
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "id")], check=True)
    line = first_failure(kubeone_bin, ["unshare", "-n"], manifest)  # no route to anywhere
    diag = diagnose(display_line(line))
    assert diag is not None and diag.transient
    assert diag.what == "KubeOne could not connect to 192.0.2.10:22 (network is unreachable)"


def test_a_key_kubeone_would_see_that_nothing_vouches_for_is_refused(lab: Lab, tmp_path: Path) -> None:
    host = lab["multi"]
    config = multi_config(lab)
    # The host does not hold the ECDSA key it presents in /etc/ssh (as if swapped): refused by name.
    host.run(["sh", "-c", "mv /etc/ssh/ssh_host_ecdsa_key.pub /etc/ssh/hidden.pub"], check=True)
    try:
        errors = record(config, lab, tmp_path / "known_hosts")
        assert list(errors) == [host.ip]
        assert "KubeOne will be shown the host key SHA256:" in str(errors[host.ip])
        assert "--accept-new-host-keys" in (errors[host.ip].hint or "")
        _, missing = kubeone_host_keys(config, tmp_path / "known_hosts", user_known_hosts=[lab.known_hosts])
        assert missing == []  # the ed25519 key is still on record: the phase would pass it (and fail)
        # with --accept-new-host-keys it is trusted and recorded, as kvinstall's own TOFU does
        assert record(config, lab, tmp_path / "known_hosts", accept_new=True) == {}
        keys, _ = kubeone_host_keys(config, tmp_path / "known_hosts", user_known_hosts=[lab.known_hosts])
        assert keys[host.ip] == host.host_key_lines["ecdsa"]
    finally:
        host.run(["sh", "-c", "mv /etc/ssh/hidden.pub /etc/ssh/ssh_host_ecdsa_key.pub"], check=True)


def test_no_host_key_on_record_no_kubeone(tmp_path: Path) -> None:
    from kvinstall.hosts.kubeone_view import require_all

    config = Config.model_validate({
        "apiVersion": "kvinstall.io/v1alpha1", "kind": "VirtualizationCluster", "metadata": {"name": "k"},
        "hosts": [{"address": "192.0.2.7", "role": "controlPlane"}],
    })  # fmt: skip
    keys, missing = kubeone_host_keys(config, tmp_path / "known_hosts", user_known_hosts=[])
    assert keys == {} and missing == ["192.0.2.7:22"]
    with pytest.raises(SSHError) as e:
        require_all(missing)
    assert "no verified host key for 192.0.2.7:22" in str(e.value)


# --- the catalog against the binary --------------------------------------------------------------


def version_manifest(tmp: Path, kubernetes: str, lab: Lab | None = None) -> Path:
    """A kvinstall manifest for Kubernetes `kubernetes`, on lab host d1 when a lab is given (KubeOne
    resolves every host before it prints anything, even when hostname and OS are given)."""
    host = lab["d1"] if lab is not None else None
    config = Config.model_validate({
        "apiVersion": "kvinstall.io/v1alpha1", "kind": "VirtualizationCluster", "metadata": {"name": "range"},
        "kubernetes": {"version": kubernetes},
        "ssh": {"privateKeyFile": str(lab.client_keys.ed25519) if lab else "/nonexistent/key"},
        "hosts": [{"address": host.ip if host else "192.0.2.10", "role": "controlPlane"}],
    })  # fmt: skip
    keys = {host.ip: host.host_key_line} if host else {}
    path = tmp / f"kubeone-{kubernetes}.yaml"
    path.write_text(to_yaml(render_manifest(config, host_keys=keys)))
    return path


def test_catalog_kubernetes_range_is_the_binarys(lab: Lab, kubeone_bin: Path, tmp_path: Path) -> None:
    cat = load_catalog()
    release = cat.kubeone.get("v1.13.7")
    assert release is not None and release.kubernetes_range is not None
    (lo_major, lo), (hi_major, hi) = (minor_of(v) for v in release.kubernetes_range)
    inside = [f"v{lo_major}.{lo}.0", f"v{hi_major}.{hi}.99"]
    outside = [f"v{lo_major}.{lo - 1}.99", f"v{hi_major}.{hi + 1}.0"]
    wrapper = isolated_kubeone(kubeone_bin, tmp_path / "bin")  # refused before any host is contacted
    for version in inside:
        assert release.supports_kubernetes(version)
        dumped = dump(kubeone_bin, lab, version_manifest(tmp_path, version, lab), None, "")
        assert dumped["versions"]["kubernetes"] == version.removeprefix("v")
    for version in outside:
        assert not release.supports_kubernetes(version)
        out = kubeone(wrapper, "config", "dump", "-m", str(version_manifest(tmp_path, version)), timeout=120)
        assert out.returncode == 15 and "does not satisfy version constraint" in out.stderr, out.stderr


def test_catalog_images_are_the_binarys(kubeone_bin: Path, tmp_path: Path) -> None:
    cat = load_catalog()
    for k1_version, release in cat.kubeone.releases.items():
        assert release.kubernetes_images, f"KubeOne {k1_version} lists no images"
        for k8s in cat.versions("kubernetes"):
            if not release.supports_kubernetes(k8s):
                continue
            out = kubeone(kubeone_bin, "config", "images", "list", "-m", str(version_manifest(tmp_path, k8s)))
            assert out.returncode == 0, out.stderr
            assert sorted(release.kubernetes_images.get(k8s, ())) == sorted(set(out.stdout.split())), (
                f"catalog kubeone {k1_version} images for Kubernetes {k8s} differ from the binary's list"
            )


def mirror_list(config_file: Path, tmp: Path, path_dirs: list[str]) -> list[dict[str, Any]]:
    import sys

    env = {"PATH": os.pathsep.join(path_dirs), "HOME": str(tmp), "LANG": "C.UTF-8"}
    out = subprocess.run([sys.executable, "-m", "kvinstall", "mirror", "list", "-f", str(config_file),
                          "--output", "json"], capture_output=True, text=True, env=env, timeout=300,
                         check=False, cwd=tmp)  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows: list[dict[str, Any]] = json.loads(out.stdout)
    return rows


@pytest.mark.parametrize("binary_on_path", [False, True], ids=["catalog", "binary"])
def test_mirror_list_has_every_image_kubeone_deploys(
    binary_on_path: bool, kubeone_bin: Path, tmp_path: Path
) -> None:
    config_file = EXAMPLES / "airgapped.yaml"
    config = load_file(config_file).config
    desired = desire_upstream(config, load_catalog(), PackSource(), components_for(AdminCredentialsFile(tmp_path)))
    manifest = tmp_path / "kubeone.yaml"
    manifest.write_text(to_yaml(desired.kubeone_manifest))
    expected = kubeone(kubeone_bin, "config", "images", "list", "-m", str(manifest)).stdout.split()
    assert expected
    bindir = tmp_path / "bin"
    bindir.mkdir()
    if binary_on_path:  # `kubeone` on PATH (as the bundle's binary would be): its own list is used
        (bindir / "kubeone").symlink_to(kubeone_bin)
    rows = mirror_list(config_file, tmp_path, [str(bindir), *os.environ["PATH"].split(os.pathsep)])
    images = {r["reference"] for r in rows if r["kind"] == "image"}
    assert set(expected) <= images, sorted(set(expected) - images)
    assert {r.reference for r in needed(desired)} >= set(expected)


# --- the runner's failure paths, with the real binary ---------------------------------------------


def runner_config(**ssh: Any) -> Config:
    return Config.model_validate({
        "apiVersion": "kvinstall.io/v1alpha1", "kind": "VirtualizationCluster", "metadata": {"name": "fail"},
        "ssh": ssh,
        "hosts": [{"address": "192.0.2.10", "role": "controlPlane"}],
    })  # fmt: skip


def test_rejected_manifest_says_what_kubeone_said(
    kubeone_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Kubernetes version this KubeOne does not support (validate refuses it; here the manifest is
    # handed to the runner directly), with a RELATIVE state directory.
    m = render_manifest(runner_config(privateKeyFile=str(tmp_path / "id")))
    m["versions"]["kubernetes"] = "1.36.0"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KubeOneError) as e:
        run_kubeone(to_yaml(m), Path("state"), binary=str(isolated_kubeone(kubeone_bin, tmp_path / "bin")))
    msg = str(e.value)
    assert "exit code 15 (configuration error): this KubeOne supports Kubernetes <=1.35 only, not 1.36.0" in msg
    assert '"1.36.0" is greater than "1.35"' in msg  # KubeOne's own words
    assert "kubernetes.version" in (e.value.hint or "") and e.value.exit_code == 7
    assert (tmp_path / "state" / "kubeone.yaml").is_file()  # the relative path reached KubeOne


def test_missing_ssh_agent_fails_before_kubeone_runs(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    spy = tmp_path / "kubeone"
    spy.write_text(f"#!/bin/sh\ntouch {marker}\nexit 0\n")
    spy.chmod(0o755)
    manifest = to_yaml(render_manifest(runner_config()))  # no key file: KubeOne uses the agent
    with pytest.raises(SSHError) as e:
        run_kubeone(manifest, tmp_path / "state", binary=str(spy), env={"PATH": os.environ["PATH"]})
    assert "SSH_AUTH_SOCK is not set" in str(e.value) and "ssh-agent" in (e.value.hint or "")
    assert not marker.exists()


def test_dead_ssh_agent_stops_kubeone_at_once(kubeone_bin: Path, tmp_path: Path) -> None:
    dead = tmp_path / "agent.sock"  # an agent socket nobody listens on any more
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(dead))
    s.close()
    lines: list[str] = []
    with pytest.raises(KubeOneError) as e:
        run_kubeone(to_yaml(render_manifest(runner_config())), tmp_path / "state",
                    binary=str(isolated_kubeone(kubeone_bin, tmp_path / "bin")), on_line=lines.append,
                    env={"PATH": os.environ["PATH"], "SSH_AUTH_SOCK": str(dead)})  # fmt: skip
    msg = str(e.value)
    assert "stopped by kvinstall: retrying cannot help: KubeOne could not use the SSH agent" in msg
    assert str(dead) in msg  # KubeOne's words name the socket
    assert "ssh-add" in (e.value.hint or "")
    assert any("Task failed" in ln for ln in lines)  # its output was streamed as readable lines
    assert not any(ln.startswith("{") for ln in lines)


def test_unreachable_host_fails_in_preflight_before_kubeone(lab: Lab, kubeone_bin: Path, tmp_path: Path) -> None:
    from kvinstall.edges import Edges
    from kvinstall.phases.context import Options
    from kvinstall.phases.kubeone import KubeOnePhase
    from kvinstall.phases.manager import run_phases
    from kvinstall.phases.preflight import PreflightPhase
    from kvinstall.session import open_session

    marker = tmp_path / "kubeone-started"
    spy = tmp_path / "kubeone"  # the real binary, but we would know if it ever started
    spy.write_text(f"#!/bin/sh\ntouch {marker}\nexec {kubeone_bin} \"$@\"\n")
    spy.chmod(0o755)
    down = lab["d3"]
    cfg = {
        "apiVersion": "kvinstall.io/v1alpha1", "kind": "VirtualizationCluster", "metadata": {"name": "down"},
        "ssh": {"privateKeyFile": str(lab.client_keys.ed25519), "useAgent": False, "connectTimeout": 3},
        "hosts": [{"address": lab["d1"].ip, "role": "controlPlane"}, {"address": down.ip, "role": "worker"}],
        "kubeone": {"binary": str(spy)},
    }  # fmt: skip
    path = tmp_path / "down.yaml"
    path.write_text(yaml.safe_dump(cfg))
    down.link_down()
    try:
        edges = Edges(socket_factory=lambda a, p, t: lab.connect(a, p, t), user_known_hosts=[lab.known_hosts],
                      artifact_cache=tmp_path / "cache")  # fmt: skip
        # A dry session (artifacts from the empty cache only): the two phases run need none.
        session = open_session(path, state_override=tmp_path / "state", edges=edges)
        ctx = session.start_run(Options(), command="apply", display="none")
        try:
            with pytest.raises(KvError) as e:
                run_phases(ctx, [PreflightPhase(), KubeOnePhase()], command="apply")
        finally:
            ctx.events.close()
    finally:
        down.link_up()
    assert e.value.exit_code == 6 and down.ip in str(e.value)
    assert "no answer" in str(e.value) or "cannot connect" in str(e.value)
    assert not marker.exists()  # KubeOne (which would retry for ~8 minutes) never ran
