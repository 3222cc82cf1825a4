"""The phase manager: the list of apply's phases, and two ways to walk it. `run_phases` runs them in
order: --only / --skip (skips visible), --resume (skip what completed with the same inputs), Ctrl-C
(stop at the next safe point, say how to continue), events and journal. `dry_run` walks the same list
without doing anything: each phase says what it would do, and that is the Plan (`kvinstall plan`, and
what apply shows before it asks)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from types import FrameType

from kvinstall.errors import Interrupted, KvError, UsageError
from kvinstall.phases.base import Phase
from kvinstall.phases.bootstrap import BootstrapPhase
from kvinstall.phases.component import ComponentPhase
from kvinstall.phases.context import Context
from kvinstall.phases.gate import GatePhase
from kvinstall.phases.host_packages import HostPackagesPhase
from kvinstall.phases.journal import input_hash
from kvinstall.phases.kubeone import KubeOnePhase
from kvinstall.phases.preflight import PreflightPhase
from kvinstall.phases.prune import PrunePhase
from kvinstall.phases.verify import VerifyPhase
from kvinstall.plan.model import Action, Observed, Plan


def apply_phases(ctx: Context) -> list[Phase]:
    return [
        # The gate first: it proves the site registry complete before any host is touched
        # (preflight connects to every host over SSH).
        GatePhase(),
        PreflightPhase(),
        HostPackagesPhase(),
        KubeOnePhase(),
        BootstrapPhase(),
        *(ComponentPhase(c) for c in ctx.desired.components),
        PrunePhase(),
        VerifyPhase(),
    ]


def phase_inputs_hash(ctx: Context, phase: Phase) -> str:
    return input_hash({"phase": phase.name, "inputs": phase.inputs(ctx)})


def phase_matches(phase: Phase, selector: str) -> bool:
    """`component` selects every component phase; `component/kubevirt` or `kubevirt` one of them."""
    return selector in (phase.name, phase.name.split("/")[-1]) or (
        selector == "component" and phase.name.startswith("component/")
    )


def check_selectors(phases: Sequence[Phase], selectors: frozenset[str]) -> None:
    unknown = [s for s in selectors if not any(phase_matches(p, s) for p in phases) and s != "component"]
    if unknown:
        names = ", ".join(p.name for p in phases)
        raise UsageError(f"unknown phase(s): {', '.join(sorted(unknown))}", hint=f"phases: {names}")


@contextmanager
def stop_on_sigint(ctx: Context) -> Iterator[None]:
    """First Ctrl-C: finish the current step, then stop (a readiness wait, which writes nothing, ends at
    once). Second: stop now."""
    warnings: list[threading.Thread] = []

    def warn() -> None:
        ctx.events.emit(
            "warning", message="interrupt received: stopping after the current step (again to abort)"
        )

    def handler(signum: int, frame: FrameType | None) -> None:
        if ctx.stop.is_set():
            raise KeyboardInterrupt
        ctx.stop.set()
        # Not emitted here: the handler runs on the main thread between two bytecodes, possibly while
        # that thread holds the events lock (mid-emit), and emitting would deadlock the run.
        thread = threading.Thread(target=warn, name="sigint-warning", daemon=True)
        warnings.append(thread)
        thread.start()

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread (tests driving apply in a thread)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        for thread in warnings:  # the warning is out before the run's last event
            thread.join(10)


def decide(ctx: Context, phase: Phase) -> tuple[bool, str]:
    """Will the phase run? (run, why): the selection (--only/--skip), the phase's own rule, --resume.
    One decision for the run and the dry run alike."""
    o = ctx.options
    selected = not o.only or any(phase_matches(phase, s) for s in o.only)
    if not selected:
        return False, "not selected by --only"
    if any(phase_matches(phase, s) for s in o.skip):
        return False, "skipped by --skip"
    run, why = phase.should_run(ctx)
    if not run:
        return False, why
    if o.resume and phase.resumable and ctx.journal.completed(phase.name, phase_inputs_hash(ctx, phase)):
        return False, "completed in an earlier run with the same inputs (--resume)"
    return True, why


def dry_run(ctx: Context, phases: Sequence[Phase], *, warnings: Sequence[str] = ()) -> Plan:
    """The plan: every phase's dry run, in order; a phase that will not run shows as one `skip`."""
    o = ctx.options
    check_selectors(phases, o.only | o.skip)
    observed = Observed(hosts=ctx.observe_hosts)
    if ctx.live() is not None:
        observed.cluster = True
    elif ctx.observe_notes:
        observed.notes += ctx.observe_notes
    else:
        observed.notes.append(
            "cluster: not created yet (no kubeconfig in the state directory)"
            if o.kubeconfig is None
            else f"cluster: no kubeconfig at {o.kubeconfig}"
        )
    if not ctx.observe_hosts:
        observed.notes.append(
            "hosts: not contacted by the plan (--refresh-hosts does; the preflight phase always does)"
        )
    planned = []
    for phase in phases:
        run, why = decide(ctx, phase)
        step = phase.plan(ctx)
        if not run:
            # The phase's own skip keeps its details (KubeOne's manifest); the reason is the run's.
            own = step.actions[0] if step.skipped and len(step.actions) == 1 else None
            step.actions = [
                replace(own, reason=why) if own else Action(action="skip", target=phase.title, reason=why)
            ]
        planned.append(step)
    return Plan(cluster=ctx.config.name, phases=planned, observed=observed, warnings=list(warnings))


