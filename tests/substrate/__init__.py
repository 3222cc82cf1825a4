"""Real servers the test suite runs against, started and torn down by pytest fixtures.

Modules (one per server): kube_api (etcd + kube-apiserver), host_lab (sshd hosts in network namespaces),
kubeone_bin (the real kubeone binary),
registries (docker-registry: upstream, mirror, TLS, basic auth), oci_images (pure-Python OCI images pushed to
the upstream registry), operator_sim (plays an operator by patching status subresources). Shared helpers:
procs (processes, ports, waiting), pki (CA and certificates), netns (opening sockets inside a namespace).
Fixtures are registered in tests/conftest.py through ``pytest_plugins``.
"""
