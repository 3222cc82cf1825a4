"""Parallel transfers: registry -> layout (create) and bundle -> registry (push).

Platform filter: an index whose platforms are all kept is stored byte for byte (same digest as
upstream). When the filter drops some platforms, the index is rewritten to list only the kept
ones: a registry refuses an index whose children are missing, so the upstream bytes cannot be
kept. The new digest is recorded in the lock next to the upstream one; references pinned to the
upstream index digest then need the full set of platforms (`platforms=["all"]`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from typing import IO, Any, TypeVar, cast

from kvinstall.errors import ArtifactError, IntegrityError
from kvinstall.imageref import Reference, parse_reference
from kvinstall.mirror.layout import REF_NAME, Layout, io_guard
from kvinstall.mirror.model import LockEntry, ProgressTracker, RegistryOptions
from kvinstall.mirror.registry import INDEX_TYPES, MT_OCI_MANIFEST, RegistryClient, sha256_digest

T = TypeVar("T")
KV_REFERENCE = "io.kvinstall.reference"


def platform_matches(platform: dict[str, Any] | None, wanted: Iterable[str]) -> bool:
    if not platform:
        return False
    for spec in wanted:
        if spec == "all":
            return True
        parts = spec.split("/")
        if len(parts) < 2:
            continue
        if platform.get("os") != parts[0] or platform.get("architecture") != parts[1]:
            continue
        if len(parts) > 2 and platform.get("variant", "") != parts[2]:
            continue
        return True
    return False


def manifest_children(data: bytes, media_type: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(child manifest descriptors, blob descriptors) referenced by a manifest or index."""
    doc = json.loads(data)
    if media_type in INDEX_TYPES or "manifests" in doc:
        return list(doc.get("manifests", [])), []
    blobs = [doc["config"]] if doc.get("config") else []
    blobs += list(doc.get("layers", []))
    return [], blobs


def run_parallel(tasks: list[Callable[[], T]], workers: int) -> list[T]:
    """Run tasks on a pool; the first failure stops tasks not yet started and is re-raised."""
    if not tasks:
        return []
    stop = threading.Event()

    def guarded(fn: Callable[[], T]) -> Callable[[], T | None]:
        def run() -> T | None:
            if stop.is_set():
                return None
            return fn()

        return run

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures: list[Future[T | None]] = [pool.submit(guarded(t)) for t in tasks]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for f in done:
            exc = f.exception()
            if exc is not None:
                stop.set()
                for other in futures:
                    other.cancel()
                wait(futures)
                raise exc
    return [cast("T", f.result()) for f in futures]  # no task failed, so every one ran: never None


class Clients:
    """One RegistryClient per host, built from per-host options."""

    def __init__(self, options: dict[str, RegistryOptions] | None, pool: int) -> None:
        self._options = options or {}
        self._pool = pool
        self._clients: dict[str, RegistryClient] = {}
        self._lock = threading.Lock()

    def get(self, ref: Reference) -> RegistryClient:
        with self._lock:
            if ref.registry not in self._clients:
                opts = self._options.get(ref.registry) or self._options.get(ref.endpoint) or RegistryOptions()
                self._clients[ref.registry] = RegistryClient(
                    opts.endpoint or ref.endpoint,
                    ca_file=opts.ca_file,
                    insecure=opts.insecure,
                    username=opts.username,
                    password=opts.password,
                    pool=self._pool,
                )
            return self._clients[ref.registry]

    def close(self) -> None:
        for c in self._clients.values():
            c.close()


@dataclass
class PulledImage:
    entry: LockEntry
    blobs: dict[str, int] = field(default_factory=dict)  # digest -> size


