"""The `kvinstall init` wizard: questions -> a validated Config, with a review screen.

The flow works on a plain dict in the YAML shape of the config (camelCase keys), so that values
of an existing file that the wizard does not ask about (`--from`) survive untouched. Each step is
one function `step_x(ctx, data) -> data`; the review screen calls any of them again.

Every answer is checked while it is typed: field by field with the pydantic models, and across
fields with the same `run_checks` that `kvinstall validate` uses, run on the partial config. An
answer is refused only for errors that it introduces itself (errors of fields not asked yet, such
as "oidc needs a connector" right after choosing oidc, would otherwise block the flow).

Secrets are never asked in clear text: the wizard asks where kvinstall reads them at run time
(an environment variable or a file) and writes `valueFrom`.

questionary and paramiko are imported inside the functions that use them, so that importing
this module (and `kvinstall --help`) stays light.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import re
import socket
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from kvinstall.catalog import Catalog
from kvinstall.config.checks import run_checks
from kvinstall.config.models import (
    API_VERSION,
    KIND,
    APIEndpoint,
    BasicAuth,
    Bastion,
    Config,
    Connector,
    Host,
    MediatedDevice,
    Metadata,
    Network,
    Offline,
    PCIHostDevice,
    Quota,
    RegistryCredentials,
    Storage,
    Workspace,
)
from kvinstall.config.problems import Loc, Problem, format_path
from kvinstall.errors import DeclinedError, SSHError

Data = dict[str, Any]
Check = Callable[[str], str | None]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Only RFC 5737 documentation addresses in the starter file: nobody's real machines.
STARTER_HOSTS = (("192.0.2.10", "controlPlane"), ("192.0.2.11", "worker"), ("192.0.2.12", "worker"))
STARTER_HEADER = (
    "Written by `kvinstall init`. Check it with `kvinstall validate -f FILE`.\n"
    "Field reference: `kvinstall schema`; edit it again with `kvinstall init --from FILE`."
)


# --- the terminal ----------------------------------------------------------------------------------


class UI(Protocol):
    """The few prompt kinds the wizard uses. Every answer passes `validate` before it is returned."""

    def text(self, message: str, *, default: str = "", validate: Check | None = None,
             instruction: str | None = None) -> str: ...

    def select(self, message: str, choices: Sequence[tuple[str, str]], *,
               default: str | None = None) -> str: ...

    def confirm(self, message: str, *, default: bool = False) -> bool: ...

    def checkbox(self, message: str, choices: Sequence[tuple[str, str]], *,
                 checked: Sequence[str] = ()) -> list[str]: ...

    def say(self, text: str) -> None: ...


class QuestionaryUI:
    """UI on questionary. `input`/`output` are prompt_toolkit objects (tests pass a pipe input)."""

    def __init__(self, input: Any = None, output: Any = None) -> None:
        self._kw: dict[str, Any] = {}
        if input is not None:
            self._kw["input"] = input
        if output is not None:
            self._kw["output"] = output
        self._output = output
        self.transcript: list[str] = []  # what say() showed, for tests and logs

    def text(self, message: str, *, default: str = "", validate: Check | None = None,
             instruction: str | None = None) -> str:
        import questionary

        def _v(answer: str) -> bool | str:
            if validate is None:
                return True
            problem = validate(answer)
            return True if problem is None else problem

        q = questionary.text(message, default=default, validate=_v, instruction=instruction, **self._kw)
        return str(q.unsafe_ask()).strip()

    def select(self, message: str, choices: Sequence[tuple[str, str]], *, default: str | None = None) -> str:
        import questionary

        qc = [questionary.Choice(title, value) for value, title in choices]
        # Typing filters the list: a person (and a test) picks by name instead of counting arrows.
        q = questionary.select(message, choices=qc, default=default, use_search_filter=True,
                               use_jk_keys=False, **self._kw)
        return str(q.unsafe_ask())

    def confirm(self, message: str, *, default: bool = False) -> bool:
        import questionary

        return bool(questionary.confirm(message, default=default, **self._kw).unsafe_ask())

    def checkbox(self, message: str, choices: Sequence[tuple[str, str]], *,
                 checked: Sequence[str] = ()) -> list[str]:
        import questionary

        qc = [questionary.Choice(title, value, checked=value in checked) for value, title in choices]
        return [str(v) for v in questionary.checkbox(message, choices=qc, **self._kw).unsafe_ask()]

    def say(self, text: str) -> None:
        from prompt_toolkit import print_formatted_text

        self.transcript.append(text)
        if self._output is not None:
            print_formatted_text(text, output=self._output)
        else:
            print_formatted_text(text)


# --- validation helpers (pure) ---------------------------------------------------------------------


def field_problem(model: type[BaseModel], key: str, value: Any, base: Data | None = None) -> str | None:
    """The model's own complaint about `key: value` (a YAML key), or None; other fields are ignored."""
    info_name = next((n for n, i in model.model_fields.items() if key in (i.alias, n)), key)
    try:
        model.model_validate({**(base or {}), key: value})
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            if err["loc"] and err["loc"][0] in (key, info_name):
                msg = str(err["msg"])
                return msg.removeprefix("Value error, ")
    return None


def _draft_config(data: Data) -> Config | None:
    """The partial config as a Config, with placeholders for what is not asked yet."""
    d = copy.deepcopy(data)
    d.setdefault("apiVersion", API_VERSION)
    d.setdefault("kind", KIND)
    d.setdefault("metadata", {"name": "draft"})
    if not d.get("hosts"):
        d["hosts"] = [{"address": "draft.invalid", "role": "controlPlane"}]
    for h in d["hosts"]:  # the hosts step's explicit "none" markers (see effective())
        for key in ("privateKeyFile", "bastion"):
            if h.get(key) in ("", {}):
                h.pop(key)
    try:
        return Config.model_validate(d)
    except ValidationError:
        return None


def problems_of(data: Data, catalog: Catalog) -> list[Problem]:
    """All problems of a (possibly partial) config; pydantic errors included."""
    d = copy.deepcopy(data)
    d.setdefault("apiVersion", API_VERSION)
    d.setdefault("kind", KIND)
    try:
        cfg = Config.model_validate(d)
    except ValidationError as exc:
        return [
            Problem(str(e["msg"]).removeprefix("Value error, "), loc=tuple(e["loc"]))
            for e in exc.errors(include_url=False)
        ]
    return run_checks(cfg, catalog)


def _key(p: Problem) -> tuple[Loc, str]:
    return (p.loc, p.message)


