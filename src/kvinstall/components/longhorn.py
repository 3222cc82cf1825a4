"""Longhorn: replicated block storage on the nodes' disks, from its upstream Helm chart.

Two StorageClasses: `longhorn`, which longhorn-manager creates from the chart's settings (the cluster
default unless storage.defaultClass names another class), and kvinstall's `longhorn-rwx`
(templates/longhorn.yaml.j2): ReadWriteMany migratable block volumes, the kind KubeVirt live-migrates,
so storage.rwxClass defaults to it and live migration needs no class of the user's. Replicas per
volume: components.longhorn.replicas, else the number of workers, at most 3 (the control planes keep
their NoSchedule taint, so they hold none); both classes follow Longhorn's default-replica-count.
The upgrade checker (a call home to Longhorn's servers) is off. What the hosts need (iSCSI initiator,
NFS client, room on the data path, no multipathd claiming Longhorn's devices) is checked in preflight
(hosts/checks.py).

Images: longhorn-manager is told the images it deploys (engine, instance manager, share manager,
backing image manager, support bundle kit) as command-line flags, and the driver deployer the CSI
sidecars' as *_IMAGE env: offline, all of them point at the site registry like every container image.
Readiness: the manager, the driver deployer and UI, then what they create at run time: the CSI driver
and its sidecar workloads, and the `longhorn` StorageClass.

Removal, as the chart's pre-delete hook would do it: refused while Longhorn volumes exist (their data
would go with it); otherwise the deleting-confirmation-flag setting is set, longhorn-manager's
uninstaller runs as a Job (it removes Longhorn's own objects, the CSI driver and the manager), and
then the rest of the inventory goes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kvinstall.components.base import CatalogComponent, Cluster
from kvinstall.components.charts import chart_objects
from kvinstall.components.kubevirt import offline_rewrite
from kvinstall.components.removal import delete_and_wait, list_served
from kvinstall.config.models import LONGHORN_CLASS, LONGHORN_RWX_CLASS
from kvinstall.errors import ClusterError
from kvinstall.model import ArtifactSource, ReadinessRule, Rendered

if TYPE_CHECKING:
    from kvinstall.catalog import Catalog
    from kvinstall.config.models import Config

CHART_ARTIFACT = "longhorn-chart"
API = "longhorn.io/v1beta2"
DRIVER = "driver.longhorn.io"
UNINSTALL_JOB = "longhorn-uninstall"
CONFIRMATION_SETTING = "deleting-confirmation-flag"
# Created by the driver deployer at run time.
CSI_DEPLOYMENTS = ("csi-attacher", "csi-provisioner", "csi-resizer", "csi-snapshotter")
MAX_DEFAULT_REPLICAS = 3


def replica_count(config: Config) -> int:
    """components.longhorn.replicas, else one per worker (all hosts without workers), at most 3."""
    lh = config.components.longhorn
    if lh.replicas is not None:
        return lh.replicas
    return max(1, min(MAX_DEFAULT_REPLICAS, len(config.workers) or len(config.hosts)))


def chart_values(config: Config) -> dict[str, Any]:
    """The chart values (pure)."""
    lh = config.components.longhorn
    replicas = replica_count(config)
    return {
        "persistence": {
            "defaultClass": config.default_storage_class() == LONGHORN_CLASS,
            "defaultClassReplicaCount": replicas,
        },
        "defaultSettings": {
            "defaultReplicaCount": replicas,
            "defaultDataPath": lh.data_path,
            "upgradeChecker": False,
        },
    }


class LonghornComponent(CatalogComponent):
    name = "longhorn"
    title = "Longhorn"
    namespace: str | None = "longhorn-system"

    def __init__(self, job_timeout: float = 900.0) -> None:
        self.job_timeout = job_timeout  # the uninstaller's own activeDeadlineSeconds

    def enabled(self, config: Config) -> bool:
        return config.components.longhorn.enabled

    def version(self, config: Config) -> str:
        return config.components.longhorn.version

    def render(self, config: Config, catalog: Catalog, source: ArtifactSource) -> Rendered:
        from kvinstall.render.env import render_template

        rendered = Rendered()
        release = self.release(config, catalog)
        objects = chart_objects(
            config,
            release,
            source,
            rendered,
            artifact=CHART_ARTIFACT,
            release_name="longhorn",
            values=chart_values(config),
            privileged=True,
        )
        objects += render_template("longhorn.yaml.j2", rwx_class=LONGHORN_RWX_CLASS)
        rendered.objects = offline_rewrite(objects, config)
        rendered.notes.append(
            f"{replica_count(config)} replica(s) per volume; StorageClasses {LONGHORN_CLASS} "
            f"(made by longhorn-manager) and {LONGHORN_RWX_CLASS} (ReadWriteMany, live migration)"
        )
        return rendered

    def readiness(self, config: Config, catalog: Catalog) -> list[ReadinessRule]:
        ns = self._ns(config, catalog)
        return [
            ReadinessRule("apps/v1", "DaemonSet", "longhorn-manager", ns),
            ReadinessRule("apps/v1", "Deployment", "longhorn-driver-deployer", ns),
            ReadinessRule("apps/v1", "Deployment", "longhorn-ui", ns),
            ReadinessRule("storage.k8s.io/v1", "CSIDriver", DRIVER, exists_only=True),
            *(ReadinessRule("apps/v1", "Deployment", name, ns) for name in CSI_DEPLOYMENTS),
            ReadinessRule("apps/v1", "DaemonSet", "longhorn-csi-plugin", ns),
            ReadinessRule("storage.k8s.io/v1", "StorageClass", LONGHORN_CLASS, exists_only=True),
        ]

    def uninstall_job(self, config: Config, catalog: Catalog) -> dict[str, Any]:
        from kvinstall.render.env import render_template

        release = self.release(config, catalog)
        (job,) = render_template(
            "longhorn-uninstall.yaml.j2", ns=self._ns(config, catalog), image=release.images[0]
        )
        (job,) = offline_rewrite([job], config)
        return job

    def remove(
        self, config: Config, catalog: Catalog, cluster: Cluster, delete_all: Callable[[], None]
    ) -> None:
        ns = self._ns(config, catalog)
        volumes = sorted(
            str(pv["metadata"]["name"])
            for pv in list_served(cluster, "v1", "PersistentVolume")
            if ((pv.get("spec") or {}).get("csi") or {}).get("driver") == DRIVER
        )
        if volumes:
            raise ClusterError(
                f"{len(volumes)} Longhorn volume(s) still exist: {', '.join(volumes[:10])}; removing Longhorn "
                "would destroy their data",
                where="components.longhorn",
                hint="delete the PersistentVolumeClaims (and their VMs) first, or keep Longhorn enabled",
            )
        if cluster.get("apps/v1", "DaemonSet", "longhorn-manager", ns) is not None:
            cluster.apply(
                {
                    "apiVersion": API,
                    "kind": "Setting",
                    "metadata": {"name": CONFIRMATION_SETTING, "namespace": ns},
                    "value": "true",
                },
                force=True,
            )
            delete_and_wait(cluster, [("batch/v1", "Job", UNINSTALL_JOB, ns)])
            cluster.apply(self.uninstall_job(config, catalog), force=True)
            self._wait_job(cluster, ns)
            delete_and_wait(cluster, [("batch/v1", "Job", UNINSTALL_JOB, ns)])
        delete_all()

    def _wait_job(self, cluster: Cluster, ns: str) -> None:
        deadline = time.monotonic() + self.job_timeout
        while True:
            job = cluster.get("batch/v1", "Job", UNINSTALL_JOB, ns) or {}
            conditions = {
                c.get("type"): c
                for c in (job.get("status") or {}).get("conditions") or []
                if c.get("status") == "True"
            }
            if "Complete" in conditions:
                return
            if "Failed" in conditions:
                raise ClusterError(
                    f"Longhorn's uninstaller failed: {conditions['Failed'].get('message') or 'no message'}",
                    where=f"Job {ns}/{UNINSTALL_JOB}",
                    hint=f"kubectl -n {ns} logs job/{UNINSTALL_JOB}",
                )
            if time.monotonic() >= deadline:
                raise ClusterError(
                    f"Longhorn's uninstaller did not finish in {self.job_timeout:.0f}s",
                    where=f"Job {ns}/{UNINSTALL_JOB}",
                    hint=f"kubectl -n {ns} logs job/{UNINSTALL_JOB}",
                )
            time.sleep(1.0)


COMPONENT = LonghornComponent()
