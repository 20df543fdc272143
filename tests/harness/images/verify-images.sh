#!/usr/bin/env bash
# Proves that the e2e image archives import into containerd under the names the manifests use, without
# touching the system containerd: starts a private containerd (own config, root, state and socket under
# $THREETIER_E2E_DIR/test-containerd, CRI plugin disabled so it opens no port), runs
# `ctr -n k8s.io images import` on each archive, checks the reference and stops that containerd by PID.
# Usage: verify-images.sh [ARCHIVE...]   (default: every archive oci_images lists)
set -euo pipefail
# shellcheck source=../../../scripts/env.sh
. "$(dirname "$0")/../../../scripts/env.sh"
# shellcheck source=../../../scripts/lib.sh
. "$THREETIER_ROOT/scripts/lib.sh"
# shellcheck source=../../../scripts/oci.sh
. "$THREETIER_ROOT/scripts/oci.sh"
[[ $(id -u) -eq 0 ]] || die "a private containerd needs root"
command -v containerd >/dev/null && command -v ctr >/dev/null || die "containerd and ctr are needed (requirements/apt-e2e.txt)"

archives=("$@")
if [[ ${#archives[@]} -eq 0 ]]; then
  while IFS=$'\t' read -r _ archive; do archives+=("$archive"); done < <(oci_images)
fi
for archive in "${archives[@]}"; do
  [[ -f $archive && -f ${archive%.tar}.ref ]] || die "$archive is not an image archive of scripts/oci.sh (no .ref beside it)"
done
[[ ${#archives[@]} -gt 0 ]] || die "no image archives under $THREETIER_E2E_DIR/images (run tests/harness/images/build-system-images.sh)"

dir="$THREETIER_E2E_DIR/test-containerd"
rm -rf "$dir" && mkdir -p "$dir"
sock="$dir/containerd.sock"
cat > "$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
TOML
containerd --config "$dir/config.toml" > "$dir/containerd.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  ctr --address "$sock" version >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$dir/containerd.log" >&2; die "private containerd exited"; }
  sleep 0.1
done
ctr --address "$sock" version >/dev/null 2>&1 || die "private containerd did not come up (log: $dir/containerd.log)"

failed=0
for archive in "${archives[@]}"; do
  want=$(<"${archive%.tar}.ref")
  ctr --address "$sock" -n k8s.io images import "$archive" >/dev/null
  if ctr --address "$sock" -n k8s.io images ls -q | grep -qxF "$want"; then
    log "ok: $(basename "$archive") imports as $want"
  else
    log "FAILED: $(basename "$archive") does not import as $want"; failed=1
  fi
done
ctr --address "$sock" -n k8s.io images ls
[[ $failed -eq 0 ]] || die "some archives did not import under their reference"
