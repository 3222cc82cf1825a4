"""Where host packages come from for `mirror create`: apt repositories (a Debian/Ubuntu mirror, Docker's
or the Kubernetes repository) and local .deb files, and the collection of one bundle's packages.

Trust chain for a repository, as apt has it: the InRelease file's signature is checked with gpgv
against the repository's key (a keyring file, or a key URL whose fingerprint is pinned); the
Packages index must match the SHA256 the signed text gives; each .deb must match the SHA256 the
index gives. Everything downloaded is kept in the artifact cache under its sha256, so a second
`mirror create` downloads only what changed upstream.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import urljoin

import requests

from kvinstall.catalog.packages import PackageCatalog, RepoKey, Repository
from kvinstall.config.models import Config
from kvinstall.errors import ArtifactError, IntegrityError, LocalIOError, UsageError
from kvinstall.fsutil import write_atomic
from kvinstall.mirror import gpg
from kvinstall.mirror.debian import Package, Spec, parse_release, parse_stanzas, release_fields
from kvinstall.mirror.model import FileItem
from kvinstall.mirror.packages import (
    DEB_LAYER,
    INDEX_LAYER,
    INDEX_TAG,
    LockedPackage,
    PackageSet,
    index_repository,
    index_stanza,
    needed_packages,
    package_repository,
    package_tag,
    packages_index,
    resolve,
)

MAX_INDEX_BYTES = 1 << 29  # a decompressed Packages index; bookworm main is about 50 MB
MAX_DEB_BYTES = 1 << 30
_BLOCK = 1 << 20
Progress = Callable[[int, int], None]


def cache_dir() -> Path:
    """The artifact cache (the same `$KVINSTALL_CACHE_DIR` as charts and manifests): files by sha256."""
    env = os.environ.get("KVINSTALL_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "kvinstall" / "artifacts"


@dataclass(frozen=True)
class Candidate:
    package: Package
    base: str | None  # the repository URL its Filename is relative to; None for a local file
    path: Path | None = None  # the local .deb

    @property
    def url(self) -> str | None:
        return urljoin(self.base, self.package.filename) if self.base else None

    @property
    def source(self) -> str:
        return self.url or str(self.path)


# -- parsing sources.list lines given on the command line ------------------------------------------


def parse_source_line(text: str) -> Repository:
    """A one-line sources.list entry: `deb [signed-by=KEYRING] URL SUITE [COMPONENT...]`, or with
    `[trusted=yes]` for a repository whose index is not signed (the .debs are still checked
    against the index)."""
    words = text.split()
    if words[:1] != ["deb"]:
        raise UsageError(f"--package-repo {text!r}: expected 'deb [signed-by=KEYRING] URL SUITE [COMPONENT...]'")
    words = words[1:]
    options: dict[str, str] = {}
    if words and words[0].startswith("["):
        opts: list[str] = []
        while words:
            w = words.pop(0)
            opts.append(w)
            if w.endswith("]"):
                break
        for opt in " ".join(opts).strip("[]").split():
            k, _, v = opt.partition("=")
            options[k] = v
    if len(words) < 2:
        raise UsageError(f"--package-repo {text!r}: give URL and SUITE (a flat repository: '/')")
    url, suite, *components = words
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--package-repo {text!r}: the URL must be http:// or https://")
    if not suite.endswith("/") and not components:
        raise UsageError(f"--package-repo {text!r}: name the components (e.g. main) after the suite")
    key: RepoKey | None
    if "signed-by" in options:
        key = RepoKey(keyring=options["signed-by"])
    elif options.get("trusted") == "yes":
        key = None
    else:
        raise UsageError(
            f"--package-repo {text!r}: say how the index is signed: [signed-by=KEYRING] (the repository's "
            "public key file), or [trusted=yes] to take an unsigned index"
        )
    return Repository(url if url.endswith("/") else url + "/", suite, tuple(components), key)


def parse_distribution_option(text: str, option: str) -> tuple[str, str]:
    dist, sep, value = text.partition("=")
    if not sep or not dist.strip() or not value.strip():
        raise UsageError(f"{option} {text!r}: expected OS-RELEASE=VALUE (e.g. debian-12=...)")
    return dist.strip(), value.strip()


# -- .deb control files ---------------------------------------------------------------------------


def _ar_members(data: bytes) -> Iterable[tuple[str, bytes]]:
    if not data.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive")
    i = 8
    while i + 60 <= len(data):
        header = data[i : i + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        i += 60
        yield name, data[i : i + size]
        i += size + (size % 2)


def deb_control(path: Path) -> dict[str, str]:
    """The control fields of a .deb (gzip, xz or uncompressed control.tar in Python; zstd through
    dpkg-deb when it is installed)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LocalIOError(f"cannot read: {exc.strerror or exc}", where=str(path)) from exc
    try:
        for name, body in _ar_members(data):
            if not name.startswith("control.tar"):
                continue
            if name.endswith(".zst"):
                return _dpkg_deb_control(path)
            raw = gzip.decompress(body) if name.endswith(".gz") else lzma.decompress(body) if name.endswith(".xz") else body
            with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
                for m in tar:
                    if m.name.lstrip("./") == "control" and m.isfile():
                        fh = tar.extractfile(m)
                        if fh is not None:
                            return next(parse_stanzas(fh.read().decode("utf-8", "replace")), {})
    except (ValueError, OSError, tarfile.TarError, lzma.LZMAError, EOFError) as exc:
        raise IntegrityError(f"not a Debian package: {exc}", where=str(path)) from exc
    raise IntegrityError("not a Debian package: no control file", where=str(path))


