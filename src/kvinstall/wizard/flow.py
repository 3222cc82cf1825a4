"""The whole flow: every step in order (an existing config's values as defaults), then a review screen
from which any section can be edited again, until the user writes or cancels."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kvinstall.config.models import API_VERSION, KIND, Config, Network
from kvinstall.errors import DeclinedError
from kvinstall.wizard.hosts import step_hosts
from kvinstall.wizard.prompts import Ctx
from kvinstall.wizard.steps import (
    ask_secret_ref,
    first_control_plane,
    step_auth,
    step_cluster,
    step_endpoint,
    step_kubevirt,
    step_kyverno,
    step_network,
    step_offline,
    step_services,
    step_storage,
    step_workspaces,
)
from kvinstall.wizard.validators import Data, get_in, new_problems, problems_of


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    run: Callable[[Ctx, Data], Data]
    summary: Callable[[Data], str]


def _sum_hosts(d: Data) -> str:
    hosts = d.get("hosts", [])
    cps = sum(1 for h in hosts if h.get("role") == "controlPlane")
    return f"{cps} control plane, {len(hosts) - cps} worker(s): " + ", ".join(h["address"] for h in hosts)


def _sum_network(d: Data) -> str:
    net = Network.model_validate(d.get("network", {}))
    return (f"pods {net.pod_cidr}, services {net.service_cidr}, join {net.join_cidr}, "
            f"gateway {net.effective_gateway()}, DNS {net.effective_dns_server()}, "
            f"tunnel {net.tunnel_interface or '(default route)'}")


def _sum_kubevirt(d: Data) -> str:
    kv = get_in(d, ["components", "kubevirt"], {}) or {}
    dev = kv.get("permittedHostDevices") or {}
    gpu = ("passthrough " + ", ".join(x["pciVendorSelector"] for x in dev["pciHostDevices"])
           if dev.get("pciHostDevices") else
           "vGPU " + ", ".join(x["mdevNameSelector"] for x in dev["mediatedDevices"])
           if dev.get("mediatedDevices") else "no GPUs")
    return (f"live migration {'on' if kv.get('liveMigration', True) else 'off'}, "
            f"snapshots {'on' if 'Snapshot' in kv.get('featureGates', []) else 'off'}, {gpu}"
            + (", software emulation" if kv.get("useEmulation") else ""))


def _sum_auth(d: Data) -> str:
    auth = d.get("auth", {})
    mode = auth.get("mode", "none")
    if mode == "none":
        return "none"
    extra = ", ".join(c["id"] for c in get_in(auth, ["oidc", "connectors"], []) or [])
    return f"{mode}, issuer {auth.get('issuer')}" + (f", connectors {extra}" if extra else "")


def _sum_kyverno(d: Data) -> str:
    ky = get_in(d, ["components", "kyverno"], {}) or {}
    if ky.get("enabled") is False:
        return "not installed"
    return f"policies {get_in(ky, ['policies', 'mode'], 'Audit')}"


def _sum_services(d: Data) -> str:
    comps = d.get("components") or {}
    on = []
    if get_in(comps, ["metallb", "enabled"]):
        pools = get_in(comps, ["metallb", "pools"], []) or []
        on.append("MetalLB " + ", ".join(a for p in pools for a in p.get("addresses", [])))
    on += [title for key, title in (("longhorn", "Longhorn"), ("certManager", "cert-manager"), ("multus", "Multus"))
           if get_in(comps, [key, "enabled"])]
    return ", ".join(on) or "none"


def _sum_offline(d: Data) -> str:
    off = d.get("offline") or {}
    if not off.get("enabled"):
        return "no (online install)"
    tls = "plain HTTP" if off.get("insecure") else f"CA {off['caFile']}" if off.get("caFile") else "TLS"
    return f"registry {off['registry']} ({tls}" + (", login" if off.get("credentials") else "") + ")"


STEPS: tuple[Step, ...] = (
    Step("cluster", "Cluster", step_cluster,
         lambda d: f"{get_in(d, ['metadata', 'name'])}, Kubernetes {get_in(d, ['kubernetes', 'version'])}"),
    Step("hosts", "Hosts", step_hosts, _sum_hosts),
    Step("endpoint", "API endpoint", step_endpoint,
         lambda d: (f"{d['apiEndpoint']['host']}:{d['apiEndpoint'].get('port', 6443)}" if d.get("apiEndpoint")
                    else f"{first_control_plane(d)}:6443 (first control plane)")),
    Step("network", "Network", step_network, _sum_network),
    Step("storage", "Storage", step_storage,
         lambda d: (f"VM disks {get_in(d, ['storage', 'defaultClass']) or '(cluster default)'}, "
                    f"ReadWriteMany {get_in(d, ['storage', 'rwxClass']) or '(none)'}")),
    Step("kubevirt", "KubeVirt", step_kubevirt, _sum_kubevirt),
    Step("auth", "Login", step_auth, _sum_auth),
    Step("kyverno", "Policies", step_kyverno, _sum_kyverno),
    Step("services", "Platform services", step_services, _sum_services),
    Step("workspaces", "Workspaces", step_workspaces,
         lambda d: ", ".join(w["name"] for w in d.get("workspaces", [])) or "none"),
    Step("offline", "Offline", step_offline, _sum_offline),
)


def review(ctx: Ctx, data: Data) -> Config:
    """Show every section; edit any of them (that step only) until the user writes or cancels."""
    d = data
    while True:
        ctx.ui.say("Review:")
        for step in STEPS:
            ctx.ui.say(f"  {step.title}: {step.summary(d)}")
        problems = problems_of(d, ctx.catalog)
        errors = [p for p in problems if p.severity == "error"]
        for p in problems:
            ctx.ui.say(f"  {'error' if p.severity == 'error' else 'warning'}: {p.path}: {p.message}"
                       + (f" ({p.hint})" if p.hint else ""))
        choices = [] if errors else [("write", "Write the file")]
        choices += [(s.key, f"Edit {s.title}") for s in STEPS]
        choices.append(("cancel", "Cancel (write nothing)"))
        action = ctx.ui.select("Review", choices, default="write" if not errors else STEPS[0].key)
        if action == "write":
            return Config.model_validate({"apiVersion": API_VERSION, "kind": KIND, **d})
        if action == "cancel":
            raise DeclinedError("cancelled at the review screen; nothing written")
        step = next(s for s in STEPS if s.key == action)
        d = step.run(ctx, d)


def replace_inline_secrets(ctx: Ctx, data: Data, config: Config) -> Data:
    """Secrets given in clear text in a `--from` file are asked again as references (never rewritten)."""
    d = copy.deepcopy(data)
    for path, secret in config.secrets():
        if secret.value_from is not None:
            continue
        ctx.ui.say(f"{path} is written in clear text; `kvinstall init` writes secrets as references only")
        ref = ask_secret_ref(ctx, path)
        node: Any = d
        loc = [int(x) if x.isdigit() else x for x in re.split(r"[.\[\]]+", path) if x]
        for part in loc[:-1]:
            node = node[part]
        node[loc[-1]] = ref
    return d


def config_data(config: Config) -> Data:
    """A Config in the YAML shape the steps edit (defaults left out), without apiVersion/kind."""
    from kvinstall.config.writer import config_to_data

    d = config_to_data(config)
    d.pop("apiVersion", None)
    d.pop("kind", None)
    return d


def run(ctx: Ctx, initial: Config | None = None) -> Config:
    """The whole flow: every step in order (an existing config's values as defaults), then review."""
    d: Data = config_data(initial) if initial is not None else {}
    if initial is not None:
        d = replace_inline_secrets(ctx, d, initial)
    for step in STEPS:
        before = d
        d = step.run(ctx, d)
        for p in new_problems(before, d, ctx.catalog, [()], severity="warning"):
            ctx.ui.say(f"warning: {p.path}: {p.message}" + (f" ({p.hint})" if p.hint else ""))
    return review(ctx, d)

