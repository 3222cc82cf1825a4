#!/usr/bin/env bash
# The whole test suite on a fresh machine: system packages, the real test servers' binaries
# (built once and cached), the Python package, then lint, types, import contracts and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/ci-setup.sh
python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'
ruff check src tests bench
mypy
lint-imports  # the layers and zero cycles (contracts in pyproject.toml)
# pytest exits 5 when it collects nothing: that is a failure here, as is any skip (see conftest).
# Tests may reach only loopback and the network namespaces they create: pytest runs in a network
# namespace of its own with only lo up, so a test that would reach further fails instead of leaking.
exec unshare --net sh -c 'ip link set lo up && exec python3 -m pytest -q "$@"' pytest "$@"
