"""The steps after the hosts: cluster, API endpoint, network, storage, KubeVirt (and GPUs), login,
policies, platform services (MetalLB, Longhorn, cert-manager, Multus), workspaces, offline. Each is one function `step_x(ctx, data) -> data`; the review screen
calls any of them again. Secrets are never asked in clear text: a step asks where kvinstall reads them
at run time (an environment variable or a file) and writes `valueFrom`."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from kvinstall.config.models import (
    APIEndpoint,
    BasicAuth,
    Connector,
    Host,
    MediatedDevice,
    MetalLBPool,
    Network,
    Offline,
    PCIHostDevice,
    Quota,
    RegistryCredentials,
    Storage,
    Workspace,
)
from kvinstall.wizard.prompts import Ctx
from kvinstall.wizard.validators import (
    Data,
    all_of,
    check_dns_label,
    check_env_name,
    check_https,
    check_nonempty,
    cross_check,
    field_check,
    field_problem,
    get_in,
    list_check,
    optional,
    port_number,
    set_in,
    split_list,
    tidy,
)


def step_cluster(ctx: Ctx, data: Data) -> Data:
    d = copy.deepcopy(data)
    name = ctx.ui.text("Cluster name", default=get_in(d, ["metadata", "name"], "") or "",
                       validate=check_dns_label, instruction="(lower-case letters, digits, '-')")
    d["metadata"] = {**d.get("metadata", {}), "name": name}
    versions = ctx.catalog.versions("kubernetes")
    current = get_in(d, ["kubernetes", "version"]) or ctx.catalog.kubernetes.default
    version = ctx.ui.select("Kubernetes version", [(v, v) for v in versions],
                            default=current if current in versions else ctx.catalog.kubernetes.default)
    d.setdefault("kubernetes", {})["version"] = version
    return d


def first_control_plane(data: Data) -> str:
    cps = [h["address"] for h in data.get("hosts", []) if h.get("role") == "controlPlane"]
    return cps[0] if cps else (data["hosts"][0]["address"] if data.get("hosts") else "")


def step_endpoint(ctx: Ctx, data: Data) -> Data:
    d = copy.deepcopy(data)
    cur = d.get("apiEndpoint") or {}
    first = first_control_plane(d)
    host = ctx.ui.text("Kubernetes API address (a load balancer, or the first control plane)",
                       default=cur.get("host") or first,
                       validate=all_of(check_nonempty, field_check(APIEndpoint, "host")))
    port = int(ctx.ui.text("Kubernetes API port", default=str(cur.get("port", 6443)),
                           validate=field_check(Host, "port", convert=port_number)))
    if host == first and port == 6443 and not cur.get("alternativeNames"):
        d.pop("apiEndpoint", None)  # the default: follows the first control plane
    else:
        ep: Data = {**cur, "host": host}
        set_in(ep, ["port"], None if port == 6443 else port)
        d["apiEndpoint"] = ep
    return d


_CIDRS = (
    ("podCIDR", "pod_cidr", "Pod network (CIDR)"),
    ("serviceCIDR", "service_cidr", "Service network (CIDR)"),
    ("joinCIDR", "join_cidr", "Kube-OVN join network (CIDR)"),
)


def step_network(ctx: Ctx, data: Data) -> Data:
    d = copy.deepcopy(data)
    defaults = Network()
    ui = ctx.ui

    def putter(key: str) -> Callable[[Data, str], None]:
        def put(x: Data, answer: str) -> None:
            x.setdefault("network", {})[key] = answer.strip()

        return put

    for key, attr, label in _CIDRS:
        answer = ui.text(label, default=get_in(d, ["network", key]) or getattr(defaults, attr),
                         validate=all_of(field_check(Network, key),
                                         cross_check(ctx.catalog, d, putter(key), ("network", key),
                                                     ("hosts",))))
        # Defaults are not written: a later release may improve them.
        set_in(d, ["network", key], None if answer == getattr(defaults, attr) else answer)
    for key, label in (("gateway", "Pod network gateway"), ("dnsServer", "Cluster DNS service address")):
        current = Network.model_validate(d.get("network", {}))
        auto = Network.model_validate({k: v for k, v in d.get("network", {}).items() if k != key})
        shown = current.effective_gateway() if key == "gateway" else current.effective_dns_server()
        computed = auto.effective_gateway() if key == "gateway" else auto.effective_dns_server()
        answer = ui.text(label, default=shown,
                         validate=all_of(field_check(Network, key),
                                         cross_check(ctx.catalog, d, putter(key), ("network", key))))
        set_in(d, ["network", key], None if answer == computed else answer)
    tunnel = ui.text("Tunnel interface (name, comma list or regex)",
                     default=get_in(d, ["network", "tunnelInterface"]) or "",
                     instruction="(empty: the interface of the default route)")
    set_in(d, ["network", "tunnelInterface"], tunnel or None)
    tidy(d, ["network"])
    return d


def step_storage(ctx: Ctx, data: Data) -> Data:
    d = copy.deepcopy(data)
    name_check = optional(all_of(field_check(Storage, "defaultClass"), _class_name))
    default_class = ctx.ui.text("StorageClass for VM disks",
                                default=get_in(d, ["storage", "defaultClass"]) or "",
                                validate=name_check, instruction="(empty: the cluster's default class)")
    rwx = ctx.ui.text("ReadWriteMany StorageClass (live migration needs one)",
                      default=get_in(d, ["storage", "rwxClass"]) or "", validate=name_check,
                      instruction="(empty: none)")
    set_in(d, ["storage", "defaultClass"], default_class or None)
    set_in(d, ["storage", "rwxClass"], rwx or None)
    if not d.get("storage"):
        d.pop("storage", None)
    return d


def _class_name(answer: str) -> str | None:
    # StorageClass names are DNS subdomains, the same rule as host names.
    return field_problem(Host, "hostname", answer)


def _gates(d: Data) -> list[str]:
    return list(get_in(d, ["components", "kubevirt", "featureGates"], []) or [])


def _set_gate(ctx: Ctx, d: Data, gate: str, on: bool) -> None:
    """Add or remove a KubeVirt feature gate; a gate that is GA in the chosen version is not listed."""
    kv = d.setdefault("components", {}).setdefault("kubevirt", {})
    gates = _gates(d)
    version = kv.get("version") or ctx.catalog.components["kubevirt"].default
    release = ctx.catalog.components["kubevirt"].get(version)
    ga = release is not None and gate in release.feature_gates.ga
    if on and not ga and gate not in gates:
        gates.append(gate)
    if not on and gate in gates:
        gates.remove(gate)
    set_in(kv, ["featureGates"], gates or None)


def step_kubevirt(ctx: Ctx, data: Data) -> Data:
    d = copy.deepcopy(data)
    ui = ctx.ui
    kv = d.setdefault("components", {}).setdefault("kubevirt", {})
    live = ui.confirm("Allow live migration of VMs?", default=kv.get("liveMigration", True))
    set_in(kv, ["liveMigration"], None if live else False)
    snap = ui.confirm("Enable VM snapshots?", default="Snapshot" in _gates(d))
    _set_gate(ctx, d, "Snapshot", snap)
    d = ask_gpus(ctx, d)
    kv = d["components"]["kubevirt"]
    emu = ui.confirm("Do the hosts lack /dev/kvm (run VMs in software emulation; slow)?",
                     default=bool(kv.get("useEmulation", False)))
    set_in(kv, ["useEmulation"], True if emu else None)
    tidy(d, ["components", "kubevirt"])
    return d


def ask_gpus(ctx: Ctx, data: Data) -> Data:
    d = copy.deepcopy(data)
    ui = ctx.ui
    kv = d["components"]["kubevirt"]
    devices = kv.get("permittedHostDevices") or {}
    current = ("passthrough" if devices.get("pciHostDevices") else
               "vgpu" if devices.get("mediatedDevices") else "none")
    mode = ui.select("GPUs for VMs", [("none", "No GPUs"), ("passthrough", "GPU passthrough (PCI)"),
                                      ("vgpu", "vGPU (mediated devices)")], default=current)
    kv.pop("permittedHostDevices", None)
    kv.pop("mediatedDevicesConfiguration", None)
    for h in d.get("hosts", []):
        h.pop("pciPassthrough", None)
    if mode == "none":
        _set_gate(ctx, d, "HostDevices", False)
        return d
    if mode == "passthrough":
        pci: list[Data] = []
        olds = list(devices.get("pciHostDevices", []))
        while True:
            old = olds.pop(0) if olds else {}
            sel = ui.text("PCI vendor:device id", default=old.get("pciVendorSelector", ""),
                          validate=all_of(check_nonempty, field_check(PCIHostDevice, "pciVendorSelector")),
                          instruction="(e.g. 10DE:1EB8; see lspci -nn)")
            res = ui.text("Resource name VMs request", default=old.get("resourceName", ""),
                          validate=all_of(check_nonempty, field_check(PCIHostDevice, "resourceName")),
                          instruction="(e.g. nvidia.com/TU104GL_Tesla_T4)")
            pci.append({"pciVendorSelector": sel.upper(), "resourceName": res})
            if not ui.confirm("Add another PCI device?", default=bool(olds)):
                break
        kv["permittedHostDevices"] = {"pciHostDevices": pci}
        hosts = d.get("hosts", [])
        was = [h["address"] for h in data.get("hosts", []) if h.get("pciPassthrough")]
        chosen = ui.checkbox("Hosts with the GPUs (IOMMU and vfio-pci are checked on them)",
                             [(h["address"], h["address"]) for h in hosts],
                             checked=was or [h["address"] for h in hosts if h.get("role") == "worker"])
        for h in hosts:
            if h["address"] in chosen:
                h["pciPassthrough"] = True
    else:
        mdevs: list[Data] = []
        olds = list(devices.get("mediatedDevices", []))
        while True:
            old = olds.pop(0) if olds else {}
            sel = ui.text("mdev type name", default=old.get("mdevNameSelector", ""), validate=check_nonempty,
                          instruction="(e.g. GRID T4-1Q)")
            res = ui.text("Resource name VMs request", default=old.get("resourceName", ""),
                          validate=all_of(check_nonempty, field_check(MediatedDevice, "resourceName")),
                          instruction="(e.g. nvidia.com/GRID_T4-1Q)")
            mdevs.append({"mdevNameSelector": sel, "resourceName": res})
            if not ui.confirm("Add another vGPU type?", default=bool(olds)):
                break
        kv["permittedHostDevices"] = {"mediatedDevices": mdevs}
        old_types = get_in(data, ["components", "kubevirt", "mediatedDevicesConfiguration",
                                "mediatedDeviceTypes"], []) or []
        types = ui.text("mdev types to create on the nodes (comma-separated)", default=", ".join(old_types),
                        instruction="(e.g. nvidia-222; empty: created outside kvinstall)")
        if split_list(types):
            kv["mediatedDevicesConfiguration"] = {"mediatedDeviceTypes": split_list(types)}
    _set_gate(ctx, d, "HostDevices", True)
    return d


def ask_secret_ref(ctx: Ctx, what: str, old: Any = None) -> Data:
    """Where kvinstall reads a secret at run time: {valueFrom: {env: NAME}} or {valueFrom: {file: PATH}}."""
    src = (old or {}).get("valueFrom", {}) if isinstance(old, dict) else {}
    kind = ctx.ui.select(f"{what}: read it from", [("env", "an environment variable"), ("file", "a file")],
                         default="file" if src.get("file") else "env")
    if kind == "env":
        name = ctx.ui.text(f"{what}: environment variable name", default=src.get("env", ""),
                           validate=check_env_name, instruction="(the value itself is never written)")
        return {"valueFrom": {"env": name}}
    path = ctx.ui.text(f"{what}: file path", default=src.get("file", ""), validate=check_nonempty,
                       instruction="(the file holding the value; it is never copied into the config)")
    return {"valueFrom": {"file": path}}


def step_auth(ctx: Ctx, data: Data) -> Data:
    d = copy.deepcopy(data)
    ui = ctx.ui
    auth = d.setdefault("auth", {})
    mode = ui.select("How do users log in?", [("none", "No login (kubeconfig only)"),
                                              ("basic", "Basic: a local admin user (Dex password DB)"),
                                              ("oidc", "OIDC: upstream identity providers (Dex connectors)")],
                     default=auth.get("mode", "none"))
    set_in(auth, ["mode"], None if mode == "none" else mode)
    if mode != "none":
        def put(x: Data, answer: str) -> None:
            x.setdefault("auth", {})["issuer"] = answer.strip()
            x["auth"]["mode"] = mode

        auth["issuer"] = ui.text("Dex issuer URL", default=auth.get("issuer", ""),
                                 validate=all_of(check_nonempty, cross_check(ctx.catalog, d, put,
                                                                             ("auth", "issuer"))),
                                 instruction="(https, e.g. https://dex.example.com/dex)")
    if mode == "basic":
        basic = auth.setdefault("basic", {})
        email = ui.text("Admin login (email)", default=basic.get("adminEmail", "admin@kvinstall.local"),
                        validate=all_of(check_nonempty, field_check(BasicAuth, "adminEmail")))
        set_in(basic, ["adminEmail"], None if email == "admin@kvinstall.local" else email)
        how = ui.select("Admin password", [("generate", "Generate one at install (0600 credentials file)"),
                                           ("ref", "Read it from an environment variable or a file")],
                        default="ref" if basic.get("password") else "generate")
        set_in(basic, ["password"], ask_secret_ref(ctx, "Admin password", basic.get("password"))
             if how == "ref" else None)
    elif mode == "oidc":
        auth["oidc"] = {**auth.get("oidc", {}), "connectors": ask_connectors(ctx, d)}
    tidy(d, ["auth", "basic"])
    tidy(d, ["auth"])
    return d


def ask_connectors(ctx: Ctx, data: Data) -> list[Data]:
    conns: list[Data] = list(get_in(data, ["auth", "oidc", "connectors"], []) or [])
    while True:
        if conns:
            ctx.ui.say("Connectors: " + ", ".join(f"{c['id']} ({c['type']})" for c in conns))
        choices = [("add", "Add a connector")]
        choices += [(f"edit:{i}", f"Edit {c['id']}") for i, c in enumerate(conns)]
        choices += [(f"remove:{i}", f"Remove {c['id']}") for i, c in enumerate(conns)]
        if conns:
            choices.append(("done", "Done with connectors"))
        action = ctx.ui.select("Identity providers", choices, default="done" if conns else "add")
        if action == "done":
            return conns
        if action == "add":
            conns.append(ask_connector(ctx, {}, [c["id"] for c in conns]))
        elif action.startswith("edit:"):
            i = int(action.split(":")[1])
            conns[i] = ask_connector(ctx, conns[i], [c["id"] for j, c in enumerate(conns) if j != i])
        else:
            del conns[int(action.split(":")[1])]


def ask_connector(ctx: Ctx, old: Data, taken: list[str]) -> Data:
    ui = ctx.ui
    titles = {"oidc": "OpenID Connect", "github": "GitHub", "gitlab": "GitLab", "ldap": "LDAP"}
    if old and old.get("type") not in titles:
        # A connector type the wizard does not know (saml, microsoft, ...) from a --from file.
        ui.say(f"connector {old.get('id')}: type {old.get('type')} is edited in the file; kept as it is")
        return old
    kind = ui.select("Connector type", list(titles.items()), default=old.get("type", "oidc"))

    def unique(answer: str) -> str | None:
        return f"connector id {answer!r} is used already" if answer.strip() in taken else None

    cid = ui.text("Connector id", default=old.get("id", kind),
                  validate=all_of(field_check(Connector, "id"), unique))
    name = ui.text("Name on the login page", default=old.get("name", titles[kind]), validate=check_nonempty)
    conf: Data = dict(old.get("config", {})) if old.get("type") == kind else {}
    conn: Data = {"type": kind, "id": cid, "name": name}
    if kind == "ldap":
        conf["host"] = ui.text("LDAP server HOST:PORT", default=conf.get("host", ""), validate=check_nonempty)
        conf["bindDN"] = ui.text("Bind DN", default=conf.get("bindDN", ""), validate=check_nonempty)
        conf["bindPW"] = ask_secret_ref(ctx, "Bind password", conf.get("bindPW"))
        search = dict(conf.get("userSearch", {}))
        search["baseDN"] = ui.text("User search base DN", default=search.get("baseDN", ""),
                                   validate=check_nonempty)
        search["username"] = ui.text("User name attribute", default=search.get("username", "uid"),
                                     validate=check_nonempty)
        conf["userSearch"] = search
    else:
        if kind == "oidc":
            conf["issuer"] = ui.text("Provider issuer URL", default=conf.get("issuer", ""),
                                     validate=check_https)
        conf["clientID"] = ui.text("Client id", default=conf.get("clientID", ""), validate=check_nonempty)
        conn["clientSecret"] = ask_secret_ref(ctx, "Client secret", old.get("clientSecret"))
        conf.pop("clientSecret", None)
        if conf.get("redirectURI"):
            conf["redirectURI"] = ui.text("Redirect URI", default=conf["redirectURI"], validate=check_https)
    conn["config"] = conf
    return conn


def step_kyverno(ctx: Ctx, data: Data) -> Data:
    d = copy.deepcopy(data)
    ui = ctx.ui
    ky = d.setdefault("components", {}).setdefault("kyverno", {})
    enabled = ui.confirm("Install Kyverno with the baseline VM policies?", default=ky.get("enabled", True))
    set_in(ky, ["enabled"], None if enabled else False)
    if enabled:
        pol = ky.setdefault("policies", {})
        mode = ui.select("Policy mode", [("Audit", "Audit: report violations"),
                                         ("Enforce", "Enforce: deny violating VMs")],
                         default=pol.get("mode", "Audit"))
        set_in(pol, ["mode"], None if mode == "Audit" else mode)
        if get_in(d, ["components", "kubevirt", "permittedHostDevices"]):
            ns = ui.text("Namespaces whose VMs may use GPUs/host devices (comma-separated)",
                         default=", ".join(pol.get("hostDevicesNamespaces", [])),
                         validate=list_check(check_dns_label), instruction="(empty: none)")
            set_in(pol, ["hostDevicesNamespaces"], split_list(ns) or None)
        else:
            pol.pop("hostDevicesNamespaces", None)
        tidy(d, ["components", "kyverno", "policies"])
    tidy(d, ["components", "kyverno"])
    tidy(d, ["components"])
    return d


def step_services(ctx: Ctx, data: Data) -> Data:
    """MetalLB (with its first pool's addresses), Longhorn, cert-manager and Multus: each off unless
    asked for. Saying no drops the component's section (its settings would be unused)."""
    d = copy.deepcopy(data)
    ui = ctx.ui
    comps = d.setdefault("components", {})

    def wanted(key: str, question: str) -> bool:
        on = ui.confirm(question, default=bool(get_in(comps, [key, "enabled"])))
        if not on:
            comps.pop(key, None)
        else:
            comps.setdefault(key, {})["enabled"] = True
        return on

    if wanted("metallb", "Install MetalLB (LoadBalancer Services on the hosts' network)?"):
        lb = comps["metallb"]
        pools = list(lb.get("pools") or [])
        name = pools[0]["name"] if pools else "default"

        def put_pool(x: Data, answer: str) -> None:
            set_in(x, ["components", "metallb"], {**lb, "pools": [{"name": name, "addresses": split_list(answer)}]})

        addresses = ui.text(
            "LoadBalancer addresses (ranges or CIDRs, comma-separated)",
            default=", ".join(pools[0]["addresses"]) if pools else "",
            validate=all_of(check_nonempty,
                            list_check(field_check(MetalLBPool, "addresses", {"name": name}, convert=lambda a: [a])),
                            cross_check(ctx.catalog, d, put_pool, ("components", "metallb", "pools"))),
            instruction="(e.g. 192.168.10.200-192.168.10.250: free addresses on the hosts' network)",
        )  # fmt: skip
        lb["pools"] = [{"name": name, "addresses": split_list(addresses)}, *pools[1:]]
    wanted("longhorn", "Install Longhorn (replicated storage; its ReadWriteMany class allows live migration)?")
    wanted("certManager", "Install cert-manager (certificates; Dex then serves HTTPS with one)?")
    wanted("multus", "Install Multus (secondary networks for VMs)?")
    tidy(d, ["components"])
    return d


def step_workspaces(ctx: Ctx, data: Data) -> Data:
    d = copy.deepcopy(data)
    d.setdefault("workspaces", [])
    while True:
        wss = d["workspaces"]
        if wss:
            ctx.ui.say("Workspaces: " + ", ".join(w["name"] for w in wss))
        choices = [("add", "Add a workspace")]
        choices += [(f"edit:{i}", f"Edit {w['name']}") for i, w in enumerate(wss)]
        choices += [(f"remove:{i}", f"Remove {w['name']}") for i, w in enumerate(wss)]
        choices.append(("done", "Done with workspaces"))
        action = ctx.ui.select("Tenant workspaces", choices, default="done")
        if action == "done":
            if not d["workspaces"]:
                d.pop("workspaces")
            return d
        if action == "add":
            d["workspaces"] = [*wss, ask_workspace(ctx, d, len(wss))]
        elif action.startswith("edit:"):
            i = int(action.split(":")[1])
            d["workspaces"][i] = ask_workspace(ctx, d, i)
        else:
            del d["workspaces"][int(action.split(":")[1])]


def ask_workspace(ctx: Ctx, data: Data, i: int) -> Data:
    ui = ctx.ui
    wss = data["workspaces"]
    old: Data = wss[i] if i < len(wss) else {}
    base = copy.deepcopy(data)
    base["workspaces"] = [w for j, w in enumerate(wss) if j != i]
    n = len(base["workspaces"])

    def put_name(x: Data, answer: str) -> None:
        x["workspaces"] = [*x["workspaces"], {"name": answer.strip()}]

    name = ui.text("Workspace name (also its namespace)", default=old.get("name", ""),
                   validate=all_of(field_check(Workspace, "name"),
                                   cross_check(ctx.catalog, base, put_name, ("workspaces", n, "name"))))
    ws: Data = {**old, "name": name}
    members: list[Data] = []
    for m in old.get("members", []):
        who = f"user {m['user']}" if m.get("user") else f"group {m['group']}"
        if ui.confirm(f"Keep member {who} ({m['role']})?", default=True):
            members.append(m)
    while ui.confirm("Add a member?", default=not members):
        kind = ui.select("Member is a", [("user", "user"), ("group", "group")], default="user")
        who = ui.text(f"{kind.capitalize()} name", validate=check_nonempty)
        role = ui.select("Role in the workspace", [("view", "view"), ("edit", "edit"), ("admin", "admin")],
                         default="edit")
        members.append({kind: who, "role": role})
    set_in(ws, ["members"], members or None)
    quota = dict(old.get("quota", {}))
    for key, label, example in (("cpu", "CPU quota", "32"), ("memory", "Memory quota", "128Gi"),
                                ("storage", "Storage quota", "2Ti")):
        ans = ui.text(label, default=str(quota.get(key, "")), validate=optional(field_check(Quota, key)),
                      instruction=f"(e.g. {example}; empty: no limit)")
        set_in(quota, [key], ans or None)
    set_in(ws, ["quota"], quota or None)

    def put_vpc(x: Data, answer: str) -> None:
        x["workspaces"] = [*x["workspaces"], {"name": name, "vpcCIDR": answer.strip()}]

    vpc = ui.text("Own VPC network (CIDR)", default=old.get("vpcCIDR", ""),
                  validate=optional(all_of(field_check(Workspace, "vpcCIDR", {"name": "x"}),
                                           cross_check(ctx.catalog, base, put_vpc,
                                                       ("workspaces", n, "vpcCIDR")))),
                  instruction="(empty: the cluster network)")
    set_in(ws, ["vpcCIDR"], vpc or None)
    return ws


def step_offline(ctx: Ctx, data: Data) -> Data:
    d = copy.deepcopy(data)
    ui = ctx.ui
    off = d.get("offline", {})
    if not ui.confirm("Air-gapped install from a site registry?", default=bool(off.get("enabled"))):
        d.pop("offline", None)
        return d
    new: Data = {"enabled": True}
    new["registry"] = ui.text("Site registry HOST[:PORT]", default=off.get("registry", ""),
                              validate=all_of(check_nonempty, field_check(Offline, "registry")))
    tls = ui.select("Registry TLS", [("system", "TLS, certificate signed by a system CA"),
                                     ("ca", "TLS, certificate signed by my own CA (CA file)"),
                                     ("insecure", "Plain HTTP (insecure)")],
                    default="insecure" if off.get("insecure") else "ca" if off.get("caFile") else "system")
    if tls == "ca":
        new["caFile"] = ui.text("CA bundle file", default=off.get("caFile", ""), validate=check_nonempty)
    elif tls == "insecure":
        new["insecure"] = True
    creds = off.get("credentials") or {}
    if ui.confirm("Does the registry need a login?", default=bool(creds)):
        user = ui.text("Registry user", default=creds.get("username", ""),
                       validate=all_of(check_nonempty, field_check(RegistryCredentials, "username")))
        new["credentials"] = {"username": user, "password": ask_secret_ref(ctx, "Registry password",
                                                                             creds.get("password"))}
    d["offline"] = new
    return d

