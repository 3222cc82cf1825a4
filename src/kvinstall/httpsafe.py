"""HTTP hygiene for servers kvinstall does not trust (registries, artifact and chart servers).

- `origin(url)`: (scheme, host, port) with the scheme's default port filled in; credentials go only
  to the origin they were given for (`same_origin`).
- `refuse_downgrade`: a `requests` response hook that stops a redirect from https to anything else
  (plain http above all). requests calls session hooks for every hop of a redirect chain, so one hook
  on the session guards them all.
- `read_capped`: a streamed body read up to a limit, so a server cannot make us hold gigabytes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: never the same origin as anything
        port = -1
    return scheme, (parts.hostname or "").lower(), port if port is not None else _DEFAULT_PORTS.get(scheme)


def same_origin(a: str, b: str) -> bool:
    return origin(a) == origin(b)


class DowngradeRefused(Exception):
    """A redirect from https to another scheme. Not a RequestException: callers must not retry it."""

    def __init__(self, from_url: str, to_url: str) -> None:
        super().__init__(f"refused a redirect from {from_url} to {to_url}: only https is followed")
        self.from_url = from_url
        self.to_url = to_url


def refuse_downgrade(resp: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
    if resp.is_redirect and urlsplit(resp.url).scheme.lower() == "https":
        target = urljoin(resp.url, resp.headers.get("location", ""))
        if urlsplit(target).scheme.lower() != "https":
            resp.close()
            raise DowngradeRefused(resp.url, target)
    return resp


def guarded_session() -> requests.Session:
    """A session whose redirects never leave https once on https."""
    session = requests.Session()
    session.hooks["response"].append(refuse_downgrade)
    return session


class TooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is larger than {limit} bytes")
        self.limit = limit


def read_capped(resp: requests.Response, limit: int, chunk: int = 1 << 16) -> bytes:
    """The body of a streamed response, at most `limit` bytes (TooLarge beyond)."""
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(limit)
    parts: list[bytes] = []
    total = 0
    for piece in resp.iter_content(chunk):
        total += len(piece)
        if total > limit:
            raise TooLarge(limit)
        parts.append(piece)
    return b"".join(parts)
