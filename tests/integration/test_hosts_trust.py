"""The CA files kvinstall puts on real sshd hosts (host_lab) before KubeOne: the site registry's CA
into each host's trust store (where containerd looks, since KubeOne's registry settings carry no CA),
the OIDC issuer's CA on the control planes for the kube-apiserver. The lab hosts' trust stores are
private copies (see host_lab), so this machine's is never touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kvinstall.config.models import OIDC_CA_PATH, Config
from kvinstall.errors import LocalIOError
from kvinstall.hosts.trust import REGISTRY_CA_NAME, digest, host_files, install_host_files
from substrate.pki import CA

pytestmark = pytest.mark.integration


def lab_config(lab: Any, **over: Any) -> Config:
    h1, h2 = lab.hosts.values()
    return Config.model_validate({
        "apiVersion": "kvinstall.io/v1alpha1", "kind": "VirtualizationCluster", "metadata": {"name": "trust"},
        "ssh": {"user": "kvadmin", "privateKeyFile": str(lab.client_keys.ed25519), "useAgent": False},
        "hosts": [{"address": h1.ip, "role": "controlPlane", "hostPublicKey": h1.host_key_line},
                  {"address": h2.ip, "role": "worker", "hostPublicKey": h2.host_key_line}],
        **over,
    })  # fmt: skip


def install(config: Config, lab: Any, tmp: Path) -> dict[str, bool]:
    return install_host_files(
        config, known_hosts_path=tmp / "known_hosts", user_known_hosts=[],
        socket_factory=lambda a, p, t: lab.connect(a, p, t),
    )  # fmt: skip


def verifies(host: Any, cert: Path) -> bool:
    """`openssl verify` on the host with nothing but its trust store."""
    out = host.run(["openssl", "verify", "-CApath", "/etc/ssl/certs", str(cert)])
    return out.returncode == 0


def test_registry_and_issuer_cas_reach_the_hosts_once(host_lab: Any, tmp_path: Path) -> None:
    lab = host_lab(2)
    cp, worker = lab.hosts.values()
    registry_ca, issuer_ca = CA(tmp_path / "reg", "site-registry-ca"), CA(tmp_path / "idp", "issuer-ca")
    server = registry_ca.issue("registry", common_name="registry.site", dns=("registry.site",))
    config = lab_config(
        lab,
        offline={"enabled": True, "registry": "registry.site:5000", "caFile": str(registry_ca.cert_path)},
        auth={"mode": "basic", "issuer": "https://dex.site/dex", "issuerCAFile": str(issuer_ca.cert_path)},
    )
    assert not verifies(cp, server.cert)  # not trusted before
    assert install(config, lab, tmp_path) == {cp.ip: True, worker.ip: True}
    for host in (cp, worker):
        assert verifies(host, server.cert)  # what containerd (Go, system roots) will see
        installed = host.run(["cat", f"/usr/local/share/ca-certificates/{REGISTRY_CA_NAME}"]).stdout
        assert installed == registry_ca.cert_path.read_bytes()
    assert cp.run(["cat", OIDC_CA_PATH]).stdout == issuer_ca.cert_path.read_bytes()
    assert worker.run(["test", "-e", OIDC_CA_PATH]).returncode == 1  # control planes only
    # this machine's trust store is untouched
    assert not Path(f"/usr/local/share/ca-certificates/{REGISTRY_CA_NAME}").exists()
    assert not Path(OIDC_CA_PATH).exists()
    # a re-run changes nothing; a new CA is put in place
    assert install(config, lab, tmp_path) == {cp.ip: False, worker.ip: False}
    before = digest(config)
    registry_ca.cert_path.write_bytes(CA(tmp_path / "reg2", "rotated").cert_path.read_bytes())
    assert digest(config) != before  # the KubeOne phase runs again (its skip key changed)
    assert install(config, lab, tmp_path) == {cp.ip: True, worker.ip: True}


def test_nothing_to_put_and_a_bad_ca_file(tmp_path: Path) -> None:
    base = {
        "apiVersion": "kvinstall.io/v1alpha1", "kind": "VirtualizationCluster", "metadata": {"name": "t"},
        "hosts": [{"address": "192.0.2.1", "role": "controlPlane"}],
    }  # fmt: skip
    assert host_files(Config.model_validate(base)) == []
    plain = {**base, "offline": {"enabled": True, "registry": "r:5000", "insecure": True}}
    assert host_files(Config.model_validate(plain)) == []  # plain HTTP: no CA
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    config = Config.model_validate({**base, "offline": {"enabled": True, "registry": "r:5000", "caFile": str(bad)}})
    with pytest.raises(LocalIOError) as e:
        install_host_files(config, known_hosts_path=tmp_path / "kh")
    assert "not a PEM certificate" in str(e.value) and e.value.where == str(bad)