def new_problems(before: Data, after: Data, catalog: Catalog, locs: Sequence[Loc],
                 severity: str = "error") -> list[Problem]:
    """Problems of `after` not in `before` that concern one of `locs` (at or under it, or naming it)."""
    a = _draft_config(after)
    if a is None:
        return []
    b = _draft_config(before)
    old = {_key(p) for p in run_checks(b, catalog)} if b is not None else set()
    out = []
    for p in run_checks(a, catalog):
        if p.severity != severity or _key(p) in old:
            continue
        if any(p.loc[: len(loc)] == loc or f"({format_path(loc)})" in p.message for loc in locs):
            out.append(p)
    return out


def cross_check(catalog: Catalog, data: Data, apply: Callable[[Data, str], None], *locs: Loc) -> Check:
    """A validator that puts the answer into a copy of `data` and runs the cross-field checks."""

    def check(answer: str) -> str | None:
        after = copy.deepcopy(data)
        try:
            apply(after, answer)
        except (ValueError, TypeError):
            return None  # the field check reports it
        found = new_problems(data, after, catalog, locs)
        if not found:
            return None
        p = found[0]
        return p.message + (f" ({p.hint})" if p.hint else "")

    return check


def all_of(*checks: Check) -> Check:
    def check(answer: str) -> str | None:
        for c in checks:
            problem = c(answer)
            if problem is not None:
                return problem
        return None

    return check


def optional(check: Check) -> Check:
    """An empty answer means 'not set' and is always fine."""
    return lambda answer: None if not answer.strip() else check(answer.strip())


def field_check(model: type[BaseModel], key: str, base: Data | None = None,
                convert: Callable[[str], Any] = str) -> Check:
    def check(answer: str) -> str | None:
        try:
            value = convert(answer.strip())
        except ValueError:
            return f"{answer!r} is not a number"
        return field_problem(model, key, value, base)

    return check


def _port(answer: str) -> int:
    return int(answer.strip())


def check_env_name(answer: str) -> str | None:
    if not _ENV_NAME.match(answer.strip()):
        return "an environment variable name: letters, digits and '_', not starting with a digit"
    return None


def check_nonempty(answer: str) -> str | None:
    return None if answer.strip() else "an answer is needed"


def check_https(answer: str) -> str | None:
    return None if re.match(r"^https://[^\s/]+", answer.strip()) else "an https:// URL"


def split_list(answer: str) -> list[str]:
    return [part.strip() for part in answer.split(",") if part.strip()]


def list_check(check: Check) -> Check:
    def each(answer: str) -> str | None:
        for part in split_list(answer):
            problem = check(part)
            if problem is not None:
                return f"{part}: {problem}"
        return None

    return each


def _dns_label_check(answer: str) -> str | None:
    return field_problem(Metadata, "name", answer)


def _set(d: Data, path: Sequence[str], value: Any) -> None:
    """Set a nested key; None removes it (unset = the default)."""
    for part in path[:-1]:
        d = d.setdefault(part, {})
    if value is None or value == "":
        d.pop(path[-1], None)
    else:
        d[path[-1]] = value


def _get(d: Data, path: Sequence[str], default: Any = None) -> Any:
    for part in path:
        if not isinstance(d, dict) or part not in d:
            return default
        d = d[part]
    return d


# --- context and steps -------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostKey:
    key_type: str
    base64: str
    fingerprint: str

    @property
    def line(self) -> str:
        return f"{self.key_type} {self.base64}"


def fetch_host_key(address: str, port: int, timeout: float = 5.0) -> HostKey:
    """Connect, run the SSH key exchange and return the server's host key. No authentication."""
    import base64
    import hashlib

    import paramiko

    where = f"{address}:{port}"
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except OSError as exc:
        raise SSHError(f"cannot connect: {exc.strerror or exc}", where=where) from None
    transport = paramiko.Transport(sock)
    transport.banner_timeout = timeout
    try:
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise SSHError(f"SSH key exchange failed: {exc}", where=where) from None
    finally:
        transport.close()
    digest = hashlib.sha256(key.asbytes()).digest()
    fp = "SHA256:" + base64.b64encode(digest).decode().rstrip("=")
    return HostKey(key.get_name(), key.get_base64(), fp)


@dataclass
class Ctx:
    ui: UI
    catalog: Catalog
    fetch_key: Callable[[str, int], HostKey] = field(default=fetch_host_key)


def step_cluster(ctx: Ctx, data: Data) -> Data:
    d = copy.deepcopy(data)
    name = ctx.ui.text("Cluster name", default=_get(d, ["metadata", "name"], "") or "",
                       validate=_dns_label_check, instruction="(lower-case letters, digits, '-')")
    d["metadata"] = {**d.get("metadata", {}), "name": name}
    versions = ctx.catalog.versions("kubernetes")
    current = _get(d, ["kubernetes", "version"]) or ctx.catalog.kubernetes.default
    version = ctx.ui.select("Kubernetes version", [(v, v) for v in versions],
                            default=current if current in versions else ctx.catalog.kubernetes.default)
    d.setdefault("kubernetes", {})["version"] = version
    return d


# hosts ---------------------------------------------------------------------------------------------

_SSH_DEFAULTS: dict[str, Any] = {"user": "root", "port": 22, "privateKeyFile": None, "bastion": None}


def effective(data: Data, host: Data, key: str) -> Any:
    """A host's SSH setting: its own, else the ssh section's, else the model default.

    While the hosts step runs, ask_host stores "" (no key file) or {} (no bastion) explicitly, so
    that "none" on one host is not mistaken for "inherit"; hoist_ssh turns them back into unset.
    """
    if host.get(key) is not None:
        return host[key] if host[key] not in ("", {}) else None
    return _get(data, ["ssh", key], _SSH_DEFAULTS[key])


def hoist_ssh(data: Data) -> Data:
    """Move SSH settings all hosts share into the ssh section; keep only differences on the hosts.

    A setting that is unset on some host (no key file, no bastion) cannot be overridden back to
    unset, so the ssh section keeps it unset and the other hosts carry their own.
    """
    d = copy.deepcopy(data)
    hosts = d.get("hosts", [])
    if not hosts:
        return d
    ssh = d.setdefault("ssh", {})
    for key, default in _SSH_DEFAULTS.items():
        values = [effective(data, h, key) for h in hosts]
        encoded = [json.dumps(v, sort_keys=True) for v in values]
        if "null" in encoded:
            common: Any = None
        else:
            common = json.loads(Counter(encoded).most_common(1)[0][0])
        if common is None or common == default:
            ssh.pop(key, None)
        else:
            ssh[key] = common
        shared = common if common is not None else default
        for h, v in zip(hosts, values, strict=True):
            h.pop(key, None)
            if v is not None and v != shared:
                h[key] = v
    if not ssh:
        d.pop("ssh")
    return d


