"""Secret values: given inline, or by reference to an environment variable or a file.

A secret's clear value is only produced by `reveal()`, at the edge that needs it (a Secret object
sent to the cluster, a registry login). Everything that prints, logs or stores a config uses
`redacted()` or the model's serializer, which never emit the value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_serializer, model_validator

REDACTED = "<redacted>"


class SecretSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = Field(default=None, description="Name of an environment variable holding the value.")
    file: str | None = Field(
        default=None, description="Path of a file holding the value (trailing newline removed)."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretSource:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' or 'file'")
        return self


class Secret(BaseModel):
    """A secret: `value` inline (discouraged; `kvinstall init` never writes one) or `valueFrom`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    value: SecretStr | None = Field(default=None, description="The value inline (prefer valueFrom).")
    value_from: SecretSource | None = Field(
        default=None, alias="valueFrom", description="Where to read the value: {env: NAME} or {file: PATH}."
    )

    @model_validator(mode="before")
    @classmethod
    def _accept_plain_string(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"value": data}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> Secret:
        if (self.value is None) == (self.value_from is None):
            raise ValueError("give exactly one of 'value' or 'valueFrom'")
        return self

    @model_serializer(mode="plain")
    def _serialize(self) -> dict[str, Any]:
        # Serialising a config (plans, state, JSON output) must never leak the value.
        if self.value_from is not None:
            return {"valueFrom": self.value_from.model_dump(exclude_none=True)}
        return {"value": REDACTED}

    def describe(self) -> str:
        if self.value_from is None:
            return "inline value"
        if self.value_from.env is not None:
            return f"env {self.value_from.env}"
        return f"file {self.value_from.file}"

    def reveal(self) -> str:
        """The clear value. Raises LookupError with a message naming the source when it is missing."""
        if self.value is not None:
            return self.value.get_secret_value()
        assert self.value_from is not None
        if self.value_from.env is not None:
            val = os.environ.get(self.value_from.env)
            if val is None:
                raise LookupError(f"environment variable {self.value_from.env} is not set")
            return val
        assert self.value_from.file is not None
        path = Path(self.value_from.file).expanduser()
        try:
            return path.read_text().rstrip("\n")
        except OSError as exc:
            raise LookupError(f"cannot read secret file {path}: {exc.strerror or exc}") from exc

    def require(self, path: str | tuple[str | int, ...]) -> str:
        """The clear value, or a ConfigError naming the field (a dotted path or a loc tuple)."""
        try:
            return self.reveal()
        except LookupError as exc:
            from kvinstall.config.problems import Problem, parse_path
            from kvinstall.errors import ConfigError

            loc = path if isinstance(path, tuple) else parse_path(path)
            raise ConfigError([Problem(f"secret not available: {exc}", loc=loc)]) from exc

    def is_resolvable(self) -> str | None:
        """None when reveal() would succeed, else the reason it would not."""
        try:
            self.reveal()
        except LookupError as exc:
            return str(exc)
        return None
