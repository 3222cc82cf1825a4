"""The text form of a plan, rendered from its JSON form (so both always say the same)."""

from __future__ import annotations

import json
from typing import Any

_SIGN = {"create": "+", "update": "~", "delete": "-", "unchanged": "=", "run": ">", "skip": "·"}


def _value(v: Any) -> str:
    text = json.dumps(v, default=str) if not isinstance(v, str) else v
    return text if len(text) <= 80 else text[:77] + "..."


def render_text(plan: dict[str, Any], *, show_unchanged: bool = False, manifest: str | None = None) -> str:
    out: list[str] = [f"Plan for cluster {plan['cluster']} ({plan['apiVersion']})"]
    obs = plan["observed"]
    seen = [k for k in ("cluster", "hosts", "registry") if obs.get(k)]
    unseen = [k for k in ("cluster", "hosts", "registry") if not obs.get(k)]
    out.append(f"Observed: {', '.join(seen) or 'nothing'}; not observed: {', '.join(unseen) or 'nothing'}")
    out += [f"  note: {n}" for n in obs.get("notes", [])]
    for w in plan.get("warnings", []):
        out.append(w if "warning" in w else f"warning: {w}")
    out += upgrades_text(plan)
    for phase in plan["phases"]:
        title = phase["title"] + (f" {phase['version']}" if phase.get("version") else "")
        counts: dict[str, int] = {}
        for a in phase["actions"]:
            counts[a["action"]] = counts.get(a["action"], 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in counts.items()) or "nothing to do"
        out += ["", f"{title}  [{summary}]"]
        for a in phase["actions"]:
            if a["action"] == "unchanged" and not show_unchanged:
                continue
            line = f"  {_SIGN.get(a['action'], '?')} {a['action']:<9} {a['target']}"
            if a.get("reason"):
                line += f"  ({a['reason']})"
            out.append(line)
            details = a.get("details", {})
            if "checks" in details:
                out.append(
                    f"      {details['role']}, user {details['user']}, checks: {', '.join(details['checks'])}"
                )
            if "findings" in details:
                out += [f"      {f}" for f in details["findings"]] or []
                if not details["findings"]:
                    out.append("      every check passed")
            if "untrustedHostKey" in details:
                out.append(f"      host key not yet trusted: {details['untrustedHostKey']}")
            if "manifestSha256" in details:
                out.append(
                    f"      Kubernetes {details.get('kubernetesVersion')}, manifest {details['manifestSha256'][:23]}"
                )
            for change in a.get("diff", []):
                before, after = _value(change.get("before")), _value(change.get("after"))
                if change["op"] == "change":
                    out.append(f"      {change['path']}: {before} -> {after}")
                elif change["op"] == "add":
                    out.append(f"      {change['path']}: + {after}")
                elif change["op"] == "remove":
                    out.append(f"      {change['path']}: - {before}")
                else:
                    out.append(f"      {change['path']}: {change['op']}")
        hidden = counts.get("unchanged", 0)
        if hidden and not show_unchanged:
            out.append(f"  = {hidden} unchanged")
        if phase.get("images"):
            out.append(f"  images ({len(phase['images'])}): " + ", ".join(phase["images"]))
        for art in phase.get("artifacts", []):
            pin = f"sha256:{art['sha256'][:16]}" if art.get("sha256") else "digest recorded on first fetch"
            out.append(f"  artifact {art['name']}: {art['source']} ({pin})")
        out += [f"  note: {n}" for n in phase.get("notes", [])]
        if phase["name"] == "kubeone" and manifest:
            out.append("  manifest:")
            out += [f"    {line}" for line in manifest.rstrip().splitlines()]
    s = plan["summary"]
    out += [
        "",
        f"Summary: {s['create']} to create, {s['update']} to update, {s['delete']} to delete, "
        f"{s['run']} to run, {s['skip']} skipped, {s['unchanged']} unchanged.",
    ]
    return "\n".join(out)


def upgrades_text(plan: dict[str, Any]) -> list[str]:
    """The version changes of the plan, each with the steps apply takes (docs/upgrades.md)."""
    out: list[str] = []
    if plan.get("upgradeInProgress"):
        out.append(
            "Upgrade in progress: "
            + ", ".join(plan["upgradeInProgress"])
            + " (started and not finished; apply continues it)"
        )
    if not plan.get("upgrades"):
        return out
    out += ["", "Upgrades (one supported step each, in this order):"]
    for up in plan["upgrades"]:
        kind = "DOWNGRADE (forced)" if up.get("downgrade") else "upgrade"
        out.append(f"  {up['title']} {up['from']} -> {up['to']}  [{kind}]")
        out += [f"    {i}. {step}" for i, step in enumerate(up["steps"], 1)]
        if "liveMigrations" in up:
            line = f"    VMs: {up['liveMigrations']} running VM(s) will be live-migrated to the new virt-launcher"
            if up.get("notMigratable"):
                line += f"; {up['notMigratable']} cannot live-migrate and keep the old one until restarted"
            out.append(line)
    return out