def parse_hosts_file(path: str | Path) -> list[Data]:
    """Hosts from a CSV file (header row of host field names) or a YAML file (a list, or `hosts:`).

    CSV columns are the YAML keys of a host: address and role are required; user, port,
    privateKeyFile, hostname, privateAddress, hostPublicKey are optional (empty cell: unset).
    Raises ValueError naming each bad row.
    """
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {p}: {exc.strerror or exc}") from None
    rows: list[Data]
    if p.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        rows = []
        for row in reader:
            rec: Data = {k.strip(): v.strip() for k, v in row.items() if k and v is not None and v.strip()}
            if "port" in rec:
                with contextlib.suppress(ValueError):  # the model reports it with the row number
                    rec["port"] = int(rec["port"])
            rows.append(rec)
        first_line = 2
    elif p.suffix.lower() in (".yaml", ".yml"):
        from ruamel.yaml import YAML
        from ruamel.yaml.error import YAMLError

        try:
            doc = YAML(typ="safe").load(text)
        except YAMLError as exc:
            raise ValueError(f"{p}: malformed YAML: {exc}") from None
        if isinstance(doc, dict) and "hosts" in doc:
            doc = doc["hosts"]
        if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
            raise ValueError(f"{p}: expected a list of hosts (or a mapping with hosts:)")
        rows = [dict(r) for r in doc]
        first_line = 1
    else:
        raise ValueError(f"{p}: give a .csv or .yaml/.yml file")
    if not rows:
        raise ValueError(f"{p}: no hosts in the file")
    errors = []
    out = []
    for i, row in enumerate(rows):
        label = f"row {i + first_line}" if first_line == 2 else f"hosts[{i}]"
        try:
            host = Host.model_validate(row)
        except ValidationError as exc:
            for e in exc.errors(include_url=False):
                where = ".".join(str(x) for x in e["loc"]) or "(row)"
                errors.append(f"{label}: {where}: {str(e['msg']).removeprefix('Value error, ')}")
            continue
        out.append(host.model_dump(by_alias=True, exclude_defaults=True, mode="json"))
    if errors:
        raise ValueError(f"{p}: " + "; ".join(errors))
    return out


def _host_title(data: Data, i: int, h: Data) -> str:
    extra = f", via {h['bastion']['address']}" if effective(data, h, "bastion") else ""
    pinned = ", host key pinned" if h.get("hostPublicKey") else ""
    return f"{h['address']} ({h['role']}{extra}{pinned})"


def step_hosts(ctx: Ctx, data: Data) -> Data:
    d = copy.deepcopy(data)
    d.setdefault("hosts", [])
    while True:
        hosts = d["hosts"]
        if hosts:
            ctx.ui.say("Hosts: " + "; ".join(_host_title(d, i, h) for i, h in enumerate(hosts)))
        choices = [("add", "Add a host"), ("import", "Import hosts from a file (CSV or YAML)")]
        choices += [(f"edit:{i}", f"Edit {h['address']}") for i, h in enumerate(hosts)]
        choices += [(f"remove:{i}", f"Remove {h['address']}") for i, h in enumerate(hosts)]
        has_cp = any(h.get("role") == "controlPlane" for h in hosts)
        if has_cp:
            choices.append(("done", "Done with hosts"))
        action = ctx.ui.select("Hosts", choices, default="done" if has_cp else "add")
        if action == "done":
            return hoist_ssh(d)
        if action == "add":
            d["hosts"] = [*hosts, ask_host(ctx, d, len(hosts))]
        elif action == "import":
            d = import_hosts(ctx, d)
        elif action.startswith("edit:"):
            i = int(action.split(":")[1])
            d["hosts"][i] = ask_host(ctx, d, i)
        elif action.startswith("remove:"):
            del d["hosts"][int(action.split(":")[1])]


def import_hosts(ctx: Ctx, data: Data) -> Data:
    def merged(d: Data, answer: str) -> None:
        d["hosts"] = [*d["hosts"], *parse_hosts_file(answer)]

    def readable(answer: str) -> str | None:
        try:
            parse_hosts_file(answer)
        except ValueError as exc:
            return str(exc)
        return None

    path = ctx.ui.text("Hosts file", validate=all_of(check_nonempty, readable,
                                                     cross_check(ctx.catalog, data, merged, ("hosts",))),
                       instruction="(.csv with a header row address,role,user,port,... or .yaml list)")
    d = copy.deepcopy(data)
    merged(d, path)
    ctx.ui.say(f"imported {len(d['hosts']) - len(data['hosts'])} host(s)")
    return d


def ask_host(ctx: Ctx, data: Data, i: int) -> Data:
    """Ask one host (index i: a new one when i == len(hosts)). Returns its dict, SSH settings explicit."""
    ui = ctx.ui
    hosts = data["hosts"]
    old: Data = hosts[i] if i < len(hosts) else {}
    prev: Data = old or (hosts[-1] if hosts else {})
    # The host being edited is left out of the cross-checks' baseline, or it would clash with itself.
    base = copy.deepcopy(data)
    base["hosts"] = [h for j, h in enumerate(hosts) if j != i]

    def put(d: Data, answer: str) -> None:
        d["hosts"] = [*d["hosts"], {"address": answer.strip(), "role": "worker"}]

    n = len(base["hosts"])
    address = ui.text("Host address (IP or DNS name)", default=old.get("address", ""),
                      validate=all_of(check_nonempty, field_check(Host, "address"),
                                      cross_check(ctx.catalog, base, put, ("hosts", n, "address"))))
    has_cp = any(h.get("role") == "controlPlane" for h in base["hosts"])
    role = ui.select("Role", [("controlPlane", "control plane"), ("worker", "worker")],
                     default=old.get("role") or ("worker" if has_cp else "controlPlane"))
    host: Data = {k: v for k, v in old.items() if k not in ("address", "role", "hostPublicKey")}
    host = {"address": address, "role": role, **host}
    if old.get("address") == address and old.get("hostPublicKey"):
        host["hostPublicKey"] = old["hostPublicKey"]
    host["user"] = ui.text("SSH user", default=str(effective(data, prev, "user")),
                           validate=all_of(check_nonempty, field_check(Host, "user")))
    host["privateKeyFile"] = ui.text(
        "SSH private key file", default=effective(data, prev, "privateKeyFile") or "",
        instruction="(empty: the SSH agent and ~/.ssh)")
    host["port"] = int(ui.text("SSH port", default=str(effective(data, prev, "port")),
                               validate=field_check(Host, "port", convert=_port)))
    bastion = effective(data, prev, "bastion")
    if ui.confirm("Reach this host through a bastion (jump host)?", default=bastion is not None):
        host["bastion"] = ask_bastion(ctx, bastion or {}, address)
    else:
        host["bastion"] = {}
    if not host["bastion"] and ui.confirm("Check SSH reachability and the host key now?", default=False):
        check_host_key(ctx, host)
    return host


