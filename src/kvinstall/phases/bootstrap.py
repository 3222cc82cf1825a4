"""Cluster bootstrap: kvinstall's own namespace and state (the last applied config without secrets, the
versions), the node labels and annotations of the config, and the cluster DNS's upstream resolver."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any, Protocol

from kvinstall.kube.client import describe
from kvinstall.model import KubeObject
from kvinstall.phases.base import report
from kvinstall.phases.context import Context
from kvinstall.plan.diff import set_actions
from kvinstall.plan.model import Action, ActionKind, PhasePlan

if TYPE_CHECKING:
    from kvinstall.config.models import Config
    from kvinstall.kube.client import Kube
    from kvinstall.kube.dns import UpstreamResult

STATE_NAMESPACE = "kvinstall-system"
STATE_SECRET = "kvinstall-state"
STATE_SET = "kvinstall"  # the ApplySet of these objects


class _Run(Protocol):
    """What the node and DNS steps use of a run's context (tests pass a plain namespace)."""

    config: Config
    events: Any


def state_objects(ctx: Context) -> list[KubeObject]:
    cfg = ctx.config.model_dump(mode="json", by_alias=True)  # Secret fields serialise redacted
    versions = {c.name: c.version for c in ctx.desired.components}
    versions |= {"kubernetes": ctx.config.kubernetes.version, "kubeone": ctx.config.kubeone.version}

    def b64(value: Any) -> str:
        return base64.b64encode(json.dumps(value, sort_keys=True).encode()).decode()

    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": STATE_NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": STATE_SECRET, "namespace": STATE_NAMESPACE},
            "type": "kvinstall.io/state",
            "data": {"config.json": b64(cfg), "versions.json": b64(versions)},
        },
    ]


# --- node labels and annotations --------------------------------------------------------------------


def find_node(nodes: list[KubeObject], name: str, address: str) -> KubeObject | None:
    """The Node named `name`, else the one whose InternalIP is `address` (KubeOne names nodes after
    `hostname -f` when the config gives no hostname)."""
    by_name = next((n for n in nodes if n["metadata"]["name"] == name), None)
    if by_name is not None:
        return by_name
    return next(
        (
            n
            for n in nodes
            if any(
                a.get("type") == "InternalIP" and a.get("address") == address
                for a in (n.get("status") or {}).get("addresses") or []
            )
        ),
        None,
    )


def node_changes(config: Config, nodes: list[KubeObject]) -> dict[str, dict[str, Any]]:
    """Per node name, the merge patch that gives it the config's labels and annotations (set, or with a
    key ending in '-' removed); KubeOne applies them only when it runs."""
    from kvinstall.kube.nodes import node_patch

    out: dict[str, dict[str, Any]] = {}
    for host in config.hosts:
        want = dict(host.labels)
        if host.role == "controlPlane":
            want["kube-ovn/role"] = "master"
        node = find_node(nodes, host.hostname or host.address, host.internal_address)
        if node is None:
            continue
        patch = node_patch(want, host.annotations, node)
        if patch:
            out[node["metadata"]["name"]] = patch
    return out


def _node_diff(patch: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"path": f"metadata.{part}.{k}", "op": "remove" if v is None else "add", "after": v}
        for part, values in patch["metadata"].items()
        for k, v in values.items()
    ]


def label_nodes(kube: Kube, ctx: _Run) -> int:
    """Patch the nodes that lack the config's labels or annotations; returns how many."""
    changes = node_changes(ctx.config, kube.list("v1", "Node"))
    for name, patch in changes.items():
        kube.patch_merge("v1", "Node", name, patch)
        ctx.events.emit(
            "object",
            phase="bootstrap",
            action="update",
            object=describe("v1", "Node", name),
            changes=_node_diff(patch),
        )
    return len(changes)


# --- the cluster DNS's upstream ---------------------------------------------------------------------


def _corefile(ref: str) -> tuple[str, str]:
    """("ConfigMap NAMESPACE/NAME" of kvinstall.kube.dns) -> (namespace, name)."""
    namespace, name = ref.removeprefix("ConfigMap ").split("/")
    return namespace, name


