"""diff (pure): DesiredState x what was observed -> Plan.

Observations are optional: with no cluster, every object is "create"; with no host facts, preflight
is "run". The cluster part comes from the apply engine's per-component ApplyPlan (kvinstall.kube),
which already compared the desired objects with the LIVE ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kvinstall.components.base import KubeObject
from kvinstall.plan.desired import DesiredComponent, DesiredState
from kvinstall.plan.model import Action, ActionKind, Observed, Phase, Plan

if TYPE_CHECKING:
    from kvinstall.kube.apply import ApplyPlan
    from kvinstall.kube.dns import UpstreamResult


@dataclass(frozen=True)
class KubeOneDecision:
    skip: bool
    reason: str


def describe_object(obj: KubeObject) -> tuple[str, str, str, str | None]:
    meta = obj.get("metadata") or {}
    return obj.get("apiVersion", ""), obj.get("kind", ""), meta.get("name", ""), meta.get("namespace")


def _target(kind: str, name: str, namespace: str | None) -> str:
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def _object_action(obj: KubeObject, action: ActionKind, diff: tuple[dict[str, Any], ...] = ()) -> Action:
    api, kind, name, ns = describe_object(obj)
    return Action(
        action=action,
        target=_target(kind, name, ns),
        api_version=api,
        kind=kind,
        name=name,
        namespace=ns,
        diff=diff,
    )


def _component_phase(comp: DesiredComponent, live: ApplyPlan | None) -> Phase:
    phase = Phase(
        name=f"component/{comp.name}",
        title=comp.title,
        version=comp.version,
        images=list(comp.images),
        artifacts=[
            {"name": a.name, "kind": a.kind, "source": a.describe(), "sha256": a.sha256}
            for a in comp.artifacts
        ],
        notes=list(comp.notes),
    )
    for art in comp.unavailable:
        if any(art.source in n for n in phase.notes):
            continue  # the component said so already
        phase.notes.append(
            f"objects of {art.describe()} are not listed: not in the local cache (apply fetches and verifies it)"
        )
    if live is None:
        phase.actions = [_object_action(o, "create") for o in comp.objects]
        return phase
    for item in live.items:
        diff = tuple(c.to_dict() for c in item.changes)
        phase.actions.append(_object_action(item.obj, item.action, diff))
    for p in live.prune:
        phase.actions.append(
            Action(
                action="delete",
                target=_target(p.kind, p.name, p.namespace),
                api_version=p.api_version,
                kind=p.kind,
                name=p.name,
                namespace=p.namespace,
                reason="no longer in the configuration",
            )
        )
    for p in live.prune_blocked:
        phase.notes.append(
            f"{p.kind} {p.name} left the configuration; kept (CRDs and namespaces need --prune-all)"
        )
    return phase


def _dns_phase(upstream: str, dns: UpstreamResult | None) -> Phase:
    """The cluster DNS's Corefiles (apply's bootstrap phase edits them after KubeOne)."""
    from kvinstall.kube.dns import COREFILES

    phase = Phase(name="bootstrap", title="Cluster bootstrap")
    want = f"forward . {upstream}"

    def action(ref: str, kind: ActionKind, reason: str) -> Action:
        ns, name = ref.removeprefix("ConfigMap ").split("/")
        return Action(
            action=kind,
            target=ref,
            api_version="v1",
            kind="ConfigMap",
            name=name,
            namespace=ns,
            reason=reason,
            details={"upstreamDNS": upstream},
        )

    if dns is None:
        for ns, name in COREFILES:
            phase.actions.append(action(f"ConfigMap {ns}/{name}", "update", f"Corefile: {want}"))
        return phase
    phase.actions += [action(ref, "update", f"Corefile: {want}") for ref in dns.changed]
    phase.actions += [action(ref, "unchanged", want) for ref in dns.unchanged]
    phase.notes += [f"{ref} is not deployed: nothing to point at {upstream}" for ref in dns.absent]
    phase.notes += [f"{ref} has no root server block (.:53): not changed" for ref in dns.unparsed]
    return phase


def build_plan(
    desired: DesiredState,
    *,
    observed: Observed | None = None,
    cluster: Mapping[str, ApplyPlan] | None = None,
    kubeone: KubeOneDecision | None = None,
    untrusted_host_keys: Mapping[str, str] | None = None,
    host_results: Mapping[str, list[str]] | None = None,
    warnings: list[str] | None = None,
    dns: UpstreamResult | None = None,
) -> Plan:
    observed = observed or Observed()
    phases: list[Phase] = []

    if desired.offline_registry:
        gate = Phase(name="gate", title="Offline completeness gate")
        gate.actions.append(
            Action(
                action="run",
                target=f"site registry {desired.offline_registry}",
                reason="before any host is touched, prove every image and artifact is there",
                details={"images": len(desired.all_images()), "artifacts": len(desired.all_artifacts())},
            )
        )
        phases.append(gate)

    pre = Phase(name="preflight", title="Host preflight")
    for h in desired.hosts:
        details: dict[str, Any] = {"role": h.role, "user": h.user, "checks": list(h.checks)}
        if untrusted_host_keys and h.address in untrusted_host_keys:
            details["untrustedHostKey"] = untrusted_host_keys[h.address]
        if host_results is not None and h.address in host_results:
            details["findings"] = host_results[h.address]
        pre.actions.append(Action(action="run", target=f"host {h.name} ({h.address})", details=details))
    phases.append(pre)

    if desired.package_repository:
        hp = Phase(name="host-packages", title="Host package source (site repository)")
        hp.actions.append(
            Action(
                action="run",
                target=f"apt on {len(desired.hosts)} host(s)",
                reason=f"install from the site package repository {desired.package_repository}",
            )
        )
        phases.append(hp)

    if desired.host_ca_files:
        ht = Phase(name="host-trust", title="Host CA files")
        ht.actions.append(
            Action(
                action="run",
                target=f"CA files on {len(desired.hosts)} host(s)",
                reason="KubeOne cannot carry them: " + ", ".join(desired.host_ca_files),
            )
        )
        phases.append(ht)

    k1 = Phase(name="kubeone", title="Kubernetes cluster (KubeOne)")
    details = {
        "manifestSha256": desired.kubeone_manifest_sha256,
        "kubernetesVersion": desired.kubeone_manifest.get("versions", {}).get("kubernetes"),
    }
    if kubeone is not None and kubeone.skip:
        k1.actions.append(
            Action(action="skip", target="kubeone apply", reason=kubeone.reason, details=details)
        )
    else:
        reason = kubeone.reason if kubeone else "cluster not observed"
        k1.actions.append(Action(action="run", target="kubeone apply", reason=reason, details=details))
    k1.images = list(desired.kubernetes_images)
    phases.append(k1)
    if desired.upstream_dns:
        phases.append(_dns_phase(desired.upstream_dns, dns))

    for comp in desired.components:
        phases.append(_component_phase(comp, (cluster or {}).get(comp.name)))

    # A component switched off in the config (e.g. Dex with auth none) still has live members:
    # its removal shows up as deletes under its own name.
    for name, live in (cluster or {}).items():
        if desired.component(name) is None and (live.prune or live.prune_blocked):
            gone = DesiredComponent(
                name=name,
                title=f"{name} (removed)",
                version="-",
                namespace=None,
                objects=[],
                images=[],
                artifacts=[],
                unavailable=[],
                readiness=[],
            )
            phases.append(_component_phase(gone, live))

    return Plan(cluster=desired.cluster, phases=phases, observed=observed, warnings=list(warnings or []))
