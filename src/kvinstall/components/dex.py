"""Dex, the identity provider the kube-apiserver trusts (auth.mode basic or oidc; none deploys nothing).

Dex is rendered from our own templates (templates/dex.yaml.j2: Namespace, ServiceAccount, RBAC,
config Secret, Service, Deployment) rather than the upstream chart: the chart's objects are few and
simple, and this way `plan` needs neither the helm binary nor the chart archive. The Dex
configuration (issuer, Kubernetes storage, connectors, static clients, the password DB) is built
here as a plain dict and goes into the Secret `dex-config`, never a ConfigMap,
because it holds client secrets and the admin's bcrypt hash.

TLS (auth.tls certManager, the default when cert-manager is on): a Certificate `dex-tls` for the
issuer's host from cert-manager's cluster issuer, and Dex serves HTTPS on 5554 with it; otherwise plain
HTTP on 5556 behind the site's own TLS proxy.

Mode basic needs an admin credential: configured (auth.basic.password) or generated once, by apply.
Both the clear password and its bcrypt hash live in a 0600 credentials file in the local state
directory, so re-runs reuse the same hash (bcrypt salts are random: hashing again would rewrite the
Secret and show a change on every plan). Rendering stays pure: the component receives the credentials
through an injected provider (`AdminCredentialsFile(state_dir)`, which writes only for apply).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import stat
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import bcrypt

from kvinstall.components.base import CatalogComponent, Cluster
from kvinstall.components.certmanager import API as CERT_API
from kvinstall.components.certmanager import CLUSTER_ISSUER
from kvinstall.components.kubevirt import offline_rewrite
from kvinstall.config.problems import Problem
from kvinstall.config.secrets import Secret
from kvinstall.errors import ConfigError, LocalIOError
from kvinstall.model import Artifact, ArtifactSource, ReadinessRule, Rendered

if TYPE_CHECKING:
    from kvinstall.catalog import Catalog
    from kvinstall.config.models import Config

CREDENTIALS_FILE = "dex-admin-credentials.json"
# What a dry run renders for a credential that apply will generate (never a usable value).
GENERATED = "<generated at apply>"
HTTP_PORT = 5556
HTTPS_PORT = 5554
TLS_DIR = "/etc/dex-tls"  # where the Secret of Certificate dex-tls is mounted (auth.tls certManager)
TELEMETRY_PORT = 5558
# Redirect URIs of kubectl oidc-login (kubelogin), the usual client of the kube-apiserver's OIDC.
KUBECTL_REDIRECT_URIS = ("http://localhost:8000", "http://localhost:18000")
CONFIG_SECRET = "dex-config"
ADMIN_SECRET = "dex-admin"


# --- admin credentials (mode basic) ---------------------------------------------------------------


@dataclass(frozen=True)
class AdminCredentials:
    email: str
    password: str = field(repr=False)
    bcrypt_hash: str = field(repr=False)
    path: Path | None = None  # the credentials file, when kept in one
    generated_at_apply: bool = False  # not made yet (a dry run): password and hash are placeholders

    @property
    def user_id(self) -> str:
        # Stable per login, so Dex's user id (the `sub` claim) survives re-runs.
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kvinstall:dex:{self.email}"))

    def __str__(self) -> str:  # never the password
        return f"admin credentials for {self.email}"


CredentialsProvider = Callable[["Config"], AdminCredentials]


def _hash_matches(password: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode(), hashed.encode())
    except ValueError:  # not a bcrypt hash
        return False


def _read_credentials(path: Path) -> dict[str, str] | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LocalIOError(
            f"cannot read the admin credentials: {exc.strerror or exc}", where=str(path)
        ) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), str) for k in ("email", "password", "bcryptHash")
    ):
        raise LocalIOError(
            "the admin credentials file is not in the expected form",
            where=str(path),
            hint="remove it to generate a new admin password",
        )
    return {k: str(v) for k, v in data.items()}


def _write_credentials(path: Path, creds: AdminCredentials) -> None:
    data = json.dumps(
        {"email": creds.email, "password": creds.password, "bcryptHash": creds.bcrypt_hash}, indent=2
    )
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        # Created 0600 from the start: the clear value is never readable by others, not even briefly.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(data + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise LocalIOError(
            f"cannot write the admin credentials: {exc.strerror or exc}", where=str(path)
        ) from exc


def credentials_path(state_dir: Path) -> Path:
    return Path(state_dir) / CREDENTIALS_FILE


class AdminCredentialsFile:
    """Mode basic's admin credential, kept in STATE_DIR/dex-admin-credentials.json (mode 0600): a
    CredentialsProvider for DexComponent.

    The password is auth.basic.password when configured, else the stored one, else a new random one;
    the stored bcrypt hash is reused while the password is unchanged. Only apply writes: with
    `generate=False` (plan, render, mirror, status, reset) nothing is written and a credential that does
    not exist yet is "generated at apply" (a placeholder in the rendered Secrets); with `generate=True`
    a missing or changed credential is made in memory and `save()` writes it."""

    def __init__(self, state_dir: Path, *, generate: bool = False) -> None:
        self.path = credentials_path(state_dir)
        self.generate = generate
        self.current: AdminCredentials | None = None
        self._stored: dict[str, str] | None = None

    def __call__(self, config: Config) -> AdminCredentials:
        basic = config.auth.basic
        stored = self._stored = _read_credentials(self.path)
        if basic.password is not None:
            password = basic.password.require("auth.basic.password")
            if not password:
                raise ConfigError([Problem("the admin password is empty", loc=("auth", "basic", "password"))])
        elif stored is not None:
            password = stored["password"]
        elif self.generate:
            password = secrets.token_urlsafe(18)
        else:
            self.current = AdminCredentials(
                email=basic.admin_email, password=GENERATED, bcrypt_hash=GENERATED, generated_at_apply=True
            )
            return self.current
        if (
            stored is not None
            and stored["password"] == password
            and _hash_matches(password, stored["bcryptHash"])
        ):
            hashed = stored["bcryptHash"]
        else:
            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()
        self.current = AdminCredentials(
            email=basic.admin_email, password=password, bcrypt_hash=hashed, path=self.path
        )
        return self.current

    def save(self) -> None:
        """Write the credential in use (0600) unless the file already holds it; tighten a loose mode."""
        creds = self.current
        if creds is None or creds.generated_at_apply:
            return
        if not self.generate:
            raise ValueError("a read-only credentials provider never writes")
        unchanged = self._stored == {
            "email": creds.email,
            "password": creds.password,
            "bcryptHash": creds.bcrypt_hash,
        }
        if not unchanged:
            _write_credentials(self.path, creds)
            self._stored = {"email": creds.email, "password": creds.password, "bcryptHash": creds.bcrypt_hash}
        elif stat.S_IMODE(self.path.stat().st_mode) != 0o600:
            try:
                self.path.chmod(0o600)
            except OSError as exc:
                raise LocalIOError(
                    f"cannot restrict the credentials file: {exc.strerror or exc}", where=str(self.path)
                ) from exc


def load_admin_credentials(state_dir: Path, config: Config) -> AdminCredentials:
    """The admin credential of mode basic, read or created, and kept in the state directory (what
    apply does; see AdminCredentialsFile)."""
    provider = AdminCredentialsFile(state_dir, generate=True)
    creds = provider(config)
    provider.save()
    return creds


def ensure_admin_credentials(state_dir: Path, config: Config) -> tuple[Path, str]:
    """(path of the 0600 credentials file, the admin password).

    The caller prints the path, never the password."""
    creds = load_admin_credentials(state_dir, config)
    assert creds.path is not None
    return creds.path, creds.password


# --- the Dex configuration ----------------------------------------------------------------------


def _resolve_refs(value: Any, loc: tuple[str | int, ...]) -> Any:
    """Connector settings with every secret (`{valueFrom: {env|file: ...}}`, or `{value: ...}` as a KubeV
    file's inline secret becomes) replaced by the secret's value."""
    if isinstance(value, dict):
        if set(value) == {"valueFrom"} or (set(value) == {"value"} and isinstance(value["value"], str)):
            try:
                secret = Secret.model_validate(value)
            except ValueError as exc:
                raise ConfigError([Problem(f"not a secret reference: {exc}", loc=loc)]) from exc
            return secret.require(loc)
        return {k: _resolve_refs(v, (*loc, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_refs(v, (*loc, i)) for i, v in enumerate(value)]
    return value


def dex_config(config: Config, admin: AdminCredentials | None) -> dict[str, Any]:
    """Dex's config.yaml as a dict (it holds secrets: it only ever goes into a Secret)."""
    auth = config.auth
    if not auth.issuer:
        raise ConfigError(
            [
                Problem(
                    f"auth.mode {auth.mode} needs the Dex issuer URL",
                    loc=("auth", "issuer"),
                    hint="e.g. https://dex.example.com/dex",
                )
            ]
        )
    clients: list[dict[str, Any]] = []
    for i, c in enumerate(auth.static_clients):
        client: dict[str, Any] = {"id": c.id, "name": c.name, "redirectURIs": list(c.redirect_uris)}
        if c.public:
            client["public"] = True
        if c.secret is not None:
            client["secret"] = c.secret.require(("auth", "staticClients", i, "secret"))
        clients.append(client)
    if not any(c["id"] == auth.client_id for c in clients):
        # The client the kube-apiserver trusts (its audience); kubectl oidc-login logs in with it.
        clients.insert(
            0,
            {
                "id": auth.client_id,
                "name": "Kubernetes",
                "public": True,
                "redirectURIs": list(KUBECTL_REDIRECT_URIS),
            },
        )
    out: dict[str, Any] = {
        "issuer": auth.issuer,
        "storage": {"type": "kubernetes", "config": {"inCluster": True}},
        "web": (
            {"https": f"0.0.0.0:{HTTPS_PORT}", "tlsCert": f"{TLS_DIR}/tls.crt", "tlsKey": f"{TLS_DIR}/tls.key"}
            if config.dex_tls()
            else {"http": f"0.0.0.0:{HTTP_PORT}"}
        ),
        "telemetry": {"http": f"0.0.0.0:{TELEMETRY_PORT}"},
        "oauth2": {"skipApprovalScreen": True},
        "staticClients": clients,
    }
    if auth.mode == "basic":
        if admin is None:
            raise ValueError("mode basic needs the admin credentials")
        out["enablePasswordDB"] = True
        out["oauth2"]["passwordConnector"] = "local"
        out["staticPasswords"] = [
            {"email": admin.email, "hash": admin.bcrypt_hash, "username": "admin", "userID": admin.user_id}
        ]
    else:
        out["enablePasswordDB"] = False
    # Upstream connectors in either mode: basic offers them next to the password login.
    connectors = []
    for i, conn in enumerate(auth.oidc.connectors):
        loc: tuple[str | int, ...] = ("auth", "oidc", "connectors", i)
        settings = _resolve_refs(dict(conn.config), (*loc, "config"))
        if conn.client_secret is not None:
            settings["clientSecret"] = conn.client_secret.require((*loc, "clientSecret"))
        connectors.append({"type": conn.type, "id": conn.id, "name": conn.name, "config": settings})
    if connectors or auth.mode == "oidc":
        out["connectors"] = connectors
    return out


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --- the component -------------------------------------------------------------------------------


class DexComponent(CatalogComponent):
    name = "dex"
    title = "Dex"
    namespace: str | None = "dex"

    def __init__(self, credentials: CredentialsProvider | None = None) -> None:
        self.credentials = credentials

    def with_credentials(self, credentials: CredentialsProvider) -> DexComponent:
        return DexComponent(credentials)

    def enabled(self, config: Config) -> bool:
        return config.auth.mode != "none"

    def version(self, config: Config) -> str:
        return config.components.dex.version

    def artifacts(self, config: Config, catalog: Catalog) -> list[Artifact]:
        # Rendered from our own templates: only the image is needed, no chart.
        return []

    def render(self, config: Config, catalog: Catalog, source: ArtifactSource) -> Rendered:
        from kvinstall.render.env import render_template

        if not self.enabled(config):
            return Rendered()
        admin: AdminCredentials | None = None
        if config.auth.mode == "basic":
            if self.credentials is None:
                raise ValueError("DexComponent needs a credentials provider for auth.mode basic")
            admin = self.credentials(config)
        # Deterministic text (sorted keys): an unchanged config gives a byte-identical Secret.
        config_text = json.dumps(dex_config(config, admin), sort_keys=True, indent=2) + "\n"
        release = self.release(config, catalog)
        objects = render_template(
            "dex.yaml.j2",
            ns=config.auth.namespace,
            image=release.images[0],
            config_data={"config.yaml": _b64(config_text)},
            # Rolls the pods when the configuration changes (Dex reads it only at start).
            config_checksum=hashlib.sha256(config_text.encode()).hexdigest(),
            admin_data=(
                {"email": _b64(admin.email), "password": _b64(admin.password)} if admin is not None else None
            ),
            http_port=HTTP_PORT,
            https_port=HTTPS_PORT,
            telemetry_port=TELEMETRY_PORT,
            tls=config.dex_tls(),
            dns_name=urlsplit(config.auth.issuer or "").hostname or "",
            cluster_issuer=CLUSTER_ISSUER,
        )
        notes = []
        if admin is not None and admin.generated_at_apply:
            notes.append(
                f"admin password of {admin.email}: generated at apply and kept in the state directory "
                f"({CREDENTIALS_FILE}, mode 0600); Secrets {CONFIG_SECRET} and {ADMIN_SECRET} show a placeholder here"
            )
        return Rendered(objects=offline_rewrite(objects, config), notes=notes)

    def readiness(self, config: Config, catalog: Catalog) -> list[ReadinessRule]:
        ns = config.auth.namespace
        rules = [ReadinessRule("apps/v1", "Deployment", "dex", namespace=ns)]
        if config.dex_tls():
            rules.insert(0, ReadinessRule(CERT_API, "Certificate", "dex-tls", ns, conditions=(("Ready", "True"),)))
        return rules

    def remove(
        self, config: Config, catalog: Catalog, cluster: Cluster, delete_all: Callable[[], None]
    ) -> None:
        # Dex's own CRDs (*.dex.coreos.com) are created by Dex at start, outside our inventory; they stay.
        delete_all()


COMPONENT = DexComponent()


def for_state_dir(state_dir: Path, *, generate: bool = False) -> DexComponent:
    """Dex with its admin credential kept in `state_dir` (read-only unless `generate`: only apply writes)."""
    return DexComponent(AdminCredentialsFile(state_dir, generate=generate))
