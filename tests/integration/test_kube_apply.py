"""The apply engine against a real kube-apiserver + etcd (fixture kube_api): create, update, no-op with
zero writes (counted by the apiserver's audit log), prune, drift repair, apiserver restart, 422."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import threading
import uuid
from typing import Any

import pytest

from kvinstall.errors import ClusterError
from kvinstall.kube import ApplyFailed, ApplySetRef, Kube, execute, plan_apply
from kvinstall.kube.inventory import GROUP_KINDS_ANNOTATION, ID_LABEL, PART_OF_LABEL
from substrate.crds import crd as make_crd

pytestmark = pytest.mark.integration


@pytest.fixture
def kube(kube_api: Any) -> Kube:
    k = Kube.from_kubeconfig(kube_api.kubeconfig)
    yield k
    k.close()


def uid() -> str:
    return uuid.uuid4().hex[:8]


def crd(suffix: str) -> dict[str, Any]:
    """A tiny CRD of our own (status subresource), one per test so tests stay independent."""
    spec = {"type": "object", "properties": {"size": {"type": "integer"}, "color": {"type": "string"},
                                             "tags": {"type": "array", "items": {"type": "string"}}}}  # fmt: skip
    return make_crd(
        "example.kvinstall.io", f"Widget{suffix.capitalize()}", f"widgets{suffix}", spec_schema=spec
    )


def widget(suffix: str, ns: str, name: str, size: int, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.kvinstall.io/v1",
        "kind": f"Widget{suffix.capitalize()}",
        "metadata": {"name": name, "namespace": ns, **meta},
        "spec": {"size": size, "color": "blue", "tags": ["a", "b"]},
    }


def cm(ns: str, name: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "demo"}},
        "data": data,
    }


def deployment(ns: str, name: str, replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "registry.example/web:1.0",
                            "args": ["--port", "8080"],
                            "ports": [{"containerPort": 8080}],
                            "resources": {"requests": {"cpu": "0.25", "memory": "64Mi"}},
                            "env": [{"name": "MODE", "value": "prod"}],
                        }
                    ]
                },
            },
        },
    }


def service(ns: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }


def secret(ns: str, name: str, password: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "type": "Opaque",
        "stringData": {"password": password},
    }


def live_rvs(kube: Kube, objs: list[dict[str, Any]]) -> dict[str, str]:
    out = {}
    for o in objs:
        m = o["metadata"]
        live = kube.get(o["apiVersion"], o["kind"], m["name"], m.get("namespace"))
        assert live is not None, m["name"]
        out[f"{o['kind']}/{m['name']}"] = live["metadata"]["resourceVersion"]
    return out


def converge(kube: Kube, ref: ApplySetRef, objs: list[dict[str, Any]], **kw: Any) -> None:
    execute(kube, plan_apply(kube, ref, objs, **kw))


def assert_noop(kube: Kube, kube_api: Any, ref: ApplySetRef, objs: list[dict[str, Any]]) -> None:
    """Plan says unchanged for everything; executing it sends no write request at all (dry-runs included),
    and no object's resourceVersion moves."""
    before = live_rvs(kube, objs)
    mark = kube_api.audit_mark()
    plan = plan_apply(kube, ref, objs)
    assert [(i.ref, i.action) for i in plan.items if i.action != "unchanged"] == []
    assert plan.prune == []
    result = execute(kube, plan)
    assert result.writes == 0
    assert kube_api.writes_since(mark) == []
    assert live_rvs(kube, objs) == before


