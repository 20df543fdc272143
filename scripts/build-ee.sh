#!/usr/bin/env bash
# Builds the execution environment of execution-environment.yml without a container engine, the way the
# e2e tier builds its images (debootstrap rootfs, umoci, skopeo docker-archive; scripts/rootfs.sh, oci.sh):
#
#   1. the collection tarball (`make build`; reused while its MANIFEST.json and FILES.json are unchanged);
#   2. `ansible-builder create` writes the build context (Containerfile + _build/) from the EE definition;
#   3. the base image docker.io/library/debian:$EE_DEBIAN_RELEASE is stood in for by a debootstrapped trixie
#      minbase, refused unless /etc/debian_version says $EE_DEBIAN_RELEASE;
#   4. scripts/ee_build.py runs the Containerfile's stages in chroots, with two named departures: the
#      helm-build stage is the project's own Go build of the same versions (scripts/build-go-tools.sh), and the
#      galaxy stage finds the pinned collections already installed (from the ansible wheel in the project's
#      virtualenv: Galaxy is unreachable) and runs its `ansible-galaxy collection install` with --offline;
#   5. the final stage must have python3 $EE_PYTHON_VERSION; it becomes a docker-archive
#      $THREETIER_CACHE/ee/images/threetier-k8s-ee_<version>.tar (localhost/threetier-k8s-ee:<version>), and
#      that archive is unpacked into a runc bundle ($THREETIER_CACHE/ee/bundles/...).
#
# Everything is cached under $THREETIER_CACHE/ee and stamped: an unchanged collection rebuilds nothing (about
# a second); a changed collection reruns the galaxy, builder and final stages (minutes). Prints KEY=VALUE
# lines (image reference, archive, bundle, sizes, seconds) for the tests. Needs root, debootstrap, umoci,
# skopeo (requirements/apt.txt) and the network (deb.debian.org, PyPI).
set -euo pipefail
shopt -s inherit_errexit
# shellcheck source=env.sh
. "$(dirname "$0")/env.sh"
# shellcheck source=lib.sh
. "$THREETIER_ROOT/scripts/lib.sh"
THREETIER_E2E_DIR="$THREETIER_CACHE/ee"
E2E_IMAGE_PREFIX=localhost
# shellcheck source=rootfs.sh
. "$THREETIER_ROOT/scripts/rootfs.sh"
# shellcheck source=oci.sh
. "$THREETIER_ROOT/scripts/oci.sh"

[[ $(id -u) -eq 0 ]] || die "build-ee.sh needs root (debootstrap, chroot)"
EE="$THREETIER_CACHE/ee"
SRC="$EE/src"
START=$SECONDS
VERSION=$(sed -n 's/^version: *//p' "$THREETIER_ROOT/galaxy.yml")
TARBALL="threetier-k8s-$VERSION.tar.gz"
NAME=threetier-k8s-ee
mkdir -p "$SRC/dist" "$SRC/requirements" "$SRC/tools/go/clients"

# 1. The collection tarball, replaced only when its content changed (the gzip header carries the build time,
# which would otherwise make every later stage look changed).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ansible-galaxy collection build --force --output-path "$tmp" "$THREETIER_ROOT" >/dev/null
"$THREETIER_VENV/bin/python" - "$tmp/$TARBALL" "$SRC/dist/$TARBALL" <<'PY' || mv "$tmp/$TARBALL" "$SRC/dist/$TARBALL"
import sys, tarfile
def members(path):
    with tarfile.open(path) as tar:
        return {m: tar.extractfile(m).read() for m in ("MANIFEST.json", "FILES.json")}
try:
    sys.exit(0 if members(sys.argv[1]) == members(sys.argv[2]) else 1)
except (OSError, tarfile.TarError, KeyError):
    sys.exit(1)
PY

# 2. The build context, as `make build && ansible-builder create` gives it in a checkout.
cp "$THREETIER_ROOT/execution-environment.yml" "$THREETIER_ROOT/requirements.txt" "$SRC/"
cp "$THREETIER_ROOT"/requirements/{constraints.txt,ee-constraints.txt,ee-bindep.txt} "$SRC/requirements/"
cp "$THREETIER_ROOT"/tools/go/clients/go.{mod,sum} "$SRC/tools/go/clients/"
rm -rf "$SRC/context"
(cd "$SRC" && ansible-builder create -f execution-environment.yml -c context --output-filename Containerfile >/dev/null)

# 3. The base: debootstrap of the pinned release.
base_ref=$(sed -n 's/^ARG EE_BASE_IMAGE="\(.*\)"$/\1/p' "$SRC/context/Containerfile")
[[ $base_ref == "docker.io/library/debian:$EE_DEBIAN_RELEASE" ]] \
  || die "execution-environment.yml's base image is $base_ref, tools/versions.env pins debian:$EE_DEBIAN_RELEASE"
