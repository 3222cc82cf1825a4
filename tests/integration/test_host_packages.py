"""Host packages for air-gapped sites: bundle, `mirror serve`, a host's own apt, the gate, preflight, the
host package-source phase.

Real: Debian's own bookworm files (the signed InRelease, the Packages index, the .debs), cached once by
hack/ci-setup.sh and served on 127.0.0.1 (tests/substrate/debs.py: no test reaches deb.debian.org, and
test_collection_needs_nothing_but_loopback proves it in an empty network namespace; signatures checked
against the machine's debian-archive-keyring with gpgv), gpg, docker-registry, the HTTPS package
server, apt and dpkg-deb inside sshd hosts in network namespaces (tests/substrate/host_lab.py: each host
has a route to the lab's jump address 10.77.X.1 and nothing else). The lab hosts share this machine's
filesystem: apt runs with private state, cache and source folders (or private mounts of /etc/apt,
/var/lib/apt, /var/cache/apt) and only ever downloads; nothing is installed. Kubernetes and Docker packages
cannot be fetched here: the test catalog (tests/substrate/debs.py) needs containerd, conntrack and socat.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pty
import shlex
import signal
import subprocess
import sys
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from kvinstall.config.loader import load_file
from kvinstall.errors import ArtifactError, IntegrityError
from kvinstall.hosts.preflight import run_preflight
from substrate.debs import (
    KEYRING,
    DebianMirror,
    PackageBundle,
    config_text,
    environ,
    is_loopback,
    kvinstall,
    make_bundle,
    stop_serve,
)
from substrate.host_lab import DEBIAN_12, UBUNTU_2404, HostSpec, Lab
from substrate.procs import free_port, wait_until

pytestmark = pytest.mark.integration

LabFactory = Callable[[int | Sequence[HostSpec]], Lab]


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def locked(bundle: PackageBundle) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in bundle.lock["packages"]["debian-12"]["packages"]}


# -- the bundle -------------------------------------------------------------------------------------


def rewrite_lock(src: Path, dst: Path, change: Callable[[dict[str, Any]], None]) -> None:
    with tarfile.open(src) as tin, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as tout:
        for m in tin:
            data = tin.extractfile(m).read() if m.isfile() else b""  # type: ignore[union-attr]
            if m.name == "kvinstall-lock.json":
                lock = json.loads(data)
                change(lock)
                data = json.dumps(lock).encode()
                m.size = len(data)
            tout.addfile(m, io.BytesIO(data))


def test_bundle_pins_every_package_and_verify_checks_them(package_bundle: PackageBundle, local_debs: Path,
                                                          debian_mirror: DebianMirror, tmp_path: Path) -> None:
    section = package_bundle.lock["packages"]["debian-12"]
    assert section["needed"] == ["containerd", "conntrack", "socat", "ethtool"]
    pkgs = locked(package_bundle)
    # The needed packages and what they depend on beyond a minimal Debian (runc for containerd, the
    # conntrack library, libc6 because they need a newer one than an old host may have).
    assert {"containerd", "conntrack", "socat", "ethtool", "runc", "libnetfilter-conntrack3", "libc6"} <= set(pkgs)
    assert "dpkg" not in pkgs and "bash" not in pkgs  # essential: every host has them
    for p in pkgs.values():
        assert len(p["sha256"]) == 64 and p["size"] > 0 and p["version"], p
    # ethtool came from the folder of local .debs: pinned to that very file.
    local = next(local_debs.glob("ethtool_*.deb"))
    assert pkgs["ethtool"]["sha256"] == sha256(local) and pkgs["ethtool"]["source"] == str(local)
    assert pkgs["socat"]["source"].startswith(debian_mirror.url + "/pool/main/s/socat/")

    ok(kvinstall(["mirror", "verify", str(package_bundle.path)], package_bundle.env))
    info = json.loads(ok(kvinstall(["mirror", "inspect", str(package_bundle.path), "-o", "json"],
                                   package_bundle.env)).stdout)
    refs = {e["reference"] for e in info["entries"]}
    assert {"kvinstall/packages/debian-12:socat", "kvinstall/package-index/debian-12:packages"} <= refs

    # The lock pins another file for socat: verify names the package.
    bad = tmp_path / "bad-sha.tar"
    rewrite_lock(package_bundle.path, bad, lambda lock: next(
        p for p in lock["packages"]["debian-12"]["packages"] if p["name"] == "socat").update(sha256="0" * 64))
    res = kvinstall(["mirror", "verify", str(bad)], package_bundle.env)
    assert res.returncode == 11, res.stderr
    assert "package socat: not the .deb the lock pins" in res.stderr

    # A package the lock lists but whose artifact is gone from the bundle.
    gone = tmp_path / "gone.tar"
    rewrite_lock(package_bundle.path, gone, lambda lock: lock.update(
        entries=[e for e in lock["entries"] if e["reference"] != "kvinstall/packages/debian-12:conntrack"]))
    res = kvinstall(["mirror", "verify", str(gone)], package_bundle.env)
    assert res.returncode == 11, res.stderr
    assert "package conntrack " in res.stderr and "is not in the bundle" in res.stderr


def test_collection_refuses_what_it_cannot_prove(package_env: dict[str, str], debian_mirror: DebianMirror,
                                                 tmp_path: Path) -> None:
    # A package no source has: named, with the hint where to add one.
    with pytest.raises(ArtifactError) as missing:
        make_bundle(tmp_path / "m.tar", package_env, extra=["kvtest-no-such-package"])
    assert "kvtest-no-such-package: in none of the sources" in missing.value.message
    assert not (tmp_path / "m.tar").exists()

    # The mirror's index checked against a key that did not sign it: refused before anything is read.
    from kvinstall.mirror.gpg import SigningKey

    with SigningKey(tmp_path / "gnupg") as other:
        other.ensure()
        (tmp_path / "other.gpg").write_bytes(other.public_key())
    with pytest.raises(IntegrityError) as unsigned:
        from kvinstall.catalog.packages import RepoKey, Repository
        from kvinstall.mirror.aptfetch import Fetcher

        with environ(package_env):
            Fetcher().release(Repository(debian_mirror.url + "/", "bookworm", ("main",), RepoKey(str(tmp_path / "other.gpg"))))
    assert "no valid signature" in unsigned.value.message


# Runs inside `unshare -n`: a new network namespace with nothing but loopback (no route, no DNS).
NO_NETWORK = """
import json, socket, subprocess, sys
from pathlib import Path
from substrate.debs import MirrorServer, make_bundle, package_env_for
subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=30)
try:
    socket.create_connection(("deb.debian.org", 80), timeout=10).close()
    reached = "deb.debian.org"
