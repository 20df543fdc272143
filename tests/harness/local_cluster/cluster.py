"""The local Kubernetes cluster: real etcd, kube-apiserver, kube-controller-manager and kube-scheduler with
fake KWOK nodes, started by kwokctl's binary runtime from the binaries scripts/build-cluster-tools.sh builds.

Run through cluster.sh beside this file (which sets up the environment): ``up`` starts the cluster or reuses a
healthy one, ``down`` stops it, ``status`` reports it. One cluster per state directory
(``$THREETIER_CLUSTER_DIR``, default ``$THREETIER_CACHE/cluster``), named ``$THREETIER_CLUSTER_NAME``
(default ``threetier``); its kubeconfig is ``<state dir>/kubeconfig``.

Processes are only ever signalled after checking they belong to this cluster (their working directory is the
cluster's workdir), so a PID that the system reused after an aborted run is never touched.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from tests.harness import ROOT
from tests.harness.proc import HarnessError, kubectl, run

# kwokctl's configuration of the cluster: the files this module passes with --config, nodes.yaml, addons.yaml
# and the metrics-server manifests (every file here is part of a cluster's fingerprint).
CONFIG_DIR = Path(__file__).resolve().parent / "config"
# kwokctl's component names; the binary runtime writes <workdir>/pids/<name>.pid for each.
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok-controller",
    "metrics-server",
)
# Binaries in $THREETIER_BIN, built by scripts/build-cluster-tools.sh; kwok's binary is the kwok-controller.
BINARIES = {
    "etcd": "etcd",
    "kube-apiserver": "kube-apiserver",
    "kube-controller-manager": "kube-controller-manager",
    "kube-scheduler": "kube-scheduler",
    "kwok-controller": "kwok",
    "metrics-server": "metrics-server",
    "kwokctl": "kwokctl",
}
CONFIG_FILES = ("kwokctl.yaml", "stages.yaml", "resource-usage.yaml")
METRICS_API = "v1beta1.metrics.k8s.io"
# A component can lose a startup race on a loaded machine (metrics-server exits when the API server is not
# serving yet); a second attempt from scratch is cheap (the cluster starts in seconds).
ATTEMPTS = 2


class ClusterError(HarnessError):
    """A failure with a message meant for the user (printed without a traceback)."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Paths:
    """Where one cluster keeps its state."""

    name: str
    state: Path
    cache: Path
    bin: Path

    @classmethod
    def from_env(cls) -> Paths:
        cache = Path(os.environ.get("THREETIER_CACHE", Path.home() / ".cache" / "threetier-k8s"))
        state = Path(os.environ.get("THREETIER_CLUSTER_DIR", cache / "cluster"))
        name = os.environ.get("THREETIER_CLUSTER_NAME", "threetier")
        return cls(
            name=name,
            state=state,
            cache=cache,
            bin=Path(os.environ.get("THREETIER_BIN", cache / "bin")),
        )

    @property
    def kwok_workdir(self) -> Path:
        return self.state / "kwok"

    @property
    def workdir(self) -> Path:
        """kwokctl's directory for this cluster (pki, etcd data, logs, pids)."""
        return self.kwok_workdir / "clusters" / self.name

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def stamp(self) -> Path:
        return self.state / "stamp.json"

    def binary(self, component: str) -> Path:
        return self.bin / BINARIES[component]


@dataclass
class Process:
    component: str
    pid: int | None
    alive: bool
    ours: bool


@dataclass
class Status:
    """What `status` reports; `state` is running, stale or absent."""

    state: str
    name: str
    kubeconfig: str
    workdir: str
    server: str | None = None
    reasons: list[str] = field(default_factory=list)
    processes: list[Process] = field(default_factory=list)


# --- processes --------------------------------------------------------------------------------------------


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited; only its parent can reap it.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def pid_is_ours(pid: int, workdir: Path) -> bool:
    """True when the process runs in this cluster's workdir, as kwokctl starts every component."""
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False
    return cwd == workdir.resolve()


def processes(paths: Paths) -> list[Process]:
    result = []
    for component in COMPONENTS:
        pid = read_pid(paths.workdir / "pids" / f"{component}.pid")
        alive = pid is not None and pid_alive(pid)
        ours = alive and pid is not None and pid_is_ours(pid, paths.workdir)
        result.append(Process(component, pid, alive, ours))
    return result


