"""A run's setup, shared by apply, status and reset: load, state directory, log file, redaction,
artifact source, desired state; and the confirmation rule (terminal prompt, --yes, refusal)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from kvinstall.catalog import load_catalog
from kvinstall.config.loader import Loaded, load_file
from kvinstall.config.models import Config
from kvinstall.errors import DeclinedError
from kvinstall.model import ArtifactSource
from kvinstall.phases.context import Context, Options
from kvinstall.phases.events import Events, JsonLines, LiveView, LogFile, PlainLines, Redactor, Sink
from kvinstall.phases.journal import Journal
from kvinstall.plan.desired import desire
from kvinstall.state import state_dir

Display = str  # "live" | "plain" | "json" | "none"


def redactor_for(config: Config, state: Path) -> Redactor:
    red = Redactor()
    for _, secret in config.secrets():
        if secret.is_resolvable() is None:
            red.add(secret.reveal())
    if config.auth.mode == "basic":
        from kvinstall.components.dex import load_admin_credentials

        red.add(load_admin_credentials(state, config).password)
    return red


def open_session(
    file: Path,
    options: Options,
    *,
    command: str,
    display: Display,
    state_override: Path | None = None,
    source: ArtifactSource | None = None,
    loaded: Loaded | None = None,
    extra_sinks: list[Sink] | None = None,
) -> Context:
    loaded = loaded or load_file(file)
    config = loaded.config
    state = state_dir(file, config.name, state_override)
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    log_path = state / "logs" / f"{command}-{stamp}.log"
    sinks: list[Sink] = [LogFile(log_path)]
    if display == "json":
        sinks.append(JsonLines())
    elif display == "live":
        sinks.append(LiveView())
    elif display == "plain":
        sinks.append(PlainLines())
    sinks += extra_sinks or []
    events = Events(sinks, redactor_for(config, state))
    catalog = load_catalog()
    from kvinstall.components import default_components
    from kvinstall.components.artifacts import source_for

    src = source or source_for(config)
    desired = desire(config, catalog, src, components=default_components(state))
    ctx = Context(
        config=config,
        config_file=file,
        catalog=catalog,
        state=state,
        desired=desired,
        source=src,
        events=events,
        journal=Journal.load(state),
        options=options,
    )
    events.emit("run.start", command=command, cluster=config.name, log=str(log_path), state=str(state))
    for w in loaded.warnings:
        events.emit("warning", message=str(w))
    return ctx


def pick_display(json_output: bool) -> Display:
    import os

    if json_output:
        return "json"
    if os.environ.get("NO_COLOR") or not sys.stdout.isatty():
        return "plain"
    return "live"


def confirm(question: str, *, yes: bool, ask: Callable[[str], bool] | None = None) -> None:
    """Go on with --yes; ask on a terminal; refuse clearly without one. A 'no' is exit code 4."""
    if yes:
        return
    if ask is None:
        if not sys.stdin.isatty():
            raise DeclinedError(
                "confirmation needed but there is no terminal to ask on",
                hint="pass --yes to apply unattended (CI)",
            )

        def ask(q: str) -> bool:
            answer = input(f"{q} [yes/no]: ").strip().lower()
            return answer in ("y", "yes")

    if not ask(question):
        raise DeclinedError("declined: nothing was changed")