except OSError as exc:
    reached = None
root, work, local = map(Path, sys.argv[1:4])
with MirrorServer(root) as server:
    bundle = make_bundle(work / "bundle.tar", package_env_for(server.url, work), extra=["ethtool"], dirs=[local],
                         mirror=server.url)
print(json.dumps({"reached": reached, "url": server.url, "hits": server.hits, "lock": bundle.lock["packages"]}))
"""


def test_collection_needs_nothing_but_loopback(debian_mirror: DebianMirror, local_debs: Path,
                                               tmp_path: Path) -> None:
    """The proof that the host-package tests never contact deb.debian.org: in a network namespace with only
    loopback up, kvinstall collects and verifies the whole closure from the cached mirror served there."""
    tests = Path(__file__).parents[1]
    res = subprocess.run(["unshare", "-n", sys.executable, "-c", NO_NETWORK, str(debian_mirror.root), str(tmp_path),
                          str(local_debs)], env={**os.environ, "PYTHONPATH": str(tests)}, capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    got = json.loads(res.stdout.splitlines()[-1])
    assert got["reached"] is None  # the public mirror is out of reach in there ...
    assert is_loopback(got["url"]), got["url"]
    pkgs = {p["name"]: p for p in got["lock"]["debian-12"]["packages"]}
    # ... and yet the closure is complete: the needed packages and their dependencies, from the served pool.
    assert {"containerd", "conntrack", "socat", "ethtool", "runc", "libnetfilter-conntrack3", "libc6"} <= set(pkgs)
    for p in pkgs.values():
        assert p["source"].startswith((got["url"] + "/pool/main/", str(local_debs))), p
    hits = {(code, path) for code, path in got["hits"]}
    assert (200, "/dists/bookworm/InRelease") in hits and (200, "/dists/bookworm/main/binary-amd64/Packages.gz") in hits
    assert not [h for h in hits if h[0] != 200], hits


# -- mirror serve in the host lab -------------------------------------------------------------------


def lab_serve(lab: Lab, bundle: PackageBundle, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`mirror serve` on the jump host: the lab namespace, where 10.77.X.1 lives."""
    jump = f"10.77.{lab.x}.1"
    return kvinstall(["mirror", "serve", "--bundle", str(bundle.path), "--address", jump, "--state-dir", str(state),
                      *args], bundle.env, prefix=["ip", "netns", "exec", lab.netns])