def test_create_update_noop_with_zero_writes(kube: Kube, kube_api: Any) -> None:
    s = uid()
    ns = f"app-{s}"
    ref = ApplySetRef(f"t-{s}")
    objs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        crd(s),
        cm(ns, "settings", color="red"),
        deployment(ns, "web"),
        service(ns, "web"),
        secret(ns, "creds", "hunter2"),
        widget(s, ns, "w1", 3),
    ]
    plan = plan_apply(kube, ref, objs)
    assert {i.action for i in plan.items} == {"create"}
    events: list[dict[str, Any]] = []
    result = execute(kube, plan, on_event=events.append)
    assert len(result.created) == len(objs)
    # Order: CRDs, namespaces, the rest, custom resources last.
    waves = [e["phase"] for e in events if e["event"] == "wave"]
    assert waves == ["crd", "namespace", "object", "custom"]
    created = [e["object"] for e in events if e["event"] == "create"]
    assert created.index(f"Widget{s.capitalize()}.example.kvinstall.io/{ns}/w1") == len(created) - 1

    parent = kube.get("v1", "Secret", ref.name, ref.namespace)
    assert parent is not None
    assert parent["metadata"]["labels"][ID_LABEL] == ref.id
    gks = set(parent["metadata"]["annotations"][GROUP_KINDS_ANNOTATION].split(","))
    assert gks == {
        "Namespace",
        "ConfigMap",
        "Deployment.apps",
        "Service",
        "Secret",
        "CustomResourceDefinition.apiextensions.k8s.io",
        f"Widget{s.capitalize()}.example.kvinstall.io",
    }
    live_cm = kube.get("v1", "ConfigMap", "settings", ns)
    assert live_cm is not None and live_cm["metadata"]["labels"][PART_OF_LABEL] == ref.id

    assert_noop(kube, kube_api, ref, objs)

    # Update: one field of one object; only that object is written.
    objs2 = copy.deepcopy(objs)
    objs2[2]["data"]["color"] = "green"
    objs2[5]["stringData"]["password"] = "correct-horse"
    plan = plan_apply(kube, ref, objs2)
    changed = {i.ref: i for i in plan.items if i.action != "unchanged"}
    assert set(changed) == {f"ConfigMap/{ns}/settings", f"Secret/{ns}/creds"}
    cm_changes = [c.to_dict() for c in changed[f"ConfigMap/{ns}/settings"].changes]
    assert {"path": "data.color", "op": "change", "before": "red", "after": "green"} in cm_changes
    plan_json = json.dumps(plan.to_dict())
    assert "correct-horse" not in plan_json and "hunter2" not in plan_json
    assert "Y29ycmVjdC1ob3JzZQ" not in plan_json  # nor their base64
    assert "data.password" in plan_json and "(redacted)" in plan_json
    mark = kube_api.audit_mark()
    result = execute(kube, plan)
    writes = kube_api.writes_since(mark)
    assert sorted(w.name for w in writes) == ["creds", "settings"]
    live_cm = kube.get("v1", "ConfigMap", "settings", ns)
    assert live_cm is not None and live_cm["data"]["color"] == "green"
    assert_noop(kube, kube_api, ref, objs2)


def test_prune_members_that_left_the_set(kube: Kube, kube_api: Any) -> None:
    s = uid()
    ns, extra_ns = f"app-{s}", f"extra-{s}"
    ref = ApplySetRef(f"t-{s}")
    base = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, cm(ns, "keep", a="1")]
    leaving = [
        cm(ns, "old", a="2"),
        deployment(ns, "old"),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": extra_ns}},
        cm(extra_ns, "x", a="3"),
    ]
    converge(kube, ref, base + leaving)
    parent = kube.get("v1", "Secret", ref.name, ref.namespace)
    assert parent is not None
    assert extra_ns in parent["metadata"]["annotations"]["applyset.kubernetes.io/additional-namespaces"]

    plan = plan_apply(kube, ref, base)
    assert sorted(p.ref for p in plan.prune) == sorted(
        [f"ConfigMap/{ns}/old", f"Deployment.apps/{ns}/old", f"ConfigMap/{extra_ns}/x"]
    )
    assert [p.ref for p in plan.prune_blocked] == [f"Namespace/{extra_ns}"]  # never without the flag
    result = execute(kube, plan)
    assert sorted(result.pruned) == sorted(p.ref for p in plan.prune)
    assert kube.get("v1", "ConfigMap", "old", ns) is None
    assert kube.get("apps/v1", "Deployment", "old", ns) is None
    assert kube.get("v1", "ConfigMap", "keep", ns) is not None
    assert kube.get("v1", "Namespace", extra_ns) is not None
    parent = kube.get("v1", "Secret", ref.name, ref.namespace)
    assert parent is not None
    assert "Deployment.apps" not in parent["metadata"]["annotations"][GROUP_KINDS_ANNOTATION]

    # With the explicit flag, the namespace goes too (it stays Terminating: no controller-manager here).
    plan = plan_apply(kube, ref, base, prune_protected=True)
    assert [p.ref for p in plan.prune] == [f"Namespace/{extra_ns}"]
    execute(kube, plan)
    gone = kube.get("v1", "Namespace", extra_ns)
    assert gone is None or gone["metadata"].get("deletionTimestamp")
    # Asked again, a member already being deleted is not deleted again (no write for nothing).
    assert plan_apply(kube, ref, base, prune_protected=True).prune == []

    # The prune hook runs with the items and decides the order; delete_rest handles what is left.
    converge(kube, ref, [*base, cm(ns, "first", a="1"), cm(ns, "second", a="2")])
    calls: list[list[str]] = []

    def hook(k: Kube, items: list[Any], delete_rest: Any) -> None:
        calls.append(sorted(p.ref for p in items))
        k.delete("v1", "ConfigMap", "second", ns)
        k.wait_deleted("v1", "ConfigMap", "second", ns, timeout=30)
        delete_rest()

    execute(kube, plan_apply(kube, ref, base), prune_hook=hook)
    assert calls == [[f"ConfigMap/{ns}/first", f"ConfigMap/{ns}/second"]]
    assert kube.get("v1", "ConfigMap", "first", ns) is None
    assert_noop(kube, kube_api, ref, base)


