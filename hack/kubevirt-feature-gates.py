#!/usr/bin/env python3
"""Print the feature gates of a KubeVirt source tree, by state, as catalog.yaml holds them.

    python3 hack/kubevirt-feature-gates.py SRC     # SRC: a kubevirt checkout or module dir at a tag

The source of truth is pkg/virt-config/featuregate/*.go at the tag: the gate names are Go string
constants, and each `RegisterFeatureGate(FeatureGate{Name: X, State: S, Message: M})` call gives a
gate its state (Alpha, Beta, GA, Deprecated, Discontinued) and, for inactive gates, the message
KubeVirt shows. One way to get SRC without git: `go mod download -json kubevirt.io/kubevirt@vX.Y.Z`
(the proxy's answer names the tag's commit under Origin.Hash).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

STATES = {"Alpha": "alpha", "Beta": "beta", "GA": "ga", "Deprecated": "deprecated", "Discontinued": "discontinued"}
_CONST = re.compile(r'^\s*(?:const\s+)?(\w+)\s*(?:\w+\s*)?=\s*"([^"]*)"', re.M)
_REGISTER = re.compile(r"RegisterFeatureGate\(FeatureGate\{(.*?)\}\)", re.S)
_FIELD = re.compile(r"(\w+):\s*((?:fmt\.Sprintf\(\s*)?\"[^\"]*\"\)?|\w+)")


def gates(src: Path) -> dict[str, dict[str, str]]:
    """state -> {gate name: message ('' for active gates)}."""
    pkg = src / "pkg" / "virt-config" / "featuregate"
    files = sorted(p for p in pkg.rglob("*.go") if not p.name.endswith("_test.go"))
    texts = [p.read_text() for p in files]
    consts = {name: value for text in texts for name, value in _CONST.findall(text)}
    out: dict[str, dict[str, str]] = {state: {} for state in STATES.values()}
    for text in texts:
        for body in _REGISTER.findall(text):
            fields = dict(_FIELD.findall(body))
            name = consts.get(fields["Name"], fields["Name"].strip('"'))
            raw = fields.get("Message", "")
            literal = re.search(r'"([^"]*)"', raw)
            message = literal.group(1) if literal else consts.get(raw, "")
            out[STATES[fields["State"]]][name] = message
    return out


def main() -> None:
    found = gates(Path(sys.argv[1]))
    for state in ("ga", "beta", "alpha"):
        print(f"  {state}: [{', '.join(sorted(found[state]))}]")
    for state in ("deprecated", "discontinued"):  # with the message KubeVirt gives
        print(f"  {state}:")
        for name, message in sorted(found[state].items()):
            print(f"    {name}: {json.dumps(message)}")


if __name__ == "__main__":
    main()
