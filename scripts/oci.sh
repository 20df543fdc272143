# shellcheck shell=bash
# OCI images for the e2e tier without a daemon or a registry (sourced; needs scripts/env.sh and scripts/lib.sh).
#
#   oci_image NAME TAG SRC_DIR [options]  SRC_DIR's tree (a rootfs, or a directory holding a static binary)
#                                         becomes the single layer of an image, written as a docker-archive
#                                         $THREETIER_E2E_DIR/images/NAME_TAG.tar; prints that path
#       --user UID:GID  --entrypoint ARG (repeatable, or one JSON array)  --cmd ARG (repeatable, or JSON)
#       --env K=V (repeatable)  --workdir DIR  --label K=V (repeatable)  --port N[/proto] (repeatable)
#       --add FILE:TARGET (repeatable)  FILE (a symlink is followed) as /TARGET in a layer of its own, so a
#                                       binary goes on top of a shared rootfs without copying the rootfs
#   oci_image_ref NAME TAG                the reference the archive imports as: $E2E_IMAGE_PREFIX/NAME:TAG
#   oci_images                            one line per built image: REFERENCE<TAB>ARCHIVE
#
# How: umoci builds an OCI layout (init, new, insert SRC_DIR at /, config), then skopeo copies it into a
# docker-archive whose manifest.json carries RepoTags; `ctr -n k8s.io images import FILE` keeps that name, so
# the kubelet finds localhost/threetier-e2e/NAME:TAG without any registry (imagePullPolicy: IfNotPresent).
# An oci-archive would need the full reference in its index annotation instead; docker-archive is simpler.
# Images are linux/amd64 with a fixed creation time (E2E_SOURCE_DATE_EPOCH); the layer keeps the tree's own
# mtimes, so trees from e2e_rootfs (clamped) give the same layer twice.
# An archive is stamped (NAME_TAG.stamp) with a hash of the tree listing (path, size, mtime, mode, owner,
# link target) and of the options: an unchanged image is not rebuilt and the check takes milliseconds for a
# small tree, well under a second for a Debian rootfs.

THREETIER_E2E_DIR=${THREETIER_E2E_DIR:-$THREETIER_CACHE/e2e}
E2E_IMAGE_PREFIX=${E2E_IMAGE_PREFIX:-localhost/threetier-e2e}
E2E_SOURCE_DATE_EPOCH=${E2E_SOURCE_DATE_EPOCH:-1704067200}
export THREETIER_E2E_DIR E2E_IMAGE_PREFIX

oci_image_ref() { printf '%s/%s:%s\n' "$E2E_IMAGE_PREFIX" "$1" "$2"; }