def _patch(kube_api: Any, path: str, body: dict[str, Any], manager: str, ctype: str) -> None:
    r = kube_api.request(
        "PATCH", f"{path}?fieldManager={manager}", data=json.dumps(body), headers={"Content-Type": ctype}
    )
    assert r.status_code == 200, r.text


def test_every_drift_is_found_and_repaired_in_one_run(kube: Kube, kube_api: Any) -> None:
    s = uid()
    ns = f"app-{s}"
    ref = ApplySetRef(f"t-{s}")
    objs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        crd(s),
        cm(ns, "deleted", a="1"),
        cm(ns, "edited", color="red"),
        cm(ns, "unlabelled", a="1"),
        deployment(ns, "web", replicas=2),
        service(ns, "web"),
        widget(s, ns, "w1", 3),
    ]
    converge(kube, ref, objs)
    assert_noop(kube, kube_api, ref, objs)
    wplural = f"widgets{s}"

    # 1. object deleted
    assert kube_api.request("DELETE", f"/api/v1/namespaces/{ns}/configmaps/deleted").status_code == 200
    # 2. field edited by another manager, kubectl-edit style (an Update of the whole object)
    live = kube_api.request("GET", f"/api/v1/namespaces/{ns}/configmaps/edited").json()
    live["data"]["color"] = "purple"
    r = kube_api.request(
        "PUT", f"/api/v1/namespaces/{ns}/configmaps/edited?fieldManager=kubectl-edit", json=live
    )
    assert r.status_code == 200, r.text
    # 3. label removed (both the app label and the ApplySet membership label)
    _patch(
        kube_api,
        f"/api/v1/namespaces/{ns}/configmaps/unlabelled",
        {"metadata": {"labels": {"app": None, PART_OF_LABEL: None}}},
        "kubectl-label",
        "application/merge-patch+json",
    )
    # 4. replicas scaled through the scale subresource (kubectl scale)
    _patch(
        kube_api,
        f"/apis/apps/v1/namespaces/{ns}/deployments/web/scale",
        {"spec": {"replicas": 5}},
        "kubectl-scale",
        "application/merge-patch+json",
    )
    # 5. custom resource spec changed by someone else
    _patch(
        kube_api,
        f"/apis/example.kvinstall.io/v1/namespaces/{ns}/{wplural}/w1",
        {"spec": {"size": 9, "tags": ["z"]}},
        "someone",
        "application/merge-patch+json",
    )
    # 6. a container image changed in place (a nested keyed list)
    _patch(
        kube_api,
        f"/apis/apps/v1/namespaces/{ns}/deployments/web",
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "evil:latest"}]}}}},
        "kubectl-patch",
        "application/strategic-merge-patch+json",
    )

    plan = plan_apply(kube, ref, objs)
    by_ref = {i.ref: i for i in plan.items}
    actions = {r: i.action for r, i in by_ref.items() if i.action != "unchanged"}
    wref = f"Widget{s.capitalize()}.example.kvinstall.io/{ns}/w1"
    assert actions == {
        f"ConfigMap/{ns}/deleted": "create",
        f"ConfigMap/{ns}/edited": "update",
        f"ConfigMap/{ns}/unlabelled": "update",
        f"Deployment.apps/{ns}/web": "update",
        wref: "update",
    }

    def paths(r: str) -> set[str]:
        return {c.path for c in by_ref[r].changes}

    assert "data.color" in paths(f"ConfigMap/{ns}/edited")
    assert {"metadata.labels.app", f"metadata.labels.{PART_OF_LABEL}"} <= paths(f"ConfigMap/{ns}/unlabelled")
    assert "spec.replicas" in paths(f"Deployment.apps/{ns}/web")
    assert "spec.template.spec.containers[name=web].image" in paths(f"Deployment.apps/{ns}/web")
    assert {"spec.size", "spec.tags"} <= paths(wref)
    assert plan.prune == []

    execute(kube, plan)
    dep = kube.get("apps/v1", "Deployment", "web", ns)
    assert dep is not None and dep["spec"]["replicas"] == 2
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/web:1.0"
    w = kube.get("example.kvinstall.io/v1", f"Widget{s.capitalize()}", "w1", ns)
    assert w is not None and w["spec"] == {"size": 3, "color": "blue", "tags": ["a", "b"]}
    edited = kube.get("v1", "ConfigMap", "edited", ns)
    assert edited is not None and edited["data"]["color"] == "red"
    assert_noop(kube, kube_api, ref, objs)


