"""`kvinstall preflight -f FILE`: check every host over SSH; a table of host x check."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from kvinstall.cli import output
from kvinstall.cli.options import AcceptNewHostKeys, ConfigFile, OutputOpt, SkipChecks, StateDir
from kvinstall.cli.output import Output

if TYPE_CHECKING:  # imported for annotations only: the command loads paramiko lazily
    from kvinstall.hosts.preflight import PreflightReport

_MARK = {"pass": "ok", "fail": "FAIL", "warn": "warn", "skipped": "skip"}


def register(app: typer.Typer) -> None:
    @app.command(
        "preflight", help="Check the hosts over SSH (virtualization, OS, resources, ports, modules)."
    )
    def preflight_cmd(
        file: ConfigFile,
        out: OutputOpt = Output.text,
        skip_check: SkipChecks = None,
        accept_new_host_keys: AcceptNewHostKeys = False,
        state_dir: StateDir = None,
    ) -> None:
        from kvinstall.config.loader import load_file
        from kvinstall.hosts.preflight import run_preflight
        from kvinstall.state import state_dir as resolve_state

        output.set_mode(out)
        loaded = load_file(file)
        state = resolve_state(file, loaded.config.name, state_dir)
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        report = run_preflight(
            loaded.config,
            accept_new_host_keys=accept_new_host_keys,
            skip=set(skip_check or ()),
            known_hosts_path=state / "known_hosts",
        )
        if out is Output.json:
            output.emit_json(report.to_dict())
            # The report is the one JSON document on stdout; the failure summary goes to stderr.
            output.set_mode(Output.text)
        else:
            render_table(report)
        report.raise_for_failures()


def render_table(rep: PreflightReport) -> None:
    from rich.table import Table

    checks = list(dict.fromkeys(r.check for r in rep.results))
    table = Table(title="Preflight", show_lines=False)
    table.add_column("check")
    for host in rep.hosts:
        table.add_column(host)
    for check in checks:
        row = [check]
        for host in rep.hosts:
            r = rep.result(host, check)
            row.append("unreachable" if host in rep.host_errors else (_MARK[r.status] if r else "-"))
        table.add_row(*row)
    output.console().print(table)
    for host, err in rep.host_errors.items():
        output.echo(f"{host}: {err}")
    for r in rep.results:
        if r.status in ("fail", "warn"):
            output.echo(f"{r.host}: {r.check}: {r.message}" + (f"\n    fix: {r.remedy}" if r.remedy else ""))
    for w in rep.warnings:
        output.err(f"warning: {w}")