oci_images() {
  local ref
  for ref in "$THREETIER_E2E_DIR"/images/*.ref; do
    [[ -f $ref && -f ${ref%.ref}.tar ]] || continue
    printf '%s\t%s\n' "$(<"$ref")" "${ref%.ref}.tar"
  done
}

# _oci_json_args ARG...: a single argument that is a JSON array is split into its elements (one per
# line); anything else is passed through. Lets callers write --entrypoint '["/coredns","-conf","x"]'.
_oci_json_args() {
  if [[ $# -eq 1 && $1 == \[* ]]; then
    python3 -c 'import json,sys; [print(a) for a in json.loads(sys.argv[1])]' "$1"
  else
    printf '%s\n' "$@"
  fi
}

# _oci_tree_hash DIR: a hash of everything in DIR that ends up in the layer.
_oci_tree_hash() {
  (cd "$1" && find . -xdev -printf '%P\t%y\t%s\t%T@\t%m\t%U:%G\t%l\n' | LC_ALL=C sort | sha256sum | cut -c1-32)
}

oci_image() {
  [[ $# -ge 3 ]] || die "usage: oci_image NAME TAG SRC_DIR [--user U:G] [--entrypoint A]... [--cmd A]... [--env K=V]... [--workdir D] [--label K=V]... [--port N]..."
  local name=$1 tag=$2 src=$3; shift 3
  [[ -d $src ]] || die "oci_image $name: $src is not a directory"
  local user="" workdir="" entrypoint=() cmd=() envs=() labels=() ports=() adds=()
  while [[ $# -gt 0 ]]; do
    [[ $# -ge 2 ]] || die "oci_image $name: option $1 needs a value"
    case $1 in
      --user) user=$2 ;;
      --entrypoint) entrypoint+=("$2") ;;
      --cmd) cmd+=("$2") ;;
      --env) envs+=("$2") ;;
      --workdir) workdir=$2 ;;
      --label) labels+=("$2") ;;
      --port) ports+=("$2") ;;
      --add)
        [[ $2 == *:/* && -f ${2%%:*} ]] || die "oci_image $name: --add wants FILE:/TARGET with an existing FILE, got $2"
        adds+=("$2") ;;
      *) die "oci_image $name: unknown option $1" ;;
    esac
    shift 2
  done
  local ep_args=() cmd_args=() line
  if [[ ${#entrypoint[@]} -gt 0 ]]; then
    while IFS= read -r line; do ep_args+=("$line"); done < <(_oci_json_args "${entrypoint[@]}")
  fi
  if [[ ${#cmd[@]} -gt 0 ]]; then
    while IFS= read -r line; do cmd_args+=("$line"); done < <(_oci_json_args "${cmd[@]}")
  fi

  local out="$THREETIER_E2E_DIR/images" ref want
  local archive="$out/${name}_$tag.tar" stamp="$out/${name}_$tag.stamp"
  ref=$(oci_image_ref "$name" "$tag")
  # The options are hashed as NUL-separated words so "--env A=B C" and "--env A=B --env C" differ.
  # This file's own hash is part of the stamp: a change to how images are built rebuilds them (seconds).
  local add added=""
  # Added files count by size, mtime and mode (hashing 100 MB binaries would cost a warm run ~1 s).
  for add in "${adds[@]}"; do
    added+="$add $(stat -L -c '%s %Y %a' "${add%%:*}");"
  done
  want="$(_oci_tree_hash "$src")-$(printf '%s\0' "$added" "$(sha256sum < "${BASH_SOURCE[0]}")" "$ref" "$user" "$workdir" "$E2E_SOURCE_DATE_EPOCH" \
    E "${ep_args[@]}" C "${cmd_args[@]}" V "${envs[@]}" L "${labels[@]}" P "${ports[@]}" | sha256sum | cut -c1-32)"
  if [[ -f $archive && -f $stamp && $(<"$stamp") == "$want" ]]; then
    printf '%s\n' "$archive"
    return 0
  fi
  command -v umoci >/dev/null && command -v skopeo >/dev/null \
    || die "umoci and skopeo are needed (requirements/apt-e2e.txt; scripts/setup.sh --e2e)"
  log "building image $ref from ${src/#"$THREETIER_CACHE"/\$THREETIER_CACHE}"
  local start=$SECONDS layout="$out/.build-${name}_$tag"
  local created
  created=$(date -u -d "@$E2E_SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
  mkdir -p "$out"
  rm -rf "$layout" "$archive.tmp" "$stamp"
  umoci init --layout "$layout"
  umoci new --image "$layout:$tag"
  # An explicit history entry: umoci's default records the host path of SRC_DIR and the build time, and
  # none at all confuses tools that pair history entries with layers.
  umoci insert --image "$layout:$tag" --history.created "$created" --history.author threetier.k8s \
    --history.created_by "oci_image $name $tag (scripts/oci.sh)" "$src" /
  for add in "${adds[@]}"; do
    umoci insert --image "$layout:$tag" --history.created "$created" --history.author threetier.k8s \
      --history.created_by "oci_image --add ${add#*:}" "$(readlink -f "${add%%:*}")" "${add#*:}"
  done
  local conf=(--no-history --image "$layout:$tag" --os linux --architecture amd64
    --created "$created" --author threetier.k8s --config.workingdir "${workdir:-/}")
  local a
  [[ -z $user ]] || conf+=(--config.user "$user")
  for a in "${ep_args[@]}"; do conf+=(--config.entrypoint "$a"); done
  for a in "${cmd_args[@]}"; do conf+=(--config.cmd "$a"); done
  # Without an explicit PATH a container runtime would leave it unset for images without a shell.
  conf+=(--config.env "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
  for a in "${envs[@]}"; do conf+=(--config.env "$a"); done
  for a in "${labels[@]}"; do conf+=(--config.label "$a"); done
  for a in "${ports[@]}"; do
    [[ $a == */* ]] || a="$a/tcp"
    conf+=(--config.exposedports "$a")
  done
  umoci config "${conf[@]}"
  # skopeo writes RepoTags=[ref] into manifest.json; ctr import names the image after it.
  skopeo --insecure-policy copy --quiet "oci:$layout:$tag" "docker-archive:$archive.tmp:$ref"
  mv "$archive.tmp" "$archive"
  rm -rf "$layout"
  printf '%s\n' "$ref" > "$out/${name}_$tag.ref"
  printf '%s' "$want" > "$stamp"
  log "image $ref built in $((SECONDS - start)) s ($(du -h "$archive" | cut -f1))"
  printf '%s\n' "$archive"
}
