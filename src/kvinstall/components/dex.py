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

The Deployment's `kvinstall.io/config-sha256` rolls the pods when the configuration changes (Dex
reads it only at start), secrets included: a rotated client secret Dex never reloads breaks every
login. But the annotation is readable by anyone who may read Deployments, which is more people than
may read Secrets, and a plain hash of a config holding a client secret can be reversed by trying
candidate secrets. So it is an HMAC-SHA256 of the configuration under a random 256-bit key kept in
the state directory (`dex-checksum.key`, 0600), made by apply like the credential
(`ChecksumKeyFile(state_dir)`): nothing in the cluster or the config derives it. A new state directory
(another machine) means a new key and one Dex restart. Where apply will make the key (or the
credential, or read a secret the dry run cannot), plan and render show the annotation as "<computed at
apply>" rather than a value apply would not write; with the key on record they compute apply's value
exactly. Without a key provider (library use) the hash covers the configuration with every secret
value blanked out: still safe to publish, but then a secret-only change does not roll Dex.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
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
from kvinstall.config.placeholders import UNKNOWN_PREFIX
from kvinstall.config.problems import Problem
from kvinstall.config.secrets import Secret, is_secret_ref
from kvinstall.errors import ConfigError, LocalIOError
from kvinstall.model import Artifact, ArtifactSource, ReadinessRule, Rendered

if TYPE_CHECKING:
    from kvinstall.catalog import Catalog
    from kvinstall.config.models import Config

CREDENTIALS_FILE = "dex-admin-credentials.json"
CHECKSUM_KEY_FILE = "dex-checksum.key"
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


ChecksumKey = Callable[[], "bytes | None"]  # None: the key is made at apply (a dry run before the first)


class ChecksumKeyFile:
    """The key of the config checksum (see the module doc), kept in STATE_DIR/dex-checksum.key (0600):
    a ChecksumKey for DexComponent. As with the credential, only apply writes: with `generate=False`
    (plan, render, mirror, status) a key on record is read and none is made; with `generate=True` a
    missing key is made in memory and `save()` writes it, before the run applies anything."""

    def __init__(self, state_dir: Path, *, generate: bool = False) -> None:
        self.path = Path(state_dir) / CHECKSUM_KEY_FILE
        self.generate = generate
        self._made: bytes | None = None  # made by this run, not written yet

    def __call__(self) -> bytes | None:
        if self._made is not None:
            return self._made
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:
            text = ""
        except OSError as exc:
            raise LocalIOError(
                f"cannot read the checksum key: {exc.strerror or exc}", where=str(self.path)
            ) from exc
        if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
            return bytes.fromhex(text)
        if text:
            raise LocalIOError(
                "the checksum key file is not in the expected form (64 hex digits)",
                where=str(self.path),
                hint="remove it: apply makes a new key, and Dex restarts once",
            )
        if not self.generate:
            return None
        self._made = secrets.token_bytes(32)
        return self._made

    def save(self) -> None:
        """Write the key this run made (0600 from the start); nothing when it was on record."""
        if self._made is None:
            return
        if not self.generate:
            raise ValueError("a read-only checksum key never writes")
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(self._made.hex() + "\n")
            os.replace(tmp, self.path)
        except OSError as exc:
            raise LocalIOError(
                f"cannot write the checksum key: {exc.strerror or exc}", where=str(self.path)
            ) from exc


# What plan and render show for the checksum when apply will compute it (see the module doc).
CHECKSUM_AT_APPLY = "<computed at apply>"


def config_checksum(text: str, secret_values: list[str], key: bytes | None) -> str:
    """The pod-template annotation for Dex's configuration text (see the module doc)."""
    if key is not None:
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
    public = text
    for value in sorted(set(secret_values), key=len, reverse=True):
        escaped = json.dumps(value)[1:-1]  # as the value appears inside the JSON text
        if escaped:
            public = public.replace(escaped, "<secret>")
    return hashlib.sha256(public.encode()).hexdigest()


# --- the Dex configuration ----------------------------------------------------------------------


def _resolve_refs(value: Any, loc: tuple[str | int, ...], revealed: list[str]) -> Any:
    """Connector settings with every secret (`{valueFrom: {env|file: ...}}`, or `{value: ...}` as a KubeV
    file's inline secret becomes) replaced by the secret's value."""
    if isinstance(value, dict):
        if is_secret_ref(value):
            try:
                secret = Secret.model_validate(value)
            except ValueError as exc:
                raise ConfigError([Problem(f"not a secret reference: {exc}", loc=loc)]) from exc
            revealed.append(secret.require(loc))
            return revealed[-1]
        return {k: _resolve_refs(v, (*loc, k), revealed) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_refs(v, (*loc, i), revealed) for i, v in enumerate(value)]
    return value


def dex_config(config: Config, admin: AdminCredentials | None) -> dict[str, Any]:
    """Dex's config.yaml as a dict (it holds secrets: it only ever goes into a Secret)."""
    return _dex_config(config, admin, [])


def _dex_config(config: Config, admin: AdminCredentials | None, revealed: list[str]) -> dict[str, Any]:
    """dex_config, appending every secret value it puts in to `revealed`."""
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
            revealed.append(client["secret"])
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
        revealed.append(admin.bcrypt_hash)
    else:
        out["enablePasswordDB"] = False
    # Upstream connectors in either mode: basic offers them next to the password login.
    connectors = []
    for i, conn in enumerate(auth.oidc.connectors):
        loc: tuple[str | int, ...] = ("auth", "oidc", "connectors", i)
        settings = _resolve_refs(dict(conn.config), (*loc, "config"), revealed)
        if conn.client_secret is not None:
            settings["clientSecret"] = conn.client_secret.require((*loc, "clientSecret"))
            revealed.append(settings["clientSecret"])
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

    def __init__(
        self, credentials: CredentialsProvider | None = None, checksum_key: ChecksumKey | None = None
    ) -> None:
        self.credentials = credentials
        self.checksum_key = checksum_key

    def with_credentials(self, credentials: CredentialsProvider) -> DexComponent:
        return DexComponent(credentials, self.checksum_key)

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
        revealed: list[str] = []
        config_text = json.dumps(_dex_config(config, admin, revealed), sort_keys=True, indent=2) + "\n"
        key = self.checksum_key() if self.checksum_key is not None else None
        # A dry run shows what apply will compute only when it knows everything apply hashes.
        at_apply = self.checksum_key is not None and (
            key is None
            or (admin is not None and admin.generated_at_apply)
            or UNKNOWN_PREFIX in config_text  # a secret the dry run could not read
        )
        checksum = CHECKSUM_AT_APPLY if at_apply else config_checksum(config_text, revealed, key)
        release = self.release(config, catalog)
        objects = render_template(
            "dex.yaml.j2",
            ns=config.auth.namespace,
            image=release.images[0],
            config_data={"config.yaml": _b64(config_text)},
            # Rolls the pods when the configuration changes (Dex reads it only at start); keyed, so
            # it does not give away the secrets in it (module doc).
            config_checksum=checksum,
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
        if at_apply and key is None:
            notes.append(
                f"config checksum of the Deployment: keyed with a new {CHECKSUM_KEY_FILE} that apply makes "
                "in the state directory (mode 0600)"
            )
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
    """Dex with its admin credential and checksum key kept in `state_dir` (read-only unless `generate`:
    only apply writes)."""
    return DexComponent(
        AdminCredentialsFile(state_dir, generate=generate), ChecksumKeyFile(state_dir, generate=generate)
    )
