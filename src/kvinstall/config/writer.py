"""Write a Config as commented YAML (with the schema modeline): used by `init` and `convert`.

Only values that differ from the defaults are written, so the file stays short and later
kvinstall releases can change defaults; each top-level section gets its description as a comment.
"""

from __future__ import annotations

import io
from typing import Any

from kvinstall.config.models import Config
from kvinstall.config.schema import MODELINE


def config_to_data(config: Config) -> dict[str, Any]:
    data = config.model_dump(by_alias=True, exclude_defaults=True, mode="json")
    # Always written even when default, so a reader sees what is pinned.
    data["apiVersion"] = config.api_version
    data["kind"] = config.kind
    data.setdefault("kubernetes", {"version": config.kubernetes.version})
    order = ["apiVersion", "kind", "metadata", "kubernetes"]
    return {k: data[k] for k in order if k in data} | {k: v for k, v in data.items() if k not in order}


def to_yaml(config: Config, header: str | None = None) -> str:
    inline = [path for path, secret in config.secrets() if secret.value is not None]
    inline += [
        f"auth.oidc.connectors[{i}].config.{key}"
        for i, conn in enumerate(config.auth.oidc.connectors)
        for key, value in conn.config.items()
        if isinstance(value, dict) and set(value) == {"value"}
    ]
    if inline:
        # Its value would be written as a placeholder: callers move inline secrets to files first.
        raise ValueError(f"inline secret(s) cannot be written to a file: {', '.join(inline)}")
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    data = config_to_data(config)
    doc = CommentedMap(data)
    descriptions = {(info.alias or name): info.description for name, info in Config.model_fields.items()}
    for key in list(doc)[2:]:
        if descriptions.get(key):
            doc.yaml_set_comment_before_after_key(key, before="\n" + str(descriptions[key]))
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 120
    buf = io.StringIO()
    yaml.dump(doc, buf)
    lines = [MODELINE]
    if header:
        lines += [f"# {line}".rstrip() for line in header.splitlines()]
    return "\n".join(lines) + "\n" + buf.getvalue()