def _dpkg_deb_control(path: Path) -> dict[str, str]:
    tool = shutil.which("dpkg-deb")
    if tool is None:
        raise LocalIOError(
            "a zstd-compressed package needs dpkg-deb to be read", where=str(path), hint="install dpkg"
        )
    res = subprocess.run([tool, "--field", str(path)], capture_output=True, timeout=60, check=False)
    if res.returncode != 0:
        raise IntegrityError(f"not a Debian package: {res.stderr.decode(errors='replace').strip()}", where=str(path))
    return next(parse_stanzas(res.stdout.decode("utf-8", "replace")), {})


def local_candidates(directory: Path, architecture: str) -> list[Candidate]:
    """Every .deb in a directory (not recursive) for the architecture (or `all`)."""
    if not directory.is_dir():
        raise LocalIOError("no such directory of .deb files", where=str(directory))
    out = []
    for path in sorted(directory.glob("*.deb")):
        control = deb_control(path)
        if not control.get("Package") or not control.get("Version"):
            raise IntegrityError("the control file has no Package or Version", where=str(path))
        arch = control.get("Architecture", "all")
        if arch not in (architecture, "all"):
            continue
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(_BLOCK):
                h.update(block)
        fields = dict(control)
        fields["Filename"] = path.name
        fields["Size"] = str(path.stat().st_size)
        fields["SHA256"] = h.hexdigest()
        out.append(Candidate(Package(control["Package"], control["Version"], arch, fields), None, path))
    return out


# -- repositories ---------------------------------------------------------------------------------


