#!/usr/bin/env bash
# Builds the local cluster's binaries from the Go module proxy at the versions of tools/versions.env into
# $THREETIER_CACHE/go-tools and links them into $THREETIER_BIN (called by scripts/build-go-tools.sh, group
# `cluster`; runnable on its own). One build at a time: the machines have few cores and a parallel
# k8s.io/kubernetes build would only thrash. A tool already built at its version is skipped, so a warm run
# takes well under a second.
#   etcd                       upstream main of go.etcd.io/etcd/server/v3, build module tools/go/etcd
#   kube-apiserver, kube-controller-manager, kube-scheduler
#                              k8s.io/kubernetes with replace lines, build module tools/go/kubernetes
#   kwok, kwokctl              sigs.k8s.io/kwok, build module tools/go/kubernetes
#   metrics-server             sigs.k8s.io/metrics-server (go install; see tools/go/kubernetes/go.mod for why)
# All static (CGO_ENABLED=0), kubelet included: one set of compiled packages for every binary of the module
# (its header says why); nothing here needs cgo (only Go's own net and os/user would use it).
set -euo pipefail
# shellcheck source=env.sh
. "$(dirname "$0")/env.sh"
# shellcheck source=lib.sh
. "$THREETIER_ROOT/scripts/lib.sh"
command -v go >/dev/null || die "go is not on PATH (the Go toolchain is needed to build the local cluster)"
export CGO_ENABLED=0

KUBERNETES_VERSION=${KUBERNETES_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
METRICS_SERVER_VERSION=${METRICS_SERVER_VERSION:-v0.8.0}

build_etcd() {
  local dir="$THREETIER_ROOT/tools/go/etcd"
  require_pin "$dir" go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
  go_module_tool etcd "$ETCD_VERSION" "$dir" go.etcd.io/etcd/server/v3
}

# kube_ldflags DIR: the version stamp hack/lib/version.sh gives a release build. Without it the binaries
# report v0.0.0-master, which fails Helm's kubeVersion constraints (e.g. ">=1.19.0-0") and version checks.
kube_ldflags() {
  local version=$KUBERNETES_VERSION minor major date pkg flags=()
  major=${version#v}; major=${major%%.*}
  minor=${version#v"$major".}; minor=${minor%%.*}
  # The release date of the tagged module keeps the build reproducible.
  date=$(go list -C "$1" -m -json k8s.io/kubernetes | sed -n 's/.*"Time": *"\([^"]*\)".*/\1/p')
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    flags+=("-X=$pkg.gitVersion=$version" "-X=$pkg.gitMajor=$major" "-X=$pkg.gitMinor=$minor"
      "-X=$pkg.gitTreeState=clean" "-X=$pkg.buildDate=${date:-1970-01-01T00:00:00Z}")
  done
  printf '%s ' "${flags[@]}"
}

# build_kubernetes [CMD...]: the control plane by default; the e2e tier asks for kubelet and kube-proxy too.
build_kubernetes() {
  local dir="$THREETIER_ROOT/tools/go/kubernetes" cmd ldflags cmds=("$@")
  [[ ${#cmds[@]} -gt 0 ]] || cmds=(kube-apiserver kube-controller-manager kube-scheduler)
  require_pin "$dir" k8s.io/kubernetes "$KUBERNETES_VERSION"
  ldflags=$(kube_ldflags "$dir")
  for cmd in "${cmds[@]}"; do
    GOFLAGS="$(go env GOFLAGS) '-ldflags=-s -w ${ldflags% }'" \
      go_module_tool "$cmd" "$KUBERNETES_VERSION" "$dir" "k8s.io/kubernetes/cmd/$cmd"
  done
}

build_kwok() {
  local dir="$THREETIER_ROOT/tools/go/kubernetes"
  require_pin "$dir" sigs.k8s.io/kwok "$KWOK_VERSION"
  go_module_tool kwok "$KWOK_VERSION" "$dir" sigs.k8s.io/kwok/cmd/kwok
  go_module_tool kwokctl "$KWOK_VERSION" "$dir" sigs.k8s.io/kwok/cmd/kwokctl
}

build_metrics_server() {
  # Static: the same binary runs on the host for the KWOK cluster and in the real node's scratch image. Its own
  # `go install`, not tools/go/kubernetes: on the release's k8s.io modules it panics at start (see that go.mod).
  GO_LDFLAGS="-s -w" go_tool metrics-server "$METRICS_SERVER_VERSION" "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"
}

# `build-cluster-tools.sh node`: only the node binaries of the same release (kubelet, kube-proxy) and
# metrics-server, which the real node's image carries.
if [[ ${1:-} == node ]]; then
  build_kubernetes kubelet kube-proxy
  build_metrics_server
  exit 0
fi

start=$SECONDS
build_etcd
build_kubernetes
build_kwok
build_metrics_server
log "cluster tools ready in $((SECONDS - start)) s: etcd $ETCD_VERSION, kubernetes $KUBERNETES_VERSION, kwok $KWOK_VERSION, metrics-server $METRICS_SERVER_VERSION"
