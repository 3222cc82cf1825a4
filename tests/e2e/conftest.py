"""Fixtures of the end-to-end suite: see platform_world.py for the world and its two stand-ins."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from platform_world import ClusterSim, catalog_file, env_for, upstream_files, write_kubeone_standin

from kvinstall.edges import Edges
from kvinstall.errors import KvError
from kvinstall.phases.context import Options
from kvinstall.session import open_session
from substrate.https_files import serve_https

EVENTS_SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "src/kvinstall/phases/events.schema.json").read_text()
)


@dataclass
class World:
    api: Any  # KubeApi: a private apiserver for this module
    root: Path
    catalog: Path
    kubeone: Path
    kubeconfig: Path  # what kvinstall uses (token identity, so its writes can be told apart)
    sim: ClusterSim
    env: dict[str, str]
    # Every path requested from the local HTTPS upstream (in order), to prove an offline run asked nothing.
    upstream_requests: list[str] = field(default_factory=list)


class CountingFiles(dict[str, bytes]):
    """The upstream's files; serve_https looks each request up with .get(), which is recorded."""

    def __init__(self, files: dict[str, bytes], seen: list[str]) -> None:
        super().__init__(files)
        self.seen = seen

    def get(self, key: str, default: Any = None) -> Any:
        self.seen.append(key)
        return super().get(key, default)


class Collect:
    """An events sink that keeps every event (and checks it against the published schema)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def handle(self, event: dict[str, Any]) -> None:
        jsonschema.validate(event, EVENTS_SCHEMA)
        self.events.append(event)

    def close(self) -> None:
        pass

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type_]

    def phases(self) -> dict[str, str]:
        out = {}
        for e in self.events:
            if e["type"] == "phase.end":
                out[e["phase"]] = e["status"]
            elif e["type"] == "phase.skip":
                out[e["phase"]] = "skipped"
        return out

    def objects(self) -> list[tuple[str, str]]:
        return [(e["action"], e["object"]) for e in self.of("object")]


@dataclass
class Result:
    code: int
    events: Collect
    error: KvError | None = None
    outcome: Any = None
    log: Path | None = None


@pytest.fixture(scope="module")
def world(
    kube_api_factory: Callable[[], Any], registry_ca: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    api = kube_api_factory()
    root = tmp_path_factory.mktemp("e2e")
    files = upstream_files()
    kubeconfig = root / "kvinstall.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "e2e",
        "clusters": [{"name": "e2e", "cluster": {"server": api.server, "certificate-authority": str(api.ca)}}],
        "users": [{"name": "kvinstall", "user": {"token": api.token}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "kvinstall"}}],
    }))  # fmt: skip
    kubeconfig.chmod(0o600)
    seen: list[str] = []
    with serve_https(CountingFiles(files, seen), registry_ca) as url:
        catalog = catalog_file(url, files, root / "catalog.yaml")
        sim = ClusterSim(api).start()
        env = env_for(catalog, root / "cache", registry_ca.cert_path, kubeconfig, root / "kubeone-calls.log")
        env["KVTEST_ADMIN_KUBECONFIG"] = str(api.kubeconfig)
        try:
            yield World(
                api=api,
                root=root,
                catalog=catalog,
                kubeone=write_kubeone_standin(root),
                kubeconfig=kubeconfig,
                sim=sim,
                env=env,
                upstream_requests=seen,
            )
        finally:
            sim.close()
            api.stop()  # idempotent; each module's private apiserver goes as soon as the module is done


@pytest.fixture
def world_env(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    return world


def lab_config(world: World, lab: Any, **overrides: Any) -> dict[str, Any]:
    """A config for a 3-host lab (cp-1, worker-1, worker-2) with host keys pinned."""
    names = ["cp-1", "worker-1", "worker-2"]
    hosts = []
    for name, host in zip(names, lab.hosts.values(), strict=False):
        hosts.append({"address": host.ip, "role": "controlPlane" if name == "cp-1" else "worker",
                      "hostname": name, "hostPublicKey": host.host_key_line})  # fmt: skip
    cfg: dict[str, Any] = {
        "apiVersion": "kvinstall.io/v1alpha1",
        "kind": "VirtualizationCluster",
        "metadata": {"name": "e2e"},
        "ssh": {
            "user": "root",
            "privateKeyFile": str(lab.client_keys.ed25519),
            "useAgent": False,
            "connectTimeout": 5,
            "commandTimeout": 60,
        },
        "hosts": hosts,
        "storage": {"rwxClass": "nfs"},
        # This machine's CPU has no VT-x/AMD-V (the lab hosts share it): emulation, as an operator would set.
        "components": {"kubevirt": {"useEmulation": True}},
        "kubeone": {"binary": str(world.kubeone)},
        "auth": {"mode": "basic", "issuer": "https://dex.e2e.example/dex"},
        "workspaces": [
            {
                "name": "team-a",
                "members": [{"user": "alice@example.com", "role": "admin"}],
                "quota": {"cpu": "8", "memory": "32Gi"},
            },
            {"name": "team-b", "members": [{"group": "devs", "role": "edit"}]},
        ],
    }
    cfg.update(overrides)
    return cfg


# Checks the lab cannot pass by construction (its hosts share this machine): each is skipped by id,
# which the run reports as a visible warning.
LAB_SKIPS = frozenset({"cpu.worker", "memory.worker", "disk.var", "time.sync", "modules.openvswitch",
                       "modules.tunnel", "modules.iptables"})  # fmt: skip


def write_config(config: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def converged(
    world: World, host_lab: Any, tmp_path: Path, edit: Any = None
) -> tuple[Any, Path, dict[str, Any]]:
    """A 3-host lab, its config (after `edit(config)`) and its state, applied once successfully: where
    the drift, config-change and fault tests start."""
    lab = host_lab(3)
    state = tmp_path / "state"
    config = lab_config(world, lab)
    if edit is not None:
        edit(config)
    first = apply_in_process(world, lab, config, state)
    assert first.code == 0, first.error
    return lab, state, config


def apply_in_process(
    world: World, lab: Any, config: dict[str, Any], state: Path, *, sinks: Sequence[Any] = (), **opts: Any
) -> Result:
    """`kvinstall apply --yes` in this process (the SSH sockets must be opened inside the lab's network
    namespace, which only this process can do), events collected and schema-checked. `sinks`: more
    event sinks (objects with handle(event) and close()), e.g. to inject a fault at a given phase."""
    path = write_config(config, state.parent / f"{state.name}.yaml")
    collect = Collect()
    edges = lab_edges(world, lab, kubeone_env=opts.pop("kubeone_env", {**world.env}))
    options = Options(
        kubeconfig=None,
        skip_checks=opts.pop("skip_checks", LAB_SKIPS),
        ready_timeout=opts.pop("ready_timeout", 60),
        **opts,
    )
    ctx = None
    try:
        session = open_session(path, state_override=state, edges=edges, for_apply=True)
        ctx = session.start_run(options, command="apply", display="none", extra_sinks=[collect, *sinks])
        outcome = session.apply(ctx, lambda plan: None)
        return Result(0, collect, outcome=outcome, log=_log(collect))
    except KvError as exc:
        return Result(exc.exit_code, collect, error=exc, log=_log(collect))
    finally:
        if ctx is not None:
            ctx.events.close()


def lab_edges(world: World, lab: Any, *, kubeone_env: dict[str, str] | None = None) -> Edges:
    """The edges of this world: SSH sockets opened inside the lab's network namespace, no user
    known_hosts (the config pins every key), the stand-in KubeOne's environment."""
    return Edges(
        socket_factory=lambda address, port, timeout: lab.connect(address, port, timeout),
        user_known_hosts=[],
        kubeone_env=kubeone_env if kubeone_env is not None else {**world.env},
    )


