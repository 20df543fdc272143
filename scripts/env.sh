# shellcheck shell=bash
# Sourced by every script and the Makefile: where the project's tools live and which versions they are.
# Nothing here installs anything; scripts/setup.sh does.
THREETIER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
THREETIER_CACHE="${THREETIER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/threetier-k8s}"
set -a
# shellcheck source=../tools/versions.env
. "$THREETIER_ROOT/tools/versions.env"
set +a
THREETIER_VENV="$THREETIER_CACHE/venv"
THREETIER_BIN="$THREETIER_CACHE/bin"
export THREETIER_ROOT THREETIER_CACHE THREETIER_VENV THREETIER_BIN
export PATH="$THREETIER_BIN:$THREETIER_VENV/bin:$PATH"
# Helm keeps its repositories, cache and plugins under the project cache, so the user's own ~/.config/helm
# is never touched and helm-diff is always the pinned build.
export HELM_PLUGINS="$THREETIER_CACHE/helm/plugins"
export HELM_CACHE_HOME="$THREETIER_CACHE/helm/cache"
export HELM_CONFIG_HOME="$THREETIER_CACHE/helm/config"
export HELM_DATA_HOME="$THREETIER_CACHE/helm/data"
export GOBIN=""
export ANSIBLE_CONFIG="$THREETIER_ROOT/ansible.cfg"
