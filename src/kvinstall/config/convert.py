"""`kvinstall convert`: a KubeV file -> the equivalent kvinstall file, its secrets in files of their own.

The KubeV file is loaded exactly as `validate`/`plan`/`apply` load it (same problems, same lines).
KubeV files hold secrets in clear text (registry passwords, Dex client secrets, the pull secret); a
kvinstall file refers to them instead: each is written to a 0600 file next to the output and the
output reads it with `valueFrom: {file: ...}`. The output loads to the same configuration.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvinstall.catalog import load_catalog
from kvinstall.config import kubev
from kvinstall.config.loader import _plain, load_tree, parse_yaml
from kvinstall.config.models import Config
from kvinstall.config.problems import Problem, format_path
from kvinstall.config.writer import to_yaml
from kvinstall.errors import ConfigError, LocalIOError, UsageError


@dataclass
class SecretFile:
    source: str  # the KubeV field, e.g. "idp.dex.staticClients[0].secret"
    path: Path


@dataclass
class Conversion:
    text: str  # the kvinstall file
    warnings: list[Problem] = field(default_factory=list)  # the KubeV file's (dropped fields among them)
    secrets: list[SecretFile] = field(default_factory=list)


def secret_path(out: Path, source: str) -> Path:
    """Where the secret of KubeV field `source` goes: OUT's folder, named after OUT and the field."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", source).strip("-")
    return out.parent / f"{out.stem}.{slug}.secret"


def convert_file(path: Path, out: Path | None, *, drop_unsupported: bool = False) -> Conversion:
    """Convert the KubeV file at `path`; with secrets, write them next to `out` (required then).
    Nothing is written when the file has errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LocalIOError(f"cannot read: {getattr(exc, 'strerror', None) or exc}", where=str(path)) from exc
    tree = parse_yaml(text, str(path))
    if not kubev.is_kubev(tree):
        raise ConfigError(
            [
                Problem(
                    f"not a KubeV file ({kubev.API_VERSION} {kubev.KIND})",
                    loc=("apiVersion",),
                    file=str(path),
                    line=1,
                    column=1,
                )
            ]
        )
    # The same load as every other command: problems with the KubeV file's lines and names.
    loaded = load_tree(tree, source=str(path), catalog=load_catalog(), drop_unsupported=drop_unsupported)
    result = kubev.convert(tree, drop_unsupported=drop_unsupported)
    data: dict[str, Any] = _plain(result.data)
    conversion = Conversion(text="", warnings=loaded.warnings)
    if result.secrets and out is None:
        raise UsageError(
            f"{path} holds {len(result.secrets)} clear-text secret(s); give -o OUT so that each can be "
            "written to a 0600 file next to OUT"
        )
    values: list[str] = []
    for secret in result.secrets:
        assert out is not None
        node: Any = data
        for part in secret.loc[:-1]:
            node = node[part]
        source = format_path(secret.source)
        target = secret_path(out, source).resolve()
        values.append(str(node[secret.loc[-1]]["value"]))
        node[secret.loc[-1]] = {"valueFrom": {"file": str(target)}}
        conversion.secrets.append(SecretFile(source, target))
    config = Config.model_validate(data)
    header = [f"Converted by `kvinstall convert` from {path.name}."]
    header += [f"{s.source}: read from {s.path} (mode 0600)" for s in conversion.secrets]
    header += [f"{w.path}: {w.message}" for w in loaded.warnings if w.code == kubev.UNSUPPORTED]
    conversion.text = to_yaml(config, header="\n".join(header))
    for secret_file, value in zip(conversion.secrets, values, strict=True):
        _write_secret(secret_file.path, value)
    return conversion


def _write_secret(path: Path, value: str) -> None:
    """The value in a file only its owner can read, created 0600 (never readable by others, not even
    briefly) and replaced atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise LocalIOError(f"cannot write the secret: {exc.strerror or exc}", where=str(path)) from exc