def resolve_image(client: RegistryClient, text: str, layout: Layout, platforms: Iterable[str]) -> PulledImage:
    """Fetch the manifests of one image into the layout; returns its lock entry and blobs."""
    ref = parse_reference(text)
    platforms = list(platforms)
    data, media_type, digest = client.get_manifest(ref.repository, ref.ref)
    upstream = digest
    blobs: dict[str, int] = {}
    if media_type in INDEX_TYPES:
        index = json.loads(data)
        every = index.get("manifests", [])
        kept = [m for m in every if platform_matches(m.get("platform"), platforms)]
        if not kept:
            raise ArtifactError(f"no manifest for platform(s) {', '.join(platforms)}", where=text)
        for child in kept:
            cdata, cmt, _ = client.get_manifest(ref.repository, child["digest"])
            layout.put_bytes(cdata, expected=child["digest"])
            for b in manifest_children(cdata, child.get("mediaType") or cmt)[1]:
                blobs[b["digest"]] = int(b["size"])
        if len(kept) != len(every):
            # Platforms were dropped: the stored index lists only those kept (see module doc).
            index["manifests"] = kept
            data = json.dumps(index, indent=3).encode()
            digest = sha256_digest(data)
    else:
        for b in manifest_children(data, media_type)[1]:
            blobs[b["digest"]] = int(b["size"])
    layout.put_bytes(data, expected=digest)
    entry = LockEntry(
        reference=text,
        kind="image",
        repository=ref.repository,
        tag=ref.tag,
        digest=digest,
        media_type=media_type,
        size=len(data),
        upstream_digest=upstream,
    )
    return PulledImage(entry=entry, blobs=blobs)


def index_descriptor(entry: LockEntry) -> dict[str, Any]:
    ref_name = f"{entry.repository}:{entry.tag}" if entry.tag else f"{entry.repository}@{entry.digest}"
    return {
        "mediaType": entry.media_type,
        "digest": entry.digest,
        "size": entry.size,
        "annotations": {REF_NAME: ref_name, KV_REFERENCE: entry.reference},
    }


def pull_blobs(
    clients: Clients,
    layout: Layout,
    wanted: dict[str, tuple[Reference, int, str]],  # digest -> (source ref, size, image)
    tracker: ProgressTracker,
    workers: int,
) -> tuple[int, int]:
    """Download missing blobs (resuming .partial files); returns (bytes received, bytes reused)."""
    received = [0]
    reused = [0]
    lock = threading.Lock()

    def one(digest: str, ref: Reference, size: int, image: str) -> None:
        if layout.has_blob(digest, size):
            with lock:
                reused[0] += size
            tracker.complete(digest)
            return
        client = clients.get(ref)
        for attempt in range(2):
            offset = layout.partial_size(digest)
            if offset > size:
                offset = 0
            with layout.open_partial(digest, resume=offset > 0) as out, io_guard(layout.partial_path(digest)):
                out.truncate(offset)
                out.seek(offset)
                if offset:
                    with lock:
                        reused[0] += offset
                    tracker.reach(digest, offset)
                got = client.download_blob(
                    ref.repository,
                    digest,
                    out,
                    offset=offset,
                    on_position=lambda p: tracker.reach(digest, p),
                )
            with lock:
                received[0] += got
            try:
                layout.commit_partial(digest, size, f"{image} (blob {digest})")
                return
            except IntegrityError:
                # A resumed .partial may hold bytes from a different attempt: once more from 0.
                if attempt == 1 or offset == 0:
                    raise

    run_parallel([partial(one, d, r, s, i) for d, (r, s, i) in wanted.items()], workers)
    return received[0], reused[0]


# -- push ---------------------------------------------------------------------------------------


@dataclass
class PushPlan:
    """What a bundle holds, ready for pushing."""

    entries: list[LockEntry]
    manifests: dict[str, tuple[bytes, str]]  # digest -> (bytes, media type)
    blob_sizes: dict[str, int]
    # per entry: child manifest digests (children first) and blob digests
    entry_manifests: dict[str, list[str]]
    entry_blobs: dict[str, list[str]]