def test_operator_custom_resource_owns_only_spec(kube: Kube, kube_api: Any, operator_sim: Any) -> None:
    s = uid()
    ns = f"app-{s}"
    ref = ApplySetRef(f"t-{s}")
    w = widget(s, ns, "w1", 1)
    w["status"] = {"phase": "ShouldNotBeSent"}
    w["metadata"]["annotations"] = {"kvinstall.io/own": "spec"}
    w["metadata"]["finalizers"] = ["example.kvinstall.io/ignored"]  # outside spec: not ours to own
    objs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, crd(s), w]
    plan = plan_apply(kube, ref, objs)
    item = next(i for i in plan.items if i.obj["kind"].startswith("Widget"))
    assert item.spec_only and set(item.obj) == {"apiVersion", "kind", "metadata", "spec"}
    assert "finalizers" not in item.obj["metadata"]
    execute(kube, plan)
    # The operator adds status and its own spec default; kvinstall's next run leaves both alone.
    path = f"/apis/example.kvinstall.io/v1/namespaces/{ns}/widgets{s}/w1"
    operator_sim.patch_status(path, {"status": {"phase": "Deployed"}})
    _patch(
        kube_api, path, {"spec": {"extra": "operator-default"}}, "operator", "application/merge-patch+json"
    )
    assert_noop(kube, kube_api, ref, objs)


def test_apiserver_restart_in_the_middle_of_an_apply(kube: Kube, kube_api: Any) -> None:
    s = uid()
    ns = f"app-{s}"
    ref = ApplySetRef(f"t-{s}")
    objs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, crd(s)]
    objs += [cm(ns, f"cm-{n}", v=str(n)) for n in range(150)]
    objs += [widget(s, ns, f"w-{n}", n) for n in range(30)]
    plan = plan_apply(kube, ref, objs)
    restarter: list[threading.Thread] = []
    lock = threading.Lock()

    def on_event(e: dict[str, Any]) -> None:
        # At the first ConfigMap written, stop the apiserver (synchronously, so the remaining ~149
        # ConfigMaps and the custom resources meet the outage) and start it again in the background.
        with lock:
            if e["event"] == "create" and e["object"].startswith("ConfigMap/") and not restarter:
                kube_api.stop_apiserver()
                restarter.append(threading.Thread(target=kube_api.start_apiserver))
                restarter[0].start()

    result = execute(kube, plan, on_event=on_event)
    restarter[0].join()
    assert len(result.created) == len(objs)
    assert kube.retries > 0  # the outage was met and ridden out
    assert_noop(kube, kube_api, ref, objs)


