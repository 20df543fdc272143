#!/usr/bin/env bash
# Builds the project's Go tools at the versions of tools/versions.env into $THREETIER_CACHE/go-tools
# and links them into $THREETIER_BIN. Usage: build-go-tools.sh [group...]  (groups: helm, prometheus, cluster,
# scan, e2e; default helm, prometheus, cluster and scan: the e2e tier's tools are only built on request, e.g.
# setup.sh --e2e)
set -euo pipefail
# shellcheck source=env.sh
. "$(dirname "$0")/env.sh"
# shellcheck source=lib.sh
. "$THREETIER_ROOT/scripts/lib.sh"
command -v go >/dev/null || die "go is not on PATH (the Go toolchain is needed to build helm and the local cluster)"

# Helm 3, Helm 4 and helm-diff come from the build module tools/go/clients: one dependency set, so a cold
# machine compiles Kubernetes' client libraries once for all three (its header has the numbers), and static,
# as Helm's releases are. helm-diff's release checksums are missing from sum.golang.org (the module's go.sum
# pins them).
build_helm() {
  local dir="$THREETIER_ROOT/tools/go/clients"
  require_pin "$dir" helm.sh/helm/v3 "$HELM_VERSION"
  require_pin "$dir" helm.sh/helm/v4 "$HELM4_VERSION"
  require_pin "$dir" github.com/databus23/helm-diff/v3 "$HELM_DIFF_VERSION"
  # Helm 3 takes the Kubernetes version that `helm template`/`helm lint` assume from ldflags too (its
  # Makefile stamps the client-go minor); unstamped it assumes v1.20 and rejects kubeVersion ">=1.29".
  local kminor=${KUBERNETES_VERSION#v1.}
  kminor=${kminor%%.*}
  local k8s_flags="" pkg
  for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    k8s_flags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kminor"
  done
  local -x CGO_ENABLED=0 GONOSUMDB=github.com/databus23/helm-diff
  GO_LDFLAGS="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION$k8s_flags" \
    go_module_tool helm "$HELM_VERSION" "$dir" helm.sh/helm/v3/cmd/helm
  GO_LDFLAGS="-X helm.sh/helm/v4/internal/version.version=$HELM4_VERSION" \
    go_module_tool helm4 "$HELM4_VERSION" "$dir" helm.sh/helm/v4/cmd/helm
  go_module_tool helm-diff "$HELM_DIFF_VERSION" "$dir" github.com/databus23/helm-diff/v3
  install_diff_plugin
  # helm-docs stamps its version (printed by --version and in its README footer, which the charts turn off).
  GO_LDFLAGS="-X main.version=${HELM_DOCS_VERSION#v}" \
    go_tool helm-docs "$HELM_DOCS_VERSION" "github.com/norwoodj/helm-docs/cmd/helm-docs@$HELM_DOCS_VERSION"
}

# A Helm plugin is a directory with plugin.yaml; helm-diff's own installer downloads a release binary,
# which cannot work offline, so the plugin directory is laid out here around the binary built above.
install_diff_plugin() {
  local dir="$HELM_PLUGINS/diff" version=${HELM_DIFF_VERSION#v}
  if [[ -x $dir/bin/diff && $(readlink "$dir/bin/diff") == "$THREETIER_BIN/helm-diff" ]] \
     && grep -q "^version: \"$version\"" "$dir/plugin.yaml" 2>/dev/null; then
    return 0
  fi
  rm -rf "$dir" && mkdir -p "$dir/bin"
  ln -s "$THREETIER_BIN/helm-diff" "$dir/bin/diff"
  cat > "$dir/plugin.yaml" <<YAML
name: "diff"
version: "$version"
usage: "Preview helm upgrade changes as a diff"
description: "Preview helm upgrade changes as a diff (built from source by threetier.k8s scripts/build-go-tools.sh)"
useTunnel: true
command: "\$HELM_PLUGIN_DIR/bin/diff"
YAML
  log "helm-diff $HELM_DIFF_VERSION installed as a helm plugin in $dir"
}

# kube-score, the chart tier's second configuration scan (static, offline); its version string is stamped.
build_scan() {
  GO_LDFLAGS="-X main.version=${KUBE_SCORE_VERSION#v}" \
    go_tool kube-score "$KUBE_SCORE_VERSION" "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION"
}

# shellcheck source=build-promtool.sh
. "$THREETIER_ROOT/scripts/build-promtool.sh"

groups=("$@")
[[ ${#groups[@]} -gt 0 ]] || groups=(helm prometheus cluster scan)
for g in "${groups[@]}"; do
  case $g in
    helm) build_helm ;;
    cluster)
      if [[ -x $THREETIER_ROOT/scripts/build-cluster-tools.sh ]]; then
        "$THREETIER_ROOT/scripts/build-cluster-tools.sh"
      fi ;;
    prometheus) build_prometheus ;;
    scan) build_scan ;;
    e2e) "$THREETIER_ROOT/scripts/build-e2e-tools.sh" ;;
    *) die "unknown tool group '$g' (known: helm, prometheus, cluster, scan, e2e)" ;;
  esac
done
