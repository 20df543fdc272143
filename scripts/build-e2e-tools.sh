#!/usr/bin/env bash
# Builds the e2e tier's Go binaries at the versions of tools/versions.env into $THREETIER_CACHE/go-tools and
# links them into $THREETIER_BIN (called by scripts/build-go-tools.sh, group `e2e`; runnable on its own).
# One build at a time (few cores); a tool already built at its version is skipped, so a warm run takes well
# under a second.
#   kubelet, kube-proxy     scripts/build-cluster-tools.sh node (same release as the control plane; it also
#                           makes sure of the static metrics-server that the KWOK cluster and the image share)
#   coredns                 github.com/coredns/coredns, build module tools/go/clients (the Corefile's plugins)
#   kube-router             github.com/cloudnativelabs/kube-router/v2, build module tools/go/kubernetes
#   traefik                 github.com/traefik/traefik/v3, build module tools/go/traefik
# Everything but kubelet and kube-proxy ends up in an image (tests/harness/images/build-system-images.sh), so it is
# built with CGO_ENABLED=0: a static binary needs no libc in the image, and Go's own DNS resolver is used.
set -euo pipefail
# shellcheck source=env.sh
. "$(dirname "$0")/env.sh"
# shellcheck source=lib.sh
. "$THREETIER_ROOT/scripts/lib.sh"
command -v go >/dev/null || die "go is not on PATH (the Go toolchain is needed to build the e2e tools)"

# module_date MODULE@VERSION: the release's date from the module cache's .info file (downloaded when missing),
# so a version stamp does not change from one build to the next. Read directly instead of `go list`: a warm
# run has to compare the same ldflags in a few milliseconds. (Module paths with capitals would need the
# cache's !-escaping; none of ours has any.)
module_date() {
  local info
  info="$(go env GOMODCACHE)/cache/download/${1%@*}/@v/${1#*@}.info"
  [[ -f $info ]] || go mod download "$1" >/dev/null 2>&1 || true
  sed -n 's/.*"Time": *"\([^"]*\)".*/\1/p' "$info" 2>/dev/null || true
}

build_coredns() {
  local dir="$THREETIER_ROOT/tools/go/clients"
  require_pin "$dir" github.com/coredns/coredns "$COREDNS_VERSION"
  # Only the plugins the node's Corefile uses (tools/go/clients/coredns/main.go). coremain.GitCommit is what
  # the upstream Makefile stamps; the version itself is a constant of the release.
  CGO_ENABLED=0 GO_LDFLAGS="-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" \
    go_module_tool coredns "$COREDNS_VERSION" "$dir" ./coredns
}

build_kube_router() {
  local dir="$THREETIER_ROOT/tools/go/kubernetes" pkg=github.com/cloudnativelabs/kube-router/v2 date
  require_pin "$dir" "$pkg" "$KUBE_ROUTER_VERSION"
  date=$(module_date "$pkg@$KUBE_ROUTER_VERSION")
  # Without the stamp `kube-router --version` prints an empty version.
  CGO_ENABLED=0 GO_LDFLAGS="-s -w -X $pkg/pkg/version.Version=$KUBE_ROUTER_VERSION -X $pkg/pkg/version.BuildDate=${date:-unknown}" \
    go_module_tool kube-router "$KUBE_ROUTER_VERSION" "$dir" "$pkg/cmd/kube-router"
}

build_traefik() {
  local dir="$THREETIER_ROOT/tools/go/traefik" pkg=github.com/traefik/traefik/v3 date
  require_pin "$dir" "$pkg" "$TRAEFIK_VERSION"
  date=$(module_date "$pkg@$TRAEFIK_VERSION")
  # Without the stamps `traefik version` says "dev" and "I don't remember exactly".
  CGO_ENABLED=0 GO_LDFLAGS="-s -w -X $pkg/pkg/version.Version=$TRAEFIK_VERSION -X $pkg/pkg/version.BuildDate=${date:-unknown}" \
    go_module_tool traefik "$TRAEFIK_VERSION" "$dir" "$pkg/cmd/traefik"
}

start=$SECONDS
"$THREETIER_ROOT/scripts/build-cluster-tools.sh" node
build_coredns
build_kube_router
build_traefik
log "e2e tools ready in $((SECONDS - start)) s: kubelet/kube-proxy $KUBERNETES_VERSION, coredns $COREDNS_VERSION, kube-router $KUBE_ROUTER_VERSION, traefik $TRAEFIK_VERSION, metrics-server $METRICS_SERVER_VERSION"
