"""The `kvinstall` command: the typer app, its sub-commands, and the one place where results are shown
and errors become exit codes."""

from __future__ import annotations

import os
import sys
import traceback

import typer

from kvinstall import __version__
from kvinstall.cli.output import Invocation, Result, err, report_error, show
from kvinstall.errors import EXIT_CODES, KvError, exit_code

_EXIT_TABLE = "\n".join(f"  {e.code:>3}  {e.meaning}" for e in EXIT_CODES)

app = typer.Typer(
    name="kvinstall",
    help=(
        "Install a Kubernetes-native virtualization platform (Kube-OVN, KubeVirt, CDI, Dex, Kyverno) on bare "
        "metal, declaratively, from one YAML file.\n\n"
        "-o/--output is the output format (text or json) on every command; --out is where a command writes "
        "a file or directory.\n\n"
        f"Exit codes (docs/exit-codes.md):\n\n\b\n{_EXIT_TABLE}\n\n"
        "KVINSTALL_DEBUG=1 prints the traceback of an error, with its causes."
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


# One module per command, in the order `--help` lists them.
COMMANDS = (
    "init",
    "validate",
    "plan",
    "apply",
    "render",
    "preflight",
    "status",
    "reset",
    "mirror",
    "convert",
    "schema",
    "version",
)


def _register() -> None:
    # Each command lives in its own module; the modules import heavy libraries only inside the
    # command body so that `kvinstall --help` and `validate` stay fast.
    import importlib

    for name in COMMANDS:
        importlib.import_module(f"kvinstall.cli.{name}").register(app)


def _debug() -> bool:
    return bool(os.environ.get("KVINSTALL_DEBUG"))


def main(argv: list[str] | None = None) -> int:
    """Run one command line; returns the exit code."""
    inv = Invocation()
    try:
        rv = app(args=argv, standalone_mode=False, obj=inv)
        if isinstance(rv, Result):
            return show(rv, inv)
        # Without standalone mode click returns typer.Exit's code instead of raising it.
        return rv if isinstance(rv, int) else 0
    except KvError as exc:
        report_error(exc, inv)
        if _debug():
            traceback.print_exception(exc)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        err("interrupted")
        return exit_code("interrupted")
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # click's usage errors (unknown option, bad value, ...)
        show_usage = getattr(exc, "show", None)
        if callable(show_usage):
            show_usage()
        else:
            err(f"error: {exc}")
        return exit_code("usage")
    except Exception as exc:  # a bug: say so plainly, the traceback only on request
        if _debug():
            raise
        err(f"internal error: {type(exc).__name__}: {exc}\n(set KVINSTALL_DEBUG=1 for a traceback)")
        return exit_code("internal")


def run() -> None:
    """Console-script entry point."""
    _register()
    sys.exit(main())


__all__ = ["__version__", "app", "main", "run"]