def ask_bastion(ctx: Ctx, old: Data, host_address: str) -> Data:
    ui = ctx.ui

    def not_self(answer: str) -> str | None:
        return "a host cannot be its own bastion" if answer.strip() == host_address else None

    b: Data = {"address": ui.text("Bastion address", default=old.get("address", ""),
                                  validate=all_of(check_nonempty, field_check(Bastion, "address"), not_self))}
    port = int(ui.text("Bastion SSH port", default=str(old.get("port", 22)),
                       validate=field_check(Bastion, "port", {"address": "x"}, convert=_port)))
    if port != 22:
        b["port"] = port
    user = ui.text("Bastion SSH user", default=old.get("user") or "", instruction="(empty: the host's user)")
    if user:
        b["user"] = user
    return b


def check_host_key(ctx: Ctx, host: Data) -> None:
    """Fetch the host key (no login) and pin it if the user accepts the fingerprint."""
    try:
        key = ctx.fetch_key(host["address"], int(host.get("port") or 22))
    except SSHError as exc:
        ctx.ui.say(f"not reachable: {exc}")
        return
    ctx.ui.say(f"{host['address']} presents {key.key_type} key {key.fingerprint}")
    if ctx.ui.confirm(f"Pin this host key ({key.fingerprint})?", default=False):
        host["hostPublicKey"] = key.line
    else:
        host.pop("hostPublicKey", None)


# endpoint, network, storage -------------------------------------------------------------------------


def _first_cp(data: Data) -> str:
    cps = [h["address"] for h in data.get("hosts", []) if h.get("role") == "controlPlane"]
    return cps[0] if cps else (data["hosts"][0]["address"] if data.get("hosts") else "")


def step_endpoint(ctx: Ctx, data: Data) -> Data:
    d = copy.deepcopy(data)
    cur = d.get("apiEndpoint") or {}
    first = _first_cp(d)
    host = ctx.ui.text("Kubernetes API address (a load balancer, or the first control plane)",
                       default=cur.get("host") or first,
                       validate=all_of(check_nonempty, field_check(APIEndpoint, "host")))
    port = int(ctx.ui.text("Kubernetes API port", default=str(cur.get("port", 6443)),
                           validate=field_check(Host, "port", convert=_port)))
    if host == first and port == 6443 and not cur.get("alternativeNames"):
        d.pop("apiEndpoint", None)  # the default: follows the first control plane
    else:
        ep: Data = {**cur, "host": host}
        _set(ep, ["port"], None if port == 6443 else port)
        d["apiEndpoint"] = ep
    return d


_CIDRS = (
    ("podCIDR", "pod_cidr", "Pod network (CIDR)"),
    ("serviceCIDR", "service_cidr", "Service network (CIDR)"),
    ("joinCIDR", "join_cidr", "Kube-OVN join network (CIDR)"),
)


def step_network(ctx: Ctx, data: Data) -> Data:
    d = copy.deepcopy(data)
    defaults = Network()
    ui = ctx.ui

    def putter(key: str) -> Callable[[Data, str], None]:
        def put(x: Data, answer: str) -> None:
            x.setdefault("network", {})[key] = answer.strip()

        return put

    for key, attr, label in _CIDRS:
        answer = ui.text(label, default=_get(d, ["network", key]) or getattr(defaults, attr),
                         validate=all_of(field_check(Network, key),
                                         cross_check(ctx.catalog, d, putter(key), ("network", key),
                                                     ("hosts",))))
        # Defaults are not written: a later release may improve them.
        _set(d, ["network", key], None if answer == getattr(defaults, attr) else answer)
    for key, label in (("gateway", "Pod network gateway"), ("dnsServer", "Cluster DNS service address")):
        current = Network.model_validate(d.get("network", {}))
        auto = Network.model_validate({k: v for k, v in d.get("network", {}).items() if k != key})
        shown = current.effective_gateway() if key == "gateway" else current.effective_dns_server()
        computed = auto.effective_gateway() if key == "gateway" else auto.effective_dns_server()
        answer = ui.text(label, default=shown,
                         validate=all_of(field_check(Network, key),
                                         cross_check(ctx.catalog, d, putter(key), ("network", key))))
        _set(d, ["network", key], None if answer == computed else answer)
    tunnel = ui.text("Tunnel interface (name, comma list or regex)",
                     default=_get(d, ["network", "tunnelInterface"]) or "",
                     instruction="(empty: the interface of the default route)")
    _set(d, ["network", "tunnelInterface"], tunnel or None)
    _tidy(d, ["network"])
    return d


def step_storage(ctx: Ctx, data: Data) -> Data:
    d = copy.deepcopy(data)
    name_check = optional(all_of(field_check(Storage, "defaultClass"), _class_name))
    default_class = ctx.ui.text("StorageClass for VM disks",
                                default=_get(d, ["storage", "defaultClass"]) or "",
                                validate=name_check, instruction="(empty: the cluster's default class)")
    rwx = ctx.ui.text("ReadWriteMany StorageClass (live migration needs one)",
                      default=_get(d, ["storage", "rwxClass"]) or "", validate=name_check,
                      instruction="(empty: none)")
    _set(d, ["storage", "defaultClass"], default_class or None)
    _set(d, ["storage", "rwxClass"], rwx or None)
    if not d.get("storage"):
        d.pop("storage", None)
    return d


def _class_name(answer: str) -> str | None:
    # StorageClass names are DNS subdomains, the same rule as host names.
    return field_problem(Host, "hostname", answer)


# kubevirt ------------------------------------------------------------------------------------------


def _gates(d: Data) -> list[str]:
    return list(_get(d, ["components", "kubevirt", "featureGates"], []) or [])


