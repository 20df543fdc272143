# shellcheck shell=bash
# Small helpers shared by the setup and cluster scripts.
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# GO_LDFLAGS, when set, is passed as -ldflags (an -ldflags inside GOFLAGS works too when it is unset) (how Helm and Kubernetes stamp their version strings: without
# it `helm version` says v3.22 and kube-apiserver says v0.0.0, which version checks reject).
# GO_TAGS, when set, is passed as -tags (e.g. promtool without the service discoveries it never uses here).
# _go_build_stamp [MODULE_DIR]: what a tool was built with (ldflags, tags, cgo and, for a build module, its
# go.sum); a tool whose stamp differs is rebuilt, so a dependency bumped in a build module reaches the binary.
_go_build_stamp() {
  printf '%s%s' "${GO_LDFLAGS:-}" "${GO_TAGS:+ tags=$GO_TAGS}"
  [[ ${CGO_ENABLED:-} == 0 ]] && printf ' cgo=0'
  [[ -z ${1:-} ]] || printf ' go.sum=%s' "$(sha256sum < "$1/go.sum" | cut -c1-16)"
}
# _go_tool_fresh DEST BINARY [MODULE_DIR]: true when DEST/BINARY was built as the current settings would build it.
_go_tool_fresh() {
  [[ -x $1/$2 && -f $1/.ldflags && $(cat "$1/.ldflags") == "$(_go_build_stamp "${3:-}")" ]]
}

# require_pin MODULE_DIR MODULE VERSION: a build module must require the version tools/versions.env names;
# otherwise the cache entry NAME@VERSION would hold a binary of another release. go.mod is read directly (not
# `go list`), so a warm run stays in milliseconds.
require_pin() {
  local dir=$1 module=$2 want=$3 have
  have=$(awk -v m="$module" '$1 == "require" { $1 = ""; $0 = $0 } $1 == m && $2 ~ /^v[0-9]/ { print $2; exit }' "$dir/go.mod")
  [[ $have == "$want" ]] \
    || die "${dir#"$THREETIER_ROOT"/}/go.mod requires $module ${have:-nothing} but tools/versions.env says $want; update the build module (see its header)"
}

# A tool lives in $THREETIER_CACHE/go-tools/NAME@VERSION/BINARY and is linked as $THREETIER_BIN/NAME.
# A tool already built at that version (and with the same GO_LDFLAGS) is not rebuilt, so a warm run takes
# milliseconds; the Go build and module caches (outside the repo) make a rebuild after a bump cheap.
_go_tool_link() {
  mkdir -p "$THREETIER_BIN"
  ln -sfn "$1" "$THREETIER_BIN/$2"
}

# go_tool NAME VERSION PACKAGE@VERSION [BINARY]: `go install` a main package at a pinned version.
go_tool() {
  local name=$1 version=$2 pkg=$3 binary=${4:-}
  [[ -n $binary ]] || binary=$(basename "${pkg%@*}")
  local dest="$THREETIER_CACHE/go-tools/$name@$version"
  if ! _go_tool_fresh "$dest" "$binary"; then
    log "building $name $version (go install $pkg); a cold build takes minutes"
    local start=$SECONDS
    rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
    GOBIN="$dest.tmp" go install -trimpath ${GO_TAGS:+-tags "$GO_TAGS"} ${GO_LDFLAGS:+-ldflags "$GO_LDFLAGS"} "$pkg" \
      || die "go install $pkg failed"
    _go_build_stamp > "$dest.tmp/.ldflags"
    rm -rf "$dest" && mv "$dest.tmp" "$dest"
    log "built $name $version in $((SECONDS - start)) s"
  fi
  _go_tool_link "$dest/$binary" "$name"
}

# go_module_tool NAME VERSION MODULE_DIR PACKAGE: `go build` a main package that a build module under
# tools/go/ pins (for modules that need replace lines or whose version list the proxy refuses).
go_module_tool() {
  local name=$1 version=$2 moddir=$3 pkg=$4
  local dest="$THREETIER_CACHE/go-tools/$name@$version"
  if ! _go_tool_fresh "$dest" "$name" "$moddir"; then
    log "building $name $version (go build $pkg in ${moddir#"$THREETIER_ROOT"/}); a cold build takes minutes"
    local start=$SECONDS
    rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
    go build -C "$moddir" -trimpath ${GO_TAGS:+-tags "$GO_TAGS"} ${GO_LDFLAGS:+-ldflags "$GO_LDFLAGS"} -o "$dest.tmp/$name" "$pkg" \
      || die "go build $pkg failed"
    _go_build_stamp "$moddir" > "$dest.tmp/.ldflags"
    rm -rf "$dest" && mv "$dest.tmp" "$dest"
    log "built $name $version in $((SECONDS - start)) s"
  fi
  _go_tool_link "$dest/$name" "$name"
}
