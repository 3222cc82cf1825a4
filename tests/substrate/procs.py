"""Process, port and polling helpers shared by the substrate fixtures."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class ProcessDied(RuntimeError):
    """A server process exited while we waited for it (wait_until stops polling at once)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the caller retries start on a lost race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``check`` until it returns a truthy value; bounded by ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except ProcessDied:
            raise
        except Exception as exc:  # the server is not up yet; remember why for the timeout message
            last_exc = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}: {last_exc!r}")
        time.sleep(interval)


def descendants(pid: int) -> list[int]:
    """All live descendant pids of ``pid`` (from /proc), children first-level first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # the command name may contain spaces and parentheses: the ppid follows the last ')'
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            out.append(c)
            todo.append(c)
    return out


class Proc:
    """A background server process with its output in a log file; stop() kills it and its descendants."""

    def __init__(self, argv: Sequence[str], log: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.argv = list(argv)
        self.log = log
        self.env = env
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        main = threading.current_thread() is threading.main_thread()
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, cwd=self.cwd, start_new_session=True,
                # only from the main thread: the signal follows the spawning thread, and a server restarted
                # from a short-lived test thread must not die with it
                preexec_fn=_die_with_parent if main else None,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None, "not started"
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def check_alive(self, what: str) -> bool:
        """For wait_until: fail at once (with the log tail) when the process died instead of waiting."""
        if not self.alive():
            raise ProcessDied(f"{what} exited early; log {self.log}:\n{self.log_tail()}")
        return True

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen is None:
            return
        p = self.popen
        if p.poll() is None:
            kids = descendants(p.pid)
            _signal_all([p.pid, *kids], signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout)
            _signal_all([p.pid, *descendants(p.pid), *kids], signal.SIGKILL)
            p.wait(5)
        self.popen = None


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the test process dies (even by SIGKILL), so a killed
    pytest leaves no servers behind."""
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def run(argv: Sequence[str], check: bool = True, timeout: float = 60, input: bytes | None = None
        ) -> subprocess.CompletedProcess[bytes]:
    """Run a short command; on failure raise with its stderr (the substrate's own setup steps)."""
    cp = subprocess.run(list(argv), capture_output=True, timeout=timeout, input=input)
    if check and cp.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({cp.returncode}): {cp.stderr.decode(errors='replace')}")
    return cp
