"""Before anything changes: the version changes of this run (the upgrade rules of the catalog, applied
to the versions the cluster reports), and "repair before upgrade": an upgrade is refused while the
platform is unhealthy or differs from the file at its installed versions, unless the user asks for
both in one run (--repair-and-upgrade). The dry run (plan, and apply's preview) calls it, so a refused
upgrade stops apply before it asks, and plan shows the same refusal with the same exit code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvinstall.catalog.upgrades import KUBERNETES, Refusal, Upgrade
from kvinstall.errors import KvError, UpgradeRefused
from kvinstall.phases.context import Context

if TYPE_CHECKING:
    from kvinstall.kube.client import Kube
    from kvinstall.plan.installed import InstalledVersions
    from kvinstall.plan.observe import Live


def check_run_upgrades(ctx: Context) -> tuple[list[Upgrade], list[str]]:
    """(the upgrades this run carries out, products whose upgrade is in progress already). Raises
    UpgradeRefused (exit code 15) naming each refused change and its next allowed step."""
    from kvinstall.plan.installed import InstalledVersions, observe_installed, upgrade_check

    live = ctx.live()
    kube = ctx.try_kube() if live is not None else None
    installed = (
        observe_installed(kube, ctx.catalog, ctx.desired, live.nodes, ctx.journal.versions)
        if kube is not None and live is not None
        else InstalledVersions()
    )
    if kube is None:
        from kvinstall.catalog.upgrades import check_upgrades
        from kvinstall.plan.installed import wanted_versions

        # No cluster yet: only the skew of the wanted versions can be checked.
        check = check_upgrades(
            ctx.catalog,
            {},
            wanted_versions(ctx.config, ctx.desired),
            titles={KUBERNETES: "Kubernetes", **{c.name: c.title for c in ctx.desired.components}},
            kubeone_version=ctx.config.kubeone.version,
        )
    else:
        check = upgrade_check(
            kube, ctx.config, ctx.catalog, ctx.desired, installed, force_downgrade=ctx.options.force_downgrade
        )
    in_progress = sorted(
        set(ctx.journal.upgrades) | {n for n, i in installed.products.items() if i.in_progress}
    )
    refusals = list(check.refusals)
    if check.upgrades and not refusals and not in_progress and not ctx.options.repair_and_upgrade:
        assert kube is not None and live is not None
        problems = repair_problems(ctx, kube, live, installed, check.upgrades)
        if problems:
            keep = ", ".join(f"{u.title} {u.from_version}" for u in check.upgrades)
            refusals.append(
                Refusal(
                    "platform",
                    "Platform",
                    None,
                    "",
                    "repair before upgrade: the platform is not as the file says at its installed "
                    "versions:\n    " + "\n    ".join(problems),
                    f"keep the installed versions in the file ({keep}) and apply to repair first, "
                    "then change the versions; or pass --repair-and-upgrade to do both in one run",
                )
            )
    if refusals:
        raise UpgradeRefused(refusals, hint=refusals[0].next_step)
    return check.upgrades, in_progress


def repair_problems(
    ctx: Context, kube: Kube, live: Live, installed: InstalledVersions, upgrades: list[Upgrade]
) -> list[str]:
    """What makes the platform unhealthy or drifted, measured at the installed versions: nodes not
    Ready; for a component being upgraded, its objects as the file renders them at the installed
    version compared with the live ones (and that version's readiness); for the others, the plan's
    own comparison and readiness."""
    from kvinstall.components import all_components
    from kvinstall.kube.apply import ApplyFailed, plan_apply
    from kvinstall.kube.inventory import ApplySetRef
    from kvinstall.kube.wait import is_ready, rule_name
    from kvinstall.plan.installed import hold_config

    problems: list[str] = []
    for node in live.nodes:
        conds = {c.get("type"): c.get("status") for c in (node.get("status") or {}).get("conditions") or []}
        if conds.get("Ready") != "True":
            problems.append(f"node {node['metadata']['name']} is not Ready")
    upgrading = {u.name: u.from_version for u in upgrades if u.name != KUBERNETES}
    hold = hold_config(ctx.config, upgrading)
    by_name = {c.name: c for c in all_components()}
    for comp in ctx.desired.components:
        live_set = live.sets.get(comp.name)
        present = live_set is not None and any(i.action != "create" for i in live_set.items)
        if comp.name not in installed.products and not present:
            continue  # not installed: nothing to repair
        if comp.name in upgrading and comp.name in by_name:
            component = by_name[comp.name]
            try:
                rendered = component.render(hold, ctx.catalog, ctx.source)
                rules = component.readiness(hold, ctx.catalog)
            except KvError as exc:
                problems.append(f"{comp.title}: not checked at {upgrading[comp.name]} ({exc.message})")
                continue
            if rendered.unavailable:
                problems.append(
                    f"{comp.title}: not checked at {upgrading[comp.name]} (upstream artifacts not available here: "
                    + ", ".join(a.describe() for a in rendered.unavailable)
                    + ")"
                )
                continue
            try:
                plan = plan_apply(kube, ApplySetRef(comp.name), rendered.objects)
            except ApplyFailed as exc:
                problems.append(f"{comp.title}: not checked ({exc})")
                continue
            changed = [i.ref for i in plan.changed] + [p.ref for p in plan.prune]
        else:
            rules = comp.readiness
            if comp.name in live.unserved:
                changed = list(live.unserved[comp.name])
            elif comp.name in live.sets:
                changed = [i.ref for i in live.sets[comp.name].changed] + [
                    p.ref for p in live.sets[comp.name].prune
                ]
            else:
                changed = []
        if changed:
            more = f" (+{len(changed) - 5} more)" if len(changed) > 5 else ""
            problems.append(f"{comp.title}: {len(changed)} object(s) differ: {', '.join(changed[:5])}{more}")
        for rule in rules:
            obj = (
                kube.get(rule.api_version, rule.kind, rule.name, rule.namespace)
                if kube.try_resource(rule.api_version, rule.kind) is not None
                else None
            )
            ok, why = is_ready(rule, obj)
            if not ok:
                problems.append(f"{comp.title}: {rule_name(rule)} not ready ({why})")
    return problems
