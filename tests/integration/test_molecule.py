"""The Molecule tier: `molecule test -s default` on the local cluster, `molecule syntax -s kind` and `-s e2e`.

The session fixtures start the cluster and the chart mirror (or reuse running ones); the scenario's create
step then finds them running and its destroy step leaves them to the session, which stops them at its end.
Molecule's own output goes to tests/output/molecule-<scenario>.log; a failure shows its tail.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / "tests" / "output"


def molecule(*args: str, log_name: str, timeout: int) -> tuple[int, str, float]:
    """Run molecule from the repo root; return its exit code, its output and how long it took."""
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / log_name
    env = os.environ.copy()
    env.setdefault("ANSIBLE_FORCE_COLOR", "0")
    env["PY_COLORS"] = "0"
    start = time.monotonic()
    with log.open("w") as handle:
        proc = subprocess.run(
            ["molecule", *args],
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=timeout,
            check=False,
        )
    return proc.returncode, log.read_text(), time.monotonic() - start


def tail(text: str, lines: int = 150) -> str:
    return "\n".join(text.splitlines()[-lines:])


def test_molecule_default_scenario(cluster: Path, helm_mirror: str) -> None:
    """create, converge, idempotence (changed=0), verify, side effect (upgrade, rollback, failures), destroy."""
    rc, output, seconds = molecule("test", "-s", "default", log_name="molecule-default.log", timeout=3600)
    print(f"molecule test -s default: exit {rc} in {seconds:.0f} s (log: tests/output/molecule-default.log)")
    assert rc == 0, f"molecule test -s default failed (exit {rc}); last lines:\n{tail(output)}"
    # Molecule's closing summary lists each step; every step of the sequence must have run and passed.
    plain = re.sub(r"\x1b\[[0-9;]*m", "", output)
    for step in ("converge", "idempotence", "verify", "side_effect"):
        assert f"default > {step}: Executed: Successful" in plain, f"{step} did not pass:\n{tail(plain)}"
    # A user's log stays clean with the pinned collections: site.yml's first run and its re-run print no
    # deprecation (kubernetes.core's helm module deprecated wait_timeout and printed a status.values
    # deprecation for every existing release). Verify and side_effect read releases with helm_info, which
    # prints that deprecation on every call whatever the playbook reads; they are the tests', not the user's.
    user_log = re.search(r"\[default > converge\] Executing(.*)\[default > idempotence\] Executed", plain, re.S)
    assert user_log, f"no converge and idempotence output in the log:\n{tail(plain)}"
    deprecations = [line for line in user_log.group(1).splitlines() if "[DEPRECATION WARNING]" in line]
    assert not deprecations, "site.yml printed deprecation warnings:\n" + "\n".join(deprecations[:20])


def test_molecule_e2e_scenario_parses() -> None:
    """The real-node scenario runs in `make e2e` (root, minutes); here its playbooks must parse and resolve."""
    rc, output, _seconds = molecule("syntax", "-s", "e2e", log_name="molecule-e2e-syntax.log", timeout=600)
    assert rc == 0, f"molecule syntax -s e2e failed (exit {rc}):\n{tail(output)}"
    plain = re.sub(r"\x1b\[[0-9;]*m", "", output)
    # "[e2e > syntax] Executed: Successful" as the step ends, "e2e > syntax: Executed: ..." in a closing summary.
    assert re.search(r"e2e > syntax\]?:? Executed: Successful", plain), tail(plain)


def test_molecule_kind_scenario_parses() -> None:
    """kind cannot run without a container engine; its playbooks must still parse and resolve."""
    rc, output, _seconds = molecule("syntax", "-s", "kind", log_name="molecule-kind-syntax.log", timeout=600)
    assert rc == 0, f"molecule syntax -s kind failed (exit {rc}):\n{tail(output)}"
