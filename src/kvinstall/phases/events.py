"""Events of a run, and where they go: the log file (always), and one of a live rich view, plain
lines, or JSON Lines (`--output json`, schema in events.schema.json beside this module).

Every text that leaves the process passes the Redactor first: secret values never reach stdout,
the log file or the JSON stream.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

EVENTS_SCHEMA = "kvinstall.io/events/v1"
REDACTED = "<redacted>"


class Redactor:
    """Replaces every known secret value in a text. Values shorter than 4 characters are ignored
    (they would blank out ordinary words) — kvinstall's own generated secrets are long."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._values: list[str] = []
        for s in secrets:
            self.add(s)

    def add(self, value: str) -> None:
        if len(value) >= 4 and value not in self._values:
            self._values.append(value)
            self._values.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for v in self._values:
            if v in text:
                text = text.replace(v, REDACTED)
        return text

    def data(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self(obj)
        if isinstance(obj, dict):
            return {k: self.data(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.data(v) for v in obj]
        return obj


class Sink(Protocol):
    def handle(self, event: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Events:
    """The one emitter a run uses. Thread-safe (phases report from worker threads)."""

    def __init__(self, sinks: list[Sink], redactor: Redactor | None = None) -> None:
        self.sinks = sinks
        self.redact = redactor or Redactor()
        self._lock = threading.Lock()

    def emit(self, type_: str, **fields: Any) -> None:
        event = {"schema": EVENTS_SCHEMA, "time": _now(), "type": type_, **self.redact.data(fields)}
        with self._lock:
            for sink in self.sinks:
                sink.handle(event)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


class LogFile:
    """Every event as one human-readable line, appended to the run's log file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh: TextIO = path.open("a", encoding="utf-8")

    def handle(self, event: dict[str, Any]) -> None:
        fields = {k: v for k, v in event.items() if k not in ("schema", "time", "type")}
        self._fh.write(f"{event['time']} {event['type']} {json.dumps(fields, default=str)}\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class JsonLines:
    """`--output json`: one JSON object per line on stdout."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def handle(self, event: dict[str, Any]) -> None:
        self.stream.write(json.dumps(event, default=str) + "\n")
        self.stream.flush()

    def close(self) -> None:
        pass


def _line(event: dict[str, Any]) -> str | None:
    t = event["type"]
    phase = event.get("phase", "")
    if t == "run.start":
        return f"kvinstall {event.get('command')} {event.get('cluster')}: log {event.get('log')}"
    if t == "phase.start":
        reason = f" ({event['reason']})" if event.get("reason") else ""
        return f"==> {event.get('title', phase)}{reason}"
    if t == "phase.skip":
        return f"--- {event.get('title', phase)}: skipped ({event.get('reason')})"
    if t == "phase.end":
        status = event.get("status")
        return f"<== {event.get('title', phase)}: {status} in {event.get('seconds', 0):.1f}s" + (
            f" ({event['summary']})" if event.get("summary") else ""
        )
    if t == "host":
        return f"    {event.get('host')}: {event.get('status')} {event.get('message', '')}".rstrip()
    if t == "object":
        return f"    {event.get('action')} {event.get('object')}"
    if t == "ready":
        return f"    ready: {event.get('object')}"
    if t == "progress":
        return None
    if t == "log":
        return f"    {event.get('message')}"
    if t == "warning":
        return f"warning: {event.get('message')}"
    if t == "run.end":
        return f"{event.get('status')}: {event.get('message', '')}".rstrip(": ")
    return None


class PlainLines:
    """Plain lines for logs and pipes (no TTY, or NO_COLOR)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def handle(self, event: dict[str, Any]) -> None:
        text = _line(event)
        if text is not None:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        pass


class LiveView:
    """A rich live view on a terminal: the phase list with spinners and timings, a row per host during
    preflight, readiness progress of the running component, and the latest line."""

    _MARKS = {"ok": "[green]✓[/]", "skipped": "[dim]·[/]", "failed": "[red]✗[/]"}
    _HOST = {
        "ok": "[green]ok[/]",
        "warn": "[yellow]warn[/]",
        "fail": "[red]fail[/]",
        "unreachable": "[red]down[/]",
    }

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = console or Console()
        self.phases: dict[str, dict[str, Any]] = {}
        self.hosts: dict[str, str] = {}
        self.last = ""
        # Started with the first phase: before it, apply shows the plan and may ask on this terminal.
        self.live = Live(console=self.console, refresh_per_second=8, transient=False)
        self.started = False

    def _render(self) -> Any:
        from rich.markup import escape
        from rich.spinner import Spinner
        from rich.table import Table

        table = Table.grid(padding=(0, 1))
        for name, info in self.phases.items():
            status = info["status"]
            if status == "running":
                mark: Any = Spinner("dots")
                took = f"{time.monotonic() - info['t0']:.0f}s"
                if info.get("progress"):
                    took += f"  {info['progress']}"
            else:
                mark = self._MARKS.get(status, "?")
                took = f"{info.get('seconds', 0):.1f}s" if status != "skipped" else info.get("reason", "")
            table.add_row(mark, escape(info["title"]), f"[dim]{escape(took)}[/]")
            if name == "preflight":
                for host, hstatus in self.hosts.items():
                    table.add_row("", f"  {escape(host)}", self._HOST.get(hstatus, escape(hstatus)))
        if self.last:
            table.add_row("", f"[dim]{escape(self.last)}[/]", "")
        return table

    def handle(self, event: dict[str, Any]) -> None:
        t = event["type"]
        phase = event.get("phase", "")
        if not self.started:
            if not t.startswith("phase."):
                text = _line(event)
                if text:
                    self.console.print(text, markup=False, highlight=False)
                return
            self.live.start()
            self.started = True
        if t == "phase.start":
            self.phases[phase] = {
                "title": event.get("title", phase),
                "status": "running",
                "t0": time.monotonic(),
            }
        elif t == "phase.end" and phase in self.phases:
            self.phases[phase].update(status=event.get("status"), seconds=event.get("seconds", 0))
        elif t == "phase.skip":
            self.phases[phase] = {"title": event.get("title", phase), "status": "skipped",
                                  "reason": event.get("reason", ""), "t0": 0}  # fmt: skip
        elif t == "host":
            self.hosts[str(event.get("host"))] = str(event.get("status"))
        elif t == "progress" and phase in self.phases:
            self.phases[phase]["progress"] = f"{event.get('what')} {event.get('done')}/{event.get('total')}"
        elif t in ("object", "ready", "log"):
            self.last = (_line(event) or "").strip()
        elif t in ("warning", "run.end"):
            text = _line(event)
            if text:
                self.live.console.print(text, markup=False, highlight=False)
        self.live.update(self._render())

    def close(self) -> None:
        if self.started:
            self.live.update(self._render())
            self.live.stop()
