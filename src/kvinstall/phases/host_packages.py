"""Offline: point every host's apt at the site package repository before KubeOne installs containerd,
kubelet, kubeadm and kubectl from it (see hosts/packages.py)."""

from __future__ import annotations

from typing import Any

from kvinstall.phases.context import Context
from kvinstall.plan.model import Action, PhasePlan


class HostPackagesPhase:
    name = "host-packages"
    title = "Host package source (site repository)"
    resumable = True

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

    def plan(self, ctx: Context) -> PhasePlan:
        repo = ctx.desired.package_repository
        action = Action(
            action="run",
            target=f"apt on {len(ctx.desired.hosts)} host(s)",
            reason=f"install from the site package repository {repo}",
        )
        return PhasePlan(self.name, self.title, [action])

    def run(self, ctx: Context) -> str:
        changed = ctx.edges.configure_host_packages(ctx.config, known_hosts=ctx.state / "known_hosts")
        for host in sorted(h for h, c in changed.items() if c):
            ctx.events.emit("log", phase=self.name, message=f"{host}: apt now uses the site repository")
        repo = ctx.config.offline.package_repository
        assert repo is not None
        return f"{len(changed)} host(s) install from {repo.url} ({sum(changed.values())} changed)"
