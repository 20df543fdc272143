#!/usr/bin/env bash
# Re-resolves requirements/constraints.txt: a clean virtualenv, an install of requirements/dev.txt without
# constraints, then a freeze. Review the diff before committing it.
set -euo pipefail
# shellcheck source=env.sh
. "$(dirname "$0")/env.sh"
# shellcheck source=lib.sh
. "$THREETIER_ROOT/scripts/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"python$PYTHON_VERSION" -m venv "$tmp/venv" 2>/dev/null || "$(pyenv root)/versions/$PYTHON_VERSION".*/bin/python"$PYTHON_VERSION" -m venv "$tmp/venv"
log "resolving requirements/dev.txt"
"$tmp/venv/bin/pip" install --quiet -r "$THREETIER_ROOT/requirements/dev.txt"
{
  echo "# Full pin set of requirements/dev.txt (pip freeze of a clean venv on Python $PYTHON_VERSION). Regenerate with"
  echo "#   make lock"
  "$tmp/venv/bin/pip" freeze --exclude-editable
} > "$THREETIER_ROOT/requirements/constraints.txt"
log "requirements/constraints.txt written"
