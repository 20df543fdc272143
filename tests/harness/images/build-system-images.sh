#!/usr/bin/env bash
# Builds the e2e tier's system images as archives under $THREETIER_E2E_DIR/images (scripts/oci.sh), from
# the binaries of scripts/build-e2e-tools.sh and Debian root filesystems (scripts/rootfs.sh), then prints
# a table of image, archive size and build time. Each image is stamped on its input: a warm run rebuilds
# nothing and takes about a second. Needs root (debootstrap) and deb.debian.org on a cold run.
#   pause:$PAUSE_VERSION                pause.c of k8s.io/kubernetes@$KUBERNETES_VERSION, gcc -static; UID 65535
#   coredns:$COREDNS_VERSION            static binary; UID 65532
#   kube-router:$KUBE_ROUTER_VERSION    Debian rootfs (the node's own suite) with iptables, ipset, conntrack
#   metrics-server:$METRICS_SERVER_VERSION, traefik:$TRAEFIK_VERSION    static binaries; UID 65532
#   toolbox:$E2E_DEBIAN_SUITE           Debian with curl, nc, host, ip; UID 65532 (helm tests, policy probes)
# Usage: build-system-images.sh [IMAGE...]   (default: all of the above, by name)
set -euo pipefail
# shellcheck source=../../../scripts/env.sh
. "$(dirname "$0")/../../../scripts/env.sh"
# shellcheck source=../../../scripts/lib.sh
. "$THREETIER_ROOT/scripts/lib.sh"
# shellcheck source=../../../scripts/rootfs.sh
. "$THREETIER_ROOT/scripts/rootfs.sh"
# shellcheck source=../../../scripts/oci.sh
. "$THREETIER_ROOT/scripts/oci.sh"

STAGE="$THREETIER_E2E_DIR/stage"
# Non-root UID/GID of distroless images; the manifests' securityContexts use the same numbers.
NONROOT=65532:65532

# stage NAME: an empty staging tree for a binary image, with what a static Go binary may read: /tmp (Go's
# os.TempDir, metrics-server's cert dir) and an nsswitch.conf so Go's resolver consults /etc/hosts first.
# No /etc/passwd: every image runs as a numeric UID. Timestamps are clamped so the layer is reproducible.
stage() {
  local dir="$STAGE/$1"
  rm -rf "$dir" && mkdir -p "$dir/etc" "$dir/tmp"
  chmod 1777 "$dir/tmp"
  printf 'hosts: files dns\n' > "$dir/etc/nsswitch.conf"
  _e2e_clamp_mtimes "$dir"
  printf '%s\n' "$dir"
}

# static_binary PATH: PATH, after checking that it can run in an image without libc.
static_binary() {
  [[ -x $1 ]] || die "$1 is missing; run scripts/build-e2e-tools.sh first"
  file -L "$1" | grep -q 'statically linked' || die "$1 is not statically linked; an image without libc cannot run it"
  printf '%s\n' "$1"
}

image_pause() {
  local src dir
  src="$(go env GOMODCACHE)/k8s.io/kubernetes@$KUBERNETES_VERSION/build/pause/linux/pause.c"
  if [[ ! -f $src ]]; then
    go mod download -C "$THREETIER_ROOT/tools/go/kubernetes" k8s.io/kubernetes
  fi
  [[ -f $src ]] || die "$src not found (k8s.io/kubernetes@$KUBERNETES_VERSION in the Go module cache)"
  dir=$(stage pause)
  rm -rf "$dir/etc" "$dir/tmp"   # the pause process needs nothing but its binary
  # -DVERSION is what the upstream Makefile passes (v$(TAG)-$(REV)); `pause -v` prints it.
  gcc -static -O2 -Wall -Werror -DVERSION="v$PAUSE_VERSION-threetier" -o "$dir/pause" "$src"
  strip "$dir/pause"
  _e2e_clamp_mtimes "$dir"
  oci_image pause "$PAUSE_VERSION" "$dir" --user 65535:65535 --entrypoint /pause >/dev/null
}

image_coredns() {
  oci_image coredns "$COREDNS_VERSION" "$(stage static-base)" \
    --add "$(static_binary "$THREETIER_BIN/coredns"):/coredns" --user "$NONROOT" --entrypoint /coredns --port 53/udp --port 53/tcp --port 9153 >/dev/null
}

