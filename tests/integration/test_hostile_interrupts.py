"""Interrupts, as an operator gives them: real SIGINTs (and a SIGTERM) to a real `python -m kvinstall`.

- `mirror create` from a registry behind a link that all but stalls: the first Ctrl-C stops at once
  (exit 130, "interrupted" and how to resume), more Ctrl-Cs never show a traceback, a second create
  of the same bundle meanwhile is refused (the lock, naming the holder), and the re-run completes.
- `mirror push` to a real docker-registry through a crawling link: the same.
- `plan --kubeconfig` killed by SIGTERM while it talks to the cluster: no client key in the temp dir.

STAND-INS (tests/substrate/hostile.py): the stalling registry and the slow link are stand-ins for
a bad network the real world cannot provide on cue. `mirror create` reads the real upstream
artifacts (tests/upstream_pack.py) from a seeded artifact cache; every image comes from the synthetic
registry through --registry-mirror. No step depends on speed: each wait is for an event, bounded
by a generous timeout, and a run that waited for its queued transfers would hit the timeout.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kvinstall.catalog import load_catalog
from kvinstall.components.artifacts import NoFetch
from kvinstall.config.loader import load_file
from kvinstall.imageref import parse_reference
from kvinstall.plan.desired import desire_upstream
from kvinstall.render.helm import find_helm
from substrate.hostile import SlowLink, SyntheticRegistry
from substrate.netns import run_in, socket_in
from substrate.pki import CA
from substrate.procs import wait_until
from upstream_pack import pack_artifacts

pytestmark = pytest.mark.integration

CONFIG = """\
apiVersion: kvinstall.io/v1alpha1
kind: VirtualizationCluster
metadata: {name: hostile}
hosts:
  - {address: 192.0.2.11, role: controlPlane, hostname: cp-1}
storage: {rwxClass: nfs}
"""


class Cli:
    """`python -m kvinstall ARGS` running in the background; its output collected line by line."""

    def __init__(
        self, args: list[str], env: dict[str, str], cwd: Path, argv0: list[str] | None = None
    ) -> None:
        self.proc = subprocess.Popen(
            [*(argv0 or []), sys.executable, "-m", "kvinstall", *args],
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [
            threading.Thread(target=self._read, args=(stream, sink), daemon=True)
            for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))
        ]
        for t in self.readers:
            t.start()

    @staticmethod
    def _read(stream: Any, sink: list[str]) -> None:
        for text in stream:
            sink.append(text)

    def running(self) -> bool:
        if self.proc.poll() is not None:
            for t in self.readers:
                t.join(30)
            raise AssertionError(f"exited early ({self.proc.returncode}): {''.join(self.err)}")
        return True

    def interrupt(self, times: int = 1) -> None:
        for _ in range(times):
            self.proc.send_signal(signal.SIGINT)

    def finish(self, timeout: float) -> tuple[int, str, str]:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
            raise AssertionError(
                f"still running after {timeout}s; stderr so far:\n{''.join(self.err)}"
            ) from None
        for t in self.readers:
            t.join(30)  # the pipes close with the process
        return rc, "".join(self.out), "".join(self.err)


def run(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kvinstall", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def seed_cache(cache: Path, config_file: Path) -> None:
    """The artifact cache as a first download would have left it: the real upstream artifacts of
    the config's versions (tests/upstream_pack.py) under sha256/<hex>, their digests recorded in
    lock.json. The kubeone and helm archives are stand-in bytes: `mirror create` only carries them."""
    in_pack = {(a.name, a.version, a.source): path for _, _, a, path in pack_artifacts()}
    desired = desire_upstream(load_file(config_file).config, load_catalog(), NoFetch())
    lock: dict[str, str] = {}
    for art in desired.all_artifacts():
        path = in_pack.get((art.name, art.version, art.source))
        data = path.read_bytes() if path is not None else f"{art.name}\n".encode()
        digest = hashlib.sha256(data).hexdigest()
        (cache / "sha256").mkdir(parents=True, exist_ok=True)
        (cache / "sha256" / digest).write_bytes(data)
        lock[f"{art.name} {art.version} {art.source}"] = f"sha256:{digest}"
    (cache / "lock.json").write_text(json.dumps(lock))


@pytest.fixture
def work(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A working folder and the environment of the CLI in it (HOME, cache and TMPDIR inside)."""
    for d in ("home", "cache", "tmp"):
        (tmp_path / d).mkdir()
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path / "home"), "NO_COLOR": "1",
        "KVINSTALL_CACHE_DIR": str(tmp_path / "cache"), "TMPDIR": str(tmp_path / "tmp"), "LANG": "C.UTF-8",
        "KVINSTALL_HELM": find_helm(),  # found with the real HOME; the CLI runs with its own
    }  # fmt: skip
    yield tmp_path, env
    assert not list((tmp_path / "tmp").iterdir()), "temporary files left behind"


