"""cert-manager, from its upstream Helm chart (CRDs included: `crds.enabled`), and the cluster issuer
`kvinstall` that the other components take their certificates from (Dex's TLS among them).

Installed early (right after the CNI): whatever needs a certificate comes later in the install order.
The issuer (components.certManager.issuer):
- selfSigned (default): a bootstrap self-signed issuer signs a CA certificate `kvinstall-ca` (Secret
  kvinstall-ca in cert-manager's namespace, made and renewed by cert-manager), and `kvinstall` signs
  with that CA: one root to trust for everything the cluster issues;
- ca: the site's own CA (certificate file and key), put into Secret kvinstall-ca;
- acme: an ACME account (e.g. Let's Encrypt) with HTTP-01 challenges answered through an ingress class.

The chart's webhooks (validating and mutating cert-manager.io objects) get their caBundle from
cert-manager's cainjector at run time: kvinstall never owns that field. The issuer objects are applied
once the chart's objects are; until cert-manager's webhook answers, the apiserver refuses them with a
transient error that the apply engine retries. Offline, every image reference (containers and the
controller's `--acme-http01-solver-image`) points at the site registry.
Removal: the issuers first (custom resources go first) while cert-manager still runs, then the rest.
Secrets cert-manager made (the CA, issued certificates) stay in their namespaces.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kvinstall.components.base import CatalogComponent, Cluster
from kvinstall.components.charts import chart_objects
from kvinstall.components.kubevirt import offline_rewrite
from kvinstall.config.problems import Problem
from kvinstall.errors import ConfigError
from kvinstall.model import ArtifactSource, ReadinessRule, Rendered

if TYPE_CHECKING:
    from kvinstall.catalog import Catalog
    from kvinstall.config.models import Config

CHART_ARTIFACT = "cert-manager-chart"
API = "cert-manager.io/v1"
CLUSTER_ISSUER = "kvinstall"  # what Dex (and any later component) asks for certificates
CA_SECRET = "kvinstall-ca"
DEPLOYMENTS = ("cert-manager", "cert-manager-cainjector", "cert-manager-webhook")


def chart_values(config: Config) -> dict[str, Any]:
    """The chart values (pure): the CRDs are templates of the chart, off unless asked for."""
    return {"crds": {"enabled": True}}


def _read_pem(path: str, loc: tuple[str, ...], marker: str) -> str:
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(f"cannot read {path}: {exc.strerror or exc}", loc=loc)]) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem(f"{path} is not a PEM text file", loc=loc)]) from None
    if marker not in text:
        raise ConfigError([Problem(f"{path} holds no {marker.strip('-')}", loc=loc)])
    return text


def issuer_objects(config: Config, namespace: str) -> list[dict[str, Any]]:
    """The cluster issuer `kvinstall` and what it rests on, for the configured issuer type."""
    from kvinstall.render.env import render_template

    cm = config.components.cert_manager
    ca_data = None
    if cm.issuer == "ca":
        assert cm.ca is not None  # config checks require the section
        loc = ("components", "certManager", "ca")
        cert = _read_pem(cm.ca.cert_file, (*loc, "certFile"), "-----BEGIN CERTIFICATE-----")
        key = cm.ca.key.require((*loc, "key"))
        if "PRIVATE KEY-----" not in key:
            raise ConfigError([Problem("the CA key is not a PEM private key", loc=(*loc, "key"))])

        def b64(text: str) -> str:
            return base64.b64encode(text.encode()).decode()

        ca_data = {"tls.crt": b64(cert), "tls.key": b64(key)}
    return render_template(
        "cert-manager-issuer.yaml.j2",
        issuer=cm.issuer,
        ns=namespace,
        common_name=f"kvinstall {config.name} CA",
        ca_data=ca_data,
        acme=cm.acme,
    )


class CertManagerComponent(CatalogComponent):
    name = "certmanager"
    title = "cert-manager"
    namespace: str | None = "cert-manager"

    def enabled(self, config: Config) -> bool:
        return config.components.cert_manager.enabled

    def version(self, config: Config) -> str:
        return config.components.cert_manager.version

    def render(self, config: Config, catalog: Catalog, source: ArtifactSource) -> Rendered:
        rendered = Rendered()
        release = self.release(config, catalog)
        objects = chart_objects(
            config,
            release,
            source,
            rendered,
            artifact=CHART_ARTIFACT,
            release_name="cert-manager",
            values=chart_values(config),
        )
        objects += issuer_objects(config, self._ns(config, catalog))
        rendered.objects = offline_rewrite(objects, config)
        return rendered

    def readiness(self, config: Config, catalog: Catalog) -> list[ReadinessRule]:
        ns = self._ns(config, catalog)
        rules = [ReadinessRule("apps/v1", "Deployment", name, ns) for name in DEPLOYMENTS]
        if config.components.cert_manager.issuer == "selfSigned":
            rules.append(ReadinessRule(API, "Certificate", CA_SECRET, ns, conditions=(("Ready", "True"),)))
        rules.append(ReadinessRule(API, "ClusterIssuer", CLUSTER_ISSUER, conditions=(("Ready", "True"),)))
        return rules

    def remove(
        self, config: Config, catalog: Catalog, cluster: Cluster, delete_all: Callable[[], None]
    ) -> None:
        # Custom resources (issuers, the CA certificate) go first in delete_all, while cert-manager runs.
        delete_all()


COMPONENT = CertManagerComponent()
