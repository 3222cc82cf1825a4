"""`kvinstall preflight -f FILE`: check every host over SSH; a table of host x check."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from kvinstall.cli.options import AcceptNewHostKeys, ConfigFile, OutputOpt, SkipChecks, StateDir
from kvinstall.cli.output import Format, Result

if TYPE_CHECKING:  # imported for annotations only: the command loads paramiko lazily
    from kvinstall.hosts.preflight import PreflightReport

_MARK = {"pass": "ok", "fail": "FAIL", "warn": "warn", "skipped": "skip"}


def register(app: typer.Typer) -> None:
    @app.command(
        "preflight", help="Check the hosts over SSH (virtualization, OS, resources, ports, modules)."
    )
    def preflight_cmd(
        file: ConfigFile,
        out: OutputOpt = Format.text,
        skip_check: SkipChecks = None,
        accept_new_host_keys: AcceptNewHostKeys = False,
        state_dir: StateDir = None,
    ) -> Result:
        from kvinstall.session import open_session

        session = open_session(file, state_override=state_dir)
        report = session.edges.preflight(
            session.config,
            accept_new_host_keys=accept_new_host_keys,
            skip=set(skip_check or ()),
            known_hosts=session.state / "known_hosts",
        )
        return Result(
            data=report.to_dict(),
            table=table(report),
            text=findings(report),
            notes=[f"warning: {w}" for w in report.warnings] if out is Format.text else [],
            error=report.failure(),  # after the report, with its own exit code
        )


def table(rep: PreflightReport) -> object:
    from rich.table import Table

    checks = list(dict.fromkeys(r.check for r in rep.results))
    t = Table(title="Preflight", show_lines=False)
    t.add_column("check")
    for host in rep.hosts:
        t.add_column(host)
    for check in checks:
        row = [check]
        for host in rep.hosts:
            r = rep.result(host, check)
            row.append("unreachable" if host in rep.host_errors else (_MARK[r.status] if r else "-"))
        t.add_row(*row)
    return t


def findings(rep: PreflightReport) -> str | None:
    lines = [f"{host}: {err}" for host, err in rep.host_errors.items()]
    for r in rep.results:
        if r.status in ("fail", "warn"):
            lines.append(f"{r.host}: {r.check}: {r.message}" + (f"\n    fix: {r.remedy}" if r.remedy else ""))
    return "\n".join(lines) or None
