"""The hosts: the hosts step (add, edit, remove, import), host import from a CSV or YAML file, the
host-key check (hosts/hostkeys.py), and SSH settings shared by every host moved into the ssh section."""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kvinstall.config.models import Bastion, Host
from kvinstall.errors import SSHError
from kvinstall.wizard.prompts import Ctx
from kvinstall.wizard.validators import (
    Data,
    all_of,
    check_nonempty,
    cross_check,
    field_check,
    get_in,
    port_number,
)

_SSH_DEFAULTS: dict[str, Any] = {"user": "root", "port": 22, "privateKeyFile": None, "bastion": None}


def effective(data: Data, host: Data, key: str) -> Any:
    """A host's SSH setting: its own, else the ssh section's, else the model default.

    While the hosts step runs, ask_host stores "" (no key file) or {} (no bastion) explicitly, so
    that "none" on one host is not mistaken for "inherit"; hoist_ssh turns them back into unset.
    """
    if host.get(key) is not None:
        return host[key] if host[key] not in ("", {}) else None
    return get_in(data, ["ssh", key], _SSH_DEFAULTS[key])


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
        raise ValueError(f"cannot read {p}: {exc.strerror or exc}") from exc
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
            raise ValueError(f"{p}: malformed YAML: {exc}") from exc
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
                               validate=field_check(Host, "port", convert=port_number)))
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
                       validate=field_check(Bastion, "port", {"address": "x"}, convert=port_number)))
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

