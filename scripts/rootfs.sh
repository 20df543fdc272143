# shellcheck shell=bash
# Debian root filesystems for the e2e tier's images (sourced; needs scripts/env.sh and scripts/lib.sh first).
#
#   e2e_rootfs NAME SUITE [PACKAGE...]     debootstrap --variant=minbase SUITE with PACKAGEs into
#                                          $THREETIER_E2E_DIR/rootfs/NAME and print that path
#   e2e_rootfs_install ROOTFS PACKAGE...   apt-get install PACKAGEs into an existing rootfs (chroot)
#
# A rootfs is built in NAME.tmp and renamed into place, then stamped on mirror + suite + sorted packages
# (NAME.stamp beside it, not inside it, so the stamp never lands in an image): an unchanged call only
# compares the stamp and returns in milliseconds; a changed one rebuilds from scratch. apt's lists and
# caches are removed afterwards (they are tens of MB and only go stale inside an image) and every mtime is
# set to E2E_SOURCE_DATE_EPOCH so the image layers built from the tree do not change with the build time.
# Needs root (debootstrap, chroot, mount) and deb.debian.org.

THREETIER_E2E_DIR=${THREETIER_E2E_DIR:-$THREETIER_CACHE/e2e}
E2E_DEBIAN_MIRROR=${E2E_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Fixed timestamp for files and image metadata (2024-01-01T00:00:00Z); "deterministic-ish": package
# contents still change when the mirror publishes a point release.
E2E_SOURCE_DATE_EPOCH=${E2E_SOURCE_DATE_EPOCH:-1704067200}
export THREETIER_E2E_DIR
# Bump when e2e_rootfs changes what it produces, so existing trees are rebuilt.
_E2E_ROOTFS_REV=1

# _e2e_clamp_mtimes DIR: every file, directory and symlink gets the fixed timestamp.
_e2e_clamp_mtimes() {
  find "$1" -xdev -exec touch -h -d "@$E2E_SOURCE_DATE_EPOCH" {} +
}

# _e2e_rootfs_clean ROOTFS: what apt, dpkg and debootstrap leave behind that an image does not need.
_e2e_rootfs_clean() {
  local root=$1
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/cache/apt/archives/partial/* "$root"/var/log/apt/* "$root"/var/log/dpkg.log \
    "$root"/var/log/bootstrap.log "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old \
    "$root"/tmp/* "$root"/var/tmp/*
  # A fixed machine-id would make every container of the image share it; systemd-less images need none.
  : > "$root/etc/machine-id" 2>/dev/null || true
}

e2e_rootfs() {
  [[ $# -ge 2 ]] || die "usage: e2e_rootfs NAME SUITE [PACKAGE...]"
  local name=$1 suite=$2; shift 2
  local base="$THREETIER_E2E_DIR/rootfs"
  local dir="$base/$name" stamp="$base/$name.stamp" want packages=""
  if [[ $# -gt 0 ]]; then
    packages=$(printf '%s\n' "$@" | sort -u | paste -sd, -)
  fi
  want="mirror=$E2E_DEBIAN_MIRROR suite=$suite variant=minbase packages=$packages epoch=$E2E_SOURCE_DATE_EPOCH rev=$_E2E_ROOTFS_REV"
  if [[ -d $dir && -f $stamp && $(<"$stamp") == "$want" ]]; then
    printf '%s\n' "$dir"
    return 0
  fi
  [[ $(id -u) -eq 0 ]] || die "e2e_rootfs needs root (debootstrap, chroot)"
  command -v debootstrap >/dev/null || die "debootstrap is missing (requirements/apt-e2e.txt; scripts/setup.sh --e2e)"
  log "debootstrapping $name ($suite, minbase${packages:+, +$packages}); takes ~30-90 s"
  local start=$SECONDS tmp="$dir.tmp"
  mkdir -p "$base"
  rm -rf "$tmp" "$stamp"
  # One download of each .deb for every rootfs of the machine (a dozen debootstraps of the same suite on a cold
  # one): debootstrap checks a cached package against the suite's checksums before it uses it.
  mkdir -p "$base/debs"
  local args=(--variant=minbase "--cache-dir=$base/debs")
  [[ -z $packages ]] || args+=("--include=$packages")
  # Output goes to the log only on failure: a successful debootstrap prints ~200 lines.
  if ! debootstrap "${args[@]}" "$suite" "$tmp" "$E2E_DEBIAN_MIRROR" > "$base/$name.debootstrap.log" 2>&1; then
    tail -n 20 "$base/$name.debootstrap.log" >&2
    die "debootstrap of $name failed (full log: $base/$name.debootstrap.log)"
  fi
  _e2e_rootfs_clean "$tmp"
  _e2e_clamp_mtimes "$tmp"
  rm -rf "$dir" && mv "$tmp" "$dir"
  printf '%s' "$want" > "$stamp"
  rm -f "$base/$name.debootstrap.log"
  log "rootfs $name ready in $((SECONDS - start)) s ($(du -sh "$dir" | cut -f1))"
  printf '%s\n' "$dir"
}

# e2e_rootfs_install ROOTFS PACKAGE...: installs PACKAGEs (no recommends) into ROOTFS with apt-get in a
# chroot. Already-installed packages make it a no-op. A policy-rc.d inside the chroot keeps maintainer
# scripts from starting services; /proc is mounted only while apt runs and unmounted even when it fails.
# The caller owns ROOTFS's stamp: use it on a copy, or on a rootfs whose NAME encodes the extra packages.
e2e_rootfs_install() {
  [[ $# -ge 2 ]] || die "usage: e2e_rootfs_install ROOTFS PACKAGE..."
  local root=$1; shift
  [[ -x $root/usr/bin/apt-get ]] || die "$root is not a Debian rootfs"
  local missing=() pkg
  for pkg in "$@"; do
    chroot "$root" dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [[ ${#missing[@]} -gt 0 ]] || return 0
  log "installing into ${root##*/}: ${missing[*]}"
  (
    # Subshell: its EXIT trap runs on success and failure alike. The steps are chained with && so a failure
    # propagates even where a caller has switched set -e off (e.g. `e2e_rootfs_install ... || ...`).
    trap 'umount "$root/proc" 2>/dev/null || true; rm -f "$root/usr/sbin/policy-rc.d"' EXIT
    printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d" \
      && chmod 0755 "$root/usr/sbin/policy-rc.d" \
      && mount -t proc proc "$root/proc" \
      && DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  ) || die "installing ${missing[*]} into $root failed"
  _e2e_rootfs_clean "$root"
  _e2e_clamp_mtimes "$root"
}