def _end(ctx: Context, phase: Phase, t0: float, status: str, **extra: object) -> None:
    seconds = round(time.monotonic() - t0, 3)
    ctx.events.emit("phase.end", phase=phase.name, title=phase.title, status=status, seconds=seconds, **extra)


def run_phases(ctx: Context, phases: Sequence[Phase], *, command: str = "apply") -> list[tuple[str, str]]:
    """Run each phase; returns (name, status) per phase. Raises the first failure (after its event)."""
    o = ctx.options
    check_selectors(phases, o.only | o.skip)
    outcome: list[tuple[str, str]] = []
    if not o.resume:
        # The journal records this run only: --resume continues the last run, not some older one
        # whose completed phases may since have drifted.
        ctx.journal.start_over()
    with stop_on_sigint(ctx):
        for phase in phases:
            if ctx.stop.is_set():
                raise Interrupted(
                    f"stopped before phase {phase.name}; completed: {', '.join(n for n, s in outcome if s == 'ok')}",
                    hint=f"run `kvinstall {command} -f {ctx.config_file} --resume` to continue",
                )
            run, why = decide(ctx, phase)
            if not run:
                ctx.events.emit("phase.skip", phase=phase.name, title=phase.title, reason=why)
                outcome.append((phase.name, "skipped"))
                continue
            inputs = phase_inputs_hash(ctx, phase)
            ctx.events.emit("phase.start", phase=phase.name, title=phase.title, reason=why or None)
            t0 = time.monotonic()
            try:
                summary = phase.run(ctx)
            except Interrupted as exc:
                # Cut short (e.g. a readiness wait): the phase is not recorded as done, so --resume
                # runs it again; it converges from where it stopped.
                _end(ctx, phase, t0, "failed", error=exc.to_dict())
                raise Interrupted(
                    f"{exc.message} (phase {phase.name})",
                    hint=f"run `kvinstall {command} -f {ctx.config_file} --resume` to continue",
                ) from exc
            except KvError as exc:
                _end(ctx, phase, t0, "failed", error=exc.to_dict())
                raise
            except KeyboardInterrupt as exc:
                _end(ctx, phase, t0, "failed", error={"message": "aborted"})
                raise Interrupted(
                    f"aborted during phase {phase.name}",
                    hint=f"run `kvinstall {command} -f {ctx.config_file}` again: it converges from where it stopped",
                ) from exc
            ctx.journal.record(phase.name, inputs)
            ctx.summaries[phase.name] = summary
            _end(ctx, phase, t0, "ok", summary=summary)
            outcome.append((phase.name, "ok"))
    return outcome
