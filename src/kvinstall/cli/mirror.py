"""`kvinstall mirror list|create|push|inspect|verify|serve`: one OCI bundle for air-gapped sites."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kvinstall.cli.options import ConfigFile, OutputOpt, OutputOrPath, format_and_path
from kvinstall.cli.output import Format, Result, progress

if TYPE_CHECKING:  # the commands import their work lazily, so --help stays light
    from kvinstall.components.artifacts import ArtifactCache
    from kvinstall.model import DesiredState
    from kvinstall.session import Session

app = typer.Typer(help="Offline bundles: list, create, push, inspect, verify, serve.", no_args_is_help=True)

Workers = Annotated[int, typer.Option("--workers", help="Parallel transfers.", min=1, max=64)]


def register(root: typer.Typer) -> None:
    from kvinstall.cli import mirror_serve

    mirror_serve.register(app)
    root.add_typer(app, name="mirror")


def _upstream(file: Path, *, fetch: bool) -> tuple[Session, ArtifactCache, DesiredState]:
    """The upstream view of the file's desired state (see mirror.items): a bundle names upstream
    references even when the config is the offline one; its artifacts come from upstream too."""
    from kvinstall.session import open_session

    session = open_session(file)
    cache = session.edges.artifacts(fetch=fetch)
    return session, cache, session.desire(cache, upstream=True)


@app.command(
    "list",
    help="Every image, chart, manifest and binary the configuration needs (upstream references, also for "
    "an offline config). Images inside charts and manifests are listed once those are in the artifact "
    "cache: --fetch downloads them first.",
)
def list_cmd(
    file: ConfigFile,
    fetch: Annotated[
        bool,
        typer.Option(
            "--fetch", help="Download charts and manifests (verified, cached) to list their images."
        ),
    ] = False,
    out: OutputOpt = Format.text,
) -> Result:
    from kvinstall.catalog.packages import load_package_catalog
    from kvinstall.mirror.items import needed
    from kvinstall.mirror.packages import needed_packages

    session, _, desired = _upstream(file, fetch=fetch)
    rows = needed(desired)
    packages = needed_packages(session.config, load_package_catalog())
    return Result(
        data=[r.__dict__ for r in rows]
        + [
            {"kind": "package", "reference": str(spec), "digest": None, "component": dist}
            for dist, specs in packages.items()
            for spec in specs
        ],
        text="\n".join(
            [
                f"{r.kind:<9} {r.reference}" + (f"  {r.digest}" if r.digest else "") + f"  ({r.component})"
                for r in rows
            ]
            + [
                f"{'package':<9} {spec}  ({dist}, with its dependencies)"
                for dist, specs in packages.items()
                for spec in specs
            ]
        ),
        notes=[
            f"note: images inside {a.describe()} are listed once it is cached (--fetch, or mirror create)"
            for c in desired.components
            for a in c.unavailable
        ],
    )


MirrorOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--registry-mirror",
        metavar="HOST=ENDPOINT",
        help="Pull references of registry HOST from ENDPOINT (HOST[:PORT] of a mirror or pull-through "
        "cache serving the same repository paths), e.g. docker.io=cache.site:5000. Repeatable. The "
        "lock keeps the upstream names.",
    ),
]
InsecureOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--insecure-registry",
        metavar="HOST",
        help="Talk plain HTTP to this registry (an upstream host or a mirror endpoint). Repeatable.",
    ),
]
RegistryCaOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--registry-ca",
        metavar="HOST=FILE",
        help="Verify this registry's TLS certificate with the CA in FILE (an upstream host or a mirror "
        "endpoint). Repeatable.",
    ),
]


PackageRepoOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--package-repo",
        metavar="OS-RELEASE=SOURCE-LINE",
        help="Take the host packages of OS-RELEASE from this apt repository instead of the catalog's, as a "
        "sources.list line: debian-12='deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://mirror.site/debian bookworm main' (a flat repository: suite '/'). Repeatable; every "
        "given line of an OS release replaces all its catalog repositories.",
    ),
]
PackageDirOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--package-dir",
        metavar="OS-RELEASE=DIR",
        help="Also take host packages from the .deb files in DIR (e.g. kubelet, kubeadm, containerd.io "
        "downloaded elsewhere); without --package-repo for that OS release, only these. Repeatable.",
    ),
]


@app.command(
    "create",
    help="Copy everything the configuration needs into one OCI bundle (tar) with a lock file of every "
    "reference and digest. Re-running after an interruption continues where it stopped. Artifacts come "
    "from the catalog's URLs (KVINSTALL_CATALOG for a site's own), images from their registries or "
    "from --registry-mirror endpoints. See docs/airgap.md.",
)
def create_cmd(
    file: ConfigFile,
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="Bundle file to write (older spelling: -o FILE).", show_default=False),
    ] = None,
    platform: Annotated[
        list[str] | None,
        typer.Option(
            "--platform", metavar="OS/ARCH", help="Platforms to keep (OS/ARCH, or 'all'). Repeatable."
        ),
    ] = None,
    registry_mirror: MirrorOpt = None,
    insecure_registry: InsecureOpt = None,
    registry_ca: RegistryCaOpt = None,
    package_repo: PackageRepoOpt = None,
    package_dir: PackageDirOpt = None,
    workers: Workers = 8,
    output: OutputOrPath = None,
) -> Result:
    from kvinstall.catalog.packages import load_package_catalog
    from kvinstall.mirror.aptfetch import PackageSources, collect_packages
    from kvinstall.mirror.bundle import create_bundle
    from kvinstall.mirror.items import ArtifactFetch, mirror_items
    from kvinstall.mirror.sources import registry_options

    _, bundle = format_and_path(output, out_path, what="bundle file")
    assert bundle is not None
    registries = registry_options(registry_mirror or [], insecure_registry or [], registry_ca or [])
    sources = PackageSources.from_options(package_repo or [], package_dir or [])
    session, cache, desired = _upstream(file, fetch=True)
    items = mirror_items(desired, ArtifactFetch(cache))
    packages = collect_packages(
        session.config, load_package_catalog(), sources, workers=workers, progress=progress("host packages")
    )
    result = create_bundle(
        [*items, *packages.items],
        bundle,
        platforms=platform or ["linux/amd64"],
        workers=workers,
        progress=progress("mirror create"),
        registries=registries,
        extra_lock={"packages": {s.distribution: s.to_json() for s in packages.sets}} if packages.sets else None,
    )
    counts = {s.distribution: len(s.packages) for s in packages.sets}
    return Result(
        data={
            "path": str(result.path),
            "entries": [e.to_json() for e in result.entries],
            "packages": {s.distribution: s.to_json() for s in packages.sets},
            "blobs": result.blobs,
            "bytes": result.bytes_total,
            "bytesDownloaded": result.bytes_downloaded + packages.bytes_downloaded,
            "bytesReused": result.bytes_reused,
        },
        text=f"wrote {result.path}: {len(result.entries)} references, {result.blobs} blobs, "
        f"{result.bytes_total / 1e6:.1f} MB ({(result.bytes_downloaded + packages.bytes_downloaded) / 1e6:.1f} MB "
        "downloaded)"
        + ("; host packages: " + ", ".join(f"{d} {n}" for d, n in counts.items()) if counts else ""),
        notes=[f"note: {note}" for note in packages.notes],
    )


@app.command(
    "push",
    help="Upload a bundle into the site registry (only what it lacks; digests unchanged). The registry, its "
    "CA, plain HTTP and the login come from the options, or from the config's offline section with -f.",
)
def push_cmd(
    bundle: Annotated[Path, typer.Option("--bundle", help="Bundle made by `mirror create`.")],
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="Take registry, CA, insecure and login from this config."),
    ] = None,
    registry: Annotated[str | None, typer.Option("--registry", help="Site registry HOST[:PORT].")] = None,
    ca_file: Annotated[Path | None, typer.Option("--ca-file", help="CA that signed the registry.")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="Plain HTTP registry.")] = False,
    username: Annotated[str | None, typer.Option("--username", help="Registry user.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
    workers: Workers = 8,
    out: OutputOpt = Format.text,
) -> Result:
    from kvinstall.mirror.bundle import push_bundle
    from kvinstall.mirror.items import PushTarget, push_target

    target = PushTarget(registry or "", str(ca_file) if ca_file else None, insecure, username, None)
    if file is not None:
        from kvinstall.config.loader import load_file

        target = push_target(load_file(file).config, override=target)
    if password_stdin:
        target = target.with_password(sys.stdin.readline().rstrip("\n"))
    if not target.registry:
        from kvinstall.errors import UsageError

        raise UsageError(
            "no registry: pass --registry HOST[:PORT], or -f with a config that sets offline.registry"
        )
    registry = target.registry
    result = push_bundle(
        bundle,
        target.registry,
        ca_file=target.ca_file,
        insecure=target.insecure,
        username=target.username,
        password=target.password,
        workers=workers,
        progress=progress("mirror push"),
        skip_verify=target.skip_verify,
    )
    return Result(
        data={
            "registry": result.registry,
            "pushed": result.pushed,
            "blobsUploaded": result.blobs_uploaded,
            "blobsSkipped": result.blobs_skipped,
            "blobsMounted": result.blobs_mounted,
            "bytesSent": result.bytes_sent,
        },
        text=f"pushed {len(result.pushed)} references to {registry}: {result.blobs_uploaded} blobs uploaded, "
        f"{result.blobs_skipped} already there, {result.blobs_mounted} mounted, "
        f"{result.bytes_sent / 1e6:.1f} MB sent",
    )


@app.command("inspect", help="What a bundle holds.")
def inspect_cmd(
    bundle: Annotated[Path, typer.Argument(help="Bundle file.")], out: OutputOpt = Format.text
) -> Result:
    from kvinstall.mirror.bundle import inspect_bundle

    info = inspect_bundle(bundle)
    return Result(
        data={
            "path": str(info.path),
            "platforms": info.platforms,
            "blobs": info.blobs,
            "bytes": info.bytes_total,
            "entries": [e.__dict__ for e in info.entries],
        },
        text="\n".join(
            [
                f"{info.path}: {len(info.entries)} references, {info.blobs} blobs, "
                f"{info.bytes_total / 1e6:.1f} MB, platforms {', '.join(info.platforms)}"
            ]
            + [f"  {e.reference}  {e.digest}" for e in info.entries]
        ),
    )


@app.command(
    "verify",
    help="Re-hash every blob of a bundle and check its host packages against the lock; name each bad one. "
    "With -f, also check that it holds every host package the config needs.",
)
def verify_cmd(
    bundle: Annotated[Path, typer.Argument(help="Bundle file.")],
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Also check the bundle against this config.")
    ] = None,
    out: OutputOpt = Format.text,
) -> Result:
    from kvinstall.errors import IntegrityError
    from kvinstall.mirror.verify import verify_bundle

    problems = verify_bundle(bundle)
    if problems:
        raise IntegrityError("\n  ".join(["bundle is corrupt:", *map(str, problems)]), where=str(bundle))
    data = {"bundle": str(bundle), "ok": True, "config": str(file) if file else None}
    if file is not None:
        from kvinstall.cli.mirror_serve import check_bundle, load_config

        check_bundle(bundle, load_config(file))
        return Result(data=data, text=f"{bundle}: every blob matches its digest; it holds every host package {file} needs")
    return Result(data=data, text=f"{bundle}: every blob matches its digest")
