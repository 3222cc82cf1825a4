"""Semantic checks that span fields. Pure: Config + catalog -> problems (errors and warnings)."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from kvinstall.catalog import Catalog
from kvinstall.config.models import Config, address_range
from kvinstall.config.problems import Problem, format_path

Check = Callable[[Config, Catalog], Iterator[Problem]]

_SECRETISH_KEYS = {"clientsecret", "bindpw", "password", "secret", "token"}

# Values that reach other programs (KubeOne's manifest, the kube-apiserver's flags, sshd) must be
# what those programs expect and nothing a shell or a YAML reader could take for syntax. kvinstall
# itself quotes everything it passes on; these checks keep the config honest for the tools after it.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SHELL_META = re.compile(r"[`$;|&<>(){}\[\]*?!\"'\\]")
# POSIX portable user names, plus '.' and '@' (directory-service logins); never a leading '-'.
_LOGIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}")
_TAINT_KEY = re.compile(
    r"([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
_TAINT_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_ISSUER_PATH = re.compile(r"[A-Za-z0-9._~/%-]*")
# Subjects that mean "everyone" (or every workload): a write role for them opens the workspace to all.
_EVERYONE = {
    ("User", "system:anonymous"): "every unauthenticated request",
    ("Group", "system:unauthenticated"): "every unauthenticated request",
    ("Group", "system:authenticated"): "every user who can log in",
    ("Group", "system:serviceaccounts"): "every service account of the cluster",
}


def _err(msg: str, *loc: str | int, hint: str | None = None, code: str = "invalid") -> Problem:
    return Problem(message=msg, loc=tuple(loc), severity="error", hint=hint, code=code)


def _warn(msg: str, *loc: str | int, hint: str | None = None, code: str = "warning") -> Problem:
    return Problem(message=msg, loc=tuple(loc), severity="warning", hint=hint, code=code)


def check_cidrs(cfg: Config, _: Catalog) -> Iterator[Problem]:
    nets: list[tuple[tuple[str | int, ...], str]] = [
        (("network", "podCIDR"), cfg.network.pod_cidr),
        (("network", "serviceCIDR"), cfg.network.service_cidr),
        (("network", "joinCIDR"), cfg.network.join_cidr),
    ]
    nets += [
        (("workspaces", i, "vpcCIDR"), ws.vpc_cidr) for i, ws in enumerate(cfg.workspaces) if ws.vpc_cidr
    ]
    nets += [
        (("workspaces", i, "secondaryNetworks", j, "cidr"), net.cidr)
        for i, ws in enumerate(cfg.workspaces)
        for j, net in enumerate(ws.secondary_networks)
        if net.cidr
    ]
    parsed = [(loc, ipaddress.ip_network(c)) for loc, c in nets]
    for i, (loc_a, a) in enumerate(parsed):
        for loc_b, b in parsed[i + 1 :]:
            if a.version == b.version and a.overlaps(b):
                # Workspace VPCs are isolated from each other but not from the cluster networks.
                if loc_a[0] == "workspaces" and loc_b[0] == "workspaces":
                    continue
                yield _err(
                    f"{b} overlaps {a} ({'.'.join(str(p) for p in loc_a)})",
                    *loc_b,
                    hint="every network must be disjoint",
                    code="cidr-overlap",
                )
    for i, host in enumerate(cfg.hosts):
        for addr_field, addr in (("address", host.address), ("privateAddress", host.private_address)):
            try:
                ip = ipaddress.ip_address(addr) if addr else None
            except ValueError:
                continue
            if ip is None:
                continue
            for loc, net in parsed[:3]:
                if ip.version == net.version and ip in net:
                    yield _err(
                        f"host address {ip} lies inside {net} ({'.'.join(map(str, loc))})",
                        "hosts",
                        i,
                        addr_field,
                        hint="pod, service and join networks must not contain host addresses",
                        code="cidr-overlap",
                    )


def check_gateway_and_dns(cfg: Config, _: Catalog) -> Iterator[Problem]:
    net = cfg.network
    if net.gateway is not None:
        pod = ipaddress.ip_network(net.pod_cidr)
        gw = ipaddress.ip_address(net.gateway)
        if gw not in pod:
            yield _err(f"gateway {gw} is outside podCIDR {pod}", "network", "gateway", code="gateway-outside")
        elif gw in (pod.network_address, pod.broadcast_address):
            yield _err(f"gateway {gw} is the network or broadcast address of {pod}", "network", "gateway")
    if net.dns_server is not None:
        svc = ipaddress.ip_network(net.service_cidr)
        if ipaddress.ip_address(net.dns_server) not in svc:
            yield _err(
                f"dnsServer {net.dns_server} is outside serviceCIDR {svc}",
                "network",
                "dnsServer",
                code="dns-outside",
            )


def check_hosts(cfg: Config, _: Catalog) -> Iterator[Problem]:
    for field, key in (("address", lambda h: h.address), ("hostname", lambda h: h.hostname)):
        seen: dict[str, int] = {}
        for i, host in enumerate(cfg.hosts):
            value = key(host)
            if value is None:
                continue
            if value in seen:
                yield _err(
                    f"duplicate {field} {value!r} (also hosts[{seen[value]}])",
                    "hosts",
                    i,
                    field,
                    code="duplicate",
                )
            else:
                seen[value] = i
    priv: dict[str, int] = {}
    for i, host in enumerate(cfg.hosts):
        if host.private_address is None:
            continue
        if host.private_address in priv:
            yield _err(
                f"duplicate privateAddress {host.private_address!r} (also hosts[{priv[host.private_address]}])",
                "hosts",
                i,
                "privateAddress",
                code="duplicate",
            )
        priv[host.private_address] = i
    cps = cfg.control_plane
    if not cps:
        yield _err(
            "no host has role controlPlane",
            "hosts",
            hint="mark one or three hosts role: controlPlane",
            code="no-cp",
        )
    elif len(cps) % 2 == 0:
        yield _warn(
            f"{len(cps)} control-plane hosts: an even count adds no etcd quorum tolerance over {len(cps) - 1}",
            "hosts",
            hint="use 1, 3 or 5 control-plane hosts",
            code="even-cp",
        )
    if cfg.ssh.bastion is None:
        return
    for i, host in enumerate(cfg.hosts):
        if host.address == cfg.ssh.bastion.address:
            yield _err("a host cannot be its own bastion", "hosts", i, "address")


def check_versions(cfg: Config, cat: Catalog) -> Iterator[Problem]:
    pairs = [
        (("kubernetes", "version"), "kubernetes", cfg.kubernetes.version),
        (("kubeone", "version"), "kubeone", cfg.kubeone.version),
        (("components", "kubeOVN", "version"), "kubeovn", cfg.components.kube_ovn.version),
        (("components", "kubevirt", "version"), "kubevirt", cfg.components.kubevirt.version),
        (("components", "cdi", "version"), "cdi", cfg.components.cdi.version),
        (("components", "dex", "version"), "dex", cfg.components.dex.version),
        (("components", "kyverno", "version"), "kyverno", cfg.components.kyverno.version),
        (("components", "certManager", "version"), "certmanager", cfg.components.cert_manager.version),
        (("components", "multus", "version"), "multus", cfg.components.multus.version),
        (("components", "metallb", "version"), "metallb", cfg.components.metallb.version),
        (("components", "longhorn", "version"), "longhorn", cfg.components.longhorn.version),
    ]
    for loc, name, version in pairs:
        known = cat.versions(name)
        if version not in known:
            yield _err(
                f"{name} {version} is not in the release catalog",
                *loc,
                hint=f"known versions: {', '.join(known)}",
                code="unknown-version",
            )
    k1 = cat.kubeone.get(cfg.kubeone.version)
    if k1 is not None and not k1.supports_kubernetes(cfg.kubernetes.version):
        # KubeOne itself refuses the pairing (exit 15) only after kvinstall touched the hosts.
        fits = [v for v, r in cat.kubeone.releases.items() if r.supports_kubernetes(cfg.kubernetes.version)]
        yield _err(
            f"KubeOne {cfg.kubeone.version} supports Kubernetes {k1.kubernetes_range_text()}, "
            f"not {cfg.kubernetes.version}",
            "kubernetes",
            "version",
            hint=(f"pick a Kubernetes version from {k1.kubernetes_range_text()}"
                  + (f", or KubeOne {', '.join(fits)} (kubeone.version)" if fits else "")),
            code="kubeone-kubernetes",
        )


def feature_gate_problems(cfg: Config, cat: Catalog) -> list[Problem]:
    """Each listed KubeVirt gate against the chosen release's own list: unknown or discontinued
    gates are errors (KubeVirt would ignore or refuse them), GA and deprecated ones warnings."""
    kv = cfg.components.kubevirt
    release = cat.components["kubevirt"].get(kv.version)
    if release is None:
        return []  # check_versions names the version
    gates = release.feature_gates
    problems: list[Problem] = []
    for i, gate in enumerate(kv.feature_gates):
        loc = ("components", "kubevirt", "featureGates", i)
        state = gates.state(gate)
        upstream = gates.message(gate)
        if state == "discontinued":
            problems.append(_err(
                f"feature gate {gate} is discontinued in KubeVirt {kv.version}"
                + (f": {upstream}" if upstream else ""),
                *loc,
                hint="remove it from components.kubevirt.featureGates",
                code="discontinued-gate",
            ))  # fmt: skip
        elif state == "deprecated":
            problems.append(_warn(
                f"feature gate {gate} is deprecated in KubeVirt {kv.version}"
                + (f": {upstream}" if upstream else ""),
                *loc,
                code="deprecated-gate",
            ))  # fmt: skip
        elif state == "ga":
            problems.append(_warn(
                f"feature gate {gate} is GA in KubeVirt {kv.version}: always on, listing it has no effect",
                *loc,
                code="ga-gate",
            ))  # fmt: skip
        elif state is None:
            from difflib import get_close_matches

            close = get_close_matches(gate, sorted(gates.known), n=1)
            problems.append(_err(
                f"unknown feature gate {gate!r} for KubeVirt {kv.version}",
                *loc,
                hint=f"did you mean {close[0]!r}?" if close else None,
                code="unknown-gate",
            ))  # fmt: skip
    return problems


def check_kubevirt(cfg: Config, cat: Catalog) -> Iterator[Problem]:
    kv = cfg.components.kubevirt
    yield from feature_gate_problems(cfg, cat)
    for dup, n in Counter(kv.feature_gates).items():
        if n > 1:
            yield _warn(f"feature gate {dup} listed {n} times", "components", "kubevirt", "featureGates")
    devices = kv.permitted_host_devices
    if (devices.pci_host_devices or devices.mediated_devices) and "HostDevices" not in kv.feature_gates:
        yield _err(
            "permittedHostDevices are declared but the HostDevices feature gate is not enabled",
            "components",
            "kubevirt",
            "permittedHostDevices",
            hint="add HostDevices to components.kubevirt.featureGates",
            code="hostdevices-gate",
        )
    if devices.pci_host_devices and not any(h.pci_passthrough for h in cfg.hosts):
        yield _warn(
            "PCI host devices are permitted but no host has pciPassthrough: true (IOMMU/vfio are not checked)",
            "components",
            "kubevirt",
            "permittedHostDevices",
            "pciHostDevices",
        )
    names = Counter(
        [d.resource_name for d in devices.pci_host_devices]
        + [d.resource_name for d in devices.mediated_devices]
    )
    for name, n in names.items():
        if n > 1:
            yield _err(
                f"resourceName {name} is declared {n} times", "components", "kubevirt", "permittedHostDevices"
            )
    if kv.live_migration and not cfg.rwx_storage_class():
        yield _warn(
            "live migration is on but storage.rwxClass is not set: VMs on ReadWriteOnce volumes cannot migrate",
            "storage",
            "rwxClass",
            hint="name a ReadWriteMany StorageClass, turn on components.longhorn (it brings one), "
            "or set components.kubevirt.liveMigration: false",
            code="migration-rwx",
        )


def check_auth(cfg: Config, _: Catalog) -> Iterator[Problem]:
    auth = cfg.auth
    if auth.mode == "none":
        return
    if not auth.issuer:
        yield _err(f"auth.mode {auth.mode} needs an issuer URL", "auth", "issuer", code="issuer-missing")
    elif not auth.issuer.startswith("https://"):
        yield _err(
            f"issuer {auth.issuer!r} is not https: the kube-apiserver only trusts https issuers",
            "auth",
            "issuer",
            code="issuer-not-https",
        )
    if auth.mode == "oidc" and not auth.oidc.connectors:
        yield _err("auth.mode oidc needs at least one connector", "auth", "oidc", "connectors")
    ids = Counter(c.id for c in auth.oidc.connectors)
    for cid, n in ids.items():
        if n > 1:
            yield _err(f"connector id {cid!r} is used {n} times", "auth", "oidc", "connectors")
    for i, conn in enumerate(auth.oidc.connectors):
        for key, value in conn.config.items():
            if key.lower() in _SECRETISH_KEYS and isinstance(value, str):
                yield _err(
                    f"connector config key {key!r} holds a secret in clear text",
                    "auth",
                    "oidc",
                    "connectors",
                    i,
                    "config",
                    key,
                    hint="move it to connectors[].clientSecret with valueFrom: {env: NAME} or {file: PATH}",
                    code="inline-secret",
                )
    seen: dict[str, int] = {}
    for i, client in enumerate(auth.static_clients):
        if client.id in seen:
            yield _err(
                f"static client id {client.id!r} is used twice (also auth.staticClients[{seen[client.id]}])",
                "auth",
                "staticClients",
                i,
                "id",
                code="duplicate",
            )
        seen.setdefault(client.id, i)
        if client.public and client.secret is not None:
            yield _err("a public client has no secret", "auth", "staticClients", i, "secret")
        if not client.public and client.secret is None:
            yield _err("a confidential client needs a secret (or public: true)", "auth", "staticClients", i)


def check_offline(cfg: Config, _: Catalog) -> Iterator[Problem]:
    off = cfg.offline
    if off.enabled and not off.registry:
        yield _err(
            "offline mode needs a registry",
            "offline",
            "registry",
            hint="set offline.registry: HOST[:PORT]",
            code="offline-registry",
        )
    if off.insecure and off.ca_file:
        yield _err("insecure (plain HTTP) and caFile exclude each other", "offline", "insecure")
    if off.insecure and off.insecure_skip_verify:
        yield _err(
            "insecure (plain HTTP) has no TLS whose certificate could go unverified",
            "offline",
            "insecureSkipVerify",
            hint="keep one of insecure (HTTP) or insecureSkipVerify (HTTPS, certificate not checked)",
        )
    if off.insecure_skip_verify and off.ca_file:
        yield _err("insecureSkipVerify and caFile exclude each other", "offline", "insecureSkipVerify")
    if off.enabled and (
        off.insecure_skip_verify or (off.charts is not None and off.charts.insecure_skip_verify)
    ):
        yield _warn(
            "the site registry's TLS certificate is not verified: anyone on the path can stand in for it",
            "offline",
            "insecureSkipVerify" if off.insecure_skip_verify else "charts",
            hint="verify it with offline.caFile (a kvinstall setting: `kvinstall convert` a KubeV file to use it)",
            code="tls-unverified",
        )


def check_host_packages(cfg: Config, _: Catalog) -> Iterator[Problem]:
    from kvinstall.catalog.packages import load_package_catalog

    off = cfg.offline
    known = load_package_catalog().distributions
    for i, dist in enumerate(off.host_packages.distributions):
        if dist not in known:
            yield _err(
                f"no OS release {dist!r} in the package catalog",
                "offline",
                "hostPackages",
                "distributions",
                i,
                hint="known: " + ", ".join(known),
                code="unknown-distribution",
            )
        elif known[dist].family != "deb":
            yield _err(
                f"{dist}: packages of the {known[dist].family} family are not collected yet (Debian and Ubuntu are)",
                "offline",
                "hostPackages",
                "distributions",
                i,
                hint="keep the hosts' own package repository for it: remove it here",
                code="unsupported-distribution",
            )
    if off.package_repository is not None and not off.host_packages.distributions:
        yield _err(
            "a package repository without the hosts' OS releases: no repository path to use",
            "offline",
            "hostPackages",
            "distributions",
            hint="list the hosts' OS releases, e.g. distributions: [debian-12]",
            code="offline-distributions",
        )


def check_workspaces(cfg: Config, _: Catalog) -> Iterator[Problem]:
    reserved = {
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "kubevirt",
        "cdi",
        "kyverno",
        cfg.auth.namespace,
        "kvinstall-system",
        "cert-manager",
        "metallb-system",
        "longhorn-system",
    }
    seen: dict[str, int] = {}
    for i, ws in enumerate(cfg.workspaces):
        if ws.name in seen:
            yield _err(
                f"duplicate workspace {ws.name!r} (also workspaces[{seen[ws.name]}])",
                "workspaces",
                i,
                "name",
                code="duplicate",
            )
        seen[ws.name] = i
        if ws.name in reserved:
            yield _err(f"workspace name {ws.name!r} is a system namespace", "workspaces", i, "name")
        for j, member in enumerate(ws.members):
            if (member.user is None) == (member.group is None):
                yield _err("give exactly one of user or group", "workspaces", i, "members", j)
        nets: dict[str, int] = {}
        for j, net in enumerate(ws.secondary_networks):
            if net.name in nets:
                yield _err(
                    f"duplicate secondary network {net.name!r} (also secondaryNetworks[{nets[net.name]}])",
                    "workspaces",
                    i,
                    "secondaryNetworks",
                    j,
                    "name",
                    code="duplicate",
                )
            nets.setdefault(net.name, j)
        if ws.secondary_networks and not cfg.components.multus.enabled:
            yield _err(
                "secondary networks need Multus",
                "workspaces",
                i,
                "secondaryNetworks",
                hint="set components.multus.enabled: true",
                code="needs-multus",
            )


def check_storage(cfg: Config, _: Catalog) -> Iterator[Problem]:
    for key in cfg.components.cdi.filesystem_overhead.storage_class.values():
        import re

        if not re.match(r"^(0(?:\.\d{1,3})?|1)$", key):
            yield _err(f"{key!r} is not a ratio between 0 and 1", "components", "cdi", "filesystemOverhead")


def check_emulation(cfg: Config, _: Catalog) -> Iterator[Problem]:
    kv = cfg.components.kubevirt
    if kv.use_emulation and (
        kv.permitted_host_devices.pci_host_devices or kv.permitted_host_devices.mediated_devices
    ):
        yield _warn(
            "useEmulation with host devices: emulated VMs are slow; passthrough still needs IOMMU hosts",
            "components",
            "kubevirt",
            "useEmulation",
        )


def check_shell_and_yaml_safety(cfg: Config, _: Catalog) -> Iterator[Problem]:
    """Logins, key paths, taints and the issuer: refused when they hold control characters or what
    a shell or YAML would read as syntax; a key path with shell metacharacters only warns (a path
    may legitimately hold them, and kvinstall never hands it to a shell)."""
    logins: list[tuple[tuple[str | int, ...], str | None]] = [(("ssh", "user"), cfg.ssh.user)]
    keys: list[tuple[tuple[str | int, ...], str | None]] = [
        (("ssh", "privateKeyFile"), cfg.ssh.private_key_file)
    ]
    if cfg.ssh.bastion is not None:
        logins.append((("ssh", "bastion", "user"), cfg.ssh.bastion.user))
        keys.append((("ssh", "bastion", "privateKeyFile"), cfg.ssh.bastion.private_key_file))
    for i, host in enumerate(cfg.hosts):
        logins.append((("hosts", i, "user"), host.user))
        keys.append((("hosts", i, "privateKeyFile"), host.private_key_file))
        if host.bastion is not None:
            logins.append((("hosts", i, "bastion", "user"), host.bastion.user))
            keys.append((("hosts", i, "bastion", "privateKeyFile"), host.bastion.private_key_file))
        for j, taint in enumerate(host.taints or []):
            yield from _taint(taint.key, taint.value, ("hosts", i, "taints", j))
    for loc, login in logins:
        if login is not None and not _LOGIN.fullmatch(login):
            yield _err(
                f"{login!r} is not a login name (letters, digits, '_', '.', '@', '-'; at most 64)",
                *loc,
                code="unsafe-value",
            )
    for loc, path in keys:
        if path is None:
            continue
        if _CONTROL.search(path) or not path.strip():
            yield _err("the key path holds control characters or is blank", *loc, code="unsafe-value")
        elif _SHELL_META.search(path):
            yield _warn(
                f"the key path {path!r} holds shell metacharacters",
                *loc,
                hint="kvinstall never passes it through a shell, but scripts and tools after it may; "
                "prefer a plain path",
                code="unsafe-value",
            )
    if cfg.auth.issuer:
        reason = _issuer_problem(cfg.auth.issuer)
        if reason:
            yield _err(f"issuer {cfg.auth.issuer!r} {reason}", "auth", "issuer", code="unsafe-value")


def _taint(key: str, value: str, loc: tuple[str | int, ...]) -> Iterator[Problem]:
    if not _TAINT_KEY.fullmatch(key):
        yield _err(
            f"taint key {key!r} is not a Kubernetes qualified name ([prefix/]name: letters, digits, '-', "
            "'_', '.')",
            *loc,
            "key",
            code="unsafe-value",
        )
    if not _TAINT_VALUE.fullmatch(value):
        yield _err(
            f"taint value {value!r} is not a Kubernetes label value (letters, digits, '-', '_', '.'; "
            "at most 63)",
            *loc,
            "value",
            code="unsafe-value",
        )


def _issuer_problem(issuer: str) -> str | None:
    if _CONTROL.search(issuer) or any(c.isspace() for c in issuer):
        return "holds whitespace or control characters"
    if any(c in issuer for c in "\"'`<>{}|\\^,;$"):
        return "holds characters a URL (and the kube-apiserver's --oidc-issuer-url) does not allow"
    try:
        parts = urlsplit(issuer)
        port = parts.port
    except ValueError as exc:
        return f"is not a URL: {exc}"
    if parts.scheme != "https":
        return None  # check_auth names that one
    if not parts.hostname or parts.username is not None or parts.password is not None:
        return "needs a host and no user name or password in it"
    if parts.query or parts.fragment or "?" in issuer or "#" in issuer:
        return "must not have a query or fragment (OpenID Connect issuers never do)"
    if port is not None and not 0 < port < 65536:
        return "has an invalid port"
    if not _ISSUER_PATH.fullmatch(parts.path):
        return "has characters outside a plain URL path"
    return None


def check_workspace_members(cfg: Config, _: Catalog) -> Iterator[Problem]:
    for i, ws in enumerate(cfg.workspaces):
        for j, member in enumerate(ws.members):
            kind, name = member.subject()
            loc = ("workspaces", i, "members", j)
            who = _EVERYONE.get((kind, name))
            if who is None:
                continue
            if member.role in ("edit", "admin"):
                yield _err(
                    f"{kind.lower()} {name} with role {member.role} gives {who} write access to "
                    f"workspace {ws.name}",
                    *loc,
                    "role",
                    hint="name the users or groups who need it; give this subject role view at most",
                    code="everyone-writes",
                )
            else:
                yield _warn(
                    f"{kind.lower()} {name} with role view lets {who} see workspace {ws.name}",
                    *loc,
                    code="everyone-reads",
                )


def _host_addresses(cfg: Config) -> list[tuple[str, tuple[str | int, ...]]]:
    """Every IP address of the config's machines (hosts, their private addresses, the API endpoint)."""
    out: list[tuple[str, tuple[str | int, ...]]] = []
    for i, host in enumerate(cfg.hosts):
        out.append((host.address, ("hosts", i, "address")))
        if host.private_address:
            out.append((host.private_address, ("hosts", i, "privateAddress")))
    if cfg.api_endpoint is not None:
        out.append((cfg.api_endpoint.host, ("apiEndpoint", "host")))
    return out