def apt(lab: Lab, host: str, work: Path, sources: str, ca: Path | None, *args: str) -> tuple[int, str, str]:
    """apt-get on a lab host over SSH with private state, cache and sources (nothing is installed)."""
    for d in ("state/lists/partial", "cache/archives/partial", "parts", "dl"):
        (work / d).mkdir(parents=True, exist_ok=True)
    (work / "sources.list").write_text(sources)
    opts = [f"Dir::State={work}/state", f"Dir::Cache={work}/cache", f"Dir::Etc::SourceList={work}/sources.list",
            f"Dir::Etc::SourceParts={work}/parts", "Dir::State::status=/dev/null", "APT::Sandbox::User=root",
            "Debug::NoLocking=1"]
    if ca is not None:
        opts.append(f"Acquire::https::CaInfo={ca}")
    cmd = ["apt-get", "-q", *(x for o in opts for x in ("-o", o)), *args]
    return lab.exec(host, f"cd {shlex.quote(str(work / 'dl'))} && " + shlex.join(cmd), timeout=120)


def test_serve_from_a_bundle_and_a_host_apt_downloads_and_verifies(host_lab: LabFactory,
                                                                   package_bundle: PackageBundle,
                                                                   tmp_path: Path) -> None:
    lab = host_lab([HostSpec("h1", os_release=DEBIAN_12)])
    state = tmp_path / "serve"
    try:
        out = ok(lab_serve(lab, package_bundle, state)).stdout
        jump = f"10.77.{lab.x}.1"
        assert f"registry: {jump}:5000" in out and f"url: https://{jump}:8443" in out, out
        status = json.loads(ok(kvinstall(["mirror", "serve", "--status", "--state-dir", str(state), "-o", "json"],
                                         package_bundle.env, prefix=["ip", "netns", "exec", lab.netns])).stdout)
        assert status["running"] and status["checks"] == {"registry": "ok", "repository": "ok"}, status
        ca, key = Path(status["caFile"]), Path(status["signingKey"])

        # The host has a route to the lab network only: the public mirror is out of reach.
        code, routes, _ = lab.exec("h1", "ip -4 route")
        assert code == 0 and "default" not in routes and f"10.77.{lab.x}.0/24" in routes, routes
        # It reaches the site registry over TLS with the generated CA.
        code, body, err = lab.exec("h1", f"curl -sS --cacert {ca} https://{jump}:5000/v2/_catalog")
        assert code == 0 and "kvinstall/packages/debian-12" in body, err
        # ... and cannot push to it: the served registry is read-only (the bundle went in beforehand).
        code, body, err = lab.exec("h1", f"curl -sS -o /dev/null -w '%{{http_code}}' --cacert {ca} -X POST "
                                         f"https://{jump}:5000/v2/kvtest/blobs/uploads/")
        assert code == 0 and body == "405", (body, err)

        # apt on the host: the signed index, then three packages, each checked against it by apt itself.
        work = tmp_path / "apt"
        line = f"deb [signed-by={key}] https://{jump}:8443/debian-12 kvinstall main\n"
        code, so, se = apt(lab, "h1", work, line, ca, "update")
        assert code == 0 and "kvinstall InRelease" in so and "W:" not in se, so + se
        code, so, se = apt(lab, "h1", work, line, ca, "download", "socat", "containerd", "ethtool")
        assert code == 0, so + se
        pkgs = locked(package_bundle)
        for name in ("socat", "containerd", "ethtool"):
            got = list((work / "dl").glob(f"{name}_*.deb"))
            assert len(got) == 1 and sha256(got[0]) == pkgs[name]["sha256"], (name, got)
            fields = subprocess.run(["dpkg-deb", "--field", str(got[0]), "Package", "Version"], capture_output=True,
                                    text=True, check=True).stdout
            assert f"Package: {name}\nVersion: {pkgs[name]['version']}" in fields

        # A tampered .deb on the server: apt refuses it (the signed index pins its digest).
        served = next((state / "repo/debian-12/pool/main/conntrack").glob("*.deb"))
        served.write_bytes(served.read_bytes()[:-1] + b"X")
        code, so, se = apt(lab, "h1", work, line, ca, "download", "conntrack")
        assert code != 0 and "Hash Sum mismatch" in so + se, so + se
        assert not list((work / "dl").glob("conntrack_*.deb"))

        # A host that trusts another key refuses the index; one without the CA refuses the server.
        (tmp_path / "wrong.gpg").write_bytes(Path(KEYRING).read_bytes())
        wrong = line.replace(str(key), str(tmp_path / "wrong.gpg"))
        code, so, se = apt(lab, "h1", tmp_path / "apt-wrong-key", wrong, ca, "update")
        assert "NO_PUBKEY" in so + se or "not signed" in so + se, so + se
        code, so, se = apt(lab, "h1", tmp_path / "apt-no-ca", line, None, "update")
        assert "certificate" in (so + se).lower(), so + se

        pids = json.loads((state / "serve.json").read_text())
        running = [pids["supervisor_pid"], *pids["children"].values()]
        stopped = ok(kvinstall(["mirror", "serve", "--stop", "--state-dir", str(state)], package_bundle.env,
                               prefix=["ip", "netns", "exec", lab.netns]))
        assert "stopped" in stopped.stdout
        assert not [p for p in running if alive(p)], running
        res = kvinstall(["mirror", "serve", "--status", "--state-dir", str(state)], package_bundle.env)
        assert res.returncode == 10 and "not running (stopped)" in res.stdout, res.stdout + res.stderr
    finally:
        stop_serve(state, package_bundle.env, prefix=["ip", "netns", "exec", lab.netns])


