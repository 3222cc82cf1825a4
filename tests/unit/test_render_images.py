"""Finding and rewriting image references (kvinstall.render.images)."""

from __future__ import annotations

import pytest

from kvinstall.render.images import (
    ImageRefError,
    images_in,
    images_outside,
    normalize_image,
    rewrite_image,
    rewrite_objects,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("ref", "site", "expected"),
    [
        ("docker.io/kubeovn/kube-ovn:v1.16.2", "reg.site:5000", "reg.site:5000/kubeovn/kube-ovn:v1.16.2"),
        ("kubeovn/kube-ovn:v1.16.2", "reg.site", "reg.site/kubeovn/kube-ovn:v1.16.2"),
        ("nginx", "reg.site", "reg.site/library/nginx"),
        ("nginx:1.27", "reg.site", "reg.site/library/nginx:1.27"),
        ("index.docker.io/library/nginx", "reg.site", "reg.site/library/nginx"),
        (
            "quay.io/kubevirt/virt-operator:v1.8.4",
            "10.0.0.5:5000",
            "10.0.0.5:5000/kubevirt/virt-operator:v1.8.4",
        ),
        ("localhost:5000/a/b:c", "reg.site", "reg.site/a/b:c"),
        ("localhost/a", "reg.site", "reg.site/a"),
        (f"ghcr.io/dexidp/dex:v2.44.0@{DIGEST}", "reg.site", f"reg.site/dexidp/dex:v2.44.0@{DIGEST}"),
        (
            f"reg.kyverno.io/kyverno/kyverno@{DIGEST}",
            "https://reg.site/",
            f"reg.site/kyverno/kyverno@{DIGEST}",
        ),
    ],
)
def test_rewrite_image(ref: str, site: str, expected: str) -> None:
    assert rewrite_image(ref, site) == expected


def test_rewrite_is_idempotent() -> None:
    once = rewrite_image("docker.io/kubeovn/kube-ovn:v1.16.2", "reg.site:5000")
    assert rewrite_image(once, "reg.site:5000") == once


@pytest.mark.parametrize("bad", ["", "a b", "/x", "x/", "x@md5:1", "x:"])
def test_invalid_references(bad: str) -> None:
    with pytest.raises(ImageRefError):
        rewrite_image(bad, "reg.site")


def test_normalize() -> None:
    assert normalize_image("busybox") == "docker.io/library/busybox"


def _pod(image: str) -> dict:
    return {
        "containers": [
            {
                "name": "c",
                "image": image,
                "env": [
                    {"name": "OTHER_IMAGE", "value": "quay.io/x/y:1"},
                    {"name": "NOT_AN_IMG", "value": "keep"},
                ],
            }
        ],
        "initContainers": [{"name": "i", "image": "busybox"}],
    }


OBJECTS = [
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"template": {"spec": _pod("docker.io/a/b:1")}},
    },
    {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "ds"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "ghcr.io/c/d:2"}]}}},
    },
    {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "cj"},
        "spec": {
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "e/f:3"}]}}}}
        },
    },
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [], "ephemeralContainers": [{"name": "dbg", "image": "g/h:4"}]},
    },
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "ovn-vpc-nat-config"},
        "data": {"image": "docker.io/kubeovn/vpc-nat-gateway:v1.16.2"},
    },
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "other"},
        "data": {"image": "not/an:image"},
    },
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"image": "ignored"}},
]


def test_images_in_finds_every_image() -> None:
    assert images_in(OBJECTS) == {
        "docker.io/a/b:1",
        "quay.io/x/y:1",
        "busybox",
        "ghcr.io/c/d:2",
        "e/f:3",
        "g/h:4",
        "docker.io/kubeovn/vpc-nat-gateway:v1.16.2",
    }


def test_rewrite_objects_leaves_nothing_outside_the_site() -> None:
    out = rewrite_objects(OBJECTS, "site:5000")
    assert images_outside(out, "site:5000") == set()
    assert images_outside(OBJECTS, "site:5000") == images_in(OBJECTS)
    assert out[0]["spec"]["template"]["spec"]["containers"][0]["env"][1]["value"] == "keep"
    assert out[4]["data"]["image"] == "site:5000/kubeovn/vpc-nat-gateway:v1.16.2"
    assert out[5]["data"]["image"] == "not/an:image"
    # The input is not modified.
    assert OBJECTS[0]["spec"]["template"]["spec"]["containers"][0]["image"] == "docker.io/a/b:1"
