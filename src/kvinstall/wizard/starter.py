"""The starter file (`kvinstall init --defaults`): one control plane and two workers at documentation
addresses, commented, with examples of more settings."""

from __future__ import annotations

from kvinstall.catalog import Catalog
from kvinstall.config.models import API_VERSION, KIND, Config

STARTER_HOSTS = (("192.0.2.10", "controlPlane"), ("192.0.2.11", "worker"), ("192.0.2.12", "worker"))


STARTER_HEADER = (
    "Written by `kvinstall init`. Check it with `kvinstall validate -f FILE`.\n"
    "Field reference: `kvinstall schema`; edit it again with `kvinstall init --from FILE`."
)


STARTER_FOOTER = """
# More settings (all optional; `kvinstall schema` lists every field), for example:
# apiEndpoint:
#   host: 192.0.2.100            # a load balancer in front of the control plane
# storage:
#   defaultClass: ceph-rbd
#   rwxClass: cephfs             # live migration needs a ReadWriteMany class
# auth:
#   mode: oidc
#   issuer: https://dex.example.com/dex
# offline:
#   enabled: true
#   registry: registry.example.com:5000
"""


def starter_yaml(catalog: Catalog) -> str:
    """The `--defaults` file as text: the starter config, commented, with examples of more settings."""
    from kvinstall.config.writer import to_yaml

    text = to_yaml(starter_config(catalog), header=STARTER_HEADER)
    for address, role in STARTER_HOSTS:
        what = "the control-plane machine" if role == "controlPlane" else "a worker machine"
        text = text.replace(f"- address: {address}\n",
                            f"- address: {address}  # documentation address: put {what} here\n", 1)
    return text + STARTER_FOOTER


def starter_config(catalog: Catalog, name: str = "my-cluster") -> Config:
    """The `--defaults` file: one control plane and two workers at documentation addresses."""
    return Config.model_validate({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name},
        "kubernetes": {"version": catalog.kubernetes.default},
        "hosts": [{"address": a, "role": r} for a, r in STARTER_HOSTS],
    })