def _set_gate(ctx: Ctx, d: Data, gate: str, on: bool) -> None:
    """Add or remove a KubeVirt feature gate; a gate that is GA in the chosen version is not listed."""
    kv = d.setdefault("components", {}).setdefault("kubevirt", {})
    gates = _gates(d)
    version = kv.get("version") or ctx.catalog.components["kubevirt"].default
    release = ctx.catalog.components["kubevirt"].get(version)
    ga = release is not None and gate in release.feature_gates.ga
    if on and not ga and gate not in gates:
        gates.append(gate)
    if not on and gate in gates:
        gates.remove(gate)
    _set(kv, ["featureGates"], gates or None)


def step_kubevirt(ctx: Ctx, data: Data) -> Data:
    d = copy.deepcopy(data)
    ui = ctx.ui
    kv = d.setdefault("components", {}).setdefault("kubevirt", {})
    live = ui.confirm("Allow live migration of VMs?", default=kv.get("liveMigration", True))
    _set(kv, ["liveMigration"], None if live else False)
    snap = ui.confirm("Enable VM snapshots?", default="Snapshot" in _gates(d))
    _set_gate(ctx, d, "Snapshot", snap)
    d = ask_gpus(ctx, d)
    kv = d["components"]["kubevirt"]
    emu = ui.confirm("Do the hosts lack /dev/kvm (run VMs in software emulation; slow)?",
                     default=bool(kv.get("useEmulation", False)))
    _set(kv, ["useEmulation"], True if emu else None)
    _tidy(d, ["components", "kubevirt"])
    return d


def _tidy(d: Data, path: Sequence[str]) -> None:
    """Drop empty mappings along path (bottom up), so an untouched section is not written."""
    for n in range(len(path), 0, -1):
        parent = _get(d, path[: n - 1]) if n > 1 else d
        if isinstance(parent, dict) and parent.get(path[n - 1]) in ({}, None):
            parent.pop(path[n - 1], None)


def ask_gpus(ctx: Ctx, data: Data) -> Data:
    d = copy.deepcopy(data)
    ui = ctx.ui
    kv = d["components"]["kubevirt"]
    devices = kv.get("permittedHostDevices") or {}
    current = ("passthrough" if devices.get("pciHostDevices") else
               "vgpu" if devices.get("mediatedDevices") else "none")
    mode = ui.select("GPUs for VMs", [("none", "No GPUs"), ("passthrough", "GPU passthrough (PCI)"),
                                      ("vgpu", "vGPU (mediated devices)")], default=current)
    kv.pop("permittedHostDevices", None)
    kv.pop("mediatedDevicesConfiguration", None)
    for h in d.get("hosts", []):
        h.pop("pciPassthrough", None)
    if mode == "none":
        _set_gate(ctx, d, "HostDevices", False)
        return d
    if mode == "passthrough":
        pci: list[Data] = []
        olds = list(devices.get("pciHostDevices", []))
        while True:
            old = olds.pop(0) if olds else {}
            sel = ui.text("PCI vendor:device id", default=old.get("pciVendorSelector", ""),
                          validate=all_of(check_nonempty, field_check(PCIHostDevice, "pciVendorSelector")),
                          instruction="(e.g. 10DE:1EB8; see lspci -nn)")
            res = ui.text("Resource name VMs request", default=old.get("resourceName", ""),
                          validate=all_of(check_nonempty, field_check(PCIHostDevice, "resourceName")),
                          instruction="(e.g. nvidia.com/TU104GL_Tesla_T4)")
            pci.append({"pciVendorSelector": sel.upper(), "resourceName": res})
            if not ui.confirm("Add another PCI device?", default=bool(olds)):
                break
        kv["permittedHostDevices"] = {"pciHostDevices": pci}
        hosts = d.get("hosts", [])
        was = [h["address"] for h in data.get("hosts", []) if h.get("pciPassthrough")]
        chosen = ui.checkbox("Hosts with the GPUs (IOMMU and vfio-pci are checked on them)",
                             [(h["address"], h["address"]) for h in hosts],
                             checked=was or [h["address"] for h in hosts if h.get("role") == "worker"])
        for h in hosts:
            if h["address"] in chosen:
                h["pciPassthrough"] = True
    else:
        mdevs: list[Data] = []
        olds = list(devices.get("mediatedDevices", []))
        while True:
            old = olds.pop(0) if olds else {}
            sel = ui.text("mdev type name", default=old.get("mdevNameSelector", ""), validate=check_nonempty,
                          instruction="(e.g. GRID T4-1Q)")
            res = ui.text("Resource name VMs request", default=old.get("resourceName", ""),
                          validate=all_of(check_nonempty, field_check(MediatedDevice, "resourceName")),
                          instruction="(e.g. nvidia.com/GRID_T4-1Q)")
            mdevs.append({"mdevNameSelector": sel, "resourceName": res})
            if not ui.confirm("Add another vGPU type?", default=bool(olds)):
                break
        kv["permittedHostDevices"] = {"mediatedDevices": mdevs}
        old_types = _get(data, ["components", "kubevirt", "mediatedDevicesConfiguration",
                                "mediatedDeviceTypes"], []) or []
        types = ui.text("mdev types to create on the nodes (comma-separated)", default=", ".join(old_types),
                        instruction="(e.g. nvidia-222; empty: created outside kvinstall)")
        if split_list(types):
            kv["mediatedDevicesConfiguration"] = {"mediatedDeviceTypes": split_list(types)}
    _set_gate(ctx, d, "HostDevices", True)
    return d


# auth ------------------------------------------------------------------------------------------------


def ask_secret_ref(ctx: Ctx, what: str, old: Any = None) -> Data:
    """Where kvinstall reads a secret at run time: {valueFrom: {env: NAME}} or {valueFrom: {file: PATH}}."""
    src = (old or {}).get("valueFrom", {}) if isinstance(old, dict) else {}
    kind = ctx.ui.select(f"{what}: read it from", [("env", "an environment variable"), ("file", "a file")],
                         default="file" if src.get("file") else "env")
    if kind == "env":
        name = ctx.ui.text(f"{what}: environment variable name", default=src.get("env", ""),
                           validate=check_env_name, instruction="(the value itself is never written)")
        return {"valueFrom": {"env": name}}
    path = ctx.ui.text(f"{what}: file path", default=src.get("file", ""), validate=check_nonempty,
                       instruction="(the file holding the value; it is never copied into the config)")
    return {"valueFrom": {"file": path}}


