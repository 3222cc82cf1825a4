"""Docker config JSON (`{"auths": {...}}`), the form KubeV's imagePullSecret takes: the logins it holds,
by registry host as containerd names registries. Pure; errors never show the values."""

from __future__ import annotations

import base64
import binascii
import json


def docker_config_logins(text: str) -> dict[str, dict[str, str]]:
    """Docker config JSON (`{"auths": {REGISTRY: {auth | username+password | identitytoken}}}`) ->
    KubeOne registry auth by registry host. ValueError names what is wrong (never the value)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(
            'not JSON: expected Docker config JSON such as {"auths": {"quay.io": {"auth": ...}}}'
        ) from exc
    auths = data.get("auths") if isinstance(data, dict) else None
    if not isinstance(auths, dict) or not auths:
        raise ValueError('Docker config JSON without an "auths" mapping of registries')
    out: dict[str, dict[str, str]] = {}
    for registry, entry in auths.items():
        host = registry_host(str(registry))
        if not isinstance(entry, dict):
            raise ValueError(f"auths.{registry}: expected a mapping with auth or username and password")
        login: dict[str, str] = {}
        if isinstance(entry.get("auth"), str) and entry["auth"]:
            try:
                user_pass = base64.b64decode(entry["auth"], validate=True).decode()
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise ValueError(f"auths.{registry}.auth is not base64 of USERNAME:PASSWORD") from exc
            if ":" not in user_pass:
                raise ValueError(f"auths.{registry}.auth is not base64 of USERNAME:PASSWORD")
            login["auth"] = entry["auth"]
        elif isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
            login = {"username": entry["username"], "password": entry["password"]}
        elif isinstance(entry.get("identitytoken"), str):
            login["identityToken"] = entry["identitytoken"]
        else:
            raise ValueError(f"auths.{registry}: no auth, username and password, or identitytoken")
        out[host] = login
    return out


def registry_host(registry: str) -> str:
    """'https://index.docker.io/v1/' -> 'docker.io'; 'quay.io' -> 'quay.io' (containerd's registry names)."""
    host = registry.split("://", 1)[-1].split("/", 1)[0]
    return "docker.io" if host in ("index.docker.io", "registry-1.docker.io") else host
