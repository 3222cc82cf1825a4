"""The journal: which phases completed, with the hash of their inputs, in the local state directory.

`--resume` skips a phase whose recorded input hash equals the current one; a plain re-run ignores
the journal (it converges anyway). The KubeOne phase also reads the last successful manifest hash.
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

    @classmethod
    def load(cls, state: Path) -> Journal:
        path = state / JOURNAL
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls(path)
        return cls(path, dict(data.get("phases", {})), data.get("kubeoneManifest"))

    def save(self) -> None:
        write_atomic(
            self.path,
            json.dumps({"phases": self.phases, "kubeoneManifest": self.kubeone_manifest}, indent=2),
            mode=0o600,
        )

    def completed(self, phase: str, inputs: str) -> bool:
        return self.phases.get(phase) == inputs

    def record(self, phase: str, inputs: str) -> None:
        self.phases[phase] = inputs
        self.save()

    def start_over(self) -> None:
        self.phases = {}
        self.save()