class Fetcher:
    """HTTP(S) downloads into the content-addressed cache, verified, with bounded retries."""

    def __init__(self, cache: Path | None = None, *, timeout: float = 60.0, retries: int = 3) -> None:
        self.cache = (cache or cache_dir()) / "sha256"
        self.timeout = timeout
        self.retries = max(1, retries)
        self._session = requests.Session()
        self._lock = threading.Lock()

    def close(self) -> None:
        self._session.close()

    def cached(self, sha256: str) -> Path | None:
        path = self.cache / sha256
        return path if path.is_file() else None

    def get_small(self, url: str, what: str, *, missing_ok: bool = False) -> bytes | None:
        """A small file (InRelease, a key) into memory; None on 404 when missing_ok."""
        last: Exception | None = None
        for _ in range(self.retries):
            try:
                resp = self._session.get(url, timeout=self.timeout)
            except requests.RequestException as exc:
                last = exc
                continue
            if resp.status_code == 404 and missing_ok:
                return None
            if resp.status_code >= 500:
                last = RuntimeError(f"HTTP {resp.status_code}")
                continue
            if resp.status_code != 200:
                raise ArtifactError(f"{url} answered HTTP {resp.status_code}", where=what)
            return resp.content
        raise ArtifactError(f"cannot download {url}: {last}", where=what)

    def get_verified(self, url: str, sha256: str, size: int | None, what: str, limit: int,
                     on_bytes: Callable[[int], None] | None = None) -> Path:
        """A file whose sha256 is known: from the cache, else downloaded, checked, then cached."""
        have = self.cached(sha256)
        if have is not None:
            return have
        self.cache.mkdir(parents=True, exist_ok=True)
        last: Exception | None = None
        for _ in range(self.retries):
            fd, tmp = tempfile.mkstemp(prefix=f".{sha256[:16]}.", suffix=".partial", dir=self.cache)
            try:
                h = hashlib.sha256()
                got = 0
                with os.fdopen(fd, "wb") as out, self._session.get(url, timeout=self.timeout, stream=True) as resp:
                    if resp.status_code != 200:
                        if resp.status_code < 500:
                            raise ArtifactError(f"{url} answered HTTP {resp.status_code}", where=what)
                        raise requests.ConnectionError(f"HTTP {resp.status_code}")
                    for block in resp.iter_content(_BLOCK):
                        got += len(block)
                        if got > limit or (size is not None and got > size):
                            raise IntegrityError(f"{url}: larger than the index says ({size} bytes)", where=what)
                        h.update(block)
                        out.write(block)
                        if on_bytes:
                            on_bytes(len(block))
                    out.flush()
                    os.fsync(out.fileno())
                if h.hexdigest() != sha256:
                    raise IntegrityError(
                        f"{url}: sha256 {h.hexdigest()} differs from the signed index's {sha256}; refused", where=what
                    )
                os.replace(tmp, self.cache / sha256)
                return self.cache / sha256
            except (requests.RequestException, OSError) as exc:
                last = exc
                if isinstance(exc, OSError) and not isinstance(exc, requests.RequestException):
                    raise LocalIOError(f"cannot write the cache: {exc.strerror or exc}", where=str(self.cache)) from exc
                continue
            finally:
                Path(tmp).unlink(missing_ok=True)
        raise ArtifactError(f"cannot download {url}: {last}", where=what)

    # -- one repository ------------------------------------------------------------------------

    def _keys(self, repo: Repository, what: str) -> tuple[list[bytes], tuple[str, ...]]:
        key = repo.key
        assert key is not None
        if key.keyring:
            path = Path(key.keyring).expanduser()
            try:
                return [path.read_bytes()], key.fingerprints
            except OSError as exc:
                raise LocalIOError(
                    f"cannot read the repository key: {exc.strerror or exc}",
                    where=str(path),
                    hint=f"install the keyring, or give --package-repo with [signed-by=FILE] for {repo.url}",
                ) from exc
        assert key.url
        data = self.get_small(key.url, what) or b""
        have = gpg.fingerprints(data)
        if key.fingerprints and not set(key.fingerprints) & set(have):
            raise IntegrityError(
                f"the key at {key.url} has fingerprint(s) {', '.join(have)}, not the pinned {', '.join(key.fingerprints)}",
                where=what,
            )
        return [data], key.fingerprints

    def release(self, repo: Repository) -> tuple[dict[str, tuple[str, int]], dict[str, str]]:
        """The checked (path -> sha256, size) list of a repository, and its Release fields."""
        base = repo.url + (repo.suite if repo.flat else f"dists/{repo.suite}/")
        what = f"package repository {repo.describe()}"
        signed = self.get_small(base + "InRelease", what, missing_ok=True)
        if repo.key is None:
            text = (signed or self.get_small(base + "Release", what) or b"").decode("utf-8", "replace")
            if signed is not None and "-----BEGIN PGP SIGNED MESSAGE-----" in text:
                raise UsageError(f"{what}: the index is signed; give its key with [signed-by=KEYRING]")
        else:
            keys, allowed = self._keys(repo, what)
            if signed is None:
                raise ArtifactError(f"{base}InRelease not found (only signed InRelease indexes are read)", where=what)
            text = gpg.verify_clearsigned(signed, keys, allowed=allowed, what=what).text
        return parse_release(text), release_fields(text)

    def candidates(self, repo: Repository, architecture: str) -> list[Candidate]:
        files, _ = self.release(repo)
        what = f"package repository {repo.describe()}"
        base = repo.url + (repo.suite if repo.flat else f"dists/{repo.suite}/")
        dirs = [""] if repo.flat else [f"{c}/binary-{architecture}/" for c in repo.components]
        out: list[Candidate] = []
        for d in dirs:
            # gzip first: decompressing is ten times faster than xz, and the file is cached.
            for suffix in (".gz", ".xz", ""):
                rel = f"{d}Packages{suffix}"
                if rel in files:
                    sha, size = files[rel]
                    path = self.get_verified(base + rel, sha, size, what, MAX_INDEX_BYTES)
                    text = _decompress(path, suffix, what).decode("utf-8", "replace")
                    for st in parse_stanzas(text):
                        if "Package" not in st or "Version" not in st or "Filename" not in st:
                            continue
                        pkg = Package(st["Package"], st["Version"], st.get("Architecture", "all"), st)
                        out.append(Candidate(pkg, repo.url))
                    break
            else:
                raise ArtifactError(f"the signed index lists no {d}Packages for {architecture}", where=what)
        return out