def check_metallb(cfg: Config, _: Catalog) -> Iterator[Problem]:
    """Address pools: given when MetalLB is on, disjoint from each other, from every cluster network
    and from the machines' own addresses (whether they lie on the hosts' network is a preflight check:
    only the hosts know their network)."""
    lb = cfg.components.metallb
    loc = ("components", "metallb")
    if not lb.enabled:
        if lb.pools or lb.bgp_peers:
            yield _warn("MetalLB is not enabled: its pools and peers are not used", *loc, "enabled")
        return
    if not lb.pools:
        yield _err(
            "MetalLB needs at least one address pool",
            *loc,
            "pools",
            hint="e.g. pools: [{name: default, addresses: [192.168.10.200-192.168.10.250]}]",
            code="metallb-pools",
        )
    if not lb.l2 and not lb.bgp_peers:
        yield _err(
            "nothing announces the pools: l2 is off and there are no bgpPeers",
            *loc,
            "l2",
            hint="keep l2: true, or list the routers in bgpPeers",
        )
    networks: list[tuple[tuple[str | int, ...], str]] = [
        (("network", "podCIDR"), cfg.network.pod_cidr),
        (("network", "serviceCIDR"), cfg.network.service_cidr),
        (("network", "joinCIDR"), cfg.network.join_cidr),
    ]
    networks += [(("workspaces", i, "vpcCIDR"), ws.vpc_cidr) for i, ws in enumerate(cfg.workspaces) if ws.vpc_cidr]
    names: dict[str, int] = {}
    ranges: list[tuple[tuple[str | int, ...], Any, Any]] = []
    for i, pool in enumerate(lb.pools):
        if pool.name in names:
            yield _err(
                f"duplicate pool {pool.name!r} (also pools[{names[pool.name]}])", *loc, "pools", i, "name"
            )
        names.setdefault(pool.name, i)
        for j, text in enumerate(pool.addresses):
            where = (*loc, "pools", i, "addresses", j)
            first, last = address_range(text)
            for other, o_first, o_last in ranges:
                if first.version == o_first.version and int(first) <= int(o_last) and int(o_first) <= int(last):
                    yield _err(
                        f"{text} overlaps {format_path(other)}",
                        *where,
                        hint="MetalLB refuses overlapping pools",
                        code="cidr-overlap",
                    )
            ranges.append((where, first, last))
            for net_loc, cidr in networks:
                net = ipaddress.ip_network(cidr)
                if net.version == first.version and int(first) <= int(net[-1]) and int(net[0]) <= int(last):
                    yield _err(
                        f"{text} overlaps {net} ({format_path(net_loc)})",
                        *where,
                        hint="LoadBalancer addresses come from the hosts' network, outside the cluster's networks",
                        code="cidr-overlap",
                    )
            for addr, addr_loc in _host_addresses(cfg):
                try:
                    ip = ipaddress.ip_address(addr)
                except ValueError:
                    continue
                if ip.version == first.version and int(first) <= int(ip) <= int(last):
                    yield _err(
                        f"{text} contains {ip} ({format_path(addr_loc)})",
                        *where,
                        hint="a LoadBalancer address must not be a machine's own",
                        code="metallb-host-address",
                    )


