#!/usr/bin/env bash
# `make e2e`: the Molecule scenario molecule/e2e on the real node, then a summary of its proofs, ending
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
# Each proof appends "PROOF <name>: <numbers>" or "PROOF <name> FAILED: <why>" here (molecule/e2e/files/proofs.py).
export E2E_PROOF_LOG="$E2E_DIR/proofs.log"
: > "$E2E_PROOF_LOG"
start=$SECONDS
cd "$THREETIER_ROOT"
# An interrupted run leaves Molecule believing the node exists (it would skip create); create itself reuses
# whatever healthy node and servers are running, so forgetting Molecule's state is always safe.
molecule reset -s e2e > /dev/null 2>&1 || true
set +e
ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 molecule test -s e2e 2>&1 | tee "$logfile"
rc=${PIPESTATUS[0]}
set -e
log "molecule test -s e2e exited $rc after $((SECONDS - start)) s (log: $logfile)"
echo "== e2e proofs =="
cat "$E2E_PROOF_LOG"
# Every proof of molecule/e2e (verify.yml, side_effect.yml), in the order they run.
EXPECTED=(app dbcluster netpol dbnetpol podsecurity dbpodsecurity pdb graceful hpa rollout dbpdb failover switchover backup external)
passed=0 failed=0 missing=()
for proof in "${EXPECTED[@]}"; do
  if grep -qE "^PROOF $proof: " "$E2E_PROOF_LOG"; then
    passed=$((passed + 1))
  elif grep -qE "^PROOF $proof FAILED" "$E2E_PROOF_LOG"; then
    failed=$((failed + 1))
  else
    missing+=("$proof")
  fi
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "${#missing[@]} proof(s) did not run (an earlier step failed; see $logfile): ${missing[*]}"
  failed=$((failed + ${#missing[@]}))
fi
# A failed Molecule step that no proof explains (create, converge, idempotence, destroy) fails the run too.
if [[ $rc -ne 0 && $failed -eq 0 ]]; then
  echo "molecule failed outside the proofs (see $logfile)"
  failed=1
fi
echo "$passed passed, $failed failed"
[[ $rc -eq 0 && $failed -eq 0 ]]