def forget_foreign_pids(paths: Paths) -> None:
    """Remove PID files that name a process of someone else (a PID reused after a crash or reboot),
    so that `kwokctl delete cluster` cannot signal it."""
    for proc in processes(paths):
        if proc.pid is not None and not proc.ours:
            (paths.workdir / "pids" / f"{proc.component}.pid").unlink(missing_ok=True)


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot: with the PID, a unique identity of a process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def running_identities(paths: Paths) -> dict[int, str]:
    """PID -> start time of this cluster's live processes, taken before kwokctl removes the PID files."""
    identities = {}
    for proc in processes(paths):
        if proc.ours and proc.pid is not None and (started := start_time(proc.pid)):
            identities[proc.pid] = started
    return identities


def stop_leftovers(identities: dict[int, str], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL, the processes of `identities` that survived kwokctl's delete."""

    def left() -> list[int]:
        return [pid for pid, started in identities.items() if pid_alive(pid) and start_time(pid) == started]

    for pid in left():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while left() and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left():
        log(f"process {pid} ignored SIGTERM for {grace:.0f} s, killing it")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# --- tools ------------------------------------------------------------------------------------------------


def kwokctl_env(paths: Paths) -> dict[str, str]:
    env = dict(os.environ)
    env["KWOK_WORKDIR"] = str(paths.kwok_workdir)
    # kwokctl runs `kubectl kustomize` on the metrics-server manifest; without this it would download kubectl.
    kubectl_path = shutil.which("kubectl")
    if not kubectl_path:
        raise ClusterError("kubectl is not on PATH: run `make setup` (it comes from the project's virtualenv)")
    env["KWOK_KUBECTL_BINARY"] = kubectl_path
    # Only used for defaults (the versions of the components are read from the binaries themselves).
    env["KWOK_KUBE_VERSION"] = os.environ.get("KUBERNETES_VERSION", "v1.37.2")
    return env


def ensure_binaries(paths: Paths) -> None:
    missing = [name for name in BINARIES if not os.access(paths.binary(name), os.X_OK)]
    if not missing:
        return
    log(f"building missing cluster binaries ({', '.join(missing)}) with scripts/build-cluster-tools.sh")
    if subprocess.run([str(ROOT / "scripts" / "build-cluster-tools.sh")], check=False).returncode != 0:
        raise ClusterError("scripts/build-cluster-tools.sh failed (its output is above)")


def fingerprint(paths: Paths) -> str:
    """Identity of what a cluster was created from: config files and the exact binaries. A cluster whose
    fingerprint differs from the checkout's is replaced by `up` rather than reused."""
    digest = hashlib.sha256()
    for path in sorted(CONFIG_DIR.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(CONFIG_DIR)).encode() + b"\0" + path.read_bytes())
    for name in sorted(BINARIES):
        digest.update(f"{name}={paths.binary(name).resolve()}".encode())
    return digest.hexdigest()[:16]


# --- inspection -------------------------------------------------------------------------------------------