def upstream_registries(cfg: Path, env: dict[str, str], cwd: Path) -> tuple[str, ...]:
    """Every upstream registry the config's images come from, as `mirror list` names them (KubeOne's
    own list reaches mcr.microsoft.com and others): each one is sent to the synthetic registry, so no
    request leaves this machine (an unlisted one would be a registry error naming it)."""
    listed = run(["mirror", "list", "-f", str(cfg), "--output", "json"], env, cwd)
    assert listed.returncode == 0, listed.stderr
    refs = [r["reference"] for r in json.loads(listed.stdout) if r["kind"] == "image"]
    return tuple(sorted({parse_reference(r).registry for r in refs}))


def mirror_args(reg: Any, hosts: tuple[str, ...], cfg: Path, out: Path) -> list[str]:
    args = ["mirror", "create", "-f", str(cfg), "-o", str(out), "--insecure-registry", reg.host]
    return args + [a for h in hosts for a in ("--registry-mirror", f"{h}={reg.host}")]


def test_ctrl_c_stops_mirror_create_at_once_and_the_rerun_completes(
    work: tuple[Path, dict[str, str]],
) -> None:
    tmp, env = work
    cfg = tmp / "cluster.yaml"
    cfg.write_text(CONFIG)
    seed_cache(tmp / "cache", cfg)
    out = tmp / "platform.tar"
    with SyntheticRegistry() as reg:
        reg.slow.set()
        upstreams = upstream_registries(cfg, env, tmp)
        assert {"docker.io", "quay.io", "registry.k8s.io"} <= set(upstreams), upstreams
        args = mirror_args(reg, upstreams, cfg, out)
        first = Cli(args, env, tmp)
        wait_until(
            lambda: (first.running() and reg.blob_requests > 0) or None,
            240,
            "mirror create to start pulling blobs",
        )

        # Meanwhile another create of the same bundle: refused at once, naming the holder.
        second = run(args, env, tmp, timeout=240)
        assert second.returncode == 13, second.stderr
        assert (
            f"another `kvinstall mirror create` is writing this bundle (pid {first.proc.pid})"
            in second.stderr
        )

        # Ctrl-C, pressed three times: one clean stop, no traceback, nothing half-written.
        first.interrupt(3)
        rc, _, err = first.finish(timeout=60)
        assert rc == 130, err
        assert "mirror create interrupted" in err and "re-run the same command to continue" in err
        assert "Traceback" not in err
        assert not out.exists() and not out.with_name(out.name + ".partial").exists()

        # The link recovers: the same command finishes the bundle, and it verifies.
        reg.slow.clear()
        again = run([*args, "--output", "json"], env, tmp)
        assert again.returncode == 0, again.stderr
        result = json.loads(again.stdout)
        assert result["bytes"] >= reg.image_bytes
        pulled = {e["reference"].split("/")[0] for e in result["entries"] if e["kind"] == "image"}
        assert {"docker.io", "quay.io", "registry.k8s.io"} <= pulled <= set(upstreams)
    verified = run(["mirror", "verify", str(out)], env, tmp)
    assert verified.returncode == 0, verified.stderr
    assert not (tmp / f".{out.name}.work").exists()


@pytest.fixture
def small_bundle(work: tuple[Path, dict[str, str]]) -> Path:
    """A bundle of three images (16 layers of 256 KiB, shared), made from the synthetic registry."""
    from kvinstall.mirror import RegistryOptions, create_bundle

    tmp, _ = work
    out = tmp / "small.tar"
    with SyntheticRegistry() as reg:
        refs = [f"{reg.host}/kvtest/img{i}:v1" for i in range(3)]
        create_bundle(refs, out, registries={reg.host: RegistryOptions(insecure=True)})
    return out


