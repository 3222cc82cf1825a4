"""Runs phases in order: --only / --skip (skips visible), --resume (skip what completed with the same
inputs), Ctrl-C (stop at the next safe point, say how to continue), events and journal."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

from kvinstall.errors import Interrupted, KvError, UsageError
from kvinstall.phases.base import Phase, phase_inputs_hash
from kvinstall.phases.context import Context


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
            selected = not o.only or any(phase_matches(phase, s) for s in o.only)
            if not selected or any(phase_matches(phase, s) for s in o.skip):
                reason = "not selected by --only" if not selected else "skipped by --skip"
                ctx.events.emit("phase.skip", phase=phase.name, title=phase.title, reason=reason)
                outcome.append((phase.name, "skipped"))
                continue
            run, why = phase.should_run(ctx)
            if not run:
                ctx.events.emit("phase.skip", phase=phase.name, title=phase.title, reason=why)
                outcome.append((phase.name, "skipped"))
                continue
            inputs = phase_inputs_hash(ctx, phase)
            if o.resume and getattr(phase, "resumable", True) and ctx.journal.completed(phase.name, inputs):
                ctx.events.emit(
                    "phase.skip",
                    phase=phase.name,
                    title=phase.title,
                    reason="completed in an earlier run with the same inputs (--resume)",
                )
                outcome.append((phase.name, "skipped"))
                continue
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
            except KeyboardInterrupt:
                _end(ctx, phase, t0, "failed", error={"message": "aborted"})
                raise Interrupted(
                    f"aborted during phase {phase.name}",
                    hint=f"run `kvinstall {command} -f {ctx.config_file}` again: it converges from where it stopped",
                ) from None
            ctx.journal.record(phase.name, inputs)
            ctx.summaries[phase.name] = summary
            _end(ctx, phase, t0, "ok", summary=summary)
            outcome.append((phase.name, "ok"))
    return outcome
