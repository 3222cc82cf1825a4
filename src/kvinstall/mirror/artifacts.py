"""Charts, manifests and binaries as OCI artifacts.

A chart is stored the way `helm push` stores it (config = the chart's metadata as JSON with Helm's
config media type, one layer with Helm's chart media type), so `helm pull oci://SITE/...` works
against the site registry. Manifests and binaries are OCI image manifests with artifactType
KV_ARTIFACT_TYPE, the empty config, and one layer with the file's media type.
The manifest JSON is serialised deterministically, so a re-run yields the same digest.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests
from ruamel.yaml import YAML

from kvinstall.errors import ArtifactError, IntegrityError
from kvinstall.httpsafe import DowngradeRefused, guarded_session
from kvinstall.mirror.cancel import CancelToken
from kvinstall.mirror.layout import Layout, io_guard
from kvinstall.mirror.model import HELM_CHART_LAYER, HELM_CONFIG, KV_ARTIFACT_TYPE, OCI_EMPTY, FileItem
from kvinstall.mirror.registry import CHUNK, MT_OCI_MANIFEST

EMPTY_CONFIG = b"{}"
TITLE = "org.opencontainers.image.title"


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def is_url(source: str) -> bool:
    return urlparse(source).scheme in ("http", "https")


def source_size(item: FileItem, timeout: float = 30.0) -> int:
    """The size of an item's content, asked of the server for URLs (0 when it will not say)."""
    if item.size is not None:
        return item.size
    if not is_url(item.source):
        with io_guard(item.source):
            return os.stat(item.source).st_size
    try:
        with guarded_session() as session:
            resp = session.head(item.source, allow_redirects=True, timeout=timeout)
        length = resp.headers.get("Content-Length", "0")
        return int(length) if resp.ok and length.isdigit() else 0
    except (requests.RequestException, DowngradeRefused):
        return 0  # only a progress hint; the download itself reports the failure


def fetch_file(
    item: FileItem, layout: Layout, on_position: Any, *, retries: int = 5, cancel: CancelToken | None = None
) -> int:
    """Put the item's content into the layout as a verified blob; returns bytes received.

    URLs stream with Range resume into the blob's .partial file; local paths are copied. A
    redirect from https to anything else is refused; with a known size, a server sending more is
    stopped.
    """
    digest = item.digest
    if layout.has_verified_blob(digest, item.size):
        return 0
    if not is_url(item.source):
        if not Path(item.source).is_file():
            raise ArtifactError("file not found", where=item.source)
        layout.put_file(Path(item.source), digest, f"{item.name}:{item.tag}", on_position)
        return Path(item.source).stat().st_size
    with guarded_session() as session:
        received = _download(item, layout, session, on_position, retries, cancel)
    layout.commit_partial(digest, item.size, f"{item.name}:{item.tag} from {item.source}")
    return received


def _download(
    item: FileItem,
    layout: Layout,
    session: requests.Session,
    on_position: Any,
    retries: int,
    cancel: CancelToken | None,
) -> int:
    digest = item.digest
    received = 0
    last = ""
    for attempt in range(retries + 1):
        offset = layout.partial_size(digest)
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            with session.get(item.source, headers=headers, stream=True, timeout=60) as resp:
                if resp.status_code == 416:
                    break
                if resp.status_code >= 500 or resp.status_code == 429:
                    raise requests.ConnectionError(f"HTTP {resp.status_code}")
                if resp.status_code not in (200, 206):
                    raise ArtifactError(f"download refused: HTTP {resp.status_code}", where=item.source)
                resume = resp.status_code == 206
                with layout.open_partial(digest, resume=resume) as out, io_guard(layout.partial_path(digest)):
                    pos = out.tell()
                    for chunk in resp.iter_content(CHUNK):
                        if cancel is not None:
                            cancel.check()
                        if item.size is not None and pos + len(chunk) > item.size:
                            raise IntegrityError(
                                f"the server sent more than the {item.size} bytes expected", where=item.source
                            )
                        out.write(chunk)
                        pos += len(chunk)
                        received += len(chunk)
                        on_position(pos)
            break
        except DowngradeRefused as exc:
            raise ArtifactError(str(exc), where=item.source) from None
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            last = str(exc)
            if attempt == retries:
                raise ArtifactError(
                    f"download failed after {retries + 1} attempts ({last})", where=item.source
                ) from exc
            delay = min(0.25 * 2**attempt, 10)
            if cancel is not None:
                cancel.sleep(delay)
            else:
                time.sleep(delay)
    return received


def chart_metadata(chart_tgz: bytes | Path) -> dict[str, Any]:
    """The Chart.yaml of a packaged chart, as Helm puts it in the OCI config."""
    fileobj = io.BytesIO(chart_tgz) if isinstance(chart_tgz, bytes) else open(chart_tgz, "rb")  # noqa: SIM115
    with fileobj, tarfile.open(fileobj=fileobj, mode="r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if len(parts) == 2 and parts[1] == "Chart.yaml" and member.isfile():
                fh = tar.extractfile(member)
                if fh is None:
                    break
                meta = YAML(typ="safe").load(fh.read())
                if not isinstance(meta, dict) or "name" not in meta or "version" not in meta:
                    break
                return {k: v for k, v in meta.items() if v is not None}
    raise ArtifactError("not a Helm chart package: no valid <chart>/Chart.yaml")


def build_artifact(item: FileItem, layout: Layout) -> tuple[bytes, int]:
    """Write the config blob and return (manifest bytes, content size) for a fetched item."""
    content_path = layout.blob_path(item.digest)
    size = content_path.stat().st_size
    filename = item.filename or Path(urlparse(item.source).path).name or item.name.rsplit("/", 1)[-1]
    layer = {
        "mediaType": item.media_type,
        "digest": item.digest,
        "size": size,
        "annotations": {TITLE: filename},
    }
    manifest: dict[str, Any] = {"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST}
    if item.media_type == HELM_CHART_LAYER:
        try:
            meta = chart_metadata(content_path)
        except ArtifactError as exc:
            raise ArtifactError(exc.message, where=item.source) from exc
        config = canonical_json(meta)
        manifest["config"] = {
            "mediaType": HELM_CONFIG,
            "digest": layout.put_bytes(config),
            "size": len(config),
        }
    else:
        manifest["artifactType"] = KV_ARTIFACT_TYPE
        manifest["config"] = {
            "mediaType": OCI_EMPTY,
            "digest": layout.put_bytes(EMPTY_CONFIG),
            "size": len(EMPTY_CONFIG),
        }
    manifest["layers"] = [layer]
    return canonical_json(manifest), size