image_metrics_server() {
  oci_image metrics-server "$METRICS_SERVER_VERSION" "$(stage static-base)" \
    --add "$(static_binary "$THREETIER_BIN/metrics-server"):/metrics-server" --user "$NONROOT" --entrypoint /metrics-server --port 10250 >/dev/null
}

image_traefik() {
  oci_image traefik "$TRAEFIK_VERSION" "$(stage static-base)" \
    --add "$(static_binary "$THREETIER_BIN/traefik"):/traefik" --user "$NONROOT" --entrypoint /traefik --port 8000 --port 8082 >/dev/null
}

# kube-router programs the node's iptables and ipsets from inside its pod, next to the rules the host's
# kube-proxy writes with the host's iptables. Both must use the same backend (nf_tables on Debian since
# buster) and should be the same iptables release, or one side may not parse the other's rules ("table
# incompatible"). So the rootfs is the node's own Debian suite, not E2E_DEBIAN_SUITE, and the image fails
# to build when its iptables reports another backend than the host's. Upstream's image picks the backend at
# start-up with iptables-wrappers instead; a throwaway single node does not need that.
image_kube_router() {
  local suite rootfs host_backend image_backend
  # shellcheck source=/dev/null
  suite=${E2E_KUBE_ROUTER_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}
  rootfs=$(e2e_rootfs "kube-router-$suite" "$suite" iptables ipset conntrack iproute2)
  host_backend=$(iptables --version | sed -n 's/.*(\(.*\)).*/\1/p')
  image_backend=$(chroot "$rootfs" iptables --version | sed -n 's/.*(\(.*\)).*/\1/p')
  [[ $image_backend == "$host_backend" ]] \
    || die "kube-router image: iptables backend '$image_backend' but the host uses '$host_backend'"
  # Runs as root: it edits iptables, ipsets and conntrack in the host network namespace (privileged pod).
  # The binary is a layer of its own on top of the cached rootfs.
  oci_image kube-router "$KUBE_ROUTER_VERSION" "$rootfs" \
    --add "$(static_binary "$THREETIER_BIN/kube-router"):/usr/local/bin/kube-router" \
    --entrypoint /usr/local/bin/kube-router >/dev/null
}

image_toolbox() {
  local rootfs
  rootfs=$(e2e_rootfs "toolbox-$E2E_DEBIAN_SUITE" "$E2E_DEBIAN_SUITE" \
    curl netcat-openbsd ca-certificates iproute2 bind9-host)
  # Pods that give no command keep running, so probes can `kubectl exec` into them.
  oci_image toolbox "$E2E_DEBIAN_SUITE" "$rootfs" --user "$NONROOT" --env HOME=/tmp --workdir /tmp \
    --cmd sleep --cmd infinity >/dev/null
}

all=(pause coredns kube-router metrics-server traefik toolbox)
images=("$@")
[[ ${#images[@]} -gt 0 ]] || images=("${all[@]}")
mkdir -p "$STAGE"
rows=()
total=$SECONDS
for image in "${images[@]}"; do
  start=$SECONDS
  case $image in
    pause) image_pause; tag=$PAUSE_VERSION ;;
    coredns) image_coredns; tag=$COREDNS_VERSION ;;
    kube-router) image_kube_router; tag=$KUBE_ROUTER_VERSION ;;
    metrics-server) image_metrics_server; tag=$METRICS_SERVER_VERSION ;;
    traefik) image_traefik; tag=$TRAEFIK_VERSION ;;
    toolbox) image_toolbox; tag=$E2E_DEBIAN_SUITE ;;
    *) die "unknown image '$image' (known: ${all[*]})" ;;
  esac
  archive="$THREETIER_E2E_DIR/images/${image}_$tag.tar"
  rows+=("$(printf '%-48s %8s %6s s' "$(oci_image_ref "$image" "$tag")" "$(du -h "$archive" | cut -f1)" "$((SECONDS - start))")")
done
printf '%-48s %8s %8s\n' IMAGE SIZE TIME
printf '%s\n' "${rows[@]}"
log "system images ready in $((SECONDS - total)) s under $THREETIER_E2E_DIR/images"