def test_invalid_object_fails_alone_and_rerun_converges(kube: Kube, kube_api: Any) -> None:
    s = uid()
    ns = f"app-{s}"
    ref = ApplySetRef(f"t-{s}")
    good = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        cm(ns, "a", x="1"),
        cm(ns, "b", x="2"),
        service(ns, "web"),
    ]
    bad = service(ns, "broken")
    bad["spec"]["ports"][0]["port"] = 70000  # the apiserver answers 422 Invalid
    plan = plan_apply(kube, ref, [*good, bad])
    with pytest.raises(ApplyFailed) as info:
        execute(kube, plan)
    err = info.value
    assert list(err.failures) == [f"Service/{ns}/broken"]
    assert "422" in err.failures[f"Service/{ns}/broken"] and "70000" in str(err)
    assert err.exit_code == 8
    for o in good:
        assert kube.get(o["apiVersion"], o["kind"], o["metadata"]["name"], o["metadata"].get("namespace"))
    fixed = service(ns, "broken")
    plan = plan_apply(kube, ref, [*good, fixed])
    assert [(i.ref, i.action) for i in plan.items if i.action != "unchanged"] == [
        (f"Service/{ns}/broken", "create")
    ]
    execute(kube, plan)
    assert_noop(kube, kube_api, ref, [*good, fixed])


def test_object_owned_by_another_tool_is_not_forced(kube: Kube, kube_api: Any) -> None:
    s = uid()
    ns = f"app-{s}"
    ref = ApplySetRef(f"t-{s}")
    assert kube_api.request("POST", "/api/v1/namespaces", json={"metadata": {"name": ns}}).status_code == 201
    other = cm(ns, "theirs", color="red")
    r = kube_api.request(
        "PATCH",
        f"/api/v1/namespaces/{ns}/configmaps/theirs?fieldManager=helm&force=true",
        data=json.dumps(other),
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    assert r.status_code == 201, r.text
    plan = plan_apply(kube, ref, [cm(ns, "theirs", color="blue")])
    assert plan.items[0].action == "update" and not plan.items[0].force
    with pytest.raises(ClusterError) as info:
        execute(kube, plan)
    assert (
        "409" in str(info.value) and "helm" in str(info.value) and f"ConfigMap/{ns}/theirs" in str(info.value)
    )


def test_cluster_protocol_for_removal_hooks(kube: Kube, kube_namespace: str) -> None:
    ns = kube_namespace
    converge(kube, ApplySetRef(f"t-{uid()}"), [cm(ns, "one", a="1"), cm(ns, "two", a="2")])
    assert sorted(
        o["metadata"]["name"]
        for o in kube.list("v1", "ConfigMap", ns)
        if o["metadata"]["name"] in ("one", "two")
    ) == ["one", "two"]
    kube.patch_merge("v1", "ConfigMap", "one", {"data": {"a": "changed"}}, ns)
    live = kube.get("v1", "ConfigMap", "one", ns)
    assert live is not None and live["data"]["a"] == "changed"
    kube.delete("v1", "ConfigMap", "one", ns)
    kube.wait_deleted("v1", "ConfigMap", "one", ns, timeout=30)
    kube.delete("v1", "ConfigMap", "one", ns)  # already gone: fine
    assert kube.get("v1", "ConfigMap", "one", ns) is None


def test_applyset_id_matches_kubectl(kube_api: Any, kube: Kube, tmp_path: Any) -> None:
    """kubectl's own ApplySet implementation labels the parent with the same id for the same parent."""
    s = uid()
    ns = f"app-{s}"
    assert kube_api.request("POST", "/api/v1/namespaces", json={"metadata": {"name": ns}}).status_code == 201
    f = tmp_path / "cm.yaml"
    f.write_text(json.dumps(cm(ns, "by-kubectl", a="1")))
    env = {**os.environ, "KUBECTL_APPLYSET": "true", "KUBECONFIG": str(kube_api.kubeconfig)}
    out = subprocess.run(
        [
            str(kube_api.kubectl()),
            "apply",
            "--server-side",
            "-n",
            ns,
            "--prune",
            f"--applyset=parent-{s}",
            "-f",
            str(f),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    parent = kube.get("v1", "Secret", f"parent-{s}", ns)
    assert parent is not None
    assert parent["metadata"]["labels"][ID_LABEL] == ApplySetRef(f"parent-{s}", ns).id
