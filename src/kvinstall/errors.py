"""Error types, each with its documented exit code.

Every failure a user can cause ends in one of these; the CLI prints `str(err)` and exits with
`err.exit_code`. The table below is the single source of the exit codes: the CLI help,
docs/exit-codes.md and the tests all read it from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ExitCode:
    code: int
    name: str
    meaning: str


# Ordered as they appear in `kvinstall --help` and docs/exit-codes.md.
EXIT_CODES: tuple[ExitCode, ...] = (
    ExitCode(0, "ok", "success (plan: no changes)"),
    ExitCode(1, "internal", "unexpected internal error (a bug: please report it with the log file)"),
    ExitCode(2, "changes", "plan --detailed-exitcode: the plan has changes"),
    ExitCode(3, "config", "the configuration file is invalid (YAML, fields or cross-field checks)"),
    ExitCode(
        4, "declined", "the user declined, or confirmation was needed without a terminal and without --yes"
    ),
    ExitCode(5, "preflight", "a host preflight check failed"),
    ExitCode(
        6, "ssh", "a host could not be reached, refused the login, or presented an unknown/changed host key"
    ),
    ExitCode(7, "kubeone", "KubeOne failed (its own exit code is named in the message)"),
    ExitCode(8, "cluster", "the Kubernetes API refused a request or could not be reached"),
    ExitCode(9, "timeout", "a component did not become ready in time"),
    ExitCode(10, "registry", "an OCI registry refused a request or could not be reached"),
    ExitCode(11, "integrity", "a digest did not match: a corrupt bundle, blob or tampered artifact"),
    ExitCode(12, "artifact", "an upstream artifact could not be fetched or rendered"),
    ExitCode(13, "local-io", "a local file could not be read or written (missing, permission, disk full)"),
    ExitCode(14, "incomplete", "offline mode: the site registry lacks artifacts the platform needs"),
    ExitCode(
        15,
        "upgrade",
        "a version change was refused (skipped minor, downgrade, version skew, or a drifted/unhealthy "
        "platform to repair first); the message names the next allowed step",
    ),
    ExitCode(64, "usage", "wrong command-line usage (unknown option, missing argument)"),
    ExitCode(130, "interrupted", "interrupted (Ctrl-C) at a safe point; re-run to continue"),
)

_BY_NAME = {e.name: e.code for e in EXIT_CODES}


def exit_code(name: str) -> int:
    return _BY_NAME[name]


class KvError(Exception):
    """Base of every error a user can cause. `where` names the file, host, object or artifact."""

    exit_name = "internal"

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    @property
    def exit_code(self) -> int:
        return _BY_NAME[self.exit_name]

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def to_dict(self) -> dict[str, object]:
        return {
            "error": type(self).__name__,
            "exitCode": self.exit_code,
            "message": self.message,
            "where": self.where,
            "hint": self.hint,
        }


class ConfigError(KvError):
    """The configuration is invalid. `problems` holds every problem found (all are reported at once)."""

    exit_name = "config"

    def __init__(self, problems: Sequence[object], message: str | None = None) -> None:
        self.problems: list[Any] = list(problems)
        super().__init__(message or f"{len(problems)} problem(s) in the configuration")

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems) or self.message


class DeclinedError(KvError):
    exit_name = "declined"


class PreflightError(KvError):
    exit_name = "preflight"


class SSHError(KvError):
    exit_name = "ssh"


class KubeOneError(KvError):
    exit_name = "kubeone"


class ClusterError(KvError):
    exit_name = "cluster"


class ReadinessTimeout(KvError):
    exit_name = "timeout"


class RegistryError(KvError):
    exit_name = "registry"


class IntegrityError(KvError):
    exit_name = "integrity"


class ArtifactError(KvError):
    exit_name = "artifact"


class LocalIOError(KvError):
    exit_name = "local-io"


class IncompleteMirrorError(KvError):
    exit_name = "incomplete"


class UpgradeRefused(KvError):
    """A version change apply will not make; `refusals` hold each one with its next allowed step."""

    exit_name = "upgrade"

    def __init__(self, refusals: Sequence[object], *, hint: str | None = None) -> None:
        self.refusals = list(refusals)
        lines = "\n  ".join(str(r) for r in self.refusals)
        super().__init__(f"upgrade refused:\n  {lines}", hint=hint)

    def to_dict(self) -> dict[str, object]:
        d = super().to_dict()
        d["refusals"] = [r.to_dict() if hasattr(r, "to_dict") else str(r) for r in self.refusals]
        return d


class UsageError(KvError):
    exit_name = "usage"


class Interrupted(KvError):
    exit_name = "interrupted"
