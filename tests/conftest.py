"""Registers the substrate fixtures (real servers started by the suite; see tests/substrate/__init__.py).

``tests/`` is on sys.path (rootdir conftest), so the substrate is importable as ``substrate``.
"""

pytest_plugins = [
    "substrate.registries",
    "substrate.oci_images",
    "substrate.kube_api",
    "substrate.operator_sim",
    "substrate.host_lab",
]