def _decompress(path: Path, suffix: str, what: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            if suffix == ".xz":
                d = lzma.LZMADecompressor()
                data = d.decompress(fh.read(), MAX_INDEX_BYTES + 1)
                complete = d.eof
            elif suffix == ".gz":
                data = gzip.GzipFile(fileobj=fh).read(MAX_INDEX_BYTES + 1)
                complete = True
            else:
                data = fh.read(MAX_INDEX_BYTES + 1)
                complete = True
    except (OSError, lzma.LZMAError, EOFError) as exc:
        raise IntegrityError(f"unreadable Packages index: {exc}", where=what) from exc
    if not complete or len(data) > MAX_INDEX_BYTES:
        raise IntegrityError(f"the Packages index is larger than {MAX_INDEX_BYTES >> 20} MiB", where=what)
    return data


# -- a bundle's packages ----------------------------------------------------------------------------


@dataclass
class Collected:
    items: list[FileItem] = field(default_factory=list)
    sets: list[PackageSet] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bytes_downloaded: int = 0


@dataclass(frozen=True)
class PackageSources:
    """Where each OS release's packages come from, when not the catalog's repositories."""

    repositories: Mapping[str, Sequence[Repository]] = field(default_factory=dict)
    directories: Mapping[str, Sequence[Path]] = field(default_factory=dict)

    @staticmethod
    def from_options(repos: Iterable[str], dirs: Iterable[str]) -> PackageSources:
        r: dict[str, list[Repository]] = {}
        for text in repos:
            dist, line = parse_distribution_option(text, "--package-repo")
            r.setdefault(dist, []).append(parse_source_line(line))
        d: dict[str, list[Path]] = {}
        for text in dirs:
            dist, path = parse_distribution_option(text, "--package-dir")
            d.setdefault(dist, []).append(Path(path).expanduser())
        return PackageSources(r, d)


def collect_packages(
    config: Config,
    catalog: PackageCatalog,
    sources: PackageSources,
    *,
    fetcher: Fetcher | None = None,
    workers: int = 8,
    progress: Progress | None = None,
) -> Collected:
    """Resolve, download and verify every host package the config needs, per OS release; the bundle
    items (each .deb and each index as an artifact) and the lock's package sets."""
    from kvinstall.mirror.copy import run_parallel

    needs = needed_packages(config, catalog)
    unknown = sorted((set(sources.repositories) | set(sources.directories)) - set(needs))
    if unknown:
        raise UsageError(
            f"--package-repo/--package-dir for {', '.join(unknown)}, which offline.hostPackages.distributions "
            f"does not list ({', '.join(needs) or 'none'})"
        )
    own = fetcher is None
    f = fetcher or Fetcher()
    out = Collected()
    try:
        plans: list[tuple[str, list[Candidate], PackageSet]] = []
        for dist, specs in needs.items():
            d = catalog.distributions[dist]
            if d.family != "deb":
                raise ArtifactError(f"packages of the {d.family} family are not collected yet", where=dist)
            repos = list(sources.repositories.get(dist) or ([] if sources.directories.get(dist) else
                                                            catalog.repositories(dist, config.kubernetes.version)))
            cands: list[Candidate] = []
            for directory in sources.directories.get(dist, []):
                cands += local_candidates(directory, d.architecture)
            for repo in repos:
                if repo.key is None:
                    out.notes.append(f"{dist}: {repo.describe()}: index taken without a signature ([trusted=yes])")
                cands += f.candidates(repo, d.architecture)
            chosen, pset = _choose(dist, d.architecture, d.family, specs, cands, indexed=bool(repos), notes=out.notes)
            plans.append((dist, chosen, pset))
        total = sum(c.package.size for _, chosen, _ in plans for c in chosen if c.url and not f.cached(c.package.sha256))
        done = [0]
        lock = threading.Lock()

        def count(n: int) -> None:
            with lock:
                done[0] += n
                if progress:
                    progress(done[0], total)

        def fetch(c: Candidate) -> Path:
            if c.path is not None:
                return c.path
            assert c.url is not None
            return f.get_verified(c.url, c.package.sha256, c.package.size, f"{c.package.name} {c.package.version}",
                                  MAX_DEB_BYTES, count)

        for dist, chosen, pset in plans:
            paths = run_parallel([partial(fetch, c) for c in chosen], workers)
            for c, path in zip(chosen, paths, strict=True):
                lp = next(p for p in pset.packages if p.name == c.package.name)
                out.items.append(FileItem(
                    name=package_repository(dist), tag=package_tag(lp.name), source=str(path), sha256=lp.sha256,
                    media_type=DEB_LAYER, filename=lp.filename, size=lp.size,
                ))
            index = packages_index(index_stanza(c.package, lp) for c, lp in zip(chosen, pset.packages, strict=True))
            sha = hashlib.sha256(index).hexdigest()
            index_path = f.cache / sha
            if not index_path.exists():
                write_atomic(index_path, index)
            out.items.append(FileItem(
                name=index_repository(dist), tag=INDEX_TAG, source=str(index_path), sha256=sha,
                media_type=INDEX_LAYER, filename="Packages", size=len(index),
            ))
            out.sets.append(PackageSet(pset.distribution, pset.family, pset.architecture, pset.needed, sha, pset.packages))
        out.bytes_downloaded = done[0]
    finally:
        if own:
            f.close()
    return out


def _choose(dist: str, arch: str, family: str, specs: Sequence[Spec], cands: list[Candidate], *, indexed: bool,
            notes: list[str]) -> tuple[list[Candidate], PackageSet]:
    by_key: dict[tuple[str, str, str], Candidate] = {}
    for c in cands:
        by_key.setdefault(c.package.key, c)  # local files first, then repositories in order
    res = resolve(specs, [c.package for c in by_key.values()])
    if res.missing:
        raise ArtifactError(
            f"{len(res.missing)} needed package(s) in none of the sources:\n  " + "\n  ".join(res.missing),
            where=dist,
            hint="add a source with --package-repo OS-RELEASE='deb [signed-by=KEYRING] URL SUITE COMPONENT' or "
            "--package-dir OS-RELEASE=DIR (a folder of .deb files)",
        )
    if res.unresolved:
        if indexed:
            raise ArtifactError(
                f"{len(res.unresolved)} dependenc(ies) in none of the sources:\n  " + "\n  ".join(res.unresolved),
                where=dist,
                hint="add the repository that has them (--package-repo), or their .deb files (--package-dir)",
            )
        notes += [f"{dist}: not checked (only local files, no distribution index): {u}" for u in res.unresolved]
    chosen = sorted((by_key[p.key] for p in res.chosen.values()), key=lambda c: c.package.name)
    locked = tuple(
        LockedPackage(
            name=c.package.name,
            version=c.package.version,
            architecture=c.package.architecture,
            filename=Path(c.package.filename).name or f"{c.package.name}_{c.package.version}_{c.package.architecture}.deb",
            sha256=c.package.sha256,
            size=c.package.size,
            source=c.source,
        )
        for c in chosen
    )
    for c in chosen:
        if len(c.package.sha256) != 64:
            raise IntegrityError("the index gives no SHA256 for this package", where=f"{dist}: {c.package.name}")
    return chosen, PackageSet(dist, family, arch, tuple(str(s) for s in specs), "", locked)


# -- the site repository (the completeness gate) ----------------------------------------------------


def site_packages(url: str, distribution: str, *, ca_file: str | None, signing_key: str,
                  architecture: str, timeout: float = 30.0) -> list[Package]:
    """What the site repository serves for one OS release, read as a host's apt reads it: the
    InRelease signature checked with the configured key, the index checked against it.
    A repository that cannot be reached raises ArtifactError; a bad signature IntegrityError."""
    from kvinstall.mirror.packages import COMPONENT, SUITE, index_packages

    base = f"{url.rstrip('/')}/{distribution}/dists/{SUITE}/"
    what = f"package repository {url} ({distribution})"
    try:
        key = Path(signing_key).expanduser().read_bytes()
    except OSError as exc:
        raise LocalIOError(f"cannot read the signing key: {exc.strerror or exc}", where=signing_key) from exc
    with requests.Session() as s:
        s.trust_env = False
        s.verify = ca_file if ca_file else True

        def get(rel: str) -> bytes | None:
            try:
                resp = s.get(base + rel, timeout=timeout)
            except requests.RequestException as exc:
                raise ArtifactError(f"cannot reach {base + rel}: {exc}", where=what) from exc
            if resp.status_code == 404:
                return None
            if resp.status_code != 200:
                raise ArtifactError(f"{base + rel} answered HTTP {resp.status_code}", where=what)
            return resp.content

        signed = get("InRelease")
        if signed is None:
            return []  # no repository for this OS release: every needed package is missing
        files = parse_release(gpg.verify_clearsigned(signed, [key], what=what).text)
        rel = f"{COMPONENT}/binary-{architecture}/Packages"
        if rel not in files:
            raise IntegrityError(f"the signed index lists no {rel}", where=what)
        data = get(rel)
        if data is None or hashlib.sha256(data).hexdigest() != files[rel][0]:
            raise IntegrityError(f"{rel} does not match the signed index", where=what)
        return index_packages(data)