def api_server(paths: Paths) -> str | None:
    proc = kubectl(
        "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}",
        kubeconfig=paths.kubeconfig, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


def node_problems(paths: Paths) -> list[str]:
    """Nodes of nodes.yaml that are missing or not Ready."""
    proc = kubectl("get", "nodes", "-o", "json", check=False, kubeconfig=paths.kubeconfig)
    if proc.returncode != 0:
        return [f"cannot list nodes: {proc.stderr.strip()}"]
    ready = {
        item["metadata"]["name"]
        for item in json.loads(proc.stdout)["items"]
        if any(c["type"] == "Ready" and c["status"] == "True" for c in item["status"].get("conditions", []))
    }
    return [f"node {name} is not Ready" for name in node_names() if name not in ready]


def node_names() -> list[str]:
    return [item["metadata"]["name"] for item in yaml.safe_load(render("nodes.yaml"))["items"]]


def inspect(paths: Paths, *, deep: bool = True) -> Status:
    status = Status("absent", paths.name, str(paths.kubeconfig), str(paths.workdir))
    if not paths.workdir.exists() and not paths.kubeconfig.exists():
        return status
    status.processes = processes(paths)
    status.reasons += [f"{p.component} is not running" for p in status.processes if not p.ours]
    if not paths.kubeconfig.exists():
        status.reasons.append(f"{paths.kubeconfig} is missing")
    stamp = json.loads(paths.stamp.read_text()) if paths.stamp.exists() else {}
    if stamp.get("fingerprint") != fingerprint(paths):
        status.reasons.append("created from other binaries or config/ files than the checkout's (or never finished)")
    if not status.reasons and deep:
        status.server = api_server(paths)
        ready = kubectl("get", "--raw", "/readyz", check=False, kubeconfig=paths.kubeconfig)
        if ready.returncode != 0:
            status.reasons.append(f"kube-apiserver at {status.server} is not ready: {ready.stderr.strip()}")
        else:
            status.reasons += node_problems(paths)
    status.state = "stale" if status.reasons else "running"
    return status


# --- lifecycle --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def locked(paths: Paths) -> Iterator[None]:
    """Serialise up/down of one cluster (pytest sessions, Molecule and a human may race)."""
    paths.state.mkdir(parents=True, exist_ok=True)
    with (paths.state / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def delete(paths: Paths) -> None:
    """Stop the cluster's processes (only ours, by PID) and remove its files."""
    if paths.workdir.exists():
        forget_foreign_pids(paths)
        identities = running_identities(paths)
        kwokctl = paths.binary("kwokctl")
        if os.access(kwokctl, os.X_OK):
            proc = run(
                [
                    str(kwokctl),
                    "--name",
                    paths.name,
                    "delete",
                    "cluster",
                    f"--kubeconfig={paths.kubeconfig}",
                ],
                env=kwokctl_env(paths),
                check=False,
                timeout=120,
            )
            if proc.returncode != 0:
                log(f"kwokctl delete cluster failed, stopping the processes directly:\n{proc.stderr.strip()}")
        stop_leftovers(identities)
        shutil.rmtree(paths.workdir, ignore_errors=True)
    for leftover in (
        paths.kubeconfig,
        paths.stamp,
        paths.kwok_workdir / "cache" / "manifest",
    ):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def create(paths: Paths, timeout: int) -> None:
    ensure_binaries(paths)
    paths.state.mkdir(parents=True, exist_ok=True)
    args = [str(paths.binary("kwokctl")), "--name", paths.name]
    for config in CONFIG_FILES:
        args.append(f"--config={CONFIG_DIR / config}")
    args += [
        "create",
        "cluster",
        "--runtime=binary",
        f"--kubeconfig={paths.kubeconfig}",
        f"--etcd-binary={paths.binary('etcd').resolve()}",
        f"--kube-apiserver-binary={paths.binary('kube-apiserver').resolve()}",
        f"--kube-controller-manager-binary={paths.binary('kube-controller-manager').resolve()}",
        f"--kube-scheduler-binary={paths.binary('kube-scheduler').resolve()}",
        f"--kwok-controller-binary={paths.binary('kwok-controller').resolve()}",
        f"--metrics-server-binary={paths.binary('metrics-server').resolve()}",
        f"--wait={timeout}s",
        f"--timeout={timeout}s",
    ]
    # kwokctl resolves the relative metrics-server manifest directory of kwokctl.yaml from its working directory.
    run(args, env=kwokctl_env(paths), timeout=timeout + 60, cwd=CONFIG_DIR)


def render(name: str) -> str:
    text = (CONFIG_DIR / name).read_text()
    for key, default in (("KUBERNETES_VERSION", "v1.37.2"), ("KWOK_VERSION", "v0.8.0")):
        text = text.replace(f"@{key}@", os.environ.get(key, default))
    return text


def check_components(paths: Paths) -> None:
    """Fail fast, with the end of its log, when a component has exited (a bad flag, a port conflict)."""
    for proc in processes(paths):
        if not proc.ours:
            log_file = paths.workdir / "logs" / f"{proc.component}.log"
            tail = log_file.read_text(errors="replace").splitlines()[-15:] if log_file.exists() else []
            raise ClusterError(f"{proc.component} exited; the end of {log_file}:\n" + "\n".join(tail))


def wait_until(paths: Paths, what: str, probe: Callable[[], bool], timeout: int) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        check_components(paths)
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.5)


def metrics_api_available(paths: Paths) -> bool:
    proc = kubectl("get", "apiservice", METRICS_API, "-o", "json", check=False, kubeconfig=paths.kubeconfig)
    if proc.returncode != 0:
        return False
    conditions = json.loads(proc.stdout).get("status", {}).get("conditions", [])
    return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)


