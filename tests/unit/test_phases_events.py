"""The displays of a run: the live view on a terminal, plain lines, the log file; all redacted."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from kvinstall.phases.events import Events, JsonLines, LiveView, LogFile, PlainLines, Redactor

SECRET = "hunter2-very-secret"


def feed(events: Events) -> None:
    events.emit("run.start", command="apply", cluster="demo", log="/x.log", state="/s")
    events.emit("phase.start", phase="preflight", title="Host preflight")
    events.emit("host", phase="preflight", host="10.0.0.1", status="ok", message="")
    events.emit("host", phase="preflight", host="10.0.0.2", status="unreachable", message="no route")
    events.emit(
        "phase.end", phase="preflight", title="Host preflight", status="ok", seconds=1.5, summary="2 hosts"
    )
    events.emit(
        "phase.skip", phase="kubeone", title="Kubernetes cluster (KubeOne)", reason="manifest unchanged"
    )
    events.emit("phase.start", phase="component/kubevirt", title="KubeVirt v1.8.4")
    events.emit("object", phase="component/kubevirt", action="update",
                object="Deployment.apps/kubevirt/virt-operator[name=x]", changes=[])  # fmt: skip
    events.emit("progress", phase="component/kubevirt", what="ready", done=2, total=3)
    events.emit("log", phase="component/kubevirt", message=f"password is {SECRET}")


def test_live_view_shows_phases_hosts_progress_and_escapes_markup() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120, color_system=None)
    view = LiveView(console)
    events = Events([view], Redactor([SECRET]))
    feed(events)
    view.live.refresh()
    events.close()
    out = buf.getvalue()
    for text in ("Host preflight", "10.0.0.1", "ok", "10.0.0.2", "down", "manifest unchanged", "KubeVirt v1.8.4",
                 "ready 2/3", "password is <redacted>"):  # fmt: skip
        assert text in out, text
    assert SECRET not in out


def test_plain_json_and_log_never_show_the_secret(tmp_path: Path) -> None:
    plain, jsonl = io.StringIO(), io.StringIO()
    log = tmp_path / "run.log"
    events = Events([PlainLines(plain), JsonLines(jsonl), LogFile(log)], Redactor([SECRET]))
    feed(events)
    events.close()
    assert "==> Host preflight" in plain.getvalue()
    assert "--- Kubernetes cluster (KubeOne): skipped (manifest unchanged)" in plain.getvalue()
    lines = [json.loads(line) for line in jsonl.getvalue().splitlines()]
    assert [e["type"] for e in lines][:3] == ["run.start", "phase.start", "host"]
    for text in (plain.getvalue(), jsonl.getvalue(), log.read_text()):
        assert SECRET not in text
        assert "<redacted>" in text
