"""The one setup every command shares: load the file, the state directory's path, the release catalog,
the components and the desired state; and the confirmation rule (terminal prompt, --yes, refusal).

Only apply (and reset) start a run, which creates the state directory, the run's log file and the
journal, and only apply writes Dex's generated admin credential. Every other command works on a dry
context and leaves the state directory as it found it; a secret whose source is not set reads as
"value unknown" there (kvinstall.config.placeholders), where apply requires it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from kvinstall.catalog import Catalog, load_catalog
from kvinstall.components import components_for
from kvinstall.components.base import Component
from kvinstall.components.dex import AdminCredentialsFile
from kvinstall.config.loader import Loaded, load_file
from kvinstall.config.models import Config
from kvinstall.edges import Edges
from kvinstall.errors import DeclinedError
from kvinstall.model import ArtifactSource, DesiredState
from kvinstall.phases.apply import ApplySteps, Outcome, run_apply
from kvinstall.phases.context import Context, Options
from kvinstall.phases.events import Events, JsonLines, LiveView, LogFile, PlainLines, Redactor, Sink
from kvinstall.phases.journal import Journal
from kvinstall.plan.desired import desire, desire_upstream
from kvinstall.plan.model import Plan
from kvinstall.state import state_dir

Display = str  # "live" | "plain" | "json" | "none"


@dataclass
class Session:
    file: Path
    loaded: Loaded
    catalog: Catalog
    state: Path  # its path; created only when a run starts
    edges: Edges
    for_apply: bool  # secrets are required and Dex's credential is generated (apply only)
    credentials: AdminCredentialsFile
    components: list[Component]
    # The config desire renders: the loaded one for apply, else with unknown secrets as placeholders.
    desire_config: Config
    unknown_secrets: list[str] = field(default_factory=list)

    @property
    def config(self) -> Config:
        return self.loaded.config

    @property
    def warnings(self) -> list[str]:
        """The loader's warnings and the secrets this (dry) session could not read."""
        return [str(w) for w in self.loaded.warnings] + self.unknown_secrets

    def source(self, *, fetch: bool) -> ArtifactSource:
        """Upstream artifacts: from the cache only (fetch=False), or fetched and verified (the site
        registry of an offline config, for apply)."""
        return (
            self.edges.artifacts(self.desire_config, fetch=True)
            if fetch
            else self.edges.artifacts(fetch=False)
        )

    def desire(self, source: ArtifactSource, *, upstream: bool = False) -> DesiredState:
        """The desired state (pure); `upstream`: of the config with offline mode off (mirror)."""
        how = desire_upstream if upstream else desire
        return how(self.desire_config, self.catalog, source, components=self.components)

    def context(self, options: Options, *, source: ArtifactSource | None = None) -> Context:
        """A context for a dry run (plan, status): it writes nothing, and emits nowhere."""
        src = source or self.source(fetch=False)
        return Context(
            config=self.config,
            config_file=self.file,
            catalog=self.catalog,
            state=self.state,
            desired=self.desire(src),
            source=src,
            events=Events([]),
            journal=Journal.load(self.state),
            options=options,
            edges=self.edges,
        )

    def plan(self, options: Options, *, observe_hosts: bool = False) -> tuple[Context, Plan]:
        """`kvinstall plan`: apply's phases walked dry on a dry context (its desired state included)."""
        from kvinstall.phases.manager import apply_phases, dry_run

        ctx = self.context(options)
        ctx.observe_hosts = observe_hosts
        return ctx, dry_run(ctx, apply_phases(ctx), warnings=self.warnings)

    def start_run(
        self, options: Options, *, command: str, display: Display, extra_sinks: Sequence[Sink] = ()
    ) -> Context:
        """A run (apply, reset): the desired state first, then the state directory, the log file, the
        journal and the event sinks. The caller closes ctx.events."""
        source = self.source(fetch=self.for_apply)
        desired = self.desire(source)
        self.state.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        log_path = self.state / "logs" / f"{command}-{stamp}.log"
        sinks: list[Sink] = [LogFile(log_path)]
        if display == "json":
            sinks.append(JsonLines())
        elif display == "live":
            sinks.append(LiveView())
        elif display == "plain":
            sinks.append(PlainLines())
        sinks += extra_sinks
        events = Events(sinks, self.redactor())
        ctx = Context(
            config=self.config,
            config_file=self.file,
            catalog=self.catalog,
            state=self.state,
            desired=desired,
            source=source,
            events=events,
            journal=Journal.load(self.state),
            options=options,
            edges=self.edges,
        )
        events.emit(
            "run.start", command=command, cluster=self.config.name, log=str(log_path), state=str(self.state)
        )
        for w in self.warnings:
            events.emit("warning", message=w)
        return ctx

    def redactor(self) -> Redactor:
        """Every secret value this session knows: they never reach the output, the log or the state."""
        red = Redactor()
        for _, secret in self.config.secrets():
            if secret.is_resolvable() is None:
                red.add(secret.reveal())
        creds = self.credentials.current
        if creds is not None and not creds.generated_at_apply:
            red.add(creds.password)
        return red

    def apply(self, ctx: Context, confirm: Callable[[Plan], None]) -> Outcome:
        """apply: the plan, the question, then (the credential written first) the phases."""
        return run_apply(ctx, ApplySteps(confirm=confirm, before_run=self.credentials.save))


def open_session(
    file: Path,
    *,
    state_override: Path | None = None,
    edges: Edges | None = None,
    for_apply: bool = False,
    loaded: Loaded | None = None,
) -> Session:
    from kvinstall.config.placeholders import require_secrets, with_unknown_secrets

    loaded = loaded or load_file(file)
    config = loaded.config
    state = state_dir(file, config.name, state_override)
    unknown: list[tuple[str, str]] = []
    if for_apply:
        require_secrets(
            config, placed=loaded.warnings, source=str(file)
        )  # before anything is fetched or written
        desire_config = config
    else:
        desire_config, unknown = with_unknown_secrets(config)
    credentials = AdminCredentialsFile(state, generate=for_apply)
    return Session(
        file=file,
        loaded=loaded,
        catalog=load_catalog(),
        state=state,
        edges=edges or Edges(),
        for_apply=for_apply,
        credentials=credentials,
        components=components_for(credentials),
        desire_config=desire_config,
        unknown_secrets=[
            f"{path}: value unknown ({reason}); the Secret data that holds it shows a placeholder, apply needs it"
            for path, reason in unknown
        ],
    )


def pick_display(json_output: bool) -> Display:
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
