"""The seam to the outside world, as one object: how kvinstall opens SSH connections (and which
known_hosts and ssh config it reads), reaches the cluster, runs KubeOne, fetches upstream artifacts and
talks to OCI registries.

Commands use `Edges()`, the real thing. Tests swap what cannot be real here, and only that: the SSH
sockets of a host lab that lives in network namespaces, the user's known_hosts, KubeOne's environment.
The options a user gives (kvinstall.phases.context.Options) carry no such hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kvinstall.components.artifacts import ArtifactCache, OfflineRegistry
    from kvinstall.config.models import Config
    from kvinstall.hosts.hostkeys import HostKey
    from kvinstall.hosts.preflight import PreflightReport
    from kvinstall.kube.client import Kube
    from kvinstall.mirror.registry import RegistryClient

# How an SSH connection's socket is opened: (address, port, timeout) -> a connected socket.
SocketFactory = Callable[[str, int, float], Any]


@dataclass(frozen=True)
class Edges:
    socket_factory: SocketFactory | None = None  # None: a TCP connection from this host
    user_known_hosts: Sequence[Path] | None = None  # None: ~/.ssh/known_hosts
    ssh_config_path: Path | None = None  # None: ~/.ssh/config
    kubeone_env: Mapping[str, str] | None = None  # None: this process's environment
    artifact_cache: Path | None = None  # None: $KVINSTALL_CACHE_DIR or ~/.cache/kvinstall/artifacts

    # -- SSH --------------------------------------------------------------------------------------

    def preflight(
        self, config: Config, *, accept_new_host_keys: bool, skip: AbstractSet[str], known_hosts: Path
    ) -> PreflightReport:
        """Facts and checks of every host (kvinstall.hosts.preflight)."""
        from kvinstall.hosts.preflight import run_preflight

        return run_preflight(
            config,
            accept_new_host_keys=accept_new_host_keys,
            skip=skip,
            known_hosts_path=known_hosts,
            socket_factory=self.socket_factory,
            user_known_hosts=self.user_known_hosts,
            ssh_config_path=self.ssh_config_path,
        )

    def configure_host_packages(self, config: Config, *, known_hosts: Path) -> dict[str, bool]:
        """Point every host's apt at the site package repository (kvinstall.hosts.packages)."""
        from kvinstall.hosts.packages import configure

        return configure(
            config,
            known_hosts_path=known_hosts,
            socket_factory=self.socket_factory,
            user_known_hosts=self.user_known_hosts,
            ssh_config_path=self.ssh_config_path,
        )

    def host_key(self, address: str, port: int, timeout: float = 5.0) -> HostKey:
        """The key a host presents (key exchange only, no login)."""
        from kvinstall.hosts.hostkeys import fetch_host_key

        return fetch_host_key(address, port, timeout, socket_factory=self.socket_factory)

    # -- the cluster --------------------------------------------------------------------------------

    def kube(self, kubeconfig: Path) -> Kube:
        from kvinstall.kube.client import Kube

        return Kube.from_kubeconfig(kubeconfig)

    # -- KubeOne ----------------------------------------------------------------------------------

    def kubeone_apply(
        self,
        manifest: str,
        state: Path,
        *,
        binary: str,
        extra_args: Sequence[str],
        registries_auth: str | None,
        on_line: Callable[[str], None],
    ) -> Path:
        """`kubeone apply` on the rendered manifest; returns the kubeconfig it wrote."""
        from kvinstall.kubeone.runner import run_kubeone

        return run_kubeone(
            manifest,
            state,
            binary=binary,
            extra_args=list(extra_args),
            registries_auth_yaml=registries_auth,
            on_line=on_line,
            env=self.kubeone_env,
        )

    def kubeone_reset(
        self, manifest: str, state: Path, *, binary: str, on_line: Callable[[str], None]
    ) -> None:
        from kvinstall.kubeone.runner import reset

        reset(manifest, state, binary=binary, on_line=on_line, env=self.kubeone_env)

    # -- artifacts and registries -------------------------------------------------------------------

    def artifacts(self, config: Config | None = None, *, fetch: bool = True) -> ArtifactCache:
        """The ArtifactSource: the verified cache, then (with `fetch`) upstream, or the site registry
        of an offline `config` (without one: upstream, as the mirror fetches)."""
        from kvinstall.components.artifacts import ArtifactCache, source_for

        if config is None:
            return ArtifactCache(self.artifact_cache, fetch=fetch)
        return source_for(config, fetch=fetch, cache_dir=self.artifact_cache)

    def registry(self, reg: OfflineRegistry) -> RegistryClient:
        client: RegistryClient = reg.client()
        return client
