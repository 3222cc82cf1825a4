#!/usr/bin/env bash
# Prepares a fresh Debian machine for the test suite: the system packages the substrate fixtures start
# (sshd, docker-registry, skopeo, ip, sudo, ...) and the Go-built binaries (kube-apiserver, etcd, kubectl,
# helm, crane), built once and cached; a partial Debian mirror for the host-package tests (fetched once,
# served on 127.0.0.1 by the tests, which never reach deb.debian.org). Prints the binary cache directory last.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# sudo: the lab hosts' non-root user; openssl: its password hash; gnupg: `mirror serve` signs its package
# repository (gpg) and checks upstream ones (gpgv); curl: the lab hosts reach the served registry with it;
# debian-archive-keyring: the Debian mirror's signing keys for the host-package tests; the rest as named in
# the substrate docs.
packages=(openssh-server docker-registry skopeo iproute2 tmux apache2-utils sudo openssl util-linux gnupg curl
          debian-archive-keyring)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
mkdir -p /run/sshd

# bookworm's signed InRelease, its Packages index and the .debs the host-package tests collect, under
# ~/.cache/kvinstall-test/debian-bookworm (stamped: a warm run downloads nothing).
timeout 900 python3 "$here/debian-mirror.py" >/dev/null

if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
  export PATH=$PATH:/usr/local/go/bin
fi
command -v go >/dev/null || { echo "ci-setup: Go toolchain not found (needed once to build the test binaries)" >&2; exit 1; }

t0=$SECONDS
bash "$here/build-binaries.sh" "$@"
echo "binaries ready in $((SECONDS - t0))s" >&2
