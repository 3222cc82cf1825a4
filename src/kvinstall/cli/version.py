"""`kvinstall version`."""

from __future__ import annotations

import typer

from kvinstall import __version__
from kvinstall.cli.options import OutputOpt
from kvinstall.cli.output import Format, Result


def register(app: typer.Typer) -> None:
    @app.command("version", help="Print the kvinstall version and the catalog's default versions.")
    def version_cmd(out: OutputOpt = Format.text) -> Result:
        from kvinstall.catalog import load_catalog

        cat = load_catalog()
        versions = {
            "kvinstall": __version__,
            "kubernetes": cat.kubernetes.default,
            "kubeone": cat.kubeone.default,
        }
        versions |= {name: product.default for name, product in cat.components.items()}
        lines = [
            f"kvinstall {__version__}",
            f"kubernetes {cat.kubernetes.default}, kubeone {cat.kubeone.default}",
        ]
        lines += [f"{name} {product.default}" for name, product in cat.components.items()]
        return Result(data=versions, text="\n".join(lines))
