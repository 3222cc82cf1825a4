"""Benchmark: `kvinstall plan` and `kvinstall render -o DIR` of the HA example on the real upstream
artifacts (../shared/upstream: the Kube-OVN and Kyverno charts, the KubeVirt and CDI operator
manifests), against `helm template` of the same charts with the same values as the reference.

The artifact cache is filled first (not timed), so both commands read the real charts and manifests
from it, as they do after a first `apply` or `mirror create`; they run in an empty network namespace
(`unshare -n`: the example's hosts do not exist). Each command runs `--runs` times; the best run
counts (the machine may be shared). Prints wall and CPU seconds and the ratios to helm's time.

    python bench/render.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from kvinstall.catalog import load_catalog
from kvinstall.components.artifacts import ArtifactCache
from kvinstall.components.kubeovn import CHART_ARTIFACT as KUBEOVN_CHART
from kvinstall.components.kubeovn import chart_values as kubeovn_values
from kvinstall.components.kyverno import CHART_ARTIFACT as KYVERNO_CHART
from kvinstall.components.kyverno import chart_values as kyverno_values
from kvinstall.config.loader import load_file
from kvinstall.render.helm import find_helm
from substrate.https_files import serve_https
from substrate.pki import CA
from upstream_pack import pinned_catalog, pinned_catalog_data, site_files

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "ha-gpu.yaml"


def run(argv: list[str], env: dict[str, str], *, netns: bool = False) -> tuple[float, float]:
    """(wall, CPU) seconds of one command; the CPU time is its own and its children's."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    cmd = ["unshare", "-n", *argv] if netns else argv
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 2):  # plan --detailed-exitcode is not used: 0 expected
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kvinstall-bench-render-"))
    cache_dir = work / "cache"
    ca = CA(work / "ca")
    config = load_file(EXAMPLE).config

    # Fill the cache from the real artifacts, served over HTTPS like their upstream (not timed).
    with serve_https(site_files(), ca) as url:
        catalog = pinned_catalog(url)
        cache = ArtifactCache(cache_dir, verify=str(ca.cert_path), retries=1)
        for name in ("kubeovn", "kubevirt", "cdi", "kyverno"):
            version = {"kubeovn": config.components.kube_ovn.version, "kubevirt": config.components.kubevirt.version,
                       "cdi": config.components.cdi.version, "kyverno": config.components.kyverno.version}[name]  # fmt: skip
            for artifact in catalog.component(name, version).artifacts:
                assert cache.get(artifact) is not None, artifact.describe()
        catalog_file = work / "catalog.yaml"
        catalog_file.write_text(json.dumps(pinned_catalog_data(url)))

    helm = find_helm()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(work / "home"),
        "KVINSTALL_CATALOG": str(catalog_file),
        "KVINSTALL_CACHE_DIR": str(cache_dir),
        "KVINSTALL_HELM": helm,
        "NO_COLOR": "1",
    }
    # The example takes its OIDC client secret from the environment; any value renders.
    env["CORP_SSO_CLIENT_SECRET"] = "bench-secret"
    kv = [sys.executable, "-m", "kvinstall"]
    out = work / "out"

    # The reference: helm template of the same charts, with the values kvinstall passes them.
    shipped = load_catalog()
    charts: list[tuple[str, Path, Path, str]] = []
    for name, artifact_name in (("kubeovn", KUBEOVN_CHART), ("kyverno", KYVERNO_CHART)):
        version = config.components.kube_ovn.version if name == "kubeovn" else config.components.kyverno.version
        release = shipped.component(name, version)
        art = next(a for a in catalog.component(name, version).artifacts if a.name == artifact_name)
        chart = work / f"{name}.tgz"
        chart.write_bytes(cache.get(art) or b"")
        values = work / f"{name}-values.json"
        values.write_text(json.dumps(kubeovn_values(config, release) if name == "kubeovn" else kyverno_values(config)))
        charts.append((name, chart, values, release.namespace or name))

    def helm_all() -> tuple[float, float]:
        wall = cpu = 0.0
        for name, chart, values, ns in charts:
            w, c = run([helm, "template", name, str(chart), "--namespace", ns, "--values", str(values),
                        "--include-crds", "--no-hooks", "--skip-tests", "--kube-version",
                        config.kubernetes.version], {**env, "HELM_CACHE_HOME": str(work / "helm")})  # fmt: skip
            wall, cpu = wall + w, cpu + c
        return wall, cpu

    plan_args = [*kv, "plan", "-f", str(EXAMPLE), "--state-dir", str(work / "state")]
    render_args = [*kv, "render", "-f", str(EXAMPLE), "-o", str(out), "--state-dir", str(work / "state")]
    # Interleaved, so a change in the machine's load falls on all three alike; the best run counts.
    runs: list[tuple[tuple[float, float], ...]] = []
    for _ in range(args.runs):
        runs.append((helm_all(), run(plan_args, env, netns=True), run(render_args, env, netns=True)))
    helm_t, plan_t, render_t = (
        (min(r[i][0] for r in runs), min(r[i][1] for r in runs)) for i in range(3)
    )
    files = sum(1 for p in out.rglob("*.yaml"))
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())

    print(f"HA example ({EXAMPLE.name}), best of {args.runs}; render wrote {files} files, {size / 1e6:.1f} MB")
    print(f"\n{'command':<34}{'wall s':>8}{'cpu s':>8}{'wall / helm':>13}{'cpu / helm':>12}")
    print(f"{'helm template kube-ovn + kyverno':<34}{helm_t[0]:>8.2f}{helm_t[1]:>8.2f}{1:>13.2f}{1:>12.2f}")
    for name, (w, c) in (("kvinstall plan", plan_t), ("kvinstall render -o DIR", render_t)):
        print(f"{name:<34}{w:>8.2f}{c:>8.2f}{w / helm_t[0]:>13.2f}{c / helm_t[1]:>12.2f}")
    total = (plan_t[0] + render_t[0], plan_t[1] + render_t[1])
    print(f"{'kvinstall plan + render':<34}{total[0]:>8.2f}{total[1]:>8.2f}"
          f"{total[0] / (2 * helm_t[0]):>13.2f}{total[1] / (2 * helm_t[1]):>12.2f}  (vs helm twice)")  # fmt: skip
    print("target: each kvinstall command within 2x of helm template of the same charts")


if __name__ == "__main__":
    main()
