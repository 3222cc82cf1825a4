"""Benchmark: kvinstall's apply engine against `kubectl apply --server-side` / `kubectl diff --server-side`.

One real etcd + kube-apiserver (started here with the test substrate), >= 500 objects (ConfigMaps,
Deployments, Services, a CRD and its custom resources). Each tool works on its own copy of the same
objects (own namespace, own CRD), so neither sees the other's writes. Writes are counted by the
apiserver's audit log. One run; prints times, ratios, write counts and peak memory.

    python bench/apply.py [--objects 520]
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from kvinstall.kube import ApplySetRef, Kube, execute, plan_apply
from substrate.crds import crd as substrate_crd
from substrate.kube_api import KubeApi


def crd(tag: str) -> dict[str, Any]:
    return substrate_crd("bench.kvinstall.io", f"Gadget{tag.upper()}", f"gadgets{tag}")


def objects(tag: str, n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(CRD + namespace, the rest): n objects in all besides the CRD and the namespace."""
    ns = f"bench-{tag}"
    head = [crd(tag), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}]
    rest: list[dict[str, Any]] = []
    per = n // 4
    for i in range(per):
        rest.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"cm-{i}", "namespace": ns},
                "data": {"index": str(i), "config.yaml": f"key: value-{i}\nlist: [1, 2, 3]\n" * 5},
            }
        )
    for i in range(per):
        app = f"app-{i}"
        rest.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": app, "namespace": ns, "labels": {"app": app}},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": app}},
                    "template": {
                        "metadata": {"labels": {"app": app}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "main",
                                    "image": f"registry.example/app:{i}",
                                    "args": ["--v", "2"],
                                    "ports": [{"containerPort": 8080, "name": "http"}],
                                    "env": [{"name": "INDEX", "value": str(i)}],
                                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                                }
                            ]
                        },
                    },
                },
            }
        )
        rest.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": app, "namespace": ns},
                # headless: the test apiserver has a /24 service range, too small for both copies
                "spec": {
                    "clusterIP": "None",
                    "selector": {"app": app},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
                },
            }
        )
    for i in range(n - 3 * per):
        rest.append(
            {
                "apiVersion": "bench.kvinstall.io/v1",
                "kind": f"Gadget{tag.upper()}",
                "metadata": {"name": f"g-{i}", "namespace": ns},
                "spec": {"size": i, "tags": ["a", "b"], "nested": {"enabled": True}},
            }
        )
    return head, rest


def write_yaml(path: Path, objs: list[dict[str, Any]]) -> None:
    path.write_text("".join("---\n" + json.dumps(o) + "\n" for o in objs))


