"""The phases of `apply`, in order. Each is a small unit: a name, a title, `should_run` (with the
reason when not), `inputs` (hashed into the journal for --resume) and `run` (returns a summary).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol

from kvinstall.errors import ArtifactError, ClusterError, IncompleteMirrorError
from kvinstall.plan.desired import DesiredComponent
from kvinstall.plan.observe import KNOWN_COMPONENTS
from kvinstall.run.context import Context
from kvinstall.run.journal import input_hash

if TYPE_CHECKING:
    from kvinstall.config.models import Config
    from kvinstall.kube.apply import ApplyPlan
    from kvinstall.kube.client import Kube

STATE_NAMESPACE = "kvinstall-system"
STATE_SECRET = "kvinstall-state"


class Phase(Protocol):
    name: str
    title: str

    def should_run(self, ctx: Context) -> tuple[bool, str]: ...

    def inputs(self, ctx: Context) -> Any: ...

    def run(self, ctx: Context) -> str: ...


def _emit_plan(ctx: Context, phase: str, plan: ApplyPlan) -> None:
    for item in plan.items:
        if item.action != "unchanged":
            changes = [c.to_dict() for c in item.changes]
            ctx.events.emit("object", phase=phase, action=item.action, object=item.ref, changes=changes)
    for p in plan.prune:
        ctx.events.emit("object", phase=phase, action="delete", object=p.ref)


class PreflightPhase:
    name = "preflight"
    title = "Host preflight"

    def should_run(self, ctx: Context) -> tuple[bool, str]:
        return True, ""

    def inputs(self, ctx: Context) -> Any:
        return [h.model_dump(mode="json") for h in ctx.config.hosts]

    def run(self, ctx: Context) -> str:
        from kvinstall.hosts.preflight import run_preflight

        o = ctx.options
        report = run_preflight(
            ctx.config,
            accept_new_host_keys=o.accept_new_host_keys,
            skip=set(o.skip_checks),
            known_hosts_path=ctx.state / "known_hosts",
            socket_factory=o.socket_factory,
            user_known_hosts=o.user_known_hosts,
            ssh_config_path=o.ssh_config_path,
            record_kubeone_keys=True,  # the keys KubeOne will be shown, for the kubeone phase
        )
        for w in report.warnings:
            ctx.events.emit("warning", phase=self.name, message=w)
        for host, key in report.accepted_host_keys.items():
            ctx.events.emit(
                "warning", phase=self.name, message=f"{host}: new host key trusted and recorded: {key}"
            )
        for host in report.hosts:
            err = report.host_errors.get(host)
            if err is not None:
                ctx.events.emit("host", phase=self.name, host=host, status="unreachable", message=str(err))
                continue
            bad = [r for r in report.results if r.host == host and r.status in ("fail", "warn")]
            status = "fail" if any(r.status == "fail" for r in bad) else "warn" if bad else "ok"
            ctx.events.emit(
                "host",
                phase=self.name,
                host=host,
                status=status,
                message="; ".join(f"{r.check}: {r.message}" for r in bad),
                results=[r.to_dict() for r in report.results if r.host == host],
            )
        report.raise_for_failures()
        checks = sum(1 for r in report.results if r.status == "pass")
        return f"{len(report.hosts)} host(s), {checks} checks passed"


class GatePhase:
    name = "gate"
    title = "Offline completeness gate"

    def should_run(self, ctx: Context) -> tuple[bool, str]:
        return (True, "") if ctx.config.offline.enabled else (False, "not in offline mode")

    def inputs(self, ctx: Context) -> Any:
        from kvinstall.catalog.packages import load_package_catalog
        from kvinstall.mirror.packages import needed_packages

        packages = needed_packages(ctx.config, load_package_catalog())
        return [*sorted(required_refs(ctx)), *(f"{d}: {s}" for d, specs in packages.items() for s in specs)]

    def run(self, ctx: Context) -> str:
        from kvinstall.catalog.packages import load_package_catalog
        from kvinstall.mirror.gate import check_complete, check_host_packages

        refs = required_refs(ctx)
        images, artifacts = required_refs_split(ctx)
        with site_registry_client(ctx) as client, site_registry_client(ctx, charts=True) as charts:
            missing = check_complete(client, images) + check_complete(charts, artifacts)
        if missing:
            raise IncompleteMirrorError(
                f"{len(missing)} of {len(refs)} artifact(s) are missing from the site registry:\n  "
                + "\n  ".join(missing),
                where=str(ctx.config.offline.registry),
                hint="push the bundle with `kvinstall mirror push`, or make a new bundle for this config",
            )
        needed, lacking = check_host_packages(ctx.config, load_package_catalog())
        repo = ctx.config.offline.package_repository
        if lacking:
            raise IncompleteMirrorError(
                f"{len(lacking)} of {needed} host package(s) are missing from the site package repository:\n  "
                + "\n  ".join(lacking),
                where=repo.url if repo else None,
                hint="serve a bundle made for this config (`kvinstall mirror create -f`, then `mirror serve`)",
            )
        packages = f"; all {needed} host packages are in {repo.url}" if repo and needed else ""
        return f"all {len(refs)} images and artifacts are in {ctx.config.offline.registry}{packages}"


def site_registry_client(ctx: Context, *, charts: bool = False) -> Any:
    """A client of the site registry as the nodes pull images from it, or (charts=True) as
    kvinstall reads its charts and manifests."""
    from kvinstall.components.artifacts import offline_registry

    reg = offline_registry(ctx.config, charts=charts)
    assert reg is not None  # the gate runs in offline mode only
    return reg.client()


def required_refs(ctx: Context) -> list[str]:
    """Every image the rendered objects reference, every image of the catalog (operators such as
    virt-operator derive their operands' references from their own, so those appear in no object),
    plus every artifact, as site-registry references."""
    images, artifacts = required_refs_split(ctx)
    return [*images, *artifacts]


def required_refs_split(ctx: Context) -> tuple[list[str], list[str]]:
    """required_refs as (images, artifacts): each is checked with its own login."""
    from kvinstall.components.artifacts import artifact_oci_ref
    from kvinstall.render.images import images_in, rewrite_image

    site = str(ctx.config.offline.registry)
    images: dict[str, None] = {}
    for comp in ctx.desired.components:
        for img in [*sorted(images_in(comp.objects)), *comp.images]:
            images.setdefault(img if img.startswith(site + "/") else rewrite_image(img, site), None)
    for img in ctx.desired.kubernetes_images:
        images.setdefault(rewrite_image(img, site), None)
    artifacts = {artifact_oci_ref(art, site): None for art in ctx.desired.all_artifacts()}
    return list(images), [a for a in artifacts if a not in images]


class HostPackagesPhase:
    """Offline: point every host's apt at the site package repository before KubeOne installs
    containerd, kubelet, kubeadm and kubectl from it (see hosts/packages.py)."""

    name = "host-packages"
    title = "Host package source (site repository)"

    def should_run(self, ctx: Context) -> tuple[bool, str]:
        off = ctx.config.offline
        if not off.enabled:
            return False, "not in offline mode"
        if off.package_repository is None:
            return False, "no offline.packageRepository: the hosts use their own package sources"
        return True, ""

    def inputs(self, ctx: Context) -> Any:
        from kvinstall.hosts.packages import digest

        return [digest(ctx.config), [h.address for h in ctx.config.hosts]]

    def run(self, ctx: Context) -> str:
        from kvinstall.hosts.packages import configure

        o = ctx.options
        changed = configure(
            ctx.config,
            known_hosts_path=ctx.state / "known_hosts",
            socket_factory=o.socket_factory,
            user_known_hosts=o.user_known_hosts,
            ssh_config_path=o.ssh_config_path,
        )
        for host in sorted(h for h, c in changed.items() if c):
            ctx.events.emit("log", phase=self.name, message=f"{host}: apt now uses the site repository")
        repo = ctx.config.offline.package_repository
        assert repo is not None
        return f"{len(changed)} host(s) install from {repo.url} ({sum(changed.values())} changed)"


class HostTrustPhase:
    """The CA files KubeOne's API cannot carry, on the hosts before it runs: the site registry's CA
    into the trust store (containerd's), the OIDC issuer's CA for the kube-apiserver (hosts/trust.py)."""

    name = "host-trust"
    title = "Host CA files"

    def should_run(self, ctx: Context) -> tuple[bool, str]:
        from kvinstall.hosts.trust import host_files

        if not host_files(ctx.config):
            return False, "no offline.caFile (TLS) or auth.issuerCAFile"
        return True, ""

    def inputs(self, ctx: Context) -> Any:
        from kvinstall.hosts.trust import digest

        return [digest(ctx.config), [h.address for h in ctx.config.hosts]]

    def run(self, ctx: Context) -> str:
        from kvinstall.hosts.trust import install_host_files

        o = ctx.options
        changed = install_host_files(
            ctx.config,
            known_hosts_path=ctx.state / "known_hosts",
            socket_factory=o.socket_factory,
            user_known_hosts=o.user_known_hosts,
            ssh_config_path=o.ssh_config_path,
        )
        for host in sorted(h for h, c in changed.items() if c):
            ctx.events.emit("log", phase=self.name, message=f"{host}: CA files updated")
        return f"CA files on {len(changed)} host(s) ({sum(changed.values())} changed)"


def nodes_ready_at_version(kube: Kube, config: Config) -> tuple[bool, str]:
    """Every host's node Ready at the config's Kubernetes version (KubeOne may then be skipped)."""
    want = {h.hostname or h.address for h in config.hosts}
    version = config.kubernetes.version
    nodes = {n["metadata"]["name"]: n for n in kube.list("v1", "Node")}
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


class KubeOnePhase:
    name = "kubeone"
    title = "Kubernetes cluster (KubeOne)"

    def should_run(self, ctx: Context) -> tuple[bool, str]:
        from kvinstall.kubeone.runner import should_skip

        kube = ctx.try_kube()
        healthy, why = (
            nodes_ready_at_version(kube, ctx.config) if kube is not None else (False, "no kubeconfig yet")
        )
        skip, reason = should_skip(ctx.desired.kubeone_manifest_sha256, ctx.journal.kubeone_manifest, healthy)
        if skip:
            return False, reason
        return True, f"{reason} ({why})" if why and why not in reason else reason

    def inputs(self, ctx: Context) -> Any:
        return ctx.desired.kubeone_manifest_sha256

    def run(self, ctx: Context) -> str:
        from kvinstall.hosts.kubeone_view import kubeone_host_keys, require_all
        from kvinstall.kubeone.manifest import registries_auth, render_manifest, to_yaml
        from kvinstall.kubeone.runner import run_kubeone

        # KubeOne checks host keys only when the manifest has them: the ones preflight verified
        # and recorded (pinned, known_hosts, or accepted); no KubeOne run for a host without one.
        keys, missing = kubeone_host_keys(
            ctx.config, ctx.state / "known_hosts", user_known_hosts=ctx.options.user_known_hosts
        )
        require_all(missing)
        auth = registries_auth(ctx.config)
        path = run_kubeone(
            to_yaml(render_manifest(ctx.config, host_keys=keys)),
            ctx.state,
            binary=ctx.config.kubeone.binary,
            extra_args=ctx.config.kubeone.extra_args,
            registries_auth_yaml=to_yaml(auth) if auth else None,
            on_line=lambda line: ctx.events.emit("log", phase=self.name, message=line),
            env=ctx.options.kubeone_env,
        )
        ctx.journal.kubeone_manifest = ctx.desired.kubeone_manifest_sha256
        ctx.journal.save()
        ctx._kube = None  # a new kubeconfig: reconnect
        return f"cluster applied; kubeconfig {path}"


class BootstrapPhase:
    """kvinstall's own namespace and state (the last applied config without secrets, the catalog
    versions), node labels and annotations from the config, and the cluster DNS's upstream."""

    name = "bootstrap"
    title = "Cluster bootstrap"

    def should_run(self, ctx: Context) -> tuple[bool, str]:
        return True, ""

    def inputs(self, ctx: Context) -> Any:
        return {"objects": self.objects(ctx), "upstreamDNS": ctx.config.network.upstream_dns}

    def objects(self, ctx: Context) -> list[dict[str, Any]]:
        import base64

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

    def run(self, ctx: Context) -> str:
        from kvinstall.kube.apply import execute, plan_apply
        from kvinstall.kube.inventory import ApplySetRef

        kube = ctx.kube()
        plan = plan_apply(kube, ApplySetRef("kvinstall"), self.objects(ctx))
        _emit_plan(ctx, self.name, plan)
        execute(kube, plan)
        labelled = label_nodes(kube, ctx)
        summary = f"state recorded; {labelled} node(s) relabelled"
        if ctx.config.network.upstream_dns:
            summary += "; " + upstream_dns(kube, ctx)
        return summary


def label_nodes(kube: Kube, ctx: Context) -> int:
    """Labels and annotations from the config on the nodes, set or (key ending in '-') removed
    (KubeOne applies them only when it runs)."""
    from kvinstall.kube.nodes import node_patch

    changed = 0
    nodes = kube.list("v1", "Node")
    for host in ctx.config.hosts:
        want = dict(host.labels)
        if host.role == "controlPlane":
            want["kube-ovn/role"] = "master"
        node = find_node(nodes, host.hostname or host.address, host.internal_address)
        if node is None:
            continue
        name = node["metadata"]["name"]
        patch = node_patch(want, host.annotations, node)
        if patch:
            kube.patch_merge("v1", "Node", name, patch)
            ctx.events.emit(
                "object",
                phase="bootstrap",
                action="update",
                object=f"Node {name}",
                changes=[
                    {"path": f"metadata.{part}.{k}", "op": "remove" if v is None else "add", "after": v}
                    for part, values in patch["metadata"].items()
                    for k, v in values.items()
                ],
            )
            changed += 1
    return changed


def find_node(nodes: list[dict[str, Any]], name: str, address: str) -> dict[str, Any] | None:
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


def upstream_dns(kube: Kube, ctx: Context) -> str:
    """CoreDNS and NodeLocal DNSCache forward outside names to network.upstreamDNS."""
    from kvinstall.kube.dns import ensure_upstream

    upstream = str(ctx.config.network.upstream_dns)
    result = ensure_upstream(kube, upstream)
    for ref in result.changed:
        ctx.events.emit(
            "object",
            phase="bootstrap",
            action="update",
            object=ref,
            changes=[{"path": "data.Corefile", "op": "replace", "after": f"forward . {upstream}"}],
        )
    if "ConfigMap kube-system/coredns" in result.absent + result.unparsed:
        raise ClusterError(
            "cannot set the cluster DNS upstream: ConfigMap kube-system/coredns has no Corefile with a "
            "root server block (.:53)",
            where="network.upstreamDNS",
        )
    return f"cluster DNS forwards to {upstream} ({len(result.changed)} Corefile(s) updated)"


class ComponentPhase:
    """One component: apply its objects (only what differs from the live cluster), prune what left
    its set, then wait until it is ready."""

    def __init__(self, comp: DesiredComponent) -> None:
        self.comp = comp
        self.name = f"component/{comp.name}" if comp.name != "workspaces" else "workspaces"
        self.title = f"{comp.title} {comp.version}" if comp.name != "workspaces" else "Workspaces"

    def should_run(self, ctx: Context) -> tuple[bool, str]:
        return True, ""

    def inputs(self, ctx: Context) -> Any:
        return self.comp.objects

    def run(self, ctx: Context) -> str:
        from kvinstall.kube.apply import execute, plan_apply
        from kvinstall.kube.inventory import ApplySetRef
        from kvinstall.kube.wait import rule_name, wait_ready

        kube = ctx.kube()
        if self.comp.unavailable:
            names = ", ".join(a.describe() for a in self.comp.unavailable)
            raise ArtifactError(f"upstream artifacts not available: {names}", where=self.comp.name)
        plan = plan_apply(
            kube, ApplySetRef(self.comp.name), self.comp.objects, prune_protected=ctx.options.prune_protected
        )
        _emit_plan(ctx, self.name, plan)
        result = execute(kube, plan, on_event=lambda e: None)
        rules = self.comp.readiness
        if rules:

            def progress(done: int, total: int) -> None:
                ctx.events.emit("progress", phase=self.name, what="ready", done=done, total=total)

            wait_ready(kube, rules, ctx.options.ready_timeout, on_progress=progress, cancel=ctx.stop)
            for r in rules:
                ctx.events.emit("ready", phase=self.name, object=rule_name(r))
        parts = [
            f"{len(result.created)} created",
            f"{len(result.updated)} updated",
            f"{result.unchanged} unchanged",
        ]
        if result.pruned:
            parts.append(f"{len(result.pruned)} pruned")
        return ", ".join(parts) + (f", {len(rules)} ready" if rules else "")


class PrunePhase:
    """Components switched off in the config: removed in their safe order, in reverse install order."""

    name = "prune"
    title = "Prune removed components"

    def should_run(self, ctx: Context) -> tuple[bool, str]:
        return True, ""

    def inputs(self, ctx: Context) -> Any:
        return sorted(c.name for c in ctx.desired.components)

    def run(self, ctx: Context) -> str:
        removed = [n for n in reversed(KNOWN_COMPONENTS) if ctx.desired.component(n) is None]
        done = []
        for name in removed:
            if remove_component(ctx, name, phase=self.name):
                done.append(name)
        return f"removed {', '.join(done)}" if done else "nothing to prune"


def remove_component(ctx: Context, name: str, *, phase: str) -> bool:
    """Delete every member of a component's ApplySet, in the component's safe order. True if any."""
    from kvinstall.components import component
    from kvinstall.kube.apply import execute, plan_apply
    from kvinstall.kube.inventory import ApplySetRef

    kube = ctx.kube()
    plan = plan_apply(kube, ApplySetRef(name), [], prune_protected=ctx.options.prune_protected)
    if not plan.prune:
        return False
    _emit_plan(ctx, phase, plan)
    comp = component(name)

    def hook(k: Kube, items: list[Any], delete_rest: Any) -> None:
        comp.remove(ctx.config, ctx.catalog, k, delete_rest)

    execute(kube, plan, prune_hook=hook)
    return True


class VerifyPhase:
    """Re-reads the cluster: every component must now match the file exactly."""

    name = "verify"
    title = "Verify and report"
    resumable = False  # its input is the live cluster: never taken as done from an earlier run

    def should_run(self, ctx: Context) -> tuple[bool, str]:
        return True, ""

    def inputs(self, ctx: Context) -> Any:
        return None  # always re-verified

    def run(self, ctx: Context) -> str:
        from kvinstall.kube.apply import plan_apply
        from kvinstall.kube.inventory import ApplySetRef

        kube = ctx.kube()
        drifted = []
        total = 0
        for comp in ctx.desired.components:
            plan = plan_apply(
                kube, ApplySetRef(comp.name), comp.objects, prune_protected=ctx.options.prune_protected
            )
            total += len(plan.items)
            drifted += [i.ref for i in plan.changed]
        if drifted:
            raise ClusterError(
                f"{len(drifted)} object(s) still differ from the configuration after apply: "
                + ", ".join(drifted[:10])
            )
        return f"{total} objects match the configuration"


def apply_phases(ctx: Context) -> list[Phase]:
    comps = [ComponentPhase(c) for c in ctx.desired.components]
    return [
        # The gate first: it proves the site registry complete before any host is touched
        # (preflight connects to every host over SSH).
        GatePhase(),
        PreflightPhase(),
        HostPackagesPhase(),
        HostTrustPhase(),
        KubeOnePhase(),
        BootstrapPhase(),
        *comps,
        PrunePhase(),
        VerifyPhase(),
    ]


def phase_inputs_hash(ctx: Context, phase: Phase) -> str:
    return input_hash({"phase": phase.name, "inputs": phase.inputs(ctx)})