def step_auth(ctx: Ctx, data: Data) -> Data:
    d = copy.deepcopy(data)
    ui = ctx.ui
    auth = d.setdefault("auth", {})
    mode = ui.select("How do users log in?", [("none", "No login (kubeconfig only)"),
                                              ("basic", "Basic: a local admin user (Dex password DB)"),
                                              ("oidc", "OIDC: upstream identity providers (Dex connectors)")],
                     default=auth.get("mode", "none"))
    _set(auth, ["mode"], None if mode == "none" else mode)
    if mode != "none":
        def put(x: Data, answer: str) -> None:
            x.setdefault("auth", {})["issuer"] = answer.strip()
            x["auth"]["mode"] = mode

        auth["issuer"] = ui.text("Dex issuer URL", default=auth.get("issuer", ""),
                                 validate=all_of(check_nonempty, cross_check(ctx.catalog, d, put,
                                                                             ("auth", "issuer"))),
                                 instruction="(https, e.g. https://dex.example.com/dex)")
    if mode == "basic":
        basic = auth.setdefault("basic", {})
        email = ui.text("Admin login (email)", default=basic.get("adminEmail", "admin@kvinstall.local"),
                        validate=all_of(check_nonempty, field_check(BasicAuth, "adminEmail")))
        _set(basic, ["adminEmail"], None if email == "admin@kvinstall.local" else email)
        how = ui.select("Admin password", [("generate", "Generate one at install (0600 credentials file)"),
                                           ("ref", "Read it from an environment variable or a file")],
                        default="ref" if basic.get("password") else "generate")
        _set(basic, ["password"], ask_secret_ref(ctx, "Admin password", basic.get("password"))
             if how == "ref" else None)
    elif mode == "oidc":
        auth["oidc"] = {**auth.get("oidc", {}), "connectors": ask_connectors(ctx, d)}
    _tidy(d, ["auth", "basic"])
    _tidy(d, ["auth"])
    return d


def ask_connectors(ctx: Ctx, data: Data) -> list[Data]:
    conns: list[Data] = list(_get(data, ["auth", "oidc", "connectors"], []) or [])
    while True:
        if conns:
            ctx.ui.say("Connectors: " + ", ".join(f"{c['id']} ({c['type']})" for c in conns))
        choices = [("add", "Add a connector")]
        choices += [(f"edit:{i}", f"Edit {c['id']}") for i, c in enumerate(conns)]
        choices += [(f"remove:{i}", f"Remove {c['id']}") for i, c in enumerate(conns)]
        if conns:
            choices.append(("done", "Done with connectors"))
        action = ctx.ui.select("Identity providers", choices, default="done" if conns else "add")
        if action == "done":
            return conns
        if action == "add":
            conns.append(ask_connector(ctx, {}, [c["id"] for c in conns]))
        elif action.startswith("edit:"):
            i = int(action.split(":")[1])
            conns[i] = ask_connector(ctx, conns[i], [c["id"] for j, c in enumerate(conns) if j != i])
        else:
            del conns[int(action.split(":")[1])]


def ask_connector(ctx: Ctx, old: Data, taken: list[str]) -> Data:
    ui = ctx.ui
    titles = {"oidc": "OpenID Connect", "github": "GitHub", "gitlab": "GitLab", "ldap": "LDAP"}
    if old and old.get("type") not in titles:
        # A connector type the wizard does not know (saml, microsoft, ...) from a --from file.
        ui.say(f"connector {old.get('id')}: type {old.get('type')} is edited in the file; kept as it is")
        return old
    kind = ui.select("Connector type", list(titles.items()), default=old.get("type", "oidc"))

    def unique(answer: str) -> str | None:
        return f"connector id {answer!r} is used already" if answer.strip() in taken else None

    cid = ui.text("Connector id", default=old.get("id", kind),
                  validate=all_of(field_check(Connector, "id"), unique))
    name = ui.text("Name on the login page", default=old.get("name", titles[kind]), validate=check_nonempty)
    conf: Data = dict(old.get("config", {})) if old.get("type") == kind else {}
    conn: Data = {"type": kind, "id": cid, "name": name}
    if kind == "ldap":
        conf["host"] = ui.text("LDAP server HOST:PORT", default=conf.get("host", ""), validate=check_nonempty)
        conf["bindDN"] = ui.text("Bind DN", default=conf.get("bindDN", ""), validate=check_nonempty)
        conf["bindPW"] = ask_secret_ref(ctx, "Bind password", conf.get("bindPW"))
        search = dict(conf.get("userSearch", {}))
        search["baseDN"] = ui.text("User search base DN", default=search.get("baseDN", ""),
                                   validate=check_nonempty)
        search["username"] = ui.text("User name attribute", default=search.get("username", "uid"),
                                     validate=check_nonempty)
        conf["userSearch"] = search
    else:
        if kind == "oidc":
            conf["issuer"] = ui.text("Provider issuer URL", default=conf.get("issuer", ""),
                                     validate=check_https)
        conf["clientID"] = ui.text("Client id", default=conf.get("clientID", ""), validate=check_nonempty)
        conn["clientSecret"] = ask_secret_ref(ctx, "Client secret", old.get("clientSecret"))
        conf.pop("clientSecret", None)
        if conf.get("redirectURI"):
            conf["redirectURI"] = ui.text("Redirect URI", default=conf["redirectURI"], validate=check_https)
    conn["config"] = conf
    return conn


# kyverno, workspaces, offline -------------------------------------------------------------------------


def step_kyverno(ctx: Ctx, data: Data) -> Data:
    d = copy.deepcopy(data)
    ui = ctx.ui
    ky = d.setdefault("components", {}).setdefault("kyverno", {})
    enabled = ui.confirm("Install Kyverno with the baseline VM policies?", default=ky.get("enabled", True))
    _set(ky, ["enabled"], None if enabled else False)
    if enabled:
        pol = ky.setdefault("policies", {})
        mode = ui.select("Policy mode", [("Audit", "Audit: report violations"),
                                         ("Enforce", "Enforce: deny violating VMs")],
                         default=pol.get("mode", "Audit"))
        _set(pol, ["mode"], None if mode == "Audit" else mode)
        if _get(d, ["components", "kubevirt", "permittedHostDevices"]):
            ns = ui.text("Namespaces whose VMs may use GPUs/host devices (comma-separated)",
                         default=", ".join(pol.get("hostDevicesNamespaces", [])),
                         validate=list_check(_dns_label_check), instruction="(empty: none)")
            _set(pol, ["hostDevicesNamespaces"], split_list(ns) or None)
        else:
            pol.pop("hostDevicesNamespaces", None)
        _tidy(d, ["components", "kyverno", "policies"])
    _tidy(d, ["components", "kyverno"])
    _tidy(d, ["components"])
    return d


