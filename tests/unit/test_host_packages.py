"""Host packages, the pure parts: Debian versions (checked against the real dpkg), relations, resolution,
what a config needs per Kubernetes version (the shipped catalog), the lock records, source lines, keys
(checked against the real gpg), the site endpoints preflight probes, and the hosts' apt setup script
(run by the real sh against a private folder)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvinstall.catalog.packages import load_package_catalog, parse_package_catalog
from kvinstall.config.models import Config
from kvinstall.errors import IntegrityError, UsageError
from kvinstall.hosts.checks import os_release_name, site_endpoints
from kvinstall.hosts.facts import Peer, facts_script, parse_facts
from kvinstall.hosts.packages import SourceFiles, setup_script
from kvinstall.mirror.aptfetch import parse_source_line
from kvinstall.mirror.debian import (
    Package,
    Relation,
    Spec,
    compare_versions,
    packages_from_index,
    parse_relations,
    parse_release,
    release_file,
)
from kvinstall.mirror.gate import missing_host_packages
from kvinstall.mirror.gpg import dearmor, fingerprints
from kvinstall.mirror.packages import (
    LockedPackage,
    PackageSet,
    index_stanza,
    needed_packages,
    package_tag,
    packages_index,
    resolve,
)

KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


def config(kubernetes: str = "v1.34.4", **offline: Any) -> Config:
    return Config.model_validate({
        "apiVersion": "kvinstall.io/v1alpha1", "kind": "VirtualizationCluster", "metadata": {"name": "t"},
        "kubernetes": {"version": kubernetes},
        "hosts": [{"address": "192.0.2.11", "role": "controlPlane"}],
        "offline": {"enabled": True, "registry": "192.0.2.1:5000", **offline},
    })


# -- versions, relations ----------------------------------------------------------------------------


def dpkg_order(a: str, b: str) -> int:
    for op, result in (("lt", -1), ("eq", 0)):
        if subprocess.run(["dpkg", "--compare-versions", a, op, b]).returncode == 0:
            return result
    return 1


CASES = ["1.0", "1.0-1", "1:0.9", "1.0~rc1", "1.0~~", "1.0+b1", "1.0.0", "1.34.4-1.1", "1.34.10-1.1", "2.2.1-1",
         "1:1.4.7-1+b2", "1.6.20~ds1-1+deb12u3", "7.6.q-32", "0", "a", "1.0a", "1.0-0", "10", "1.0~rc1-1"]


@pytest.mark.parametrize("a", CASES)
def test_version_order_is_dpkgs(a: str) -> None:
    for b in CASES:
        got = compare_versions(a, b)
        assert (got > 0) - (got < 0) == dpkg_order(a, b), (a, b)


version_part = st.text(alphabet="0123456789.+~ab", min_size=1, max_size=6).filter(lambda s: s[0].isdigit())


@settings(max_examples=60, deadline=None)
@given(version_part, version_part, st.sampled_from(["", "-1", "-2+b1", "-1~bpo"]))
def test_version_order_matches_dpkg_on_generated_versions(a: str, b: str, rev: str) -> None:
    got = compare_versions(a + rev, b)
    assert (got > 0) - (got < 0) == dpkg_order(a + rev, b)


def test_relations() -> None:
    rel = parse_relations("libc6 (>= 2.34), libssl3 (>= 3.0.0) | libssl1.1:any, adduser [amd64] <!nocheck>")
    assert rel == [[Relation("libc6", ">=", "2.34")],
                   [Relation("libssl3", ">=", "3.0.0"), Relation("libssl1.1")], [Relation("adduser")]]


# -- resolution ---------------------------------------------------------------------------------------

INDEX = """\
Package: kubelet
Version: 1.34.4-1.1
Architecture: amd64
Depends: iptables (>= 1.4.21), kubernetes-cni (>= 1.1.1), conntrack | conntrack-tools, libc6
Filename: pool/k/kubelet_1.34.4-1.1_amd64.deb
Size: 10
SHA256: {}

Package: kubelet
Version: 1.33.8-1.1
Architecture: amd64
Filename: pool/k/kubelet_1.33.8-1.1_amd64.deb
Size: 10
SHA256: {}

Package: kubernetes-cni
Version: 1.7.1-1.1
Architecture: amd64
Provides: cni-plugins
Filename: pool/k/kubernetes-cni.deb
Size: 1
SHA256: {}

Package: iptables
Version: 1.8.9-2
Architecture: amd64
Depends: libc6 (>= 2.34)
Filename: pool/i/iptables.deb
Size: 1
SHA256: {}

Package: iptables
Version: 1.4.0-1
Architecture: amd64
Filename: pool/i/iptables-old.deb
Size: 1
SHA256: {}

Package: conntrack
Version: 1:1.4.7-1+b2
Architecture: amd64
Depends: needs-nothing-real
Filename: pool/c/conntrack.deb
Size: 1
SHA256: {}

