"""The `kvinstall` command: the typer app, its sub-commands, and the one place errors become exit codes."""

from __future__ import annotations

import os
import sys

import typer
from typer._click import exceptions as click_exc  # typer vendors click; its exceptions are these

from kvinstall import __version__
from kvinstall.cli import output
from kvinstall.errors import EXIT_CODES, KvError, exit_code

_EXIT_TABLE = "\n".join(f"  {e.code:>3}  {e.meaning}" for e in EXIT_CODES)

app = typer.Typer(
    name="kvinstall",
    help=(
        "Install a Kubernetes-native virtualization platform (Kube-OVN, KubeVirt, CDI, Dex, Kyverno) on bare "
        "metal, declaratively, from one YAML file.\n\n"
        f"Exit codes (docs/exit-codes.md):\n\n\b\n{_EXIT_TABLE}"
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


def run() -> None:
    """Console-script entry point."""
    _register()
    try:
        rc = app(standalone_mode=False)
    except KvError as exc:
        _report(exc)
        sys.exit(exc.exit_code)
    except typer.Abort:
        output.err("interrupted")
        sys.exit(exit_code("interrupted"))
    except KeyboardInterrupt:
        output.err("interrupted")
        sys.exit(exit_code("interrupted"))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except click_exc.UsageError as exc:
        exc.show()
        sys.exit(exit_code("usage"))
    except click_exc.ClickException as exc:
        exc.show()
        sys.exit(exit_code("usage"))
    except Exception as exc:  # a bug: say so plainly, traceback only on request
        if os.environ.get("KVINSTALL_DEBUG"):
            raise
        output.err(f"internal error: {type(exc).__name__}: {exc}\n(set KVINSTALL_DEBUG=1 for a traceback)")
        sys.exit(exit_code("internal"))
    # Without standalone mode click returns typer.Exit's code instead of raising it.
    sys.exit(rc if isinstance(rc, int) else 0)


def _report(exc: KvError) -> None:
    if output.mode() is output.Output.json:
        data = exc.to_dict()
        problems = getattr(exc, "problems", None)
        if problems is not None:
            data["problems"] = [p.to_dict() for p in problems]
        # One line: after `apply --output json`'s JSON Lines the stream stays JSON Lines.
        output.emit_json_line(data)
    else:
        output.err(f"error: {exc}" if not getattr(exc, "problems", None) else str(exc))


__all__ = ["__version__", "app", "run"]
