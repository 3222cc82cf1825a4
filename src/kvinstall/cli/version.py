"""`kvinstall version`."""

from __future__ import annotations

import typer

from kvinstall import __version__
from kvinstall.cli import output


def register(app: typer.Typer) -> None:
    @app.command("version", help="Print the kvinstall version and the catalog's default versions.")
    def version_cmd() -> None:
        from kvinstall.catalog import load_catalog

        cat = load_catalog()
        output.echo(f"kvinstall {__version__}")
        output.echo(f"kubernetes {cat.kubernetes.default}, kubeone {cat.kubeone.default}")
        for name, product in cat.components.items():
            output.echo(f"{name} {product.default}")
