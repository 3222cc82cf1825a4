"""JSON Schema of the configuration, generated from the pydantic model."""

from __future__ import annotations

from typing import Any

from kvinstall.config.models import Config

SCHEMA_ID = "https://kvinstall.io/schemas/v1alpha1/virtualizationcluster.json"
# Editors (yaml-language-server) read this modeline at the top of a config file.
MODELINE = "# yaml-language-server: $schema=" + SCHEMA_ID


def json_schema() -> dict[str, Any]:
    schema = Config.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}