def check_longhorn(cfg: Config, _: Catalog) -> Iterator[Problem]:
    lh = cfg.components.longhorn
    if not lh.enabled or lh.replicas is None:
        return
    nodes = len(cfg.workers) or len(cfg.hosts)
    if lh.replicas > nodes:
        yield _err(
            f"{lh.replicas} replicas per volume but only {nodes} node(s) to hold them",
            "components",
            "longhorn",
            "replicas",
            hint="Longhorn keeps each replica on another node: at most one replica per node",
        )


def check_cert_manager(cfg: Config, _: Catalog) -> Iterator[Problem]:
    cm = cfg.components.cert_manager
    loc = ("components", "certManager")
    for issuer in ("ca", "acme"):
        section = getattr(cm, issuer)
        if cm.issuer == issuer and section is None:
            yield _err(f"issuer {issuer} needs its settings", *loc, issuer, code="issuer-settings")
        elif cm.issuer != issuer and section is not None:
            yield _err(
                f"settings of issuer {issuer} given, but the issuer is {cm.issuer}", *loc, issuer
            )
    if cfg.auth.tls == "certManager" and not cm.enabled:
        yield _err(
            "Dex TLS from cert-manager needs cert-manager",
            "auth",
            "tls",
            hint="set components.certManager.enabled: true, or auth.tls: none",
        )


CHECKS: tuple[Check, ...] = (
    check_cidrs,
    check_gateway_and_dns,
    check_hosts,
    check_versions,
    check_kubevirt,
    check_auth,
    check_offline,
    check_host_packages,
    check_workspaces,
    check_storage,
    check_emulation,
    check_shell_and_yaml_safety,
    check_workspace_members,
    check_metallb,
    check_longhorn,
    check_cert_manager,
)


def run_checks(cfg: Config, catalog: Catalog) -> list[Problem]:
    return [p for check in CHECKS for p in check(cfg, catalog)]
