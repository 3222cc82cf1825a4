"""Stopping a copy promptly: a cancel token that transfers check between pieces, and the worker pool.

A Ctrl-C (or the first failure of a parallel run) cancels the token; every transfer checks it
before writing or sending its next piece and stops with `Cancelled`, and no queued transfer starts.
The pool's threads are daemons and the caller waits for them only a short grace: a transfer stuck
in a slow read cannot hold the process (what it leaves is a .partial the next run verifies).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar, cast

T = TypeVar("T")

GRACE_SECONDS = 1.0  # long enough for a transfer between pieces to stop cleanly, no longer


class Cancelled(Exception):
    """The run was cancelled; raised by the transfer that noticed."""


class CancelToken:
    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled")

    def sleep(self, seconds: float) -> None:
        """Sleep, but wake (and raise Cancelled) as soon as the token is cancelled."""
        if self._event.wait(max(0.0, seconds)):
            raise Cancelled("cancelled")


def run_parallel(tasks: list[Callable[[], T]], workers: int, cancel: CancelToken | None = None) -> list[T]:
    """Run tasks on `workers` threads; results in task order.

    The first failure cancels the token (queued tasks never start, running ones stop at their next
    check) and is re-raised. An exception in the caller's thread while waiting (KeyboardInterrupt)
    does the same and propagates after at most GRACE_SECONDS.
    """
    if not tasks:
        return []
    token = cancel or CancelToken()
    results: list[T | None] = [None] * len(tasks)
    errors: list[BaseException] = []
    lock = threading.Lock()
    pending = iter(range(len(tasks)))
    count = min(max(1, workers), len(tasks))
    alive = [count]
    ran = [0]
    finished = threading.Event()

    def worker() -> None:
        try:
            while not token.cancelled:
                with lock:
                    i = next(pending, None)
                if i is None:
                    return
                try:
                    results[i] = tasks[i]()
                    with lock:
                        ran[0] += 1
                except BaseException as exc:  # handed to the caller's thread
                    with lock:
                        errors.append(exc)
                    token.cancel()
                    return
        finally:
            with lock:
                alive[0] -= 1
                if alive[0] == 0:
                    finished.set()

    for n in range(count):
        threading.Thread(target=worker, name=f"mirror-{n}", daemon=True).start()
    try:
        finished.wait()
    except BaseException:
        token.cancel()
        finished.wait(GRACE_SECONDS)
        raise
    real = [e for e in errors if not isinstance(e, Cancelled)]
    if real:
        raise real[0]
    if ran[0] < len(tasks):  # cancelled from outside before every task ran
        raise Cancelled("cancelled")
    return [cast("T", r) for r in results]
