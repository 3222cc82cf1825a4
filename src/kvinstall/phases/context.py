"""What the phases of a run share: the options the user gave, the loaded config and its desired state,
the edges (kvinstall.edges), the journal, the events, the stop flag set by Ctrl-C, and the cluster as
last observed (for the dry run)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kvinstall.catalog import Catalog
from kvinstall.config.models import Config
from kvinstall.edges import Edges
from kvinstall.model import ArtifactSource, DesiredState
from kvinstall.phases.events import Events
from kvinstall.phases.journal import Journal
from kvinstall.state import kubeconfig_path

if TYPE_CHECKING:
    from kvinstall.kube.client import Kube
    from kvinstall.plan.observe import Live


@dataclass(frozen=True)
class Options:
    """What the user asked for on the command line (apply, and plan, which shows what apply would do)."""

    resume: bool = False
    only: frozenset[str] = frozenset()
    skip: frozenset[str] = frozenset()
    skip_checks: frozenset[str] = frozenset()
    accept_new_host_keys: bool = False
    prune_protected: bool = False
    kubeconfig: Path | None = None  # an existing cluster instead of the state's kubeconfig
    ready_timeout: float = 600.0


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
    edges: Edges = field(default_factory=Edges)
    stop: threading.Event = field(default_factory=threading.Event)
    summaries: dict[str, str] = field(default_factory=dict)
    observe_hosts: bool = False  # the dry run contacts the hosts (plan --refresh-hosts)
    # apply's preview: a cluster that cannot be observed is noted, and everything shown as to create
    unobservable_ok: bool = False
    observe_notes: list[str] = field(default_factory=list)
    _kube: Kube | None = None
    _live: Live | None = None
    _observed: bool = False

    @property
    def kubeconfig(self) -> Path:
        return self.options.kubeconfig or kubeconfig_path(self.state)

    def kube(self) -> Kube:
        """The cluster client; created on first use (KubeOne writes the kubeconfig first)."""
        if self._kube is None:
            from kvinstall.errors import ClusterError

            if not self.kubeconfig.exists():
                raise ClusterError(
                    "no kubeconfig for the cluster",
                    where=str(self.kubeconfig),
                    hint="run the kubeone phase first, or pass --kubeconfig",
                )
            self._kube = self.edges.kube(self.kubeconfig)
        return self._kube

    def try_kube(self) -> Kube | None:
        return self.kube() if self.kubeconfig.exists() else None

    def reconnect(self) -> None:
        """A new kubeconfig (KubeOne wrote it): the next use connects again and observes afresh."""
        self._kube = None
        self._live = None
        self._observed = False

    def live(self) -> Live | None:
        """The cluster as observed once for this run's dry run (None: no cluster to observe)."""
        if not self._observed:
            from kvinstall.components import all_components
            from kvinstall.errors import KvError
            from kvinstall.plan.observe import observe

            self._observed = True
            try:
                kube = self.try_kube()
                if kube is not None:
                    self._live = observe(
                        kube,
                        self.desired,
                        prune_protected=self.options.prune_protected,
                        known=[c.name for c in all_components()],
                    )
            except KvError as exc:
                if not self.unobservable_ok:
                    raise
                self.observe_notes.append(f"cluster: not observed ({exc.message})")
                self._kube = None
        return self._live
