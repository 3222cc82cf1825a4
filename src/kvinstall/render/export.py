"""`render -o DIR`: the desired state written as files (GitOps export). Pure apart from the writes.

Layout: DIR/kubeone.yaml, DIR/NN-<component>/<kind>_<namespace>_<name>.yaml, DIR/images.txt.
Secret data is replaced by a placeholder unless asked for (then the files are 0600).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from kvinstall.model import DesiredState, KubeObject

REDACTED = "<redacted: kvinstall render --include-secrets>"


def redact_secret(obj: KubeObject) -> KubeObject:
    if obj.get("kind") != "Secret" or obj.get("apiVersion") != "v1":
        return obj
    out = copy.deepcopy(obj)
    for key in ("data", "stringData"):
        if isinstance(out.get(key), dict):
            out[key] = dict.fromkeys(out[key], REDACTED)
    return out


def _file_name(obj: KubeObject) -> str:
    meta = obj.get("metadata") or {}
    parts = [obj.get("kind", "Object"), meta.get("namespace") or "", meta.get("name", "unnamed")]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(p for p in parts if p)) + ".yaml"


def export_files(desired: DesiredState, *, include_secrets: bool = False) -> dict[str, tuple[Any, int]]:
    """Relative path -> (document or list of documents, file mode)."""
    files: dict[str, tuple[Any, int]] = {"kubeone.yaml": (desired.kubeone_manifest, 0o644)}
    for i, comp in enumerate(desired.components, start=1):
        for obj in comp.objects:
            secret = obj.get("kind") == "Secret"
            doc = obj if include_secrets else redact_secret(obj)
            mode = 0o600 if (secret and include_secrets) else 0o644
            files[f"{i:02d}-{comp.name}/{_file_name(obj)}"] = (doc, mode)
    files["images.txt"] = ("\n".join(desired.all_images()) + "\n", 0o644)
    return files


def write_export(desired: DesiredState, out_dir: Path, *, include_secrets: bool = False) -> list[Path]:
    from kvinstall import fastyaml
    from kvinstall.fsutil import write_atomic

    written = []
    for rel, (doc, mode) in export_files(desired, include_secrets=include_secrets).items():
        path = out_dir / rel
        text = doc if isinstance(doc, str) else fastyaml.dump(doc)
        write_atomic(path, text, mode=mode, durable=False)
        written.append(path)
    return written
