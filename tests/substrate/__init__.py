"""Real servers the test suite runs against, started and torn down by pytest fixtures.

Modules (one per server): kube_api (etcd + kube-apiserver), host_lab (sshd hosts in network namespaces),
registries (docker-registry: upstream, mirror, TLS, basic auth), oci_images (pure-Python OCI images pushed to
the upstream registry), operator_sim (plays an operator by patching status subresources), debs (Debian's
own bookworm files, cached by hack/ci-setup.sh and served on 127.0.0.1; bundles and `mirror serve` made of
them). Tests send traffic only to loopback and to the lab's namespaces. Shared helpers:
procs (processes, ports, waiting), pki (CA and certificates), netns (opening sockets inside a namespace).
Fixtures are registered in tests/conftest.py through ``pytest_plugins``.
"""
