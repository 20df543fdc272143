#!/usr/bin/env bash
# Builds the awx.awx collection from its released source (../shared/sources/$AWX_COLLECTION_ARCHIVE, AWX
# $AWX_COLLECTION_VERSION) the way AWX's own Makefile target `build_collection` does, installs it offline into
# $THREETIER_CACHE/awx-collection/collections and links it as .collections/ansible_collections/awx/awx, where
# ansible.cfg (and so ansible-lint, ansible-doc and awx/configure.yml run from the checkout) finds it.
# Galaxy is unreachable here; users install the same release with `ansible-galaxy collection install -r
# awx/requirements.yml`. A warm run compares a stamp (archive hash, version, this script) and takes milliseconds.
# Usage: build-awx-collection.sh            (prints the collections path)
set -euo pipefail
# shellcheck source=env.sh
. "$(dirname "$0")/env.sh"
# shellcheck source=lib.sh
. "$THREETIER_ROOT/scripts/lib.sh"

SOURCES=${THREETIER_SHARED_SOURCES:-$(cd "$THREETIER_ROOT/.." && pwd)/shared/sources}
ARCHIVE="$SOURCES/$AWX_COLLECTION_ARCHIVE"
OUT="$THREETIER_CACHE/awx-collection"
COLLECTIONS="$OUT/collections"
INSTALLED="$COLLECTIONS/ansible_collections/awx/awx"
TARBALL="$OUT/awx-awx-$AWX_COLLECTION_VERSION.tar.gz"
[[ -f $ARCHIVE ]] || die "$ARCHIVE is missing (the awx.awx source archive; CI lays ../shared beside the clone)"

want="$(sha256sum < "$ARCHIVE" | cut -c1-32) version=$AWX_COLLECTION_VERSION $(sha256sum < "${BASH_SOURCE[0]}" | cut -c1-16)"
if [[ ! -f $OUT/.stamp || $(<"$OUT/.stamp") != "$want" || ! -f $INSTALLED/MANIFEST.json ]]; then
  log "building awx.awx $AWX_COLLECTION_VERSION from ${ARCHIVE##*/}"
  start=$SECONDS
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  tar -C "$tmp" -xzf "$ARCHIVE"
  [[ -f $tmp/awx_collection/tools/template_galaxy.yml ]] || die "${ARCHIVE##*/} holds no awx_collection/tools/template_galaxy.yml"
  printf '[defaults]\n' > "$tmp/ansible.cfg"
  export ANSIBLE_CONFIG="$tmp/ansible.cfg" ANSIBLE_HOME="$tmp/home" ANSIBLE_NOCOLOR=1 ANSIBLE_COLLECTIONS_PATH="$COLLECTIONS"
  # AWX's Makefile: `ansible-playbook -i localhost, awx_collection/tools/template_galaxy.yml -e
  # collection_package=awx -e collection_namespace=awx -e collection_version=V -e awx_template_version=...`,
  # then `ansible-galaxy collection build`. awx_template_version=true stamps the version into
  # module_utils/controller_api.py as released collections carry it (the modules compare it with the server's).
  # The playbook's `assert: that: collection_version` predates ansible-core 2.19's boolean conditionals, so
  # that one run allows them (it is AWX's build tool, not content of this project).
  ANSIBLE_ALLOW_BROKEN_CONDITIONALS=1 ansible-playbook -i localhost, -c local \
    -e "ansible_python_interpreter=$THREETIER_VENV/bin/python" \
    -e collection_package=awx -e collection_namespace=awx -e "collection_version=$AWX_COLLECTION_VERSION" \
    -e '{"awx_template_version": true}' -e "collection_path=$tmp/build" \
    "$tmp/awx_collection/tools/template_galaxy.yml" > "$tmp/template.log" 2>&1 \
    || { tail -n 30 "$tmp/template.log" >&2; die "templating the awx.awx source failed"; }
  grep -q "^    _COLLECTION_VERSION = \"$AWX_COLLECTION_VERSION\"" "$tmp/build/plugins/module_utils/controller_api.py" \
    || die "the collection version was not stamped into controller_api.py"
  mkdir -p "$OUT"
  rm -rf "$COLLECTIONS" "$TARBALL"
  ansible-galaxy collection build --force --output-path "$OUT" "$tmp/build" >/dev/null
  ansible-galaxy collection install --offline --no-deps --force --collections-path "$COLLECTIONS" "$TARBALL" >/dev/null
  [[ -f $INSTALLED/MANIFEST.json ]] || die "awx.awx did not install into $COLLECTIONS"
  printf '%s' "$want" > "$OUT/.stamp"
  log "awx.awx $AWX_COLLECTION_VERSION built and installed in $((SECONDS - start)) s"
fi
mkdir -p "$THREETIER_ROOT/.collections/ansible_collections/awx"
ln -sfn "$INSTALLED" "$THREETIER_ROOT/.collections/ansible_collections/awx/awx"
printf '%s\n' "$COLLECTIONS"
