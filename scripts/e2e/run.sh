#!/usr/bin/env bash
# `make e2e`: the Molecule scenario molecule/e2e on the real node, then a summary of the seven proofs, ending
# with "N passed, N failed". Needs root (containerd, kubelet, iptables) and the images of build-images.sh.
set -euo pipefail
# shellcheck source=../env.sh
. "$(dirname "$0")/../env.sh"
# shellcheck source=../lib.sh
. "$THREETIER_ROOT/scripts/lib.sh"
[[ $(id -u) -eq 0 ]] || die "the e2e tier runs a real node (containerd, kubelet, iptables): run it as root"
E2E_DIR=${THREETIER_E2E_DIR:-$THREETIER_CACHE/e2e}
mkdir -p "$E2E_DIR"
logfile="$E2E_DIR/molecule-e2e.log"
start=$SECONDS
cd "$THREETIER_ROOT"
set +e
ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 molecule test -s e2e 2>&1 | tee "$logfile"
rc=${PIPESTATUS[0]}
set -e
log "molecule test -s e2e exited $rc after $((SECONDS - start)) s (log: $logfile)"
# Each proof prints "PROOF <name>: <numbers>" or "PROOF <name> FAILED: <why>"; Ansible shows them quoted.
echo "== e2e proofs =="
grep -oE 'PROOF [a-z]+( FAILED)?: [^"]*' "$logfile" | sort -u -t: -k1,1 | sed 's/\\n/ /g' || true
passed=$(grep -oE 'PROOF [a-z]+: ' "$logfile" | sort -u | wc -l)
failed=$(grep -oE 'PROOF [a-z]+ FAILED' "$logfile" | sort -u | wc -l)
expected=7
missing=$((expected - passed - failed))
[[ $missing -gt 0 ]] && echo "$missing proof(s) did not run (an earlier step failed: see $logfile)"
[[ $rc -ne 0 && $failed -eq 0 && $missing -le 0 ]] && failed=1
echo "$passed passed, $((failed + (missing > 0 ? missing : 0))) failed"
[[ $rc -eq 0 && $passed -eq $expected ]]
