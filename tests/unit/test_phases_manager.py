"""The phase runner's --resume rules, with plain phase objects (no cluster): a plain run starts the
journal over, --resume skips only what the last run completed with the same inputs, and a phase
that is not resumable (verify) always runs."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kvinstall.errors import Interrupted, KvError
from kvinstall.phases.context import Options
from kvinstall.phases.events import Events
from kvinstall.phases.journal import Journal
from kvinstall.phases.manager import run_phases


class Step:
    def __init__(self, name: str, ran: list[str], *, fail: bool = False, resumable: bool = True) -> None:
        self.name = name
        self.title = name.title()
        self.ran = ran
        self.fail = fail
        self.resumable = resumable

    def should_run(self, ctx: Any) -> tuple[bool, str]:
        return True, ""

    def inputs(self, ctx: Any) -> Any:
        return {"same": "inputs"}

    def run(self, ctx: Any) -> str:
        if self.fail:
            raise KvError(f"{self.name} failed")
        self.ran.append(self.name)
        return "done"


class Keep:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def handle(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass


def context(state: Path, **options: Any) -> tuple[Any, Keep]:
    keep = Keep()
    ctx = SimpleNamespace(options=Options(**options), journal=Journal.load(state), events=Events([keep]),
                          stop=threading.Event(), summaries={}, config_file=state / "c.yaml")  # fmt: skip
    return ctx, keep


def skipped(keep: Keep) -> list[str]:
    return [e["phase"] for e in keep.events if e["type"] == "phase.skip"]


def test_resume_continues_the_last_run_only(tmp_path: Path) -> None:
    ran: list[str] = []
    # An older run completed everything.
    ctx, _ = context(tmp_path)
    run_phases(ctx, [Step("a", ran), Step("b", ran), Step("c", ran)])
    # The last (plain) run stopped in b: only a counts as done now.
    ctx, _ = context(tmp_path)
    with pytest.raises(KvError):
        run_phases(ctx, [Step("a", ran), Step("b", ran, fail=True), Step("c", ran)])
    ran.clear()
    ctx, keep = context(tmp_path, resume=True)
    run_phases(ctx, [Step("a", ran), Step("b", ran), Step("c", ran)])
    assert skipped(keep) == ["a"]
    assert ran == ["b", "c"]


def test_a_phase_that_is_not_resumable_always_runs(tmp_path: Path) -> None:
    ran: list[str] = []
    ctx, _ = context(tmp_path)
    run_phases(ctx, [Step("a", ran), Step("verify", ran, resumable=False)])
    ran.clear()
    ctx, keep = context(tmp_path, resume=True)
    run_phases(ctx, [Step("a", ran), Step("verify", ran, resumable=False)])
    assert skipped(keep) == ["a"]
    assert ran == ["verify"]


class InterruptMidEmit(Keep):
    """Sends SIGINT to this process while the events lock is held (inside a sink), the moment the
    first phase starts: where a user's Ctrl-C lands when the terminal has just shown that line."""

    def handle(self, event: dict[str, Any]) -> None:
        super().handle(event)
        if event["type"] == "phase.start" and event["phase"] == "a":
            os.kill(os.getpid(), signal.SIGINT)  # the handler runs before this method returns


@pytest.mark.timeout(60)  # a deadlocked emit would hang here: the bound turns it into a failure
def test_ctrl_c_while_an_event_is_being_written_stops_after_the_phase(tmp_path: Path) -> None:
    ran: list[str] = []
    keep = InterruptMidEmit()
    ctx = SimpleNamespace(options=Options(), journal=Journal.load(tmp_path), events=Events([keep]),
                          stop=threading.Event(), summaries={}, config_file=tmp_path / "c.yaml")  # fmt: skip
    with pytest.raises(Interrupted) as info:
        run_phases(ctx, [Step("a", ran), Step("b", ran)])
    assert ran == ["a"]  # the phase in flight finished; the next one never started
    assert "--resume" in (info.value.hint or "")
    warnings = [e["message"] for e in keep.events if e["type"] == "warning"]
    assert len(warnings) == 1 and "interrupt received" in warnings[0]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is restored