def _log(collect: Collect) -> Path | None:
    start = collect.of("run.start")
    return Path(start[0]["log"]) if start else None


KVINSTALL_USER = "kvtest-token-admin"  # the identity of the kubeconfig kvinstall uses (see world)


def delete_gone(world: World, path: str, timeout: float = 120) -> None:
    """DELETE an object as another manager would, and wait (bounded) until it is gone: an operator CR
    stays, terminating, while its operator (the controller loop) removes what it deployed and then
    its finalizer; only then is "the CR is gone" the drift a run sees."""
    resp = world.api.request("DELETE", path)
    assert resp.status_code in (200, 202), resp.text[:300]
    deadline = time.monotonic() + timeout
    while world.api.request("GET", path).status_code != 404:
        assert time.monotonic() < deadline, f"{path} still exists {timeout:.0f}s after its deletion"
        time.sleep(0.2)


def kvinstall_writes(world: World, mark: int) -> list[str]:
    """Write requests kvinstall sent since `mark` (the apiserver's audit log), as "VERB URI"."""
    return [f"{w.verb} {w.uri}" for w in world.api.writes_since(mark, users=(KVINSTALL_USER,))]


def cli_env(world: World, home: Path) -> dict[str, str]:
    """The environment of a `kvinstall` subprocess: the world's (catalog, cache, CA, stand-in
    KubeOne's variables), a private HOME, and the helm this process found (real helm, the test build)."""
    from kvinstall.render.helm import find_helm

    home.mkdir(parents=True, exist_ok=True)
    return {**world.env, "HOME": str(home), "KVINSTALL_HELM": find_helm(), "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1"}  # fmt: skip


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "kvinstall", *args]


def run_cli(
    world: World, cwd: Path, *args: str, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`kvinstall ARGS` as CI runs it: a subprocess, no terminal (stdin /dev/null, stdout a pipe).
    It runs in the root network namespace, so it cannot reach lab hosts: callers pass
    `--skip preflight` to apply (the apiserver and the upstream are on 127.0.0.1)."""
    return subprocess.run(cli_argv(*args), cwd=cwd, env=env or cli_env(world, cwd / "home"),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                          check=False)  # fmt: skip


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of a JSON Lines stream, parsed (a line that is not JSON fails the test)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]
