#!/usr/bin/env bash
# Builds (once per version) the real servers and tools the test suite runs against,
# into $KVINSTALL_BIN_CACHE (default ~/.cache/kvinstall-test/<k8s-version>/bin).
# Re-runs are free: a binary is rebuilt only when its go.mod/go.sum changed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
k8s_version=$(awk '/k8s.io\/kubernetes v/{print $2; exit}' "$here/envtest/go.mod")
cache=${KVINSTALL_BIN_CACHE:-$HOME/.cache/kvinstall-test/$k8s_version/bin}
mkdir -p "$cache"
export GOFLAGS=-mod=mod CGO_ENABLED=0

# build MODULE_DIR OUTPUT PACKAGE: skip when the stamp of the module files matches.
build() {
  local dir=$1 out=$2 pkg=$3 stamp
  stamp=$(cat "$here/$dir/go.mod" "$here/$dir/go.sum" | sha256sum | cut -c1-16)
  if [[ -x "$cache/$out" && "$(cat "$cache/$out.stamp" 2>/dev/null)" == "$stamp" ]]; then
    echo "cached: $out"
    return
  fi
  local t0=$SECONDS
  (cd "$here/$dir" && go build -trimpath -ldflags='-s -w' -o "$cache/$out.tmp" "$pkg")
  mv "$cache/$out.tmp" "$cache/$out"
  echo "$stamp" > "$cache/$out.stamp"
  echo "built: $out in $((SECONDS - t0))s"
}

want=${*:-etcd kube-apiserver kubectl helm crane}
for b in $want; do
  case $b in
    etcd) build envtest etcd go.etcd.io/etcd/server/v3 ;;
    kube-apiserver) build envtest kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver ;;
    kube-controller-manager) build envtest kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager ;;
    kubectl) build envtest kubectl k8s.io/kubernetes/cmd/kubectl ;;
    helm) build helm helm helm.sh/helm/v3/cmd/helm ;;
    crane) build crane crane github.com/google/go-containerregistry/cmd/crane ;;
    *) echo "unknown binary: $b" >&2; exit 2 ;;
  esac
done
echo "$cache"
