"""Benchmark: upstream registry -> bundle -> mirror registry, kvinstall against skopeo and crane.

Starts its own docker-registry servers on 127.0.0.1 (one upstream, one fresh mirror per tool), seeds
the upstream with ~30 images of incompressible random layers (pure Python, shared base layers), and
measures in one run, on the same machine and registry software:

  kvinstall create   upstream -> bundle.tar
  kvinstall push     bundle.tar -> mirror-kv          (and a re-run: bytes sent must be <= 1%)
  skopeo (layout)    skopeo copy --all --preserve-digests oci:<unpacked bundle>:<ref> -> mirror-skl
  skopeo (registry)  skopeo copy --all --preserve-digests upstream -> mirror-sk, per image
  crane              crane copy upstream -> mirror-cr, per image

Peak memory is the max RSS of each kvinstall child process (os.wait4). Usage:
  python bench/mirror.py [--images 30] [--mb 600] [--workers 8] [--rounds 3] [--keep]
Times are the best of the interleaved rounds (the machine may be shared).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import requests

CRANE = Path.home() / ".cache/kvinstall-test/v1.34.4/bin/crane"
SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"
REGISTRY = "/usr/bin/docker-registry"
LAYER_MT = "application/vnd.oci.image.layer.v1.tar"
MANIFEST_MT = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MT = "application/vnd.oci.image.config.v1+json"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Reg:
    def __init__(self, root: Path, name: str) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.name = name
        d = root / name
        (d / "storage").mkdir(parents=True)
        cfg = d / "config.yml"
        cfg.write_text(
            "version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\n"
            f"storage:\n  filesystem: {{rootdirectory: {d / 'storage'}}}\n  delete: {{enabled: true}}\n"
            f"http:\n  addr: {self.host}\n  secret: {secrets.token_hex(8)}\n"
        )
        self.log = open(d / "registry.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([REGISTRY, "serve", str(cfg)], stdout=self.log, stderr=self.log)
        for _ in range(200):
            try:
                if requests.get(f"http://{self.host}/v2/", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"registry {name} did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_layer(name: str, size: int) -> tuple[bytes, str]:
    """An uncompressed tar layer of one file of random (incompressible) bytes; returns (blob, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = 0
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    data = raw.getvalue()
    return data, sha(data)


def put_blob(s: requests.Session, host: str, repo: str, data: bytes) -> None:
    d = sha(data)
    if s.head(f"http://{host}/v2/{repo}/blobs/{d}").status_code == 200:
        return
    r = s.post(f"http://{host}/v2/{repo}/blobs/uploads/")
    loc = r.headers["Location"]
    loc = loc if loc.startswith("http") else f"http://{host}{loc}"
    r = s.put(f"{loc}{'&' if '?' in loc else '?'}digest={d}", data=data)
    r.raise_for_status()


def seed(host: str, images: int, total_mb: int) -> list[str]:
    """images repositories; 5 shared base layers carry ~1/6 of the bytes, two own layers per image."""
    mb = 1 << 20
    base_size = max(1, total_mb // 6 // 5) * mb
    own_size = max(1, (total_mb - 5 * base_size // mb) // images // 2) * mb
    bases = [tar_layer(f"base{i}.bin", base_size) for i in range(5)]
    refs = []
    with requests.Session() as s:
        for i in range(images):
            repo = f"bench/img{i:02d}"
            chosen = [bases[i % 5], bases[(i + 1) % 5]]
            own = [tar_layer(f"own{i}-{j}.bin", own_size) for j in range(2)]
            layers = chosen + own
            for data, _ in layers:
                put_blob(s, host, repo, data)
            config = json.dumps({
                "architecture": "amd64", "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [dif for _, dif in layers]},
            }, sort_keys=True).encode()
            put_blob(s, host, repo, config)
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": MANIFEST_MT,
                "config": {"mediaType": CONFIG_MT, "digest": sha(config), "size": len(config)},
                "layers": [{"mediaType": LAYER_MT, "digest": sha(d), "size": len(d)} for d, _ in layers],
            }).encode()
            r = s.put(f"http://{host}/v2/{repo}/manifests/v1", data=manifest,
                      headers={"Content-Type": MANIFEST_MT})
            r.raise_for_status()
            refs.append(f"{host}/{repo}:v1")
            del own, layers
    return refs


HWM = (
    "\nfor _l in open('/proc/self/status'):\n"
    "    if _l.startswith('VmHWM:'):\n        print('HWM', int(_l.split()[1]) * 1024)\n"
)


def run_child(code: str) -> tuple[float, int, str]:
    """Run python code in a child; returns (seconds, peak RSS in bytes, stdout).

    The peak is the child's own VmHWM: ru_maxrss would report this (large) parent's RSS, which
    Linux carries across exec.
    """
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", code + HWM], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"child failed: {out}")
    hwm = int(next(line for line in out.splitlines() if line.startswith("HWM")).split()[1])
    print(f"    (child CPU: user {usage.ru_utime:.2f}s, sys {usage.ru_stime:.2f}s)")
    body = "\n".join(line for line in out.splitlines() if not line.startswith("HWM"))
    return elapsed, hwm, body


def timed(cmds: list[list[str]]) -> float:
    t0 = time.monotonic()
    for cmd in cmds:
        subprocess.run(cmd, check=True, capture_output=True)
    return time.monotonic() - t0


def manifest_digest(host: str, repo: str) -> str:
    r = requests.get(f"http://{host}/v2/{repo}/manifests/v1", headers={"Accept": MANIFEST_MT})
    r.raise_for_status()
    return sha(r.content)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=30)
    ap.add_argument("--mb", type=int, default=600)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kv-bench-mirror-"))
    regs: list[Reg] = []
    try:
        up = Reg(root, "upstream")
        regs.append(up)
        t0 = time.monotonic()
        refs = seed(up.host, args.images, args.mb)
        print(f"seeded {len(refs)} images in {time.monotonic() - t0:.1f}s")
        bundle = root / "bundle.tar"

        create_code = (
            "import json\nfrom pathlib import Path\n"
            "from kvinstall.mirror import create_bundle, RegistryOptions\n"
            f"r = create_bundle({refs!r}, Path({str(bundle)!r}), workers={args.workers},"
            f" registries={{{up.host!r}: RegistryOptions(insecure=True)}})\n"
            "print(json.dumps({'total': r.bytes_total, 'down': r.bytes_downloaded}))\n"
        )
        t_create, rss_create, out = run_child(create_code)
        created = json.loads(out.strip().splitlines()[-1])
        total = created["total"]
        print(f"kvinstall create: {t_create:.2f}s, {total / 2**20:.0f} MiB of blobs, "
              f"peak RSS {rss_create / 2**20:.0f} MiB")

        layout = root / "layout"
        with tarfile.open(bundle) as tar:
            tar.extractall(layout, filter="data")
        nocheck = ["--dest-tls-verify=false"]
        times: dict[str, list[float]] = {"push": [], "skl": [], "sk": [], "cr": []}
        rss_push = 0
        again = {"sent": -1}
        # Interleaved rounds, each into fresh registries: the machine is shared, so the best of
        # each tool's rounds is compared.
        for rnd in range(args.rounds):
            mk = Reg(root, f"mirror-kv-{rnd}")
            regs.append(mk)
            push_code = (
                "import json\nfrom kvinstall.mirror import push_bundle\n"
                f"r = push_bundle({str(bundle)!r}, {mk.host!r}, insecure=True, workers={args.workers})\n"
                "print(json.dumps({'sent': r.bytes_sent, 'up': r.blobs_uploaded,"
                " 'mounted': r.blobs_mounted}))\n"
            )
            t_push, rss, out = run_child(push_code)
            rss_push = max(rss_push, rss)
            times["push"].append(t_push)
            pushed = json.loads(out.strip().splitlines()[-1])
            print(f"[{rnd}] kvinstall push: {t_push:.2f}s, sent {pushed['sent'] / 2**20:.0f} MiB, "
                  f"{pushed['up']} uploads, {pushed['mounted']} mounts, peak RSS {rss / 2**20:.0f} MiB")
            if rnd == 0:
                t_again, _, out = run_child(push_code)
                again = json.loads(out.strip().splitlines()[-1])
                print(f"[{rnd}] kvinstall re-push: {t_again:.2f}s, sent {again['sent']} bytes "
                      f"({100 * again['sent'] / total:.3f}% of {total} bytes)")

            msl = Reg(root, f"mirror-skopeo-layout-{rnd}")
            regs.append(msl)
            t = timed([
                [SKOPEO, "copy", "-q", "--all", "--preserve-digests", *nocheck,
                 f"oci:{layout}:{ref.split('/', 1)[1]}", f"docker://{msl.host}/{ref.split('/', 1)[1]}"]
                for ref in refs
            ])
            times["skl"].append(t)
            print(f"[{rnd}] skopeo copy (layout -> registry): {t:.2f}s")

            ms = Reg(root, f"mirror-skopeo-{rnd}")
            regs.append(ms)
            t = timed([
                [SKOPEO, "copy", "-q", "--all", "--preserve-digests", "--src-tls-verify=false", *nocheck,
                 f"docker://{ref}", f"docker://{ms.host}/{ref.split('/', 1)[1]}"]
                for ref in refs
            ])
            times["sk"].append(t)
            print(f"[{rnd}] skopeo copy (registry -> registry): {t:.2f}s")

            mc = Reg(root, f"mirror-crane-{rnd}")
            regs.append(mc)
            t = timed([
                [str(CRANE), "copy", "--insecure", ref, f"{mc.host}/{ref.split('/', 1)[1]}"] for ref in refs
            ])
            times["cr"].append(t)
            print(f"[{rnd}] crane copy (registry -> registry): {t:.2f}s")

            # same digests everywhere
            for ref in refs:
                repo = ref.split("/", 1)[1].rsplit(":", 1)[0]
                want = manifest_digest(up.host, repo)
                for reg in (mk, msl, ms, mc):
                    assert manifest_digest(reg.host, repo) == want, (reg.host, repo)
            for reg in (mk, msl, ms, mc):
                reg.stop()
                regs.remove(reg)
                shutil.rmtree(root / reg.name, ignore_errors=True)
        t_push, t_skl, t_sk, t_cr = (min(times[k]) for k in ("push", "skl", "sk", "cr"))
        print(f"load average at the end: {os.getloadavg()}")
        print("\nresults (same machine, same registry software, one run):")
        print(f"  push speed-up vs skopeo (layout):   {t_skl / t_push:.2f}x   (target >= 1.5x)")
        print(f"  push speed-up vs skopeo (registry): {t_sk / t_push:.2f}x")
        print(f"  push time / crane copy time:        {t_push / t_cr:.2f}    (target <= 1.2)")
        print(f"  re-run bytes sent:                  {100 * again['sent'] / total:.3f}%  (target <= 1%)")
        print(f"  peak RSS create / push:             {rss_create / 2**20:.0f} / "
              f"{rss_push / 2**20:.0f} MiB"
              "  (target < 200 MiB)")
        mib = 2**20
        print(f"  throughput push: {total / t_push / mib:.0f} MiB/s; "
              f"create: {total / t_create / mib:.0f} MiB/s")
        return 0
    finally:
        for r in regs:
            r.stop()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
