#!/usr/bin/env bash
# Builds (once per version) the real servers and tools the test suite runs against,
# into $KVINSTALL_BIN_CACHE (default ~/.cache/kvinstall-test/<k8s-version>/bin).
# Re-runs are free: a binary is rebuilt only when its go.mod/go.sum or link flags changed.
# Usage: hack/build-binaries.sh [etcd kube-apiserver kube-controller-manager kubectl helm crane kubeone ...]
# kubeone is built from the release sources in ../shared/upstream/kubeone (next to the repository;
# $KVINSTALL_UPSTREAM overrides) with their build.sh, and rebuilt only when those files change.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
upstream=${KVINSTALL_UPSTREAM:-$here/../../shared/upstream}
# modver MODULE GO.MOD: the required version of MODULE (in a require block or a one-line require)
modver() { awk -v m="$1" '{for (i = 1; i < NF; i++) if ($i == m) {print $(i + 1); exit}}' "$2"; }
k8s_version=$(modver k8s.io/kubernetes "$here/envtest/go.mod")
helm_version=$(modver helm.sh/helm/v3 "$here/helm/go.mod")
helm_k8s=$(modver k8s.io/client-go "$here/helm/go.mod")   # v0.MINOR.PATCH
cache=${KVINSTALL_BIN_CACHE:-$HOME/.cache/kvinstall-test/$k8s_version/bin}
mkdir -p "$cache"
export GOFLAGS=-mod=mod CGO_ENABLED=0

# Version stamps a release build would set; without them kube-apiserver reports v0.0.0-master and helm
# renders charts with .Capabilities.KubeVersion v1.20.0.
k8s_minor=$(echo "$k8s_version" | cut -d. -f2)
kube_ldflags="-X k8s.io/component-base/version.gitVersion=$k8s_version
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$k8s_minor
 -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z
 -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version
 -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$k8s_minor"
helm_minor=$(echo "$helm_k8s" | cut -d. -f2)
helm_ldflags="-X helm.sh/helm/v3/internal/version.version=$helm_version
 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$helm_minor
 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$helm_minor"

# build MODULE_DIR OUTPUT PACKAGE [LDFLAGS]: skip when the stamp of module files + flags matches.
build() {
  local dir=$1 out=$2 pkg=$3 flags=${4:-} stamp
  flags=$(echo "-s -w $flags" | tr '\n' ' ' | tr -s ' ')
  stamp=$( (cat "$here/$dir/go.mod" "$here/$dir/go.sum"; echo "$flags") | sha256sum | cut -c1-16)
  if [[ -x "$cache/$out" && "$(cat "$cache/$out.stamp" 2>/dev/null)" == "$stamp" ]]; then
    echo "cached: $out"
    return
  fi
  local t0=$SECONDS
  (cd "$here/$dir" && go build -trimpath -ldflags="$flags" -o "$cache/$out.tmp" "$pkg")
  mv "$cache/$out.tmp" "$cache/$out"
  echo "$stamp" > "$cache/$out.stamp"
  echo "built: $out in $((SECONDS - t0))s"
}

# build_kubeone: the real kubeone from its release sources. Cold (empty Go build and module caches) it
# takes about 18 CPU-minutes, some 10 minutes on 2 idle cores, plus its modules from the proxy; then it
# is cached (the stamp is the sha256 of the source archives and build.sh).
build_kubeone() {
  local src=$upstream/kubeone stamp work t0=$SECONDS
  [[ -x "$src/build.sh" ]] || { echo "kubeone: no release sources in $src" >&2; exit 1; }
  stamp=$(cat "$src"/*-src.tar.gz "$src/build.sh" | sha256sum | cut -c1-16)
  if [[ -x "$cache/kubeone" && "$(cat "$cache/kubeone.stamp" 2>/dev/null)" == "$stamp" ]]; then
    echo "cached: kubeone"
    return
  fi
  work=$(mktemp -d)
  bash "$src/build.sh" "$cache/kubeone.tmp" "$work" || { rm -rf "$work"; exit 1; }
  rm -rf "$work"
  mv "$cache/kubeone.tmp" "$cache/kubeone"
  echo "$stamp" > "$cache/kubeone.stamp"
  echo "built: kubeone in $((SECONDS - t0))s"
}

want=${*:-etcd kube-apiserver kubectl helm crane kubeone}
for b in $want; do
  case $b in
    etcd) build envtest etcd go.etcd.io/etcd/server/v3 ;;
    kube-apiserver) build envtest kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$kube_ldflags" ;;
    kube-controller-manager)
      build envtest kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$kube_ldflags" ;;
    kubectl) build envtest kubectl k8s.io/kubernetes/cmd/kubectl "$kube_ldflags" ;;
    helm) build helm helm helm.sh/helm/v3/cmd/helm "$helm_ldflags" ;;
    crane) build crane crane github.com/google/go-containerregistry/cmd/crane ;;
    kubeone) build_kubeone ;;
    *) echo "unknown binary: $b" >&2; exit 2 ;;
  esac
done
echo "$cache"
