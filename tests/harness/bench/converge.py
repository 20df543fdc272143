"""Benchmark: site.yml against the local cluster, next to the same releases installed with bare Helm.

Run with `make bench-converge` (or `. scripts/env.sh && python -m tests.harness.bench.converge` from the root).
It starts its own throw-away cluster (THREETIER_CLUSTER_DIR in a temp dir) and the chart mirror, and measures:

1. site.yml -i inventories/local on a fresh cluster (first converge);
2. the same again (the no-op re-run; its PLAY RECAP must say changed=0);
3. on a second fresh cluster, the releases the first run produced, installed with bare
   `helm upgrade --install --wait` and the values Helm recorded for them (the floor: no validation,
   no secrets handling, no checks; the same objects, policies included, since every object is in a release);
4. the bare Helm commands again (a re-run that Helm turns into new revisions).

It prints a table, the ratios and the no-op re-run's ten slowest tasks. It is a benchmark, not a test:
nothing asserts on the times.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.harness import HELM_MIRROR_SH, ROOT, proc
from tests.harness.local_cluster import CLUSTER_SH

# The collection's own charts (installed from their directories); the others come from the mirror.
LOCAL_CHARTS = {"frontend", "backend", "platform", "database"}
# profile_tasks (ansible.cfg) ends a run with one line per task: "<role> : <task> ---- 1.23s".
PROFILE_LINE = re.compile(r"^(?P<task>\S.*?) -{3,} (?P<seconds>\d+\.\d+)s$", re.MULTILINE)


def run(cmd: list[str], env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """A step of the benchmark from the root; a failed step ends it with the step's output (no time limit that
    matters: a converge is what is being measured)."""
    return proc.run(cmd, env=env, cwd=ROOT, check=check, timeout=7200, error=SystemExit)


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.monotonic()
    proc = run(cmd, env)
    return time.monotonic() - start, proc.stdout


def recap_changed(output: str) -> int:
    match = re.search(r"changed=(\d+)", output.split("PLAY RECAP")[-1])
    return int(match.group(1)) if match else -1


def profile(output: str, top: int = 10) -> list[tuple[str, float]]:
    """The slowest tasks of a run, from profile_tasks' summary (after the PLAY RECAP)."""
    summary = output.split("PLAY RECAP")[-1]
    tasks = [(m["task"], float(m["seconds"])) for m in PROFILE_LINE.finditer(summary)]
    return sorted(tasks, key=lambda task: task[1], reverse=True)[:top]


def site(env: dict[str, str], kubeconfig: str, mirror: str) -> tuple[float, int, str]:
    seconds, out = timed(
        [
            "ansible-playbook",
            "site.yml",
            "-i",
            "inventories/local",
            "-e",
            f"threetier_kubeconfig={kubeconfig}",
            "-e",
            f"threetier_chart_repo_override={mirror}",
            "-e",
            "threetier_monitoring_enabled=true",
        ],
        env,
    )
    return seconds, recap_changed(out), out


def releases(env: dict[str, str], kubeconfig: str) -> list[dict[str, str]]:
    """The releases site.yml made, in install order, with the values Helm recorded for each."""
    listing = json.loads(run(["helm", "list", "-A", "-o", "json", "--kubeconfig", kubeconfig], env).stdout)
    out = []
    for rel in sorted(listing, key=lambda r: r["updated"]):
        values = run(
            ["helm", "get", "values", rel["name"], "-n", rel["namespace"], "-o", "json", "--kubeconfig", kubeconfig],
            env,
        ).stdout
        name, _sep, version = rel["chart"].rpartition("-")
        out.append(
            {"release": rel["name"], "namespace": rel["namespace"], "chart": name, "version": version, "values": values}
        )
    return out


def bare_helm(env: dict[str, str], kubeconfig: str, mirror: str, rels: list[dict[str, str]], tmp: Path) -> float:
    start = time.monotonic()
    for rel in rels:
        values = tmp / f"{rel['release']}.json"
        values.write_text(rel["values"])
        chart = (
            [str(ROOT / "charts" / rel["chart"])]
            if rel["chart"] in LOCAL_CHARTS
            else [rel["chart"], "--repo", mirror, "--version", rel["version"]]
        )
        run(
            [
                "helm",
                "upgrade",
                "--install",
                rel["release"],
                *chart,
                "-n",
                rel["namespace"],
                "--create-namespace",
                "-f",
                str(values),
                "--wait",
                "--timeout",
                "10m",
                "--kubeconfig",
                kubeconfig,
            ],
            env,
        )
    return time.monotonic() - start


def cluster(env: dict[str, str], action: str) -> dict[str, str]:
    proc = run([str(CLUSTER_SH), action, *(["--json"] if action == "up" else [])], env)
    return json.loads(proc.stdout) if action == "up" else {}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="threetier-bench-") as tmpdir:
        tmp = Path(tmpdir)
        env = dict(
            os.environ,
            THREETIER_CLUSTER_DIR=str(tmp / "cluster"),
            THREETIER_CLUSTER_NAME="threetier-bench",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
        )
        mirror_started = run([str(HELM_MIRROR_SH), "status"], env, check=False).returncode != 0
        mirror = run([str(HELM_MIRROR_SH), "start"], env).stdout.strip().splitlines()[-1]
        try:
            kubeconfig = cluster(env, "up")["kubeconfig"]
            first, first_changed, _first_output = site(env, kubeconfig, mirror)
            again, again_changed, again_output = site(env, kubeconfig, mirror)
            rels = releases(env, kubeconfig)
            cluster(env, "down")
            kubeconfig = cluster(env, "up")["kubeconfig"]
            floor = bare_helm(env, kubeconfig, mirror, rels, tmp)
            floor_again = bare_helm(env, kubeconfig, mirror, rels, tmp)
        finally:
            run([str(CLUSTER_SH), "down"], env, check=False)
            if mirror_started:
                run([str(HELM_MIRROR_SH), "stop"], env, check=False)
    print(f"releases: {', '.join(r['release'] + '@' + r['version'] for r in rels)}")
    print(f"{'run':<44}{'seconds':>10}")
    print(f"{'site.yml, fresh cluster (changed=' + str(first_changed) + ')':<44}{first:>10.1f}")
    print(f"{'site.yml, no-op re-run (changed=' + str(again_changed) + ')':<44}{again:>10.1f}")
    print(f"{'bare helm upgrade --install --wait, fresh':<44}{floor:>10.1f}")
    print(f"{'bare helm upgrade --install --wait, again':<44}{floor_again:>10.1f}")
    print(
        f"ratio first converge / bare helm: {first / floor:.2f}; "
        f"no-op re-run / bare helm re-run: {again / floor_again:.2f}"
    )
    print("the no-op re-run's slowest tasks (profile_tasks):")
    for task, seconds in profile(again_output):
        print(f"  {seconds:>6.2f} s  {task}")
    return 0 if again_changed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