rootfs=$(e2e_rootfs "ee-base-trixie" trixie)
debian=$(<"$rootfs/etc/debian_version")
[[ $debian == "$EE_DEBIAN_RELEASE" ]] || die "the debootstrapped base is Debian $debian, not the pinned $EE_DEBIAN_RELEASE: \
deb.debian.org serves only the current point release. Test the EE on $debian, then bump EE_DEBIAN_RELEASE (and \
EE_PYTHON_VERSION) in tools/versions.env and the base image tag in execution-environment.yml."

# 4. The stages. helm and helm-diff: the project's builds of HELM_VERSION / HELM_DIFF_VERSION, at the paths the
# helm-build stage would leave them.
helm_stage="$EE/helm-build"
mkdir -p "$helm_stage/out"
for tool in helm helm-diff; do
  src=$(readlink -f "$THREETIER_BIN/$tool") || die "$tool is not built (make setup)"
  cmp -s "$src" "$helm_stage/out/$tool" 2>/dev/null || install -m 0755 "$src" "$helm_stage/out/$tool"
done
[[ $("$helm_stage/out/helm" version --short) == "$HELM_VERSION" ]] || die "the cached helm is not $HELM_VERSION"
bundled=$("$THREETIER_VENV/bin/python" -c 'import ansible_collections, pathlib; print(pathlib.Path(ansible_collections.__path__[0]))')
seeds=()
while read -r fqcn; do
  seeds+=(--seed "galaxy:/usr/share/ansible/collections/ansible_collections/${fqcn/.//}=$bundled/${fqcn/.//}")
done < <("$THREETIER_VENV/bin/python" - "$SRC/context/_build/requirements.yml" <<'PY'
import sys, yaml
for item in yaml.safe_load(open(sys.argv[1]))["collections"]:
    if item.get("type") != "file":
        print(item["name"])
PY
)
# The build host's CA bundle for the RUN steps' downloads (PyPI may sit behind a TLS-intercepting proxy, as
# here); it is not put into the image.
host_ca=()
for ca in "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
  if [[ -n $ca && -f $ca ]]; then host_ca=(--host-ca "$ca"); break; fi
done
"$THREETIER_VENV/bin/python" "$THREETIER_ROOT/scripts/ee_build.py" --context "$SRC/context" --work "$EE/build" "${host_ca[@]}" \
  --image "$base_ref=$rootfs" --stage-dir "helm-build=$helm_stage" "${seeds[@]}" \
  --build-arg ANSIBLE_GALAXY_CLI_COLLECTION_OPTS=--offline --config-out "$EE/build/image.json"

# 5. The image.
final=$("$THREETIER_VENV/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["rootfs"])' "$EE/build/image.json")
python=$(chroot "$final" /usr/bin/python3 -c 'import platform; print(platform.python_version())')
[[ $python == "$EE_PYTHON_VERSION" ]] || die "the EE's python3 is $python, tools/versions.env pins $EE_PYTHON_VERSION"
args=()
# The final stage's image config as oci_image options (PATH is oci.sh's own default).
while IFS= read -r line; do args+=("$line"); done < <("$THREETIER_VENV/bin/python" - "$EE/build/image.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
out = ["--user", config["user"], "--workdir", config["workdir"]]
out += [w for arg in config["entrypoint"] for w in ("--entrypoint", arg)]
out += [w for arg in config["cmd"] for w in ("--cmd", arg)]
out += [w for k, v in config["env"].items() if k != "PATH" for w in ("--env", f"{k}={v}")]
out += [w for k, v in config["labels"].items() for w in ("--label", f"{k}={v}")]
print("\n".join(out))
PY
)
archive=$(oci_image "$NAME" "$VERSION" "$final" "${args[@]}" --label "org.opencontainers.image.version=$VERSION")
ref=$(oci_image_ref "$NAME" "$VERSION")

bundle="$EE/bundles/${NAME}_$VERSION"
if [[ ! -f $bundle/.stamp || $(<"$bundle/.stamp") != "$(<"${archive%.tar}.stamp")" ]]; then
  rm -rf "$bundle" "$bundle.oci" && mkdir -p "$(dirname "$bundle")"
  skopeo --insecure-policy copy --quiet "docker-archive:$archive" "oci:$bundle.oci:$VERSION"
  umoci unpack --image "$bundle.oci:$VERSION" "$bundle" >/dev/null
  rm -rf "$bundle.oci"
  cp "${archive%.tar}.stamp" "$bundle/.stamp"
fi
printf 'EE_IMAGE=%s\nEE_ARCHIVE=%s\nEE_BUNDLE=%s\nEE_ARCHIVE_BYTES=%s\nEE_ROOTFS_BYTES=%s\nEE_BUILD_SECONDS=%s\n' \
  "$ref" "$archive" "$bundle" "$(stat -c %s "$archive")" "$(du -sb "$bundle/rootfs" | cut -f1)" "$((SECONDS - START))"