def test_ctrl_c_stops_mirror_push_at_once_and_the_rerun_completes(
    work: tuple[Path, dict[str, str]], small_bundle: Path, registry_factory: Any
) -> None:
    tmp, env = work
    target = registry_factory("hostile-push")
    link = SlowLink(target.port)
    try:
        args = [
            "mirror",
            "push",
            "--bundle",
            str(small_bundle),
            "--registry",
            link.host,
            "--insecure",
            "--workers",
            "4",
        ]
        push = Cli(args, env, tmp)
        wait_until(lambda: (push.running() and link.sent > 16 << 10) or None, 240, "a blob upload under way")
        push.interrupt(3)
        rc, _, err = push.finish(timeout=60)
        assert rc == 130, err
        assert "mirror push interrupted" in err and "re-run the same command to continue" in err
        assert "Traceback" not in err
        link.slow.clear()
        again = run(args, env, tmp)
        assert again.returncode == 0, again.stderr
        assert "pushed 3 references" in again.stdout
    finally:
        link.close()


def test_sigterm_during_plan_leaves_no_key_material(
    work: tuple[Path, dict[str, str]], registry_ca: CA
) -> None:
    """`plan --kubeconfig` with the client key embedded in the kubeconfig, killed by SIGTERM while
    the cluster (a stand-in that accepts and never answers) keeps it waiting. Runs in a network
    namespace of its own: the config's host (192.0.2.11) does not exist there."""
    tmp, env = work
    client = registry_ca.issue("plan-user", common_name="plan-user", client=True, server=False)
    key_pem = client.key.read_bytes()
    netns = f"kvh-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        run_in(netns, ["ip", "link", "set", "lo", "up"], check=True)
        listener = socket_in(netns)
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        accepted: list[Any] = []
        threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
        kubeconfig = tmp / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{listener.getsockname()[1]}",
                                                   "certificate-authority-data": _b64(registry_ca.cert_path)}}],
            "users": [{"name": "u", "user": {"client-certificate-data": _b64(client.cert),
                                             "client-key-data": _b64(client.key)}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        }))  # fmt: skip
        cfg = tmp / "cluster.yaml"
        cfg.write_text(CONFIG)
        plan = Cli(["plan", "-f", str(cfg), "--kubeconfig", str(kubeconfig)], env, tmp,
                   argv0=["ip", "netns", "exec", netns])  # fmt: skip
        wait_until(lambda: (plan.running() and accepted) or None, 120, "plan to connect to the cluster")
        plan.proc.send_signal(signal.SIGTERM)
        rc, _, err = plan.finish(timeout=60)
        assert rc == -signal.SIGTERM, err
        for path in (tmp / "tmp").rglob("*"):
            assert not path.is_file() or key_pem not in path.read_bytes(), f"client key left in {path}"
        assert not list((tmp / "tmp").iterdir())
        listener.close()
    finally:
        subprocess.run(["ip", "netns", "delete", netns], check=False)


def _b64(path: Path) -> str:
    import base64

    return base64.b64encode(path.read_bytes()).decode()


def test_embedded_kubeconfig_material_works_against_a_real_apiserver(
    kube_api: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-memory key files (memfd) serve real TLS client authentication, and no file is written."""
    import tempfile

    from kvinstall.kube.client import Kube

    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    src = yaml.safe_load(Path(kube_api.kubeconfig).read_text())
    cluster, user = src["clusters"][0]["cluster"], src["users"][0]["user"]
    cluster["certificate-authority-data"] = _b64(Path(cluster.pop("certificate-authority")))
    user["client-certificate-data"] = _b64(Path(user.pop("client-certificate")))
    user["client-key-data"] = _b64(Path(user.pop("client-key")))
    embedded = tmp_path / "kubeconfig"
    embedded.write_text(yaml.safe_dump(src))
    kube = Kube.from_kubeconfig(embedded)
    try:
        assert kube.request("GET", "/version").json()["gitVersion"].startswith("v1.")
        assert kube.request("GET", "/api/v1/namespaces/default").json()["metadata"]["name"] == "default"
    finally:
        kube.close()
    assert not list((tmp_path / "tmp").iterdir())