def provision(paths: Paths, timeout: int) -> None:
    """Add what kwokctl does not create (nodes, the default StorageClass, the IngressClass) and wait until
    the cluster can take workloads: nodes Ready, the `default` ServiceAccount that the ServiceAccount
    admission plugin requires for every pod, and the metrics API."""
    for name in ("addons.yaml", "nodes.yaml"):
        kubectl("apply", "-f", "-", stdin=render(name), kubeconfig=paths.kubeconfig)
    wait_until(paths, "the nodes to be Ready", lambda: not node_problems(paths), timeout)
    wait_until(
        paths,
        "the default ServiceAccount",
        lambda: (
            kubectl(
                "get", "serviceaccount", "default", "-n", "default", check=False, kubeconfig=paths.kubeconfig
            ).returncode
            == 0
        ),
        timeout,
    )
    wait_until(paths, f"APIService {METRICS_API} to be Available", lambda: metrics_api_available(paths), timeout)


def up(paths: Paths, timeout: int) -> Status:
    with locked(paths):
        status = inspect(paths)
        if status.state == "running":
            log(f"cluster {paths.name} is running, reusing it ({status.server})")
            return status
        if status.state == "stale":
            log(f"replacing stale cluster {paths.name}: {'; '.join(status.reasons)}")
            delete(paths)
        start = time.monotonic()
        for attempt in range(1, ATTEMPTS + 1):
            try:
                status = create_once(paths, timeout)
                break
            except HarnessError as err:
                if attempt == ATTEMPTS:
                    raise
                kept = keep_logs(paths)
                log(f"attempt {attempt} failed ({str(err).splitlines()[0]}); logs in {kept}; retrying")
                delete(paths)
        log(f"cluster {paths.name} is up in {time.monotonic() - start:.1f} s ({status.server})")
        return status


def create_once(paths: Paths, timeout: int) -> Status:
    log(f"creating cluster {paths.name} in {paths.workdir}")
    create(paths, timeout)
    check_components(paths)
    provision(paths, timeout)
    paths.stamp.write_text(json.dumps({"fingerprint": fingerprint(paths), "created": time.time()}) + "\n")
    status = inspect(paths)
    if status.state != "running":
        raise ClusterError(f"cluster {paths.name} came up unhealthy: {'; '.join(status.reasons)}")
    return status


def keep_logs(paths: Paths) -> Path:
    """Copy the component logs of a failed attempt out of the workdir, which the retry deletes."""
    kept = paths.state / "failed-attempt-logs"
    shutil.rmtree(kept, ignore_errors=True)
    if (paths.workdir / "logs").exists():
        shutil.copytree(paths.workdir / "logs", kept)
    return kept


def down(paths: Paths) -> None:
    with locked(paths):
        existed = paths.workdir.exists() or paths.kubeconfig.exists()
        delete(paths)
        log(f"cluster {paths.name} {'deleted' if existed else 'was not present'}")


def print_status(status: Status, as_json: bool) -> None:
    if as_json:
        print(json.dumps(asdict(status), indent=2))
        return
    print(f"cluster:    {status.name} ({status.state})")
    print(f"kubeconfig: {status.kubeconfig}")
    if status.server:
        print(f"server:     {status.server}")
    for proc in status.processes:
        print(f"  {proc.component:<24} pid {proc.pid or '-':<8} {'running' if proc.ours else 'not running'}")
    for reason in status.reasons:
        print(f"  ! {reason}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cluster.sh", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--json", action="store_true", help="status: machine-readable output")
    parser.add_argument("--timeout", type=int, default=180, help="up: seconds to wait for each phase")
    args = parser.parse_args(argv)
    paths = Paths.from_env()
    try:
        if args.command == "up":
            print_status(up(paths, args.timeout), args.json)
        elif args.command == "down":
            down(paths)
        else:
            status = inspect(paths)
            print_status(status, args.json)
            return {"running": 0, "absent": 1}.get(status.state, 2)
    except HarnessError as err:
        log(f"ERROR: {err}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
