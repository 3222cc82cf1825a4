"""The journal: which phases completed, with the hash of their inputs, in the local state directory.

`--resume` skips a phase whose recorded input hash equals the current one; a plain re-run ignores
the journal (it converges anyway). The KubeOne phase also reads the last successful manifest hash.
Upgrades: the version each product reached (`versions`), and the upgrades a run started and has not
finished (`upgrades`, name -> from/to), which status shows and which a re-run continues.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvinstall.fsutil import write_atomic

JOURNAL = "journal.json"


def input_hash(value: Any) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Journal:
    path: Path
    phases: dict[str, str] = field(default_factory=dict)  # phase name -> input hash when it completed
    kubeone_manifest: str | None = None  # hash of the last manifest KubeOne applied successfully
    versions: dict[str, str] = field(default_factory=dict)
    upgrades: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, state: Path) -> Journal:
        path = state / JOURNAL
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls(path)
        return cls(
            path,
            dict(data.get("phases", {})),
            data.get("kubeoneManifest"),
            dict(data.get("versions", {})),
            dict(data.get("upgrades", {})),
        )

    def save(self) -> None:
        data = {
            "phases": self.phases,
            "kubeoneManifest": self.kubeone_manifest,
            "versions": self.versions,
            "upgrades": self.upgrades,
        }
        write_atomic(self.path, json.dumps(data, indent=2), mode=0o600)

    def upgrade_started(self, name: str, frm: str, to: str) -> None:
        self.upgrades[name] = {"from": frm, "to": to}
        self.save()

    def reached(self, name: str, version: str) -> None:
        """`name` runs `version` now (its phase completed): an upgrade of it is finished."""
        self.versions[name] = version
        self.upgrades.pop(name, None)
        self.save()

    def completed(self, phase: str, inputs: str) -> bool:
        return self.phases.get(phase) == inputs

    def record(self, phase: str, inputs: str) -> None:
        self.phases[phase] = inputs
        self.save()

    def start_over(self) -> None:
        self.phases = {}
        self.save()
