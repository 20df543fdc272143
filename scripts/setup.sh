#!/usr/bin/env bash
# Installs everything the project needs into $THREETIER_CACHE (outside the repo), idempotently:
#   - the Python toolchain (virtualenv from requirements/dev.txt + constraints.txt)
#   - network-config-analyzer in its own virtualenv
#   - Go tools built with `go install module/cmd@version` or from the build modules of tools/go, at the
#     versions of tools/versions.env
#   - the helm-diff plugin installed into the pinned helm
#   - the collection linked as ansible_collections/threetier/k8s so `threetier.k8s.*` resolves from the repo
# A warm run checks stamps only and takes seconds.
# Usage: setup.sh [--e2e]   --e2e also installs requirements/apt-e2e.txt and builds the e2e tier's tools
# (scripts/build-e2e-tools.sh: kubelet, kube-proxy, coredns, kube-router, traefik); without it nothing changes.
set -euo pipefail
# shellcheck source=env.sh
. "$(dirname "$0")/env.sh"
# shellcheck source=lib.sh
. "$THREETIER_ROOT/scripts/lib.sh"
START=$SECONDS
E2E=0
for arg in "$@"; do
  case $arg in
    --e2e) E2E=1 ;;
    *) die "unknown argument '$arg' (usage: setup.sh [--e2e])" ;;
  esac
done
mkdir -p "$THREETIER_CACHE" "$THREETIER_BIN"

find_python() {
  local candidate
  for candidate in "python$PYTHON_VERSION" "$(pyenv root 2>/dev/null || echo /root/.pyenv)/versions/$PYTHON_VERSION".*/bin/"python$PYTHON_VERSION"; do
    # Resolved to the real interpreter: env.sh puts the project's own venv first on PATH, and that venv is
    # about to be deleted and recreated from it.
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import ssl, sqlite3, venv' 2>/dev/null; then
      readlink -f "$(command -v "$candidate")"; return 0
    fi
  done
  die "Python $PYTHON_VERSION not found (looked on PATH and under pyenv); install it, e.g. apt-get install python$PYTHON_VERSION-venv"
}

# venv DIR REQUIREMENTS... : (re)creates DIR when the requirement files changed since the last install.
venv() {
  local dir=$1; shift
  local stamp want
  # Comments do not count: rewording one must not cost a reinstall.
  want=$(sed 's/#.*//; /^[[:space:]]*$/d' "$@" | sha256sum | cut -c1-16)-$PYTHON_VERSION
  stamp="$dir/.threetier-stamp"
  if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then return 0; fi
  log "creating virtualenv $dir"
  rm -rf "$dir"
  "$PYTHON" -m venv "$dir"
  local args=()
  for f in "$@"; do
    case $f in
      *constraints*) args+=(-c "$f") ;;
      *) args+=(-r "$f") ;;
    esac
  done
  "$dir/bin/pip" install --quiet --disable-pip-version-check "${args[@]}"
  echo "$want" > "$stamp"
  log "virtualenv $dir ready"
}

# apt_packages FILE: the Debian packages of FILE (requirements/apt.txt or apt-e2e.txt), installed when missing.
# policy-rc.d stops their maintainer scripts from starting the services (an nginx on 0.0.0.0:80 is not
# something a test setup may leave behind).
apt_packages() {
  local file=$1 missing=() pkg
  while read -r pkg; do
    [[ -z $pkg || $pkg == \#* ]] && continue
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done < "$file"
  [[ ${#missing[@]} -eq 0 ]] && return 0
  [[ $(id -u) -eq 0 ]] || die "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"
  log "installing Debian packages: ${missing[*]}"
  local policy=/usr/sbin/policy-rc.d created=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [[ $created -eq 1 ]] && rm -f "$policy"
  return 0
}

apt_packages "$THREETIER_ROOT/requirements/apt.txt"
[[ $E2E -eq 0 ]] || apt_packages "$THREETIER_ROOT/requirements/apt-e2e.txt"
PYTHON=$(find_python)
python_toolchain() {
  venv "$THREETIER_VENV" "$THREETIER_ROOT/requirements/dev.txt" "$THREETIER_ROOT/requirements/constraints.txt" "$THREETIER_ROOT/requirements.txt"
  venv "$THREETIER_CACHE/venv-nca" "$THREETIER_ROOT/requirements/nca.txt"
  ln -sfn "$THREETIER_CACHE/venv-nca/bin/nca" "$THREETIER_BIN/nca"
  # checkov pins boto3 and packaging: its own virtualenv too.
  venv "$THREETIER_CACHE/venv-checkov" "$THREETIER_ROOT/requirements/checkov.txt"
  ln -sfn "$THREETIER_CACHE/venv-checkov/bin/checkov" "$THREETIER_BIN/checkov"
  # ansible-runner (AWX's transmit/process side of a job, tests/support/awx_jobs.py) beside the main toolchain.
  venv "$THREETIER_CACHE/venv-runner" "$THREETIER_ROOT/requirements/runner.txt"
  ln -sfn "$THREETIER_CACHE/venv-runner/bin/ansible-runner" "$THREETIER_BIN/ansible-runner"
}

# The virtualenvs are mostly downloads and unpacking, the Go builds mostly compiling: on a cold machine they run
# side by side (docs/e2e.md has the times); a warm run skips both in milliseconds. Neither uses the other.
python_toolchain &
python_pid=$!
trap 'kill "$python_pid" 2>/dev/null || true' EXIT
"$THREETIER_ROOT/scripts/build-go-tools.sh"
wait "$python_pid" || die "the Python toolchain failed (its output is above)"
trap - EXIT
[[ $E2E -eq 0 ]] || "$THREETIER_ROOT/scripts/build-go-tools.sh" e2e

# ansible-test --venv bootstraps pip with a script from a host these machines cannot reach; put the
# project's stand-in where ansible-test caches it, named for the pip version this ansible-test pins.
pip_version=$("$THREETIER_VENV/bin/python" - <<'PY'
import re, pathlib, ansible_test
src = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
print(re.search(r"pip='([0-9.]+)'", src.read_text()).group(1))
PY
)
mkdir -p "$HOME/.ansible/test/cache"
cp "$THREETIER_ROOT/scripts/ansible_test_get_pip.py" "$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"

# The repo is the collection: expose it where Ansible looks (ansible.cfg's collections_path).
mkdir -p "$THREETIER_ROOT/.collections/ansible_collections/threetier"
ln -sfn ../../.. "$THREETIER_ROOT/.collections/ansible_collections/threetier/k8s"
# awx.awx (not in the `ansible` package; Galaxy is unreachable) from its released source in ../shared/sources,
# linked beside it: awx/configure.yml's tests and ansible-lint run the real modules.
"$THREETIER_ROOT/scripts/build-awx-collection.sh" >/dev/null

log "setup done in $((SECONDS - START)) s (cache: $THREETIER_CACHE)"
