"""`kvinstall mirror list|create|push|inspect|verify`: one OCI bundle for air-gapped sites."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from kvinstall.cli import output
from kvinstall.cli.options import ConfigFile, OutputOpt
from kvinstall.cli.output import Output

app = typer.Typer(help="Offline bundles: list, create, push, inspect, verify.", no_args_is_help=True)

Workers = Annotated[int, typer.Option("--workers", help="Parallel transfers.", min=1, max=64)]


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="mirror")


def _desired(file: Path):  # type: ignore[no-untyped-def]
    from kvinstall.catalog import load_catalog
    from kvinstall.components import default_components
    from kvinstall.components.artifacts import ArtifactCache
    from kvinstall.config.loader import load_file
    from kvinstall.plan.desired import desire
    from kvinstall.state import state_dir

    cfg = load_file(file).config
    cache = ArtifactCache()
    return desire(cfg, load_catalog(), cache, components=default_components(state_dir(file, cfg.name))), cache


def _progress(label: str):  # type: ignore[no-untyped-def]
    last = [0.0]

    def report(done: int, total: int) -> None:
        import time

        now = time.monotonic()
        if now - last[0] >= 1.0 or done == total:
            last[0] = now
            pct = 100.0 * done / total if total else 100.0
            sys.stderr.write(f"{label}: {done / 1e6:.1f} of {total / 1e6:.1f} MB ({pct:.0f}%)\n")

    return report


@app.command("list", help="Every image, chart, manifest and binary the configuration needs.")
def list_cmd(file: ConfigFile, out: OutputOpt = Output.text) -> None:
    from kvinstall.components.artifacts import NoFetch
    from kvinstall.mirror.items import needed

    output.set_mode(out)
    from kvinstall.catalog import load_catalog
    from kvinstall.components import default_components
    from kvinstall.config.loader import load_file
    from kvinstall.plan.desired import desire
    from kvinstall.state import state_dir

    cfg = load_file(file).config
    desired = desire(cfg, load_catalog(), NoFetch(), components=default_components(state_dir(file, cfg.name)))
    rows = needed(desired)
    if out is Output.json:
        output.emit_json([r.__dict__ for r in rows])
        return
    for r in rows:
        output.echo(
            f"{r.kind:<9} {r.reference}" + (f"  {r.digest}" if r.digest else "") + f"  ({r.component})"
        )
    notes = [a.describe() for c in desired.components for a in c.unavailable]
    for n in notes:
        output.err(f"note: images inside {n} are listed once it is cached (mirror create fetches it)")


@app.command("create", help="Copy everything the configuration needs into one OCI bundle (tar).")
def create_cmd(
    file: ConfigFile,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Bundle file to write.")],
    platform: Annotated[list[str] | None, typer.Option("--platform", help="Platforms to keep.")] = None,
    workers: Workers = 8,
) -> None:
    from kvinstall.mirror.bundle import create_bundle
    from kvinstall.mirror.items import ArtifactFetch, mirror_items

    desired, cache = _desired(file)
    items = mirror_items(desired, ArtifactFetch(cache))
    result = create_bundle(
        items,
        out_path,
        platforms=platform or ["linux/amd64"],
        workers=workers,
        progress=_progress("mirror create"),
    )
    output.echo(
        f"wrote {result.path}: {len(result.entries)} references, {result.blobs} blobs, "
        f"{result.bytes_total / 1e6:.1f} MB ({result.bytes_downloaded / 1e6:.1f} MB downloaded)"
    )


@app.command("push", help="Upload a bundle into the site registry (only what it lacks; digests unchanged).")
def push_cmd(
    bundle: Annotated[Path, typer.Option("--bundle", help="Bundle made by `mirror create`.")],
    registry: Annotated[str, typer.Option("--registry", help="Site registry HOST[:PORT].")],
    ca_file: Annotated[Path | None, typer.Option("--ca-file", help="CA that signed the registry.")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="Plain HTTP registry.")] = False,
    username: Annotated[str | None, typer.Option("--username", help="Registry user.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
    workers: Workers = 8,
    out: OutputOpt = Output.text,
) -> None:
    from kvinstall.mirror.bundle import push_bundle

    output.set_mode(out)
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    result = push_bundle(
        bundle,
        registry,
        ca_file=ca_file,
        insecure=insecure,
        username=username,
        password=password,
        workers=workers,
        progress=_progress("mirror push"),
    )
    if out is Output.json:
        output.emit_json(
            {
                "registry": result.registry,
                "pushed": result.pushed,
                "blobsUploaded": result.blobs_uploaded,
                "blobsSkipped": result.blobs_skipped,
                "blobsMounted": result.blobs_mounted,
                "bytesSent": result.bytes_sent,
            }
        )
        return
    output.echo(
        f"pushed {len(result.pushed)} references to {registry}: {result.blobs_uploaded} blobs uploaded, "
        f"{result.blobs_skipped} already there, {result.blobs_mounted} mounted, "
        f"{result.bytes_sent / 1e6:.1f} MB sent"
    )


@app.command("inspect", help="What a bundle holds.")
def inspect_cmd(
    bundle: Annotated[Path, typer.Argument(help="Bundle file.")], out: OutputOpt = Output.text
) -> None:
    from kvinstall.mirror.bundle import inspect_bundle

    output.set_mode(out)
    info = inspect_bundle(bundle)
    if out is Output.json:
        output.emit_json(
            {
                "path": str(info.path),
                "platforms": info.platforms,
                "blobs": info.blobs,
                "bytes": info.bytes_total,
                "entries": [e.__dict__ for e in info.entries],
            }
        )
        return
    output.echo(
        f"{info.path}: {len(info.entries)} references, {info.blobs} blobs, {info.bytes_total / 1e6:.1f} MB, "
        f"platforms {', '.join(info.platforms)}"
    )
    for e in info.entries:
        output.echo(f"  {e.reference}  {e.digest}")


@app.command("verify", help="Re-hash every blob of a bundle; name each bad one.")
def verify_cmd(bundle: Annotated[Path, typer.Argument(help="Bundle file.")]) -> None:
    from kvinstall.errors import IntegrityError
    from kvinstall.mirror.verify import verify_bundle

    problems = verify_bundle(bundle)
    if problems:
        raise IntegrityError("\n  ".join(["bundle is corrupt:", *map(str, problems)]), where=str(bundle))
    output.echo(f"{bundle}: every blob matches its digest")
