"""What the real node needs from this host, what it leaves on it, and what a person needs when it fails.

- ``preflight()``: the host features the node depends on (root, overlayfs, br_netfilter, iptables, ipset,
  the runtime's binaries); a missing one is named with how to get it, before anything changes.
- ``snapshot()`` / ``differences()``: the host state the node touches (links, iptables chains and the rules of
  the built-in chains, ipsets, the sysctls it sets, mounts, pod cgroups, processes of its state directory),
  taken before ``up`` and compared after ``down``: the node must leave the host as it found it.
- ``diagnose()``: events, pods, the describe and logs of every pod that is not ready, the kubelet's and
  containerd's logs, into one folder.

Used by tests/harness/real_node/node.py (``preflight``, ``check-clean``, ``diagnose`` commands).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.harness.proc import run

# sysctls the node sets or the kubelet and kube-proxy change (tests/harness/real_node/node.py restores them on down).
SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/bridge/bridge-nf-call-iptables",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/conf/all/route_localnet",
)
BUILTIN_CHAINS = {"INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"}


def _out(cmd: list[str]) -> str:
    # A tool the host lacks (ipset, iptables before `make e2e-setup`) has nothing to list, and the node cannot
    # have changed what it lists: preflight() refuses to start the node without it.
    if not shutil.which(cmd[0], path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
        return ""
    proc = run(cmd, timeout=60, check=False)
    return proc.stdout if proc.returncode == 0 else ""


# --- preflight --------------------------------------------------------------------------------------------


def preflight() -> list[str]:
    """What is missing for the real node, one sentence each naming the fix; empty when it can run."""
    missing: list[str] = []
    if os.geteuid() != 0:
        missing.append("root: the node runs containerd, the kubelet and iptables (run as root)")
    filesystems = Path("/proc/filesystems").read_text() if Path("/proc/filesystems").exists() else ""
    if "overlay" not in filesystems:
        missing.append("overlayfs: containerd's snapshotter needs it (modprobe overlay, or a kernel with it)")
    if not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        missing.append("br_netfilter: pod traffic across the bridge must pass iptables (modprobe br_netfilter)")
    if not Path("/sys/fs/cgroup").is_dir() or not any(Path("/sys/fs/cgroup").iterdir()):
        missing.append("cgroups: /sys/fs/cgroup is not mounted")
    for tool, package in (
        ("containerd", "containerd"),
        ("runc", "runc"),
        ("iptables", "iptables"),
        ("ipset", "ipset"),
        ("conntrack", "conntrack"),
        ("ip", "iproute2"),
    ):
        if not shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            missing.append(f"{tool}: install Debian's {package} (requirements/apt-e2e.txt, scripts/setup.sh --e2e)")
    if not Path("/usr/lib/cni/bridge").exists():
        missing.append("CNI plugins: install Debian's containernetworking-plugins (requirements/apt-e2e.txt)")
    if os.geteuid() == 0 and shutil.which("iptables") and not _out(["iptables", "-t", "nat", "-S"]):
        missing.append("iptables nat table: the kernel lacks iptable_nat/nf_nat (kube-proxy needs them)")
    if os.geteuid() == 0 and shutil.which("ipset") and run(["ipset", "list", "-n"], timeout=30, check=False).returncode:
        missing.append("ipset: the kernel lacks ip_set (kube-router's NetworkPolicy firewall needs it)")
    return missing


# --- host state -------------------------------------------------------------------------------------------


def _iptables(tool: str) -> dict[str, object]:
    tables: dict[str, object] = {}
    for table in ("filter", "nat", "mangle"):
        lines = _out([tool, "-t", table, "-S"]).splitlines()
        chains = sorted(line.split()[1] for line in lines if line.startswith("-N "))
        builtin_rules = sorted(line for line in lines if line.startswith("-A ") and line.split()[1] in BUILTIN_CHAINS)
        tables[table] = {"chains": chains, "builtin_rules": builtin_rules}
    return tables


def _processes_under(path: Path) -> list[str]:
    """Command lines of the processes that name ``path`` (containerd, shims, kubelet of a state directory)."""
    needle = str(path).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes()
            if needle in cmdline:
                found.append(cmdline.replace(b"\0", b" ").decode(errors="replace").strip()[:160])
    return sorted(found)


def snapshot(state: Path) -> dict[str, object]:
    """The host state the node changes while it runs."""
    sysctls = {}
    for key in SYSCTLS:
        with contextlib.suppress(OSError):
            sysctls[key] = (Path("/proc/sys") / key).read_text().strip()
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    return {
        "links": sorted(p.name for p in Path("/sys/class/net").iterdir()),
        "iptables": _iptables("iptables"),
        "ip6tables": _iptables("ip6tables"),
        "ipsets": sorted(_out(["ipset", "list", "-n"]).split()),
        "sysctls": sysctls,
        "mounts_under_state": sorted(m.split()[4] for m in mounts if m.split()[4].startswith(str(state))),
        # CNI's pod namespaces only: other tools' own namespaces are none of the node's business.
        "netns": sorted(p.name for p in Path("/run/netns").glob("cni-*")) if Path("/run/netns").is_dir() else [],
        "kubepods_cgroups": sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*/kubepods")),
        "processes": _processes_under(state),
    }


def differences(before: dict[str, object], after: dict[str, object]) -> list[str]:
    """What ``after`` has that ``before`` had not (or lost), in words."""
    found: list[str] = []

    def compare(path: str, old: object, new: object) -> None:
        if isinstance(old, dict) and isinstance(new, dict):
            for key in sorted(set(old) | set(new)):
                compare(f"{path}.{key}", old.get(key), new.get(key))
        elif isinstance(old, list) and isinstance(new, list):
            added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
            if added:
                found.append(f"{path}: left behind {added[:8]}{' ...' if len(added) > 8 else ''}")
            if removed:
                found.append(f"{path}: gone since before up {removed[:8]}{' ...' if len(removed) > 8 else ''}")
        elif old != new:
            found.append(f"{path}: {old!r} before up, {new!r} after down")

    compare("host", before, after)
    return found


def save_snapshot(path: Path, state: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(snapshot(state), indent=1, sort_keys=True))


# --- diagnosis --------------------------------------------------------------------------------------------


def diagnose(out: Path, kubectl: Callable[..., subprocess.CompletedProcess[str]], logs: Path) -> Path:
    """Write what a person needs to see why the node's workloads failed into ``out`` (emptied first)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)

    def save(name: str, *args: str) -> None:
        proc = kubectl(*args, check=False, timeout=120)
        (out / name).write_text(proc.stdout + (f"\n# stderr:\n{proc.stderr}" if proc.stderr.strip() else ""))

    save("events.txt", "get", "events", "-A", "--sort-by=.lastTimestamp")
    save("pods.txt", "get", "pods", "-A", "-o", "wide")
    save("nodes.txt", "describe", "nodes")
    save("workloads.txt", "get", "deployments,statefulsets,jobs,hpa,pdb,pvc,postgresql", "-A", "-o", "wide")
    pods = json.loads(kubectl("get", "pods", "-A", "-o", "json", check=False, timeout=60).stdout or '{"items": []}')
    unhealthy = []
    for pod in pods["items"]:
        statuses = pod.get("status", {}).get("containerStatuses") or []
        done = pod.get("status", {}).get("phase") == "Succeeded"
        if done or (statuses and all(s.get("ready") for s in statuses)):
            continue
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        unhealthy.append(f"{namespace}/{name}")
        save(f"describe-{namespace}-{name}.txt", "-n", namespace, "describe", "pod", name)
        for container in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
            for previous in ("", "--previous"):
                args = ["-n", namespace, "logs", name, "-c", container["name"], "--tail=300"]
                suffix = "-previous" if previous else ""
                save(
                    f"logs-{namespace}-{name}-{container['name']}{suffix}.txt", *args, *([previous] if previous else [])
                )
    for component in ("kubelet", "containerd", "kube-apiserver", "kube-proxy"):
        log_file = logs / f"{component}.log"
        if log_file.exists():
            lines = log_file.read_text(errors="replace").splitlines()[-300:]
            (out / f"{component}.log.tail").write_text("\n".join(lines) + "\n")
    (out / "README.txt").write_text(
        "Diagnosis of the real node, taken before it was stopped.\n"
        f"Pods not ready: {', '.join(unhealthy) or 'none'}\n"
        "Start with events.txt and the describe-*/logs-* files of those pods, then kubelet.log.tail.\n"
    )
    return out