def test_site_in_the_lab_gate_preflight_and_host_package_source(host_lab: LabFactory,
                                                                 package_bundle: PackageBundle,
                                                                 tmp_path: Path) -> None:
    apt_dirs = dict(private_copies=("/etc/apt",), private_dirs=("/var/lib/apt", "/var/cache/apt"))
    lab = host_lab([HostSpec("h1", os_release=DEBIAN_12, **apt_dirs),  # type: ignore[arg-type]
                    HostSpec("h2", os_release=UBUNTU_2404)])
    state = tmp_path / "serve"
    config = tmp_path / "site.yaml"
    config.write_text("# the site's config\n" + config_text(hosts=[lab["h1"].ip, lab["h2"].ip], extra=["ethtool"]))
    jump = f"10.77.{lab.x}.1"
    try:
        # -f: the bundle is checked against the config, and the settings are written into it.
        ok(lab_serve(lab, package_bundle, state, "-f", str(config)))
        text = config.read_text()
        assert text.startswith("# the site's config\n"), text
        with environ(package_bundle.env):
            cfg = load_file(config).config
        repo = cfg.offline.package_repository
        assert cfg.offline.registry == f"{jump}:5000" and repo is not None and repo.url == f"https://{jump}:8443"
        cfg = cfg.model_copy(update={"ssh": cfg.ssh.model_copy(update={
            "private_key_file": str(lab.client_keys.ed25519), "use_agent": False})})

        # The gate's package check reads the site as the hosts do; it must run where the hosts' network is.
        def gate(c: Any, env: dict[str, str]) -> tuple[int, list[str]]:
            from substrate.netns import run_in

            code = ("import json,sys; from kvinstall.config.models import Config; "
                    "from kvinstall.catalog.packages import load_package_catalog; "
                    "from kvinstall.mirror.gate import check_host_packages; "
                    "print(json.dumps(check_host_packages(Config.model_validate_json(sys.stdin.read()), "
                    "load_package_catalog())))")
            res = run_in(lab.netns, [sys.executable, "-c", code], input=c.model_dump_json(by_alias=True), text=True,
                         env={**os.environ, **env})
            assert res.returncode == 0, res.stderr
            needed, missing = json.loads(res.stdout)
            return needed, missing

        assert gate(cfg, package_bundle.env) == (4, [])
        more = cfg.model_copy(update={"offline": cfg.offline.model_copy(update={
            "host_packages": cfg.offline.host_packages.model_copy(update={"extra": ["ethtool", "iperf3"]})})})
        assert gate(more, package_bundle.env) == (5, ["debian-12: iperf3"])
        # The shipped catalog: KubeOne's packages for Kubernetes v1.34.4, which this bundle cannot have.
        _, real = gate(cfg, {"KVINSTALL_PACKAGES": ""})
        assert "debian-12: kubelet=1.34.4-*" in real and "debian-12: containerd.io=2.2.*" in real, real
        assert "debian-12: socat" not in real

        # Preflight: both hosts reach the site; h2 runs an OS release the site does not serve.
        report = run_preflight(cfg, accept_new_host_keys=False, skip=set(), known_hosts_path=tmp_path / "kh",
                               socket_factory=lab.connect, user_known_hosts=[lab.known_hosts],
                               ssh_config_path=tmp_path / "no-ssh-config")
        h1, h2 = lab["h1"].ip, lab["h2"].ip
        for h in (h1, h2):
            site = report.result(h, "offline.site")
            assert site is not None and site.status == "pass", site
            assert f"registry {jump}:5000" in site.message and f"package repository {jump}:8443" in site.message
        assert report.result(h1, "offline.distribution").status == "pass"  # type: ignore[union-attr]
        wrong = report.result(h2, "offline.distribution")
        assert wrong is not None and wrong.status == "fail" and "ubuntu-24.04 is not among" in wrong.message

        # The host package source: apt on h1 is pointed at the site (in its private /etc/apt), then uses
        # it with nothing but its own configuration.
        from kvinstall.hosts.packages import configure

        one = cfg.model_copy(update={"hosts": [cfg.hosts[0]]})
        kw = dict(known_hosts_path=tmp_path / "kh", socket_factory=lab.connect, user_known_hosts=[lab.known_hosts],
                  ssh_config_path=tmp_path / "no-ssh-config")
        assert configure(one, **kw) == {h1: True}  # type: ignore[arg-type]
        assert configure(one, **kw) == {h1: False}  # type: ignore[arg-type]  # a re-run changes nothing
        etc_apt = lab["h1"].private["/etc/apt"]
        assert f"https://{jump}:8443/debian-12 kvinstall main" in (etc_apt / "sources.list.d/kvinstall-site.list").read_text()
        assert not Path("/etc/apt/sources.list.d/kvinstall-site.list").exists()  # the machine's own is untouched
        lab.exec("h1", "mkdir -p /var/lib/apt/lists/partial /var/cache/apt/archives/partial")
        code, so, se = lab.exec("h1", "apt-get -q update", timeout=120)
        assert "https://" + jump + ":8443/debian-12 kvinstall InRelease" in so, so + se
        # The public sources stay in the file but cannot be reached: apt warns and goes on, as KubeOne's
        # install script (`set -e`, `apt-get update`) needs it to.
        assert code == 0 and "deb.debian.org" in so + se, so + se
        dl = tmp_path / "dl"
        dl.mkdir()
        code, so, se = lab.exec("h1", f"cd {dl} && apt-get -q download socat", timeout=120)
        assert code == 0, so + se
        got = list(dl.glob("socat_*.deb"))
        assert len(got) == 1 and sha256(got[0]) == locked(package_bundle)["socat"]["sha256"]

        # The site stops: preflight names what the hosts can no longer reach.
        ok(kvinstall(["mirror", "serve", "--stop", "--state-dir", str(state)], package_bundle.env,
                     prefix=["ip", "netns", "exec", lab.netns]))
        report = run_preflight(cfg, accept_new_host_keys=False, skip=set(), known_hosts_path=tmp_path / "kh",
                               socket_factory=lab.connect, user_known_hosts=[lab.known_hosts],
                               ssh_config_path=tmp_path / "no-ssh-config")
        gone = report.result(h1, "offline.site")
        assert gone is not None and gone.status == "fail", gone
        assert f"registry {jump}:5000" in gone.message and f"package repository {jump}:8443" in gone.message
    finally:
        stop_serve(state, package_bundle.env, prefix=["ip", "netns", "exec", lab.netns])


