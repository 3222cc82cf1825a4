"""`kvinstall mirror serve`: the site registry and package repository on the jump host, from a bundle
(see kvinstall.mirror.serve); `--status` and `--stop` for the running service."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kvinstall.cli.options import OutputOpt
from kvinstall.cli.output import Format, Result, emit, err, progress

if TYPE_CHECKING:
    from kvinstall.config.models import Config
    from kvinstall.mirror.serve import ServeState


def register(app: typer.Typer) -> None:
    app.command(
        "serve",
        help="Serve a bundle on this (jump) host: a registry (docker-registry, TLS) and an OS package "
        "repository (HTTPS, signed index), with a CA and certificate generated unless given. Runs in the "
        "background (survives the terminal closing) unless --foreground; --status, --stop. Prints the "
        "offline settings that point at it, or writes them into the config with -f. See docs/airgap.md.",
    )(serve_cmd)


def serve_cmd(
    bundle: Annotated[Path | None, typer.Option("--bundle", help="Bundle made by `mirror create`.")] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="Check the bundle against this config and write the settings into it."),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option("--address", help="Address to serve on, as the hosts reach it (default: this host's "
                     "address towards the config's first host)."),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option("--state-dir", help="Where the service keeps its data, logs and pid "
                     "(default $XDG_STATE_HOME/kvinstall/serve)."),
    ] = None,
    registry_port: Annotated[int, typer.Option("--registry-port", min=1, max=65535)] = 5000,
    repo_port: Annotated[int, typer.Option("--repo-port", min=1, max=65535)] = 8443,
    name: Annotated[
        list[str] | None, typer.Option("--name", help="Another DNS name or address for the certificate.")
    ] = None,
    ca: Annotated[Path | None, typer.Option("--ca", help="CA certificate (PEM) the hosts trust.")] = None,
    ca_key: Annotated[Path | None, typer.Option("--ca-key", help="Its key: issue the server certificate.")] = None,
    cert: Annotated[Path | None, typer.Option("--cert", help="Server certificate (PEM), signed by --ca.")] = None,
    key: Annotated[Path | None, typer.Option("--key", help="The server certificate's key.")] = None,
    foreground: Annotated[bool, typer.Option("--foreground", help="Run here until Ctrl-C.")] = False,
    status: Annotated[bool, typer.Option("--status", help="Is it running and answering?")] = False,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the running service.")] = False,
    out: OutputOpt = Format.text,
) -> Result:
    from kvinstall.errors import UsageError
    from kvinstall.mirror import serve as svc

    where = (state_dir or svc.default_state_dir()).expanduser()
    if status and stop:
        raise UsageError("give --status or --stop, not both")
    if status:
        return _status(where)
    if stop:
        state = svc.stop(where)
        return Result(
            data={"stopped": state is not None, "stateDir": str(where)},
            text=f"stopped mirror serve ({where})" if state else f"nothing to stop in {where}",
        )
    if bundle is None:
        raise UsageError("give --bundle FILE (or --status / --stop)")
    cfg = load_config(file) if file else None
    if svc.running(svc.ServeState.load(where)):
        raise UsageError(
            f"mirror serve already runs from {where}", hint="kvinstall mirror serve --stop first (or --status)"
        )
    if cfg is not None:
        check_bundle(bundle, cfg)
    addr = address or _default_address(cfg)
    state = svc.prepare(
        svc.ServeOptions(
            bundle=bundle, state_dir=where, address=addr, registry_port=registry_port, repo_port=repo_port,
            names=tuple(name or ()), ca=ca, ca_key=ca_key, cert=cert, key=key,
        )
    )

    _fill(state)

    def ready(current: ServeState) -> Result:
        if file is not None:
            from kvinstall.config.edit import set_offline

            set_offline(file, {**current.settings(), "insecure": None, "insecureSkipVerify": None})
        return _report(current, file)

    if foreground:
        sup = svc.Supervisor(state, background=False)
        sup.lock()
        err("serving in the foreground; Ctrl-C stops")
        def serving() -> None:  # said as soon as it serves: the command returns only when it stops
            emit(ready(sup.state), out)

        code = sup.run(on_ready=serving)
        err("stopped")
        return Result(exit_code=code)
    try:
        return ready(svc.start_background(state))
    except BaseException:  # an error or Ctrl-C: nothing is left running
        svc.stop(where)
        raise


def load_config(file: Path) -> Config:
    from kvinstall.config.loader import load_file

    return load_file(file).config


def _default_address(cfg: Config | None) -> str:
    from kvinstall.errors import UsageError
    from kvinstall.mirror.serve import local_address_towards

    if cfg is not None:
        found = local_address_towards(cfg.hosts[0].address)
        if found and found not in ("127.0.0.1", "::1"):
            return found
    raise UsageError("give --address: the address the hosts reach this machine at")


def check_bundle(bundle: Path, cfg: Config) -> None:
    """IncompleteMirrorError naming every host package `cfg` needs that the bundle lacks."""
    from kvinstall.catalog.packages import load_package_catalog
    from kvinstall.errors import IncompleteMirrorError
    from kvinstall.mirror.gate import bundle_package_gaps

    missing = bundle_package_gaps(bundle, cfg, load_package_catalog())
    if missing:
        raise IncompleteMirrorError(
            f"{len(missing)} host package(s) the config needs are not in the bundle:\n  " + "\n  ".join(missing),
            where=str(bundle),
            hint="make the bundle again with `kvinstall mirror create -f` for this config",
        )


def _fill(state: ServeState) -> None:
    from kvinstall.mirror.serve import fill_registry

    result = fill_registry(state, progress("mirror serve"))
    err(
        f"registry storage: {len(result.pushed)} references, "
        f"{result.bytes_sent / 1e6:.1f} MB written ({result.blobs_skipped} blobs already there)"
    )


def _report(state: ServeState, file: Path | None) -> Result:
    lines = [
        f"serving {state.bundle}",
        f"  registry:   https://{state.registry} (logs {state.logs}/registry.log)",
        f"  packages:   {state.repo_url} ({_dists(state)})",
        f"  CA:         {state.ca_file}",
        f"  pid:        {state.supervisor_pid}  (kvinstall mirror serve --status | --stop"
        + (f" --state-dir {state.state_dir})" if state.state_dir != str(_default()) else ")"),
    ]
    if file is not None:
        lines.append(f"wrote the offline settings into {file}")
    else:
        lines += ["", "offline settings for the config:", "", _yaml({"offline": state.settings()}).rstrip("\n")]
    return Result(data={**_describe(state), "configWritten": str(file) if file else None}, text="\n".join(lines))


def _yaml(data: dict[str, Any]) -> str:
    import io

    from ruamel.yaml import YAML

    y = YAML()
    y.default_flow_style = False
    buf = io.StringIO()
    y.dump(data, buf)
    return buf.getvalue()


def _default() -> Path:
    from kvinstall.mirror.serve import default_state_dir

    return default_state_dir().expanduser().resolve()


def _dists(state: ServeState) -> str:
    return ", ".join(f"{d}: {n} packages" for d, n in state.distributions.items()) or "no host packages"


def _describe(state: ServeState) -> dict[str, Any]:
    return {
        "status": state.status,
        "pid": state.supervisor_pid,
        "stateDir": state.state_dir,
        "bundle": state.bundle,
        "registry": state.registry,
        "packageRepository": state.repo_url,
        "distributions": state.distributions,
        "caFile": state.ca_file,
        "signingKey": state.signing_key,
        "settings": {"offline": state.settings()},
    }


def _status(where: Path) -> Result:
    from kvinstall.errors import RegistryError
    from kvinstall.mirror import serve as svc

    state = svc.ServeState.load(where)
    if state is None:
        raise RegistryError("mirror serve has never run here", where=str(where))
    alive = svc.running(state)
    checks = svc.probe(state) if alive else {}
    data = {**_describe(state), "running": alive, "checks": checks}
    healthy = alive and all(v == "ok" for v in checks.values())
    text = "\n".join(
        [
            f"{'running' if alive else 'not running'} ({state.status}{': ' + state.message if state.message else ''})",
            f"  registry:   https://{state.registry}  {checks.get('registry', '-')}",
            f"  packages:   {state.repo_url}  {checks.get('repository', '-')}  ({_dists(state)})",
            f"  state:      {state.state_dir} (logs in {state.logs})",
        ]
    )
    return Result(data=data, text=text, exit_code=0 if healthy else RegistryError("").exit_code)