def dns_actions(upstream: str, observed: UpstreamResult | None) -> tuple[list[Action], list[str]]:
    """The plan's actions (and notes) for the Corefiles; not observed: both are to update (KubeOne and
    kubeadm deploy them forwarding to the nodes' resolv.conf)."""
    from kvinstall.kube.dns import COREFILES

    want = f"forward . {upstream}"

    def action(ref: str, kind: ActionKind, reason: str) -> Action:
        namespace, name = _corefile(ref)
        return Action(
            action=kind,
            target=ref,
            object=describe("v1", "ConfigMap", name, namespace),
            api_version="v1",
            kind="ConfigMap",
            name=name,
            namespace=namespace,
            reason=reason,
            details={"upstreamDNS": upstream},
        )

    if observed is None:
        return [action(f"ConfigMap {ns}/{name}", "update", f"Corefile: {want}") for ns, name in COREFILES], []
    actions = [action(ref, "update", f"Corefile: {want}") for ref in observed.changed]
    actions += [action(ref, "unchanged", want) for ref in observed.unchanged]
    notes = [f"{ref} is not deployed: nothing to point at {upstream}" for ref in observed.absent]
    notes += [f"{ref} has no root server block (.:53): not changed" for ref in observed.unparsed]
    return actions, notes


def upstream_dns(kube: Kube, ctx: _Run) -> str:
    """CoreDNS and NodeLocal DNSCache forward outside names to network.upstreamDNS."""
    from kvinstall.errors import ClusterError
    from kvinstall.kube.dns import ensure_upstream

    upstream = str(ctx.config.network.upstream_dns)
    result = ensure_upstream(kube, upstream)
    for ref in result.changed:
        namespace, name = _corefile(ref)
        ctx.events.emit(
            "object",
            phase="bootstrap",
            action="update",
            object=describe("v1", "ConfigMap", name, namespace),
            changes=[{"path": "data.Corefile", "op": "replace", "after": f"forward . {upstream}"}],
        )
    if "ConfigMap kube-system/coredns" in result.absent + result.unparsed:
        raise ClusterError(
            "cannot set the cluster DNS upstream: ConfigMap kube-system/coredns has no Corefile with a "
            "root server block (.:53)",
            where="network.upstreamDNS",
        )
    return f"cluster DNS forwards to {upstream} ({len(result.changed)} Corefile(s) updated)"


class BootstrapPhase:
    name = "bootstrap"
    title = "Cluster bootstrap"
    resumable = True

    def should_run(self, ctx: Context) -> tuple[bool, str]:
        return True, ""

    def inputs(self, ctx: Context) -> Any:
        return {"objects": state_objects(ctx), "upstreamDNS": ctx.config.network.upstream_dns}

    def plan(self, ctx: Context) -> PhasePlan:
        from kvinstall.kube.apply import plan_apply
        from kvinstall.kube.dns import ensure_upstream
        from kvinstall.kube.inventory import ApplySetRef

        live = ctx.live()
        objects = state_objects(ctx)
        upstream = ctx.config.network.upstream_dns
        phase = PhasePlan(self.name, self.title)
        if live is None:
            phase.actions = set_actions(objects, None)
            if upstream:
                phase.actions += dns_actions(str(upstream), None)[0]
            return phase
        kube = ctx.kube()
        phase.actions = set_actions(objects, plan_apply(kube, ApplySetRef(STATE_SET), objects))
        for name, patch in node_changes(ctx.config, live.nodes).items():
            phase.actions.append(
                Action(
                    action="update",
                    target=f"Node {name}",
                    object=describe("v1", "Node", name),
                    api_version="v1",
                    kind="Node",
                    name=name,
                    reason="labels and annotations of the configuration",
                    diff=tuple(_node_diff(patch)),
                )
            )
        if upstream:
            actions, notes = dns_actions(str(upstream), ensure_upstream(kube, str(upstream), dry_run=True))
            phase.actions += actions
            phase.notes += notes
        return phase

    def run(self, ctx: Context) -> str:
        from kvinstall.kube.apply import execute, plan_apply
        from kvinstall.kube.inventory import ApplySetRef

        kube = ctx.kube()
        plan = plan_apply(kube, ApplySetRef(STATE_SET), state_objects(ctx))
        report(ctx, self.name, plan)
        execute(kube, plan)
        summary = f"state recorded; {label_nodes(kube, ctx)} node(s) relabelled"
        if ctx.config.network.upstream_dns:
            summary += "; " + upstream_dns(kube, ctx)
        return summary