def test_serve_refuses_a_bundle_that_lacks_what_the_config_needs(package_bundle: PackageBundle,
                                                                  tmp_path: Path) -> None:
    config = tmp_path / "needs-more.yaml"
    config.write_text(config_text(extra=["ethtool", "iperf3"]))
    res = kvinstall(["mirror", "verify", str(package_bundle.path), "-f", str(config)], package_bundle.env)
    assert res.returncode == 14 and "debian-12: iperf3" in res.stderr, res.stderr
    state = tmp_path / "serve"
    res = kvinstall(["mirror", "serve", "--bundle", str(package_bundle.path), "-f", str(config), "--address",
                     "127.0.0.1", "--state-dir", str(state)], package_bundle.env)
    assert res.returncode == 14 and "debian-12: iperf3" in res.stderr, res.stderr
    assert not (state / "serve.json").exists()  # refused before anything started
    # The shipped catalog's needs (Kubernetes v1.34.4): every missing one named.
    res = kvinstall(["mirror", "verify", str(package_bundle.path), "-f", str(config)],
                    {**package_bundle.env, "KVINSTALL_PACKAGES": ""})
    assert res.returncode == 14, res.stderr
    for spec in ("kubelet=1.34.4-*", "kubeadm=1.34.4-*", "kubectl=1.34.4-*", "containerd.io=2.2.*", "cri-tools"):
        assert f"debian-12: {spec}" in res.stderr, res.stderr


