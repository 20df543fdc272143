#!/usr/bin/env bash
# A Molecule scenario on the real node, then a summary of its proofs, ending with "N passed, N failed".
#   tests/harness/real_node/run.sh [e2e|e2e-ci]    (default e2e: `make e2e`; e2e-ci: `make e2e-ci`, the pass CI runs)
# Refuses to start, naming what is missing, where the node cannot run (not root, a kernel without overlayfs,
# br_netfilter, iptables' nat table or ipset). The node changes the host (links, iptables, sysctls) while it
# runs: an interrupted run (Ctrl-C, a CI timeout's SIGTERM) still tears it down, and `down` checks that the
# host is left as it was found. After a failure the diagnosis the scenario's destroy collected (events, pods,
# describe and logs of every pod that was not ready, the kubelet's and containerd's logs) is kept and its path
# printed. Needs the images of build-images.sh.
set -euo pipefail
# shellcheck source=../../../scripts/env.sh
. "$(dirname "$0")/../../../scripts/env.sh"
# shellcheck source=../../../scripts/lib.sh
. "$THREETIER_ROOT/scripts/lib.sh"
scenario=${1:-e2e}
case $scenario in
  # Every proof of the scenario, in the order it runs them (molecule/e2e/verify.yml, side_effect.yml).
  e2e) EXPECTED=(app dbcluster netpol dbnetpol podsecurity dbpodsecurity unready pdb graceful hpa rollout dbpdb
    failover switchover backup external) ;;
  e2e-ci) EXPECTED=(app dbcluster netpol dbnetpol podsecurity dbpodsecurity) ;;
  *) die "unknown scenario '$scenario' (e2e or e2e-ci)" ;;
esac
if ! missing=$("$THREETIER_ROOT/tests/harness/real_node/node.sh" preflight); then
  die "the real node cannot run on this host:"$'\n'"$missing"
fi
E2E_DIR=${THREETIER_E2E_DIR:-$THREETIER_CACHE/e2e}
mkdir -p "$E2E_DIR"
logfile="$E2E_DIR/molecule-$scenario.log"
diagnosis="$E2E_DIR/diagnosis"
# Each proof appends "PROOF <name>: <numbers>" or "PROOF <name> FAILED: <why>" here (molecule/e2e/files/*.py).
export E2E_PROOF_LOG="$E2E_DIR/proofs.log"
: > "$E2E_PROOF_LOG"
rm -rf "$diagnosis"
start=$SECONDS
cd "$THREETIER_ROOT"

# On an interrupt, Molecule's own destroy does not run: run it here (it collects the diagnosis, then stops
# exactly what create started); a destroy that cannot even start still brings the node down.
interrupted() {
  trap - INT TERM
  log "interrupted: tearing the real node down"
  molecule destroy -s "$scenario" > "$E2E_DIR/destroy-after-interrupt.log" 2>&1 \
    || "$THREETIER_ROOT/tests/harness/real_node/node.sh" down || true
  [[ -d $diagnosis ]] && log "diagnosis: $diagnosis"
  exit 130
}
trap interrupted INT TERM

# An interrupted run leaves Molecule believing the node exists (it would skip create); create itself reuses
# whatever healthy node and servers are running, so forgetting Molecule's state is always safe.
molecule reset -s "$scenario" > /dev/null 2>&1 || true
set +e
ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 molecule test -s "$scenario" 2>&1 | tee "$logfile"
rc=${PIPESTATUS[0]}
set -e
log "molecule test -s $scenario exited $rc after $((SECONDS - start)) s (log: $logfile)"
echo "== $scenario proofs =="
cat "$E2E_PROOF_LOG"
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
if [[ $rc -ne 0 || $failed -ne 0 ]]; then
  if [[ -d $diagnosis ]]; then
    echo "diagnosis of the failed run: $diagnosis ($(sed -n 2p "$diagnosis/README.txt"))"
  fi
else
  rm -rf "$diagnosis"
fi
echo "$passed passed, $failed failed"
[[ $rc -eq 0 && $failed -eq 0 ]]
