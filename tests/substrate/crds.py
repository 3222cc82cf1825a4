"""CustomResourceDefinitions for tests and benchmarks: one builder instead of a copy per file."""

from __future__ import annotations

from typing import Any

OPEN = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def crd(
    group: str,
    kind: str,
    plural: str,
    *,
    scope: str = "Namespaced",
    version: str = "v1",
    status: bool = True,
    spec_schema: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A CRD whose `spec` follows `spec_schema` (default: anything) and whose `status` is open;
    `status=True` adds the status subresource (operators and readiness tests patch it)."""
    served: dict[str, Any] = {
        "name": version,
        "served": True,
        "storage": True,
        "schema": {
            "openAPIV3Schema": {"type": "object", "properties": {"spec": spec_schema or OPEN, "status": OPEN}}
        },
    }
    if status:
        served["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [served],
        },
    }