def timed(fn: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=520)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kvinstall-bench-apply-"))
    api = KubeApi(root).start()
    kubectl = str(api.kubectl())
    env = {**os.environ, "KUBECONFIG": str(api.kubeconfig), "KUBECACHEDIR": str(root / "kubecache")}

    def kc(*argv: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([kubectl, *argv], env=env, capture_output=True, text=True, timeout=600)
        if p.returncode not in ok:
            raise SystemExit(f"kubectl {' '.join(argv)} failed ({p.returncode}): {p.stderr[-2000:]}")
        return p

    try:
        kv_head, kv_rest = objects("kv", args.objects)
        kc_head, kc_rest = objects("kc", args.objects)
        kv_all = kv_head + kv_rest
        head_file, rest_file = root / "kc-head.yaml", root / "kc-rest.yaml"
        write_yaml(head_file, kc_head)
        write_yaml(rest_file, kc_rest)
        ref = ApplySetRef("bench")
        total = len(kv_all)
        print(f"objects per tool: {total} ({args.objects} + CRD + namespace)")

        def kv_apply() -> Any:
            kube = Kube.from_kubeconfig(api.kubeconfig)  # fresh client: discovery is part of the cost
            plan = plan_apply(kube, ref, kv_all)
            result = execute(kube, plan)
            kube.close()
            return plan, result

        def kc_apply() -> None:
            # kubectl cannot map custom resources before their CRD exists: CRD first, wait, then the rest.
            kc("apply", "--server-side", "-f", str(head_file))
            kc(
                "wait",
                "--for=condition=Established",
                f"crd/{kc_head[0]['metadata']['name']}",
                "--timeout=60s",
            )
            kc("apply", "--server-side", "-f", str(rest_file))

        rows = []
        # 1. first apply
        mark = api.audit_mark()
        t_kv, (plan, _) = timed(kv_apply)
        w_kv = api.write_count(mark)
        mark = api.audit_mark()
        t_kc, _ = timed(kc_apply)
        w_kc = api.write_count(mark)
        rows.append(("first apply", t_kv, t_kc, w_kv, w_kc))
        assert all(i.action == "create" for i in plan.items)

        # 2. no-op re-apply
        mark = api.audit_mark()
        t_kv, (plan, result) = timed(kv_apply)
        w_kv = api.write_count(mark)
        mark = api.audit_mark()
        t_kc, _ = timed(
            lambda: (
                kc("apply", "--server-side", "-f", str(head_file)),
                kc("apply", "--server-side", "-f", str(rest_file)),
            )
        )
        w_kc = api.write_count(mark)
        rows.append(("no-op re-apply", t_kv, t_kc, w_kv, w_kc))
        assert not plan.has_changes and result.writes == 0, plan.changed

        # 3. drift detection: the same 12 edits by another manager in each copy
        for tag in ("kv", "kc"):
            ns = f"bench-{tag}"
            for i in range(4):
                api.request(
                    "PATCH",
                    f"/api/v1/namespaces/{ns}/configmaps/cm-{i}?fieldManager=kubectl-edit",
                    data=json.dumps({"data": {"index": "drifted"}}),
                    headers={"Content-Type": "application/merge-patch+json"},
                ).raise_for_status()
                api.request(
                    "PATCH",
                    f"/apis/apps/v1/namespaces/{ns}/deployments/app-{i}/scale",
                    data=json.dumps({"spec": {"replicas": 7}}),
                    headers={"Content-Type": "application/merge-patch+json"},
                ).raise_for_status()
                api.request(
                    "PATCH",
                    f"/apis/bench.kvinstall.io/v1/namespaces/{ns}/gadgets{tag}/g-{i}",
                    data=json.dumps({"spec": {"size": -1}}),
                    headers={"Content-Type": "application/merge-patch+json"},
                ).raise_for_status()

        def kv_plan() -> Any:
            kube = Kube.from_kubeconfig(api.kubeconfig)
            plan = plan_apply(kube, ref, kv_all)
            kube.close()
            return plan

        mark = api.audit_mark()
        t_kv, plan = timed(kv_plan)
        w_kv = api.write_count(mark)
        mark = api.audit_mark()
        t_kc, diff = timed(
            lambda: kc(
                "diff",
                "--server-side",
                "--force-conflicts",
                "-f",
                str(head_file),
                "-f",
                str(rest_file),
                ok=(0, 1),
            )
        )
        w_kc = api.write_count(mark)
        rows.append(("drift detection", t_kv, t_kc, w_kv, w_kc))
        drifted = sorted(i.ref for i in plan.changed)
        assert len(drifted) == 12, drifted
        kc_drifted = diff.stdout.count("\n+++ ")
        print(f"drifted objects found: kvinstall {len(drifted)}, kubectl diff {kc_drifted} files")

        print(
            f"\n{'step':<18}{'kvinstall s':>12}{'kubectl s':>11}{'ratio':>8}"
            f"{'kv writes':>11}{'kc writes':>11}"
        )
        for name, a, b, wa, wb in rows:
            print(f"{name:<18}{a:>12.2f}{b:>11.2f}{a / b:>8.2f}{wa:>11}{wb:>11}")
        print("(writes from the audit log; kvinstall drift-detection writes are its dry-run applies)")
        me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(
            f"peak RSS: kvinstall process {me:.0f} MiB (includes this harness); "
            f"largest kubectl run {kids:.0f} MiB"
        )
    finally:
        api.stop()


if __name__ == "__main__":
    main()