def step_workspaces(ctx: Ctx, data: Data) -> Data:
    d = copy.deepcopy(data)
    d.setdefault("workspaces", [])
    while True:
        wss = d["workspaces"]
        if wss:
            ctx.ui.say("Workspaces: " + ", ".join(w["name"] for w in wss))
        choices = [("add", "Add a workspace")]
        choices += [(f"edit:{i}", f"Edit {w['name']}") for i, w in enumerate(wss)]
        choices += [(f"remove:{i}", f"Remove {w['name']}") for i, w in enumerate(wss)]
        choices.append(("done", "Done with workspaces"))
        action = ctx.ui.select("Tenant workspaces", choices, default="done")
        if action == "done":
            if not d["workspaces"]:
                d.pop("workspaces")
            return d
        if action == "add":
            d["workspaces"] = [*wss, ask_workspace(ctx, d, len(wss))]
        elif action.startswith("edit:"):
            i = int(action.split(":")[1])
            d["workspaces"][i] = ask_workspace(ctx, d, i)
        else:
            del d["workspaces"][int(action.split(":")[1])]


def ask_workspace(ctx: Ctx, data: Data, i: int) -> Data:
    ui = ctx.ui
    wss = data["workspaces"]
    old: Data = wss[i] if i < len(wss) else {}
    base = copy.deepcopy(data)
    base["workspaces"] = [w for j, w in enumerate(wss) if j != i]
    n = len(base["workspaces"])

    def put_name(x: Data, answer: str) -> None:
        x["workspaces"] = [*x["workspaces"], {"name": answer.strip()}]

    name = ui.text("Workspace name (also its namespace)", default=old.get("name", ""),
                   validate=all_of(field_check(Workspace, "name"),
                                   cross_check(ctx.catalog, base, put_name, ("workspaces", n, "name"))))
    ws: Data = {**old, "name": name}
    members: list[Data] = []
    for m in old.get("members", []):
        who = f"user {m['user']}" if m.get("user") else f"group {m['group']}"
        if ui.confirm(f"Keep member {who} ({m['role']})?", default=True):
            members.append(m)
    while ui.confirm("Add a member?", default=not members):
        kind = ui.select("Member is a", [("user", "user"), ("group", "group")], default="user")
        who = ui.text(f"{kind.capitalize()} name", validate=check_nonempty)
        role = ui.select("Role in the workspace", [("view", "view"), ("edit", "edit"), ("admin", "admin")],
                         default="edit")
        members.append({kind: who, "role": role})
    _set(ws, ["members"], members or None)
    quota = dict(old.get("quota", {}))
    for key, label, example in (("cpu", "CPU quota", "32"), ("memory", "Memory quota", "128Gi"),
                                ("storage", "Storage quota", "2Ti")):
        ans = ui.text(label, default=str(quota.get(key, "")), validate=optional(field_check(Quota, key)),
                      instruction=f"(e.g. {example}; empty: no limit)")
        _set(quota, [key], ans or None)
    _set(ws, ["quota"], quota or None)

    def put_vpc(x: Data, answer: str) -> None:
        x["workspaces"] = [*x["workspaces"], {"name": name, "vpcCIDR": answer.strip()}]

    vpc = ui.text("Own VPC network (CIDR)", default=old.get("vpcCIDR", ""),
                  validate=optional(all_of(field_check(Workspace, "vpcCIDR", {"name": "x"}),
                                           cross_check(ctx.catalog, base, put_vpc,
                                                       ("workspaces", n, "vpcCIDR")))),
                  instruction="(empty: the cluster network)")
    _set(ws, ["vpcCIDR"], vpc or None)
    return ws


def step_offline(ctx: Ctx, data: Data) -> Data:
    d = copy.deepcopy(data)
    ui = ctx.ui
    off = d.get("offline", {})
    if not ui.confirm("Air-gapped install from a site registry?", default=bool(off.get("enabled"))):
        d.pop("offline", None)
        return d
    new: Data = {"enabled": True}
    new["registry"] = ui.text("Site registry HOST[:PORT]", default=off.get("registry", ""),
                              validate=all_of(check_nonempty, field_check(Offline, "registry")))
    tls = ui.select("Registry TLS", [("system", "TLS, certificate signed by a system CA"),
                                     ("ca", "TLS, certificate signed by my own CA (CA file)"),
                                     ("insecure", "Plain HTTP (insecure)")],
                    default="insecure" if off.get("insecure") else "ca" if off.get("caFile") else "system")
    if tls == "ca":
        new["caFile"] = ui.text("CA bundle file", default=off.get("caFile", ""), validate=check_nonempty)
    elif tls == "insecure":
        new["insecure"] = True
    creds = off.get("credentials") or {}
    if ui.confirm("Does the registry need a login?", default=bool(creds)):
        user = ui.text("Registry user", default=creds.get("username", ""),
                       validate=all_of(check_nonempty, field_check(RegistryCredentials, "username")))
        new["credentials"] = {"username": user, "password": ask_secret_ref(ctx, "Registry password",
                                                                             creds.get("password"))}
    d["offline"] = new
    return d


# review -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    run: Callable[[Ctx, Data], Data]
    summary: Callable[[Data], str]


def _sum_hosts(d: Data) -> str:
    hosts = d.get("hosts", [])
    cps = sum(1 for h in hosts if h.get("role") == "controlPlane")
    return f"{cps} control plane, {len(hosts) - cps} worker(s): " + ", ".join(h["address"] for h in hosts)


def _sum_network(d: Data) -> str:
    net = Network.model_validate(d.get("network", {}))
    return (f"pods {net.pod_cidr}, services {net.service_cidr}, join {net.join_cidr}, "
            f"gateway {net.effective_gateway()}, DNS {net.effective_dns_server()}, "
            f"tunnel {net.tunnel_interface or '(default route)'}")


def _sum_kubevirt(d: Data) -> str:
    kv = _get(d, ["components", "kubevirt"], {}) or {}
    dev = kv.get("permittedHostDevices") or {}
    gpu = ("passthrough " + ", ".join(x["pciVendorSelector"] for x in dev["pciHostDevices"])
           if dev.get("pciHostDevices") else
           "vGPU " + ", ".join(x["mdevNameSelector"] for x in dev["mediatedDevices"])
           if dev.get("mediatedDevices") else "no GPUs")
    return (f"live migration {'on' if kv.get('liveMigration', True) else 'off'}, "
            f"snapshots {'on' if 'Snapshot' in kv.get('featureGates', []) else 'off'}, {gpu}"
            + (", software emulation" if kv.get("useEmulation") else ""))


