"""The Kubernetes cluster, by KubeOne: run `kubeone apply` on the rendered manifest, or skip it when the
manifest is the one last applied from this state directory and every node is Ready at the wanted version
(so a re-run takes seconds). The decision is made here, once, for the plan and the run alike."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kvinstall.phases.context import Context
from kvinstall.plan.model import Action, PhasePlan

if TYPE_CHECKING:
    from kvinstall.config.models import Config
    from kvinstall.model import KubeObject


def nodes_ready_at_version(live_nodes: list[KubeObject], config: Config) -> tuple[bool, str]:
    """Every host's node Ready at the config's Kubernetes version (KubeOne may then be skipped)."""
    want = {h.hostname or h.address for h in config.hosts}
    version = config.kubernetes.version
    nodes = {n["metadata"]["name"]: n for n in live_nodes}
    missing = sorted(want - set(nodes))
    if missing:
        return False, f"node(s) missing: {', '.join(missing)}"
    for name in sorted(want):
        node = nodes[name]
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (node.get("status") or {}).get("conditions", [])
        )
        kubelet = ((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion")
        if not ready:
            return False, f"node {name} is not Ready"
        if kubelet != version:
            return False, f"node {name} runs kubelet {kubelet}, want {version}"
    return True, ""


def decision(ctx: Context) -> tuple[bool, str]:
    """(run KubeOne?, why), from the cluster as observed for the plan: apply runs what it showed."""
    from kvinstall.kubeone.runner import should_skip

    live = ctx.live()
    healthy, why = (
        nodes_ready_at_version(live.nodes, ctx.config) if live is not None else (False, "no kubeconfig yet")
    )
    skip, reason = should_skip(ctx.desired.kubeone_manifest_sha256, ctx.journal.kubeone_manifest, healthy)
    if skip:
        return False, reason
    return True, f"{reason} ({why})" if why and why not in reason else reason


class KubeOnePhase:
    name = "kubeone"
    title = "Kubernetes cluster (KubeOne)"
    resumable = True

    def should_run(self, ctx: Context) -> tuple[bool, str]:
        return decision(ctx)

    def inputs(self, ctx: Context) -> Any:
        return ctx.desired.kubeone_manifest_sha256

    def plan(self, ctx: Context) -> PhasePlan:
        desired = ctx.desired
        run, reason = decision(ctx)
        details = {
            "manifestSha256": desired.kubeone_manifest_sha256,
            "kubernetesVersion": desired.kubeone_manifest.get("versions", {}).get("kubernetes"),
        }
        action = Action(
            action="run" if run else "skip", target="kubeone apply", reason=reason, details=details
        )
        return PhasePlan(self.name, self.title, [action], images=list(desired.kubernetes_images))

    def run(self, ctx: Context) -> str:
        from kvinstall.kubeone.manifest import registries_auth, to_yaml

        auth = registries_auth(ctx.config)
        path = ctx.edges.kubeone_apply(
            to_yaml(ctx.desired.kubeone_manifest),
            ctx.state,
            binary=ctx.config.kubeone.binary,
            extra_args=ctx.config.kubeone.extra_args,
            registries_auth=to_yaml(auth) if auth else None,
            on_line=lambda line: ctx.events.emit("log", phase=self.name, message=line),
        )
        ctx.journal.kubeone_manifest = ctx.desired.kubeone_manifest_sha256
        ctx.journal.save()
        ctx.reconnect()  # a new kubeconfig
        return f"cluster applied; kubeconfig {path}"
