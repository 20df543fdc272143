#!/usr/bin/env bash
# Builds promtool (Prometheus' rule checker and rule unit-test runner) at the pinned version into
# $THREETIER_CACHE/go-tools and links it as $THREETIER_BIN/promtool. The observability tests
# (tests/observability) run `promtool check rules` and `promtool test rules` with it.
#
# Prometheus publishes its Go module with v0.MAJOR*100+MINOR.PATCH versions: module v0.316.0 is
# Prometheus 3.16.0. PROMETHEUS_VERSION (tools/versions.env) holds the module version.
#
# This file defines build_prometheus so that scripts/build-go-tools.sh can source it as a `prometheus`
# group; run directly it builds promtool once (a cold build takes several minutes on two cores).
set -euo pipefail

# prometheus_release v0.316.0 -> 3.16.0 (the release a Go module version stands for).
prometheus_release() {
  local rest=${1#v0.}
  local minor=${rest%%.*} patch=${rest#*.}
  printf '%d.%d.%s' $((10#$minor / 100)) $((10#$minor % 100)) "$patch"
}

build_prometheus() {
  local version=$PROMETHEUS_VERSION
  # `promtool --version` names the release, as the upstream binaries do.
  local stamp=github.com/prometheus/common/version
  local dir="$THREETIER_ROOT/tools/go/clients"
  require_pin "$dir" github.com/prometheus/prometheus "$version"
  # Built in tools/go/clients, static, beside Helm and CoreDNS: about half its packages are theirs too.
  # remove_all_sd is Prometheus' own build tag (plugins/*.go) that leaves out every service discovery
  # (AWS, Azure, GCE, Kubernetes, ...): `promtool check rules` and `promtool test rules`, all the tests run,
  # need none of them, and a cold build compiles about 250 fewer packages.
  CGO_ENABLED=0 GO_TAGS=remove_all_sd GO_LDFLAGS="-X $stamp.Version=$(prometheus_release "$version") -X $stamp.Branch=module-$version" \
    go_module_tool promtool "$version" "$dir" github.com/prometheus/prometheus/cmd/promtool
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  # shellcheck source=env.sh
  . "$(dirname "$0")/env.sh"
  # shellcheck source=lib.sh
  . "$THREETIER_ROOT/scripts/lib.sh"
  command -v go >/dev/null || die "go is not on PATH (the Go toolchain is needed to build promtool)"
  build_prometheus
  promtool --version | head -n 1 >&2
fi
