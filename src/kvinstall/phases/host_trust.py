"""The CA files KubeOne's API cannot carry, on the hosts before it runs: the site registry's CA into
the trust store (containerd's), the OIDC issuer's CA for the kube-apiserver (see hosts/trust.py)."""

from __future__ import annotations

from typing import Any

from kvinstall.phases.context import Context
from kvinstall.plan.model import Action, PhasePlan


class HostTrustPhase:
    name = "host-trust"
    title = "Host CA files"
    resumable = True

    def should_run(self, ctx: Context) -> tuple[bool, str]:
        if not ctx.desired.host_ca_files:
            return False, "no offline.caFile (TLS) or auth.issuerCAFile"
        return True, ""

    def inputs(self, ctx: Context) -> Any:
        from kvinstall.hosts.trust import digest

        return [digest(ctx.config), [h.address for h in ctx.config.hosts]]

    def plan(self, ctx: Context) -> PhasePlan:
        action = Action(
            action="run",
            target=f"CA files on {len(ctx.desired.hosts)} host(s)",
            reason="KubeOne cannot carry them: " + ", ".join(ctx.desired.host_ca_files),
        )
        return PhasePlan(self.name, self.title, [action])

    def run(self, ctx: Context) -> str:
        changed = ctx.edges.install_host_files(ctx.config, known_hosts=ctx.state / "known_hosts")
        for host in sorted(h for h, c in changed.items() if c):
            ctx.events.emit("log", phase=self.name, message=f"{host}: CA files updated")
        return f"CA files on {len(changed)} host(s) ({sum(changed.values())} changed)"