Package: libc6
Version: 2.36-9
Architecture: amd64
Priority: optional
Filename: pool/l/libc6.deb
Size: 1
SHA256: {}

Package: dpkg
Version: 1.21
Architecture: amd64
Essential: yes
Depends: libc6 (>= 2.34), tar
Filename: pool/d/dpkg.deb
Size: 1
SHA256: {}

Package: tar
Version: 1.34
Architecture: amd64
Priority: required
Filename: pool/t/tar.deb
Size: 1
SHA256: {}
""".format(*(hashlib.sha256(str(i).encode()).hexdigest() for i in range(9)))


def test_resolution_takes_the_newest_match_and_what_it_needs() -> None:
    pkgs = packages_from_index(INDEX)
    res = resolve([Spec.parse("kubelet=1.34.4-*"), Spec.parse("tar")], pkgs)
    assert res.chosen["kubelet"].version == "1.34.4-1.1"
    # iptables: the newest that satisfies >= 1.4.21; conntrack: the first alternative that exists;
    # libc6 is in the base system (dpkg needs it) but wanted in a version: carried.
    assert res.chosen["iptables"].version == "1.8.9-2"
    assert {"kubernetes-cni", "conntrack", "libc6", "tar"} <= set(res.chosen)
    assert res.required_by["iptables"] == "kubelet"
    assert "dpkg" not in res.chosen
    assert res.unresolved == ["conntrack 1:1.4.7-1+b2 needs needs-nothing-real"]
    assert res.missing == []
    old = resolve([Spec.parse("kubelet=1.33.8-*")], pkgs)
    assert old.chosen["kubelet"].version == "1.33.8-1.1" and "iptables" not in old.chosen
    none = resolve([Spec.parse("kubelet=1.35.0-*"), Spec("absent")], pkgs)
    assert none.missing == ["kubelet=1.35.0-*: only 1.33.8-1.1, 1.34.4-1.1 available", "absent: in none of the sources"]


def test_needed_packages_follow_the_kubernetes_version() -> None:
    catalog = load_package_catalog()
    for version in ("v1.34.4", "v1.33.8"):
        cfg = config(version, hostPackages={"distributions": ["debian-12", "ubuntu-24.04"], "extra": ["open-iscsi"]})
        needs = needed_packages(cfg, catalog)
        assert set(needs) == {"debian-12", "ubuntu-24.04"}
        specs = [str(s) for s in needs["debian-12"]]
        v = version.removeprefix("v")
        assert {f"kubelet={v}-*", f"kubeadm={v}-*", f"kubectl={v}-*", "containerd.io=2.2.*", "cri-tools",
                "kubernetes-cni", "open-iscsi"} <= set(specs)
        minor = ".".join(version.split(".")[:2])
        repos = catalog.repositories("debian-12", version)
        assert any(r.url == f"https://pkgs.k8s.io/core:/stable:/{minor}/deb/" and r.flat for r in repos)
    assert needed_packages(config(), catalog) == {}


def test_missing_host_packages_names_each_with_what_is_there() -> None:
    have = {"debian-12": [Package("kubelet", "1.33.8-1.1", "amd64", {}), Package("socat", "1.7", "amd64", {})]}
    needs = {"debian-12": [Spec.parse("kubelet=1.34.4-*"), Spec("socat"), Spec("conntrack")],
             "ubuntu-24.04": [Spec("socat")]}
    assert missing_host_packages(needs, have) == [
        "debian-12: kubelet=1.34.4-* (has 1.33.8-1.1)", "debian-12: conntrack", "ubuntu-24.04: no packages for this OS release"]


# -- lock, index, release ----------------------------------------------------------------------------


def test_index_and_release_files() -> None:
    pkg = packages_from_index(INDEX)[0]
    lp = LockedPackage("kubelet", pkg.version, "amd64", "kubelet_1.34.4-1.1_amd64.deb", pkg.sha256, 10, "x")
    index = packages_index([index_stanza(pkg, lp)])
    back = packages_from_index(index.decode())[0]
    assert back.filename == "pool/main/kubelet/kubelet_1.34.4-1.1_amd64.deb" and back.sha256 == pkg.sha256
    assert back.fields["Depends"] == pkg.fields["Depends"]
    rel = release_file(suite="kvinstall", components=["main"], architectures=["amd64"], date="d",
                       files={"main/binary-amd64/Packages": index})
    assert parse_release(rel) == {"main/binary-amd64/Packages": (hashlib.sha256(index).hexdigest(), len(index))}
    s = PackageSet("debian-12", "deb", "amd64", ("kubelet",), "ab" * 32, (lp,))
    assert PackageSet.from_json("debian-12", s.to_json()) == s
    assert package_tag("libstdc++6") == "libstdc__6"


def test_source_lines() -> None:
    r = parse_source_line("deb [signed-by=/k.gpg arch=amd64] http://m.site/debian bookworm main contrib")
    assert (r.url, r.suite, r.components, r.key and r.key.keyring) == ("http://m.site/debian/", "bookworm",
                                                                        ("main", "contrib"), "/k.gpg")
    flat = parse_source_line("deb [signed-by=/k.gpg] https://pkgs.k8s.io/core:/stable:/v1.34/deb/ /")
    assert flat.flat and flat.components == ()
    assert parse_source_line("deb [trusted=yes] http://m/debian bookworm main").key is None
    for bad in ("http://m/debian bookworm main", "deb http://m/debian bookworm main",
                "deb [signed-by=/k] ftp://m bookworm main", "deb [signed-by=/k] http://m bookworm"):
        with pytest.raises(UsageError):
            parse_source_line(bad)


def test_key_fingerprints_match_gpg(tmp_path: Path) -> None:
    data = KEYRING.read_bytes()
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    listed = subprocess.run(["gpg", "--homedir", str(home), "--show-keys", "--with-colons", str(KEYRING)],
                            capture_output=True, text=True, check=True).stdout
    want = [line.split(":")[9] for line in listed.splitlines() if line.startswith("fpr:")]
    assert fingerprints(data) == want
    armored = subprocess.run(["gpg", "--enarmor"], input=data, capture_output=True, check=True).stdout
    assert dearmor(armored.replace(b"ARMORED FILE", b"PUBLIC KEY BLOCK")) == data
    with pytest.raises(IntegrityError):
        fingerprints(b"not a key")


def test_package_catalog_is_checked() -> None:
    catalog = load_package_catalog()
    assert {"debian-12", "ubuntu-22.04", "ubuntu-24.04"} <= set(catalog.distributions)
    with pytest.raises(ValueError):
        parse_package_catalog({"families": {}, "distributions": {"x-1": {"family": "apk", "architecture": "a"}}})


# -- hosts --------------------------------------------------------------------------------------------


def test_site_endpoints_and_facts() -> None:
    cfg = config(caFile="/ca.pem", hostPackages={"distributions": ["debian-12"]},
                 packageRepository={"url": "https://10.0.0.5:8443", "signingKey": "/k.gpg"})
    assert site_endpoints(cfg) == [("registry", "192.0.2.1", 5000), ("package repository", "10.0.0.5", 8443)]
    script = facts_script(site=[Peer("192.0.2.1", 5000)])
    assert "@@site" in script and "probe 192.0.2.1 5000 &" in script and "@@reach" not in script
    facts = parse_facts("@@site\n192.0.2.1 5000 0\n10.0.0.5 8443 1\n@@end\n")
    assert facts.site_reach == {"192.0.2.1:5000": True, "10.0.0.5:8443": False}
    assert os_release_name(parse_facts("@@files\n/etc/os-release\0ID=rocky\n/etc/os-release\0VERSION_ID=9.4\n")) == "rocky-9"


def test_setup_script_points_apt_at_the_site_and_changes_nothing_twice(tmp_path: Path) -> None:
    files = SourceFiles("https://10.0.0.5:8443", ("debian-12", "ubuntu-24.04"), b"KEY", b"CA\n")
    script = setup_script(files, root=str(tmp_path))
    first = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True)
    assert (first.returncode, first.stdout) == (0, "changed\n"), first.stderr
    # This machine is Debian 12, so its OS release picks the path.
    assert (tmp_path / "etc/apt/sources.list.d/kvinstall-site.list").read_text() == (
        f"deb [signed-by={tmp_path}/etc/apt/keyrings/kvinstall-site.gpg] https://10.0.0.5:8443/debian-12 kvinstall main\n")
    assert (tmp_path / "etc/apt/keyrings/kvinstall-site.gpg").read_bytes() == b"KEY"
    assert (tmp_path / "etc/apt/apt.conf.d/60kvinstall-site").read_text() == (
        f'Acquire::https::10.0.0.5::CaInfo "{tmp_path}/etc/apt/kvinstall-site-ca.crt";\n')
    again = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True)
    assert again.stdout == "unchanged\n"
    other = setup_script(SourceFiles("https://10.0.0.5:8443", ("ubuntu-24.04",), b"KEY", None), root=str(tmp_path))
    refused = subprocess.run(["sh", "-s"], input=other, capture_output=True, text=True)
    assert refused.returncode == 3 and "debian-12 is not among the served OS releases" in refused.stderr


def test_config_checks_name_unknown_and_unsupported_releases() -> None:
    from kvinstall.catalog import load_catalog
    from kvinstall.config.checks import check_host_packages

    cfg = config(hostPackages={"distributions": ["debian-99", "rocky-9"]})
    problems = list(check_host_packages(cfg, load_catalog()))
    assert [p.code for p in problems] == ["unknown-distribution", "unsupported-distribution"]
    cfg = config(packageRepository={"url": "https://10.0.0.5:8443", "signingKey": "/k"})
    assert [p.code for p in check_host_packages(cfg, load_catalog())] == ["offline-distributions"]
