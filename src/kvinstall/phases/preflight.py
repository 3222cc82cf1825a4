"""Host preflight: facts from every host over SSH, then every check that applies to it."""

from __future__ import annotations

from typing import Any

from kvinstall.phases.context import Context
from kvinstall.plan.model import Action, PhasePlan


class PreflightPhase:
    name = "preflight"
    title = "Host preflight"
    resumable = True

    def should_run(self, ctx: Context) -> tuple[bool, str]:
        return True, ""

    def inputs(self, ctx: Context) -> Any:
        return [h.model_dump(mode="json") for h in ctx.config.hosts]

    def plan(self, ctx: Context) -> PhasePlan:
        untrusted, findings = observe_hosts(ctx) if ctx.observe_hosts else ({}, {})
        actions = []
        for h in ctx.desired.hosts:
            details: dict[str, Any] = {"role": h.role, "user": h.user, "checks": list(h.checks)}
            if h.address in untrusted:
                details["untrustedHostKey"] = untrusted[h.address]
            if h.address in findings:
                details["findings"] = findings[h.address]
            actions.append(Action(action="run", target=f"host {h.name} ({h.address})", details=details))
        return PhasePlan(self.name, self.title, actions)

    def run(self, ctx: Context) -> str:
        o = ctx.options
        report = ctx.edges.preflight(
            ctx.config,
            accept_new_host_keys=o.accept_new_host_keys,
            skip=set(o.skip_checks),
            known_hosts=ctx.state / "known_hosts",
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


def observe_hosts(ctx: Context) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Host facts and checks for the plan, per host address: keys not yet trusted (listed, never
    trusted here) and the checks that did not pass."""
    from kvinstall.hosts.hostkeys import host_id

    config = ctx.config
    report = ctx.edges.preflight(
        config,
        accept_new_host_keys=False,
        skip=set(ctx.options.skip_checks),
        known_hosts=ctx.state / "known_hosts",
    )
    untrusted: dict[str, str] = {}
    results: dict[str, list[str]] = {}
    for host, name in zip(config.hosts, report.hosts, strict=True):
        hid = host_id(host.address, host.port or config.ssh.port)
        if hid in report.untrusted_host_keys:
            untrusted[host.address] = report.untrusted_host_keys[hid]
        if name in report.host_errors:
            results[host.address] = [f"unreachable: {str(report.host_errors[name]).splitlines()[0]}"]
        else:
            results[host.address] = [
                f"{r.check}: {r.status}" + (f" ({r.message})" if r.status != "pass" else "")
                for r in report.results
                if r.host == name and r.status != "pass"
            ]
    return untrusted, results
