"""What the phases of a run share: the loaded config, the desired state, the edges (cluster client,
SSH socket factory, artifact source), the journal, the events, and the stop flag set by Ctrl-C."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kvinstall.catalog import Catalog
from kvinstall.config.models import Config
from kvinstall.model import ArtifactSource, DesiredState
from kvinstall.phases.events import Events
from kvinstall.phases.journal import Journal
from kvinstall.state import kubeconfig_path

if TYPE_CHECKING:
    from kvinstall.kube.client import Kube


@dataclass
class Options:
    resume: bool = False
    only: frozenset[str] = frozenset()
    skip: frozenset[str] = frozenset()
    skip_checks: frozenset[str] = frozenset()
    accept_new_host_keys: bool = False
    prune_protected: bool = False
    kubeconfig: Path | None = None  # an existing cluster instead of the state's kubeconfig
    ready_timeout: float = 600.0
    # Edges the tests (and unusual sites) replace: how SSH sockets are opened, which known_hosts.
    socket_factory: Callable[[str, int, float], Any] | None = None
    user_known_hosts: list[Path] | None = None
    ssh_config_path: Path | None = None
    kubeone_env: dict[str, str] | None = None


@dataclass
class Context:
    config: Config
    config_file: Path
    catalog: Catalog
    state: Path
    desired: DesiredState
    source: ArtifactSource
    events: Events
    journal: Journal
    options: Options
    stop: threading.Event = field(default_factory=threading.Event)
    summaries: dict[str, str] = field(default_factory=dict)
    _kube: Kube | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.options.kubeconfig or kubeconfig_path(self.state)

    def kube(self) -> Kube:
        """The cluster client; created on first use (KubeOne writes the kubeconfig first)."""
        if self._kube is None:
            from kvinstall.errors import ClusterError
            from kvinstall.kube.client import Kube

            if not self.kubeconfig.exists():
                raise ClusterError(
                    "no kubeconfig for the cluster",
                    where=str(self.kubeconfig),
                    hint="run the kubeone phase first, or pass --kubeconfig",
                )
            self._kube = Kube.from_kubeconfig(self.kubeconfig)
        return self._kube

    def try_kube(self) -> Kube | None:
        return self.kube() if self.kubeconfig.exists() else None