def _sum_auth(d: Data) -> str:
    auth = d.get("auth", {})
    mode = auth.get("mode", "none")
    if mode == "none":
        return "none"
    extra = ", ".join(c["id"] for c in _get(auth, ["oidc", "connectors"], []) or [])
    return f"{mode}, issuer {auth.get('issuer')}" + (f", connectors {extra}" if extra else "")


def _sum_kyverno(d: Data) -> str:
    ky = _get(d, ["components", "kyverno"], {}) or {}
    if ky.get("enabled") is False:
        return "not installed"
    return f"policies {_get(ky, ['policies', 'mode'], 'Audit')}"


def _sum_offline(d: Data) -> str:
    off = d.get("offline") or {}
    if not off.get("enabled"):
        return "no (online install)"
    tls = "plain HTTP" if off.get("insecure") else f"CA {off['caFile']}" if off.get("caFile") else "TLS"
    return f"registry {off['registry']} ({tls}" + (", login" if off.get("credentials") else "") + ")"


STEPS: tuple[Step, ...] = (
    Step("cluster", "Cluster", step_cluster,
         lambda d: f"{_get(d, ['metadata', 'name'])}, Kubernetes {_get(d, ['kubernetes', 'version'])}"),
    Step("hosts", "Hosts", step_hosts, _sum_hosts),
    Step("endpoint", "API endpoint", step_endpoint,
         lambda d: (f"{d['apiEndpoint']['host']}:{d['apiEndpoint'].get('port', 6443)}" if d.get("apiEndpoint")
                    else f"{_first_cp(d)}:6443 (first control plane)")),
    Step("network", "Network", step_network, _sum_network),
    Step("storage", "Storage", step_storage,
         lambda d: (f"VM disks {_get(d, ['storage', 'defaultClass']) or '(cluster default)'}, "
                    f"ReadWriteMany {_get(d, ['storage', 'rwxClass']) or '(none)'}")),
    Step("kubevirt", "KubeVirt", step_kubevirt, _sum_kubevirt),
    Step("auth", "Login", step_auth, _sum_auth),
    Step("kyverno", "Policies", step_kyverno, _sum_kyverno),
    Step("workspaces", "Workspaces", step_workspaces,
         lambda d: ", ".join(w["name"] for w in d.get("workspaces", [])) or "none"),
    Step("offline", "Offline", step_offline, _sum_offline),
)


def review(ctx: Ctx, data: Data) -> Config:
    """Show every section; edit any of them (that step only) until the user writes or cancels."""
    d = data
    while True:
        ctx.ui.say("Review:")
        for step in STEPS:
            ctx.ui.say(f"  {step.title}: {step.summary(d)}")
        problems = problems_of(d, ctx.catalog)
        errors = [p for p in problems if p.severity == "error"]
        for p in problems:
            ctx.ui.say(f"  {'error' if p.severity == 'error' else 'warning'}: {p.path}: {p.message}"
                       + (f" ({p.hint})" if p.hint else ""))
        choices = [] if errors else [("write", "Write the file")]
        choices += [(s.key, f"Edit {s.title}") for s in STEPS]
        choices.append(("cancel", "Cancel (write nothing)"))
        action = ctx.ui.select("Review", choices, default="write" if not errors else STEPS[0].key)
        if action == "write":
            return Config.model_validate({"apiVersion": API_VERSION, "kind": KIND, **d})
        if action == "cancel":
            raise DeclinedError("cancelled at the review screen; nothing written")
        step = next(s for s in STEPS if s.key == action)
        d = step.run(ctx, d)


def replace_inline_secrets(ctx: Ctx, data: Data, config: Config) -> Data:
    """Secrets given in clear text in a `--from` file are asked again as references (never rewritten)."""
    d = copy.deepcopy(data)
    for path, secret in config.secrets():
        if secret.value_from is not None:
            continue
        ctx.ui.say(f"{path} is written in clear text; `kvinstall init` writes secrets as references only")
        ref = ask_secret_ref(ctx, path)
        node: Any = d
        loc = [int(x) if x.isdigit() else x for x in re.split(r"[.\[\]]+", path) if x]
        for part in loc[:-1]:
            node = node[part]
        node[loc[-1]] = ref
    return d


def config_data(config: Config) -> Data:
    """A Config in the YAML shape the steps edit (defaults left out), without apiVersion/kind."""
    from kvinstall.config.writer import config_to_data

    d = config_to_data(config)
    d.pop("apiVersion", None)
    d.pop("kind", None)
    return d


def run(ctx: Ctx, initial: Config | None = None) -> Config:
    """The whole flow: every step in order (an existing config's values as defaults), then review."""
    d: Data = config_data(initial) if initial is not None else {}
    if initial is not None:
        d = replace_inline_secrets(ctx, d, initial)
    for step in STEPS:
        before = d
        d = step.run(ctx, d)
        for p in new_problems(before, d, ctx.catalog, [()], severity="warning"):
            ctx.ui.say(f"warning: {p.path}: {p.message}" + (f" ({p.hint})" if p.hint else ""))
    return review(ctx, d)


STARTER_FOOTER = """
# More settings (all optional; `kvinstall schema` lists every field), for example:
# apiEndpoint:
#   host: 192.0.2.100            # a load balancer in front of the control plane
# storage:
#   defaultClass: ceph-rbd
#   rwxClass: cephfs             # live migration needs a ReadWriteMany class
# auth:
#   mode: oidc
#   issuer: https://dex.example.com/dex
# offline:
#   enabled: true
#   registry: registry.example.com:5000
"""


def starter_yaml(catalog: Catalog) -> str:
    """The `--defaults` file as text: the starter config, commented, with examples of more settings."""
    from kvinstall.config.writer import to_yaml

    text = to_yaml(starter_config(catalog), header=STARTER_HEADER)
    for address, role in STARTER_HOSTS:
        what = "the control-plane machine" if role == "controlPlane" else "a worker machine"
        text = text.replace(f"- address: {address}\n",
                            f"- address: {address}  # documentation address: put {what} here\n", 1)
    return text + STARTER_FOOTER


def starter_config(catalog: Catalog, name: str = "my-cluster") -> Config:
    """The `--defaults` file: one control plane and two workers at documentation addresses."""
    return Config.model_validate({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name},
        "kubernetes": {"version": catalog.kubernetes.default},
        "hosts": [{"address": a, "role": r} for a, r in STARTER_HOSTS],
    })


__all__ = ["STEPS", "Ctx", "HostKey", "QuestionaryUI", "fetch_host_key", "hoist_ssh", "parse_hosts_file",
           "review", "run", "starter_config"]
