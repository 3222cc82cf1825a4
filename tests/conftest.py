"""Registers the substrate fixtures (real servers started by the suite; see tests/substrate/__init__.py).

``tests/`` is on sys.path (rootdir conftest), so the substrate is importable as ``substrate``.
A skipped test fails the run: every test must run in CI.
"""

from __future__ import annotations

import pytest

pytest_plugins = [
    "substrate.registries",
    "substrate.oci_images",
    "substrate.kube_api",
    "substrate.operator_sim",
    "substrate.host_lab",
    "substrate.debs",
    "substrate.kubeone_bin",
]

_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skipped:
        terminalreporter.write_line(f"FAILED: {len(_skipped)} test(s) skipped; no test may skip in CI: "
                                    + ", ".join(_skipped[:10]), red=True)