# -- the service: background, terminal, restarts, foreground ------------------------------------------


def test_serve_survives_its_terminal_and_restarts_a_server_that_dies(package_bundle: PackageBundle,
                                                                     tmp_path: Path) -> None:
    state = tmp_path / "serve"
    argv = [sys.executable, "-m", "kvinstall", "mirror", "serve", "--bundle", str(package_bundle.path),
            "--address", "127.0.0.1", "--registry-port", str(free_port()), "--repo-port", str(free_port()),
            "--state-dir", str(state)]
    try:
        # Started from a terminal (a pty); the terminal then goes away (its master closes: SIGHUP).
        pid, fd = pty.fork()
        if pid == 0:  # the child: the command, in the terminal's session
            os.environ.update(package_bundle.env)
            os.execv(sys.executable, argv)
        seen = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        _, code = os.waitpid(pid, 0)
        os.close(fd)
        assert os.waitstatus_to_exitcode(code) == 0, seen.decode(errors="replace")
        serve = json.loads((state / "serve.json").read_text())
        assert serve["status"] == "running" and serve["process_group"] == serve["supervisor_pid"]
        assert os.getsid(serve["supervisor_pid"]) != os.getsid(0)  # its own session, not the terminal's
        status = kvinstall(["mirror", "serve", "--status", "--state-dir", str(state), "-o", "json"],
                           package_bundle.env)
        assert json.loads(ok(status).stdout)["checks"] == {"registry": "ok", "repository": "ok"}

        # The registry server dies: the supervisor starts it again; the service answers again.
        first = serve["children"]["registry"]
        os.kill(first, signal.SIGKILL)

        def restarted() -> bool:
            now = json.loads((state / "serve.json").read_text())["children"].get("registry")
            if not now or now == first:
                return False
            res = kvinstall(["mirror", "serve", "--status", "--state-dir", str(state)], package_bundle.env)
            return res.returncode == 0

        wait_until(restarted, 60, "the supervisor to restart the registry")
        assert "restarting" in (state / "logs/supervisor.log").read_text()
    finally:
        stop_serve(state, package_bundle.env)


def test_serve_in_the_foreground_stops_on_ctrl_c(package_bundle: PackageBundle, tmp_path: Path) -> None:
    state = tmp_path / "serve"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kvinstall", "mirror", "serve", "--bundle", str(package_bundle.path), "--address",
         "127.0.0.1", "--registry-port", str(free_port()), "--repo-port", str(free_port()), "--state-dir",
         str(state), "--foreground", "-o", "json"],
        env={**os.environ, **package_bundle.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        assert proc.stdout is not None
        settings = json.loads(proc.stdout.readline() + "".join(iter(lambda: proc.stdout.readline(), "}\n")) + "}")
        assert settings["status"] == "running" and settings["pid"] == proc.pid, settings
        children = json.loads((state / "serve.json").read_text())["children"]
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the terminal's foreground group
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "stopped" in err
        after = json.loads((state / "serve.json").read_text())
        assert after["status"] == "stopped" and not after["children"] and not after["supervisor_pid"]
        assert not [p for p in children.values() if alive(p)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stop_serve(state, package_bundle.env)