def plan_push(entries: list[LockEntry], read_small: Callable[[str], bytes]) -> PushPlan:
    manifests: dict[str, tuple[bytes, str]] = {}
    blob_sizes: dict[str, int] = {}
    entry_manifests: dict[str, list[str]] = {}
    entry_blobs: dict[str, list[str]] = {}
    for e in entries:
        order: list[str] = []
        blobs: list[str] = []

        def walk(digest: str, media_type: str, image: str, order: list[str], blobs: list[str]) -> None:
            data = read_small(digest)
            if sha256_digest(data) != digest:
                raise IntegrityError(f"manifest {digest} is corrupt", where=image)
            if not media_type:
                media_type = json.loads(data).get("mediaType") or MT_OCI_MANIFEST
            manifests[digest] = (data, media_type)
            children, bl = manifest_children(data, media_type)
            for c in children:
                walk(c["digest"], c.get("mediaType", ""), image, order, blobs)
            for b in bl:
                blob_sizes[b["digest"]] = int(b["size"])
                if b["digest"] not in blobs:
                    blobs.append(b["digest"])
            order.append(digest)

        walk(e.digest, e.media_type, e.reference, order, blobs)
        entry_manifests[e.reference] = order
        entry_blobs[e.reference] = blobs
    return PushPlan(entries, manifests, blob_sizes, entry_manifests, entry_blobs)


@dataclass
class PushCounters:
    uploaded: int = 0
    skipped: int = 0
    mounted: int = 0
    bytes_sent: int = 0
    manifests_put: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def push_plan(
    client: RegistryClient,
    plan: PushPlan,
    target_repo: Callable[[str], str],
    open_blob: Callable[[str], IO[bytes]],
    tracker: ProgressTracker,
    workers: int,
    chunk_size: int | None = None,
) -> PushCounters:
    """Blobs first (HEAD, then upload once and mount into the other repositories), then manifests
    children first, then tags. Manifest bytes are PUT exactly as stored."""
    counters = PushCounters()
    users: dict[str, list[tuple[str, str]]] = {}  # blob -> [(target repository, image)]
    for e in plan.entries:
        for b in plan.entry_blobs[e.reference]:
            pair = (target_repo(e.repository), e.reference)
            if pair[0] not in [u[0] for u in users.setdefault(b, [])]:
                users[b].append(pair)
    for digest, size in plan.blob_sizes.items():
        tracker.expect(digest, size)

    def upload(digest: str, repo: str, image: str) -> None:
        sent = client.upload_blob(
            repo,
            digest,
            plan.blob_sizes[digest],
            lambda: open_blob(digest),
            on_position=lambda p: tracker.reach(digest, p),
            chunk_size=chunk_size,
            name=f"{image} (blob {digest})",
        )
        with counters.lock:
            counters.uploaded += 1
            counters.bytes_sent += sent

    def primary(digest: str) -> None:
        repo, image = users[digest][0]
        if client.blob_size(repo, digest) is not None:
            with counters.lock:
                counters.skipped += 1
        else:
            upload(digest, repo, image)
        tracker.complete(digest)

    def secondary(digest: str, repo: str, image: str) -> None:
        if client.blob_size(repo, digest) is not None:
            with counters.lock:
                counters.skipped += 1
            return
        if client.mount_blob(repo, digest, users[digest][0][0]):
            with counters.lock:
                counters.mounted += 1
            return
        upload(digest, repo, image)

    # Largest first keeps the pool busy to the end.
    order = sorted(users, key=lambda d: -plan.blob_sizes[d])
    run_parallel([partial(primary, d) for d in order], workers)
    run_parallel([partial(secondary, d, r, i) for d in order for r, i in users[d][1:]], workers)

    def manifests_of(e: LockEntry) -> None:
        repo = target_repo(e.repository)
        for digest in plan.entry_manifests[e.reference]:
            data, media_type = plan.manifests[digest]
            is_root = digest == e.digest
            if is_root and e.tag:
                have = client.head_manifest(repo, e.tag)
                if have is not None and have.digest == digest:
                    continue
                client.put_manifest(repo, e.tag, data, media_type)
            else:
                if client.head_manifest(repo, digest) is not None:
                    continue
                client.put_manifest(repo, digest, data, media_type)
            with counters.lock:
                counters.manifests_put += 1

    run_parallel([partial(manifests_of, e) for e in plan.entries], workers)
    return counters
