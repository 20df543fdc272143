"""The e2e tier's cluster: a control plane and ONE REAL NODE on this host.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler come from the same build as the KWOK
cluster's (scripts/build-cluster-tools.sh); the node is containerd + runc + the CNI bridge plugin from Debian,
with kubelet and kube-proxy of that same Kubernetes build (``build-cluster-tools.sh node``). Add-ons
(CoreDNS, kube-router's NetworkPolicy firewall, metrics-server, Traefik) run as pods from images built
locally (tests/harness/images/build-*-images.sh) and imported into containerd; nothing is pulled.

Run through tests/harness/real_node/node.sh: ``up`` starts everything (or reuses a healthy cluster), ``down`` stops
only what ``up`` started (PIDs with their start times) and removes every trace (pods, mounts, cgroups,
iptables rules, links, sysctls), ``status`` reports.

Addresses: the node owns NODE_IP (default 10.213.0.1/32) on a port-less bridge ``tt-node0``; the API server,
the kubelet and PostgreSQL bind to it, everything else to 127.0.0.1, so nothing listens on the VM's own
network. Pods live in 10.244.0.0/24 on the bridge ``tt-cni0``; Services in 10.96.0.0/16. The ingress answers
on http://127.0.0.1:30080 (a NodePort that kube-proxy serves on 127.0.0.1 only).

Why these settings (this host: root in a VM, cgroup v1, no CAP_SYS_RESOURCE):
- containerd's CRI ``restrict_oom_score_adj = true``: lowering a process's oom_score_adj needs
  CAP_SYS_RESOURCE, which root here lacks, so without it every sandbox fails to start.
- kubelet ``cgroupDriver: cgroupfs`` (no systemd as PID 1) and ``failCgroupV1: false``: Kubernetes 1.35 made
  kubelet refuse cgroup v1 by default; v1.37 still honours the opt-out (pkg/kubelet/apis/config/validation),
  so the node runs the same release as the control plane. A later release that drops cgroup v1 would need a
  cgroup v2 host.
- kube-proxy in iptables mode: IPVS is absent from this kernel.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shlex
import shutil
import signal
import string
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.harness import ROOT
from tests.harness.local_cluster.cluster import ClusterError, log, pid_alive, start_time
from tests.harness.proc import HarnessError, kubectl, run
from tests.harness.real_node import host
from tests.harness.real_node.pki import ensure_pki

ADDONS = Path(__file__).resolve().parent / "addons"
ADDON_ORDER = ("coredns.yaml", "kube-router.yaml", "metrics-server.yaml", "traefik.yaml")
IMAGE_PREFIX = "localhost/threetier-e2e"
# Start order; `down` walks it backwards.
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "containerd",
    "kubelet",
    "kube-proxy",
)


def versions() -> dict[str, str]:
    """tools/versions.env as a dict (the image tags of the add-ons are pinned there)."""
    result = {}
    for line in (ROOT / "tools" / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            result[key] = value
    return result


@dataclass(frozen=True)
class Config:
    """Where the node keeps its state, and its fixed addresses."""

    state: Path
    e2e: Path
    bin: Path
    node_name: str = "threetier-e2e"
    node_ip: str = "10.213.0.1"
    node_link: str = "tt-node0"
    cni_bridge: str = "tt-cni0"
    pod_cidr: str = "10.244.0.0/16"
    node_pod_cidr: str = "10.244.0.0/24"
    pod_gateway: str = "10.244.0.1"
    service_cidr: str = "10.96.0.0/16"
    api_service_ip: str = "10.96.0.1"
    dns_ip: str = "10.96.0.10"
    cluster_domain: str = "cluster.local"
    api_port: int = 6443
    etcd_port: int = 23790
    etcd_peer_port: int = 23800
    ingress_node_port: int = 30080

    @classmethod
    def from_env(cls) -> Config:
        cache = Path(os.environ.get("THREETIER_CACHE", Path.home() / ".cache" / "threetier-k8s"))
        e2e = Path(os.environ.get("THREETIER_E2E_DIR", cache / "e2e"))
        return cls(
            state=e2e / "cluster",
            e2e=e2e,
            bin=Path(os.environ.get("THREETIER_BIN", cache / "bin")),
            node_ip=os.environ.get("THREETIER_E2E_NODE_IP", "10.213.0.1"),
        )

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.state / "admin.kubeconfig"

    @property
    def server(self) -> str:
        return f"https://{self.node_ip}:{self.api_port}"

    @property
    def containerd_socket(self) -> Path:
        return self.state / "containerd" / "containerd.sock"

    @property
    def run_dir(self) -> Path:
        return self.state / "run"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def ingress_url(self) -> str:
        return f"http://127.0.0.1:{self.ingress_node_port}"


# --- processes --------------------------------------------------------------------------------------------


def pid_file(cfg: Config, component: str) -> Path:
    return cfg.run_dir / f"{component}.pid"


def recorded(cfg: Config, component: str) -> int | None:
    """The PID of `component` if the process recorded at start (PID + start time) is still that process."""
    try:
        pid_text, started = pid_file(cfg, component).read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) and start_time(pid) == started else None


def start(cfg: Config, component: str, cmd: list[str], env: dict[str, str] | None = None) -> int:
    existing = recorded(cfg, component)
    if existing:
        return existing
    cfg.logs.mkdir(parents=True, exist_ok=True)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    with (cfg.logs / f"{component}.log").open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cfg.state,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    started = None
    for _attempt in range(50):
        started = start_time(proc.pid)
        if started:
            break
        time.sleep(0.02)
    pid_file(cfg, component).write_text(f"{proc.pid} {started}\n")
    log(f"started {component} (pid {proc.pid}), log {cfg.logs / (component + '.log')}")
    return proc.pid


def stop(cfg: Config, component: str, grace: float = 15.0) -> None:
    pid = recorded(cfg, component)
    pid_file(cfg, component).unlink(missing_ok=True)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        log(f"{component} (pid {pid}) ignored SIGTERM for {grace:.0f} s, killing it")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    log(f"stopped {component} (pid {pid})")


def wait_until(what: str, probe: Callable[[], bool], timeout: float, cfg: Config, component: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if probe():
                return
        if component and recorded(cfg, component) is None:
            raise ClusterError(
                f"{component} exited while waiting for {what}; see {cfg.logs / (component + '.log')}:\n"
                + tail(cfg.logs / f"{component}.log")
            )
        time.sleep(0.5)
    detail = tail(cfg.logs / f"{component}.log") if component else ""
    raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}\n{detail}".rstrip())


def tail(path: Path, lines: int = 25) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def ctr(cfg: Config, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return run(["ctr", f"--address={cfg.containerd_socket}", "--namespace=k8s.io", *args], check=check, timeout=timeout)


# --- host network -----------------------------------------------------------------------------------------

SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    # Pod-to-pod traffic crosses the bridge: without this iptables (kube-proxy, kube-router) never sees it.
    "net/bridge/bridge-nf-call-iptables": "1",
}


# Host-wide settings the kubelet (its kernel tunables) and kube-proxy (localhost NodePorts) change themselves:
# recorded before they start and put back by `down`.
SYSCTLS_RESTORED = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/conf/all/route_localnet",
)


def set_sysctls(cfg: Config) -> None:
    saved_path = cfg.state / "sysctls.json"
    saved = json.loads(saved_path.read_text()) if saved_path.exists() else {}
    for key in SYSCTLS_RESTORED:
        with contextlib.suppress(OSError):
            saved.setdefault(key, (Path("/proc/sys") / key).read_text().strip())
    for key, value in SYSCTLS.items():
        path = Path("/proc/sys") / key
        current = path.read_text().strip()
        saved.setdefault(key, current)
        if current != value:
            path.write_text(value)
    saved_path.write_text(json.dumps(saved))


def restore_sysctls(cfg: Config) -> None:
    saved_path = cfg.state / "sysctls.json"
    if not saved_path.exists():
        return
    for key, value in json.loads(saved_path.read_text()).items():
        with contextlib.suppress(OSError):
            (Path("/proc/sys") / key).write_text(value)
    saved_path.unlink()


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def ensure_node_link(cfg: Config) -> None:
    """The node's address on a bridge without ports (this kernel has no dummy links): local, never on eth0."""
    if not link_exists(cfg.node_link):
        run(["ip", "link", "add", cfg.node_link, "type", "bridge"])
    addrs = run(["ip", "-o", "-4", "addr", "show", "dev", cfg.node_link]).stdout
    if f" {cfg.node_ip}/" not in addrs:
        run(["ip", "addr", "add", f"{cfg.node_ip}/32", "dev", cfg.node_link])
    run(["ip", "link", "set", cfg.node_link, "up"])


NETNS_DIR = Path("/run/netns")


def is_mount_point(path: Path) -> bool:
    target = str(path)
    return any(line.split()[4] == target for line in Path("/proc/self/mountinfo").read_text().splitlines())


def ensure_netns_mount(cfg: Config) -> None:
    """Make /run/netns a shared bind mount of itself before the first pod, as `ip netns add` would.

    CNI keeps each pod's network namespace as an nsfs mount under /run/netns. The first `ip netns add` on
    the host (a test's private namespace, an administrator's) bind-mounts /run/netns onto itself; when that
    happens while pods exist, their nsfs mounts end up under the lower copy, containerd can no longer
    unmount them, and a deleted pod stays Terminating for ever ("remove netns: device or resource busy").
    Doing it first, and recording it so `down` undoes it, keeps every later mount on the same layer.
    """
    if is_mount_point(NETNS_DIR):
        return
    NETNS_DIR.mkdir(parents=True, exist_ok=True)
    run(["mount", "--bind", str(NETNS_DIR), str(NETNS_DIR)])
    run(["mount", "--make-shared", str(NETNS_DIR)])
    (cfg.state / "netns-mount").write_text("created by up\n")


def release_netns_mount(cfg: Config) -> None:
    """Undo ensure_netns_mount when `up` made the mount and no network namespace is left under it."""
    marker = cfg.state / "netns-mount"
    if marker.exists() and is_mount_point(NETNS_DIR) and not any(NETNS_DIR.iterdir()):
        run(["umount", str(NETNS_DIR)], check=False)
    marker.unlink(missing_ok=True)


# --- configuration files ----------------------------------------------------------------------------------


def node_pki(cfg: Config) -> None:
    """The node's certificates for its name and addresses (created once, kept afterwards)."""
    ensure_pki(
        cfg.pki,
        node_name=cfg.node_name,
        node_ip=cfg.node_ip,
        api_service_ip=cfg.api_service_ip,
        cluster_domain=cfg.cluster_domain,
    )


def write_kubeconfig(cfg: Config, name: str, cert: str) -> Path:
    path = cfg.state / f"{name}.kubeconfig"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "threetier-e2e",
                "cluster": {"server": cfg.server, "certificate-authority": str(cfg.pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": name,
                "user": {
                    "client-certificate": str(cfg.pki / f"{cert}.crt"),
                    "client-key": str(cfg.pki / f"{cert}.key"),
                },
            }
        ],
        "contexts": [{"name": "threetier-e2e", "context": {"cluster": "threetier-e2e", "user": name}}],
        "current-context": "threetier-e2e",
    }
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def containerd_config(cfg: Config, pause_image: str) -> Path:
    base = cfg.state / "containerd"
    base.mkdir(parents=True, exist_ok=True)
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    text = f"""# Written by tests/harness/real_node/node.py: the e2e node's own containerd (root, state, socket).
version = 2
root = "{base / "root"}"
state = "{base / "state"}"
# Nothing outside the state directory: no /opt plugin directory, no snapshotters this node does not use.
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs",
]

[grpc]
  address = "{cfg.containerd_socket}"

[ttrpc]
  address = "{cfg.containerd_socket}.ttrpc"

[{cri}]
  sandbox_image = "{pause_image}"
  # root lacks CAP_SYS_RESOURCE here: never try to lower a process's oom_score_adj.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  max_container_log_line_size = 16384

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{cfg.state / "cni" / "net.d"}"
"""
    path = base / "config.toml"
    path.write_text(text)
    return path


def cni_config(cfg: Config) -> None:
    net_d = cfg.state / "cni" / "net.d"
    net_d.mkdir(parents=True, exist_ok=True)
    conflist = {
        "cniVersion": "1.0.0",
        "name": "threetier-e2e",
        "plugins": [
            {
                "type": "bridge",
                "bridge": cfg.cni_bridge,
                "isGateway": True,
                # No masquerading: pods reach only the node and each other; nothing here needs the VM's network.
                "ipMasq": False,
                # A pod reaching itself through its own Service (kube-proxy hairpin).
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": cfg.node_pod_cidr, "gateway": cfg.pod_gateway}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(cfg.state / "cni" / "ipam"),
                },
            },
        ],
    }
    (net_d / "10-threetier-e2e.conflist").write_text(json.dumps(conflist, indent=2) + "\n")


def kubelet_config(cfg: Config) -> Path:
    doc = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # The kubelet API on the node's own address only; healthz on loopback; no read-only port.
        "address": cfg.node_ip,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(cfg.pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(cfg.pki / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(cfg.pki / "kubelet-serving.key"),
        "cgroupDriver": "cgroupfs",
        # See the module docstring: this host has only the cgroup v1 hierarchy.
        "failCgroupV1": False,
        "containerRuntimeEndpoint": f"unix://{cfg.containerd_socket}",
        "clusterDNS": [cfg.dns_ip],
        "clusterDomain": cfg.cluster_domain,
        "podLogsDir": str(cfg.state / "pod-logs"),
        "failSwapOn": False,
        "serializeImagePulls": False,
        "maxPods": 60,
        "evictionHard": {
            "memory.available": "200Mi",
            "nodefs.available": "5%",
            "imagefs.available": "5%",
            "nodefs.inodesFree": "5%",
        },
        # Images are imported, never pulled: garbage-collecting one would break the next pod that needs it.
        "imageGCHighThresholdPercent": 99,
        "imageGCLowThresholdPercent": 98,
        "containerLogMaxSize": "10Mi",
        "shutdownGracePeriod": "0s",
        "rotateCertificates": False,
    }
    path = cfg.state / "kubelet-config.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def kube_proxy_config(cfg: Config) -> Path:
    doc = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(cfg.state / "kube-proxy.kubeconfig")},
        "hostnameOverride": cfg.node_name,
        # IPVS is absent from this kernel.
        "mode": "iptables",
        "clusterCIDR": cfg.pod_cidr,
        "detectLocalMode": "ClusterCIDR",
        "healthzBindAddress": "127.0.0.1:10356",
        "metricsBindAddress": "127.0.0.1:10349",
        # NodePorts answer on 127.0.0.1 only (the ingress at 127.0.0.1:30080), never on the VM's address.
        "nodePortAddresses": ["127.0.0.1/32"],
        "iptables": {"localhostNodePorts": True, "syncPeriod": "30s", "minSyncPeriod": "1s"},
        # Leave the host's conntrack table sizes alone (0 = do not touch the sysctls).
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }
    path = cfg.state / "kube-proxy-config.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# --- commands ---------------------------------------------------------------------------------------------


def binary(cfg: Config, name: str) -> str:
    path = cfg.bin / name
    if not os.access(path, os.X_OK):
        raise ClusterError(f"{path} is missing: run `scripts/setup.sh --e2e` first")
    return str(path.resolve())


def commands(cfg: Config) -> dict[str, list[str]]:
    pki = cfg.pki
    etcd_url = f"http://127.0.0.1:{cfg.etcd_port}"
    auth = [
        f"--authentication-kubeconfig={cfg.state / '{0}.kubeconfig'}",
        f"--authorization-kubeconfig={cfg.state / '{0}.kubeconfig'}",
    ]
    return {
        "etcd": [
            binary(cfg, "etcd"),
            "--name=threetier-e2e",
            f"--data-dir={cfg.state / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{cfg.etcd_peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{cfg.etcd_peer_port}",
            f"--initial-cluster=threetier-e2e=http://127.0.0.1:{cfg.etcd_peer_port}",
            "--listen-metrics-urls=",
            "--quota-backend-bytes=2147483648",
            "--log-level=warn",
        ],
        "kube-apiserver": [
            binary(cfg, "kube-apiserver"),
            f"--bind-address={cfg.node_ip}",
            f"--advertise-address={cfg.node_ip}",
            f"--secure-port={cfg.api_port}",
            f"--etcd-servers={etcd_url}",
            f"--service-cluster-ip-range={cfg.service_cidr}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--service-account-issuer=https://kubernetes.default.svc.{cfg.cluster_domain}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
            # The aggregator reaches metrics-server at its pod IP (routable from the node).
            "--enable-aggregator-routing=true",
            "--profiling=false",
            "--event-ttl=1h",
        ],
        "kube-controller-manager": [
            binary(cfg, "kube-controller-manager"),
            f"--kubeconfig={cfg.state / 'controller-manager.kubeconfig'}",
            *[a.format("controller-manager") for a in auth],
            "--bind-address=127.0.0.1",
            "--secure-port=10357",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            "--allocate-node-cidrs=true",
            f"--cluster-cidr={cfg.pod_cidr}",
            "--node-cidr-mask-size=24",
            f"--service-cluster-ip-range={cfg.service_cidr}",
            "--profiling=false",
        ],
        "kube-scheduler": [
            binary(cfg, "kube-scheduler"),
            f"--kubeconfig={cfg.state / 'scheduler.kubeconfig'}",
            *[a.format("scheduler") for a in auth],
            "--bind-address=127.0.0.1",
            "--secure-port=10359",
            "--leader-elect=false",
            "--profiling=false",
        ],
        "containerd": [
            shutil.which("containerd") or "/usr/bin/containerd",
            f"--config={cfg.state / 'containerd' / 'config.toml'}",
        ],
        "kubelet": [
            binary(cfg, "kubelet"),
            f"--config={cfg.state / 'kubelet-config.yaml'}",
            f"--kubeconfig={cfg.state / 'kubelet.kubeconfig'}",
            f"--root-dir={cfg.state / 'kubelet'}",
            f"--hostname-override={cfg.node_name}",
            f"--node-ip={cfg.node_ip}",
            "--v=1",
        ],
        "kube-proxy": [binary(cfg, "kube-proxy"), f"--config={cfg.state / 'kube-proxy-config.yaml'}"],
    }


# --- probes -----------------------------------------------------------------------------------------------


def etcd_healthy(cfg: Config) -> bool:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{cfg.etcd_port}/health", timeout=2) as resp:
        return json.load(resp).get("health") == "true"


def api_ready(cfg: Config) -> bool:
    return kubectl("get", "--raw=/readyz", check=False, timeout=10, kubeconfig=cfg.kubeconfig).stdout.strip() == "ok"


def containerd_ready(cfg: Config) -> bool:
    return cfg.containerd_socket.exists() and ctr(cfg, "version", check=False, timeout=10).returncode == 0


def node_ready(cfg: Config) -> bool:
    out = kubectl(
        "get",
        "node",
        cfg.node_name,
        "-o",
        "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
        check=False,
        timeout=10,
        kubeconfig=cfg.kubeconfig,
    )
    return out.stdout.strip() == "True"


def kube_proxy_healthy(cfg: Config) -> bool:
    import urllib.request

    with urllib.request.urlopen("http://127.0.0.1:10356/healthz", timeout=2) as resp:
        return resp.status == 200


# --- images and add-ons -----------------------------------------------------------------------------------


def image_archives(cfg: Config) -> list[Path]:
    return sorted((cfg.e2e / "images").glob("*.tar"))


def import_images(cfg: Config) -> int:
    """Import every image archive that containerd does not hold yet; returns how many were imported."""
    have = set(ctr(cfg, "images", "ls", "-q").stdout.split())
    count = 0
    for archive in image_archives(cfg):
        # scripts/oci.sh writes the reference beside the archive (NAME_TAG.ref).
        ref_file = archive.with_suffix(".ref")
        name, _sep, tag = archive.stem.rpartition("_")
        ref = ref_file.read_text().strip() if ref_file.exists() else f"{IMAGE_PREFIX}/{name}:{tag}"
        if ref in have:
            continue
        out = ctr(cfg, "images", "import", str(archive), check=False)
        if ref not in set(ctr(cfg, "images", "ls", "-q").stdout.split()):
            raise ClusterError(f"importing {archive} did not yield {ref}:\n{out.stdout}{out.stderr}")
        count += 1
    return count


def addon_values(cfg: Config) -> dict[str, str]:
    pins = versions()
    return {
        "IMAGE_PREFIX": IMAGE_PREFIX,
        "COREDNS_VERSION": pins.get("COREDNS_VERSION", ""),
        "KUBE_ROUTER_VERSION": pins.get("KUBE_ROUTER_VERSION", ""),
        "METRICS_SERVER_VERSION": pins.get("METRICS_SERVER_VERSION", ""),
        "TRAEFIK_VERSION": pins.get("TRAEFIK_VERSION", ""),
        "NODE_IP": cfg.node_ip,
        "CLUSTER_DNS_IP": cfg.dns_ip,
        "CLUSTER_DOMAIN": cfg.cluster_domain,
        "POD_CIDR": cfg.pod_cidr,
        "SERVICE_CIDR": cfg.service_cidr,
        "CLUSTER_CA_B64": base64.b64encode((cfg.pki / "ca.crt").read_bytes()).decode(),
        "INGRESS_NODE_PORT": str(cfg.ingress_node_port),
    }


def apply_addons(cfg: Config) -> None:
    values = addon_values(cfg)
    for name in ADDON_ORDER:
        text = string.Template((ADDONS / name).read_text()).substitute(values)
        kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=text, timeout=120, kubeconfig=cfg.kubeconfig
        )
    log("add-ons applied: " + ", ".join(ADDON_ORDER))


def wait_addons(cfg: Config, timeout: int) -> None:
    for kind, ns, name in (
        ("deployment", "kube-system", "coredns"),
        ("daemonset", "kube-system", "kube-router"),
        ("deployment", "kube-system", "metrics-server"),
        ("deployment", "ingress", "traefik"),
    ):
        kubectl(
            "-n",
            ns,
            "rollout",
            "status",
            f"{kind}/{name}",
            f"--timeout={timeout}s",
            timeout=timeout + 30,
            kubeconfig=cfg.kubeconfig,
        )
    wait_until(
        "the metrics API",
        lambda: (
            kubectl(
                "get", "--raw=/apis/metrics.k8s.io/v1beta1/nodes", check=False, timeout=10, kubeconfig=cfg.kubeconfig
            ).returncode
            == 0
        ),
        timeout,
        cfg,
    )


# Static local volumes for the operator's PostgreSQL instances (two for the cluster, two for the restore
# drill's cluster, spares for a rescheduled pod). No provisioner: the StorageClass binds a claim to one of these
# when its pod is scheduled; a released volume is not reused, `down` deletes the directories with the state.
LOCAL_VOLUMES = 6
LOCAL_VOLUME_SIZE = "2Gi"
STORAGE_CLASS = "local"


def local_storage_manifests(cfg: Config) -> list[dict[str, object]]:
    """The default StorageClass and one local PersistentVolume per directory under the state dir."""
    root = cfg.state / "volumes"
    docs: list[dict[str, object]] = [
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": "kubernetes.io/no-provisioner",
            # Bind when the pod is scheduled, so the volume's node and the pod's node agree.
            "volumeBindingMode": "WaitForFirstConsumer",
            "reclaimPolicy": "Retain",
        }
    ]
    for index in range(LOCAL_VOLUMES):
        path = root / f"pv-{index}"
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"e2e-local-{index}", "labels": {"threetier.e2e/volume": "local"}},
                "spec": {
                    "capacity": {"storage": LOCAL_VOLUME_SIZE},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": STORAGE_CLASS,
                    "local": {"path": str(path)},
                    "nodeAffinity": {
                        "required": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {"key": "kubernetes.io/hostname", "operator": "In", "values": [cfg.node_name]}
                                    ]
                                }
                            ]
                        }
                    },
                },
            }
        )
    return docs


def local_storage(cfg: Config) -> None:
    """Create the volumes' directories (a local PersistentVolume needs its path), then the objects."""
    docs = local_storage_manifests(cfg)
    for doc in docs:
        if doc["kind"] == "PersistentVolume":
            Path(doc["spec"]["local"]["path"]).mkdir(parents=True, exist_ok=True)  # type: ignore[index]
    kubectl(
        "apply", "-f", "-", stdin="\n---\n".join(json.dumps(d) for d in docs), timeout=60, kubeconfig=cfg.kubeconfig
    )
    log(f"storage: StorageClass {STORAGE_CLASS} (default), {LOCAL_VOLUMES} local volumes under {cfg.state / 'volumes'}")


def bootstrap_rbac(cfg: Config) -> None:
    """The API server's kubelet client may use the kubelet API (logs, exec, metrics proxy)."""
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "threetier-e2e:apiserver-kubelet-client"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:kubelet-api-admin"},
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "kube-apiserver-kubelet-client"}
        ],
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(binding), kubeconfig=cfg.kubeconfig)


# --- up / down --------------------------------------------------------------------------------------------


def healthy(cfg: Config) -> bool:
    return all(recorded(cfg, c) for c in COMPONENTS) and node_ready(cfg)


def up(cfg: Config, timeout: int, addons: bool) -> None:
    missing = host.preflight()
    if missing:
        raise ClusterError("the real node cannot run on this host; missing:\n  - " + "\n  - ".join(missing))
    t0 = time.monotonic()
    if cfg.state.exists() and not healthy(cfg) and any(pid_file(cfg, c).exists() for c in COMPONENTS):
        log("a stale e2e cluster is in the way; removing it first")
        down(cfg)
    if not cfg.state.exists():
        # The host as the node finds it; `down` compares the host it leaves with this.
        host.save_snapshot(host_snapshot(cfg), cfg.state)
    cfg.state.mkdir(parents=True, exist_ok=True)
    pins = versions()
    ensure_node_link(cfg)
    ensure_netns_mount(cfg)
    set_sysctls(cfg)
    node_pki(cfg)
    write_kubeconfig(cfg, "admin", "admin")
    write_kubeconfig(cfg, "controller-manager", "controller-manager")
    write_kubeconfig(cfg, "scheduler", "scheduler")
    write_kubeconfig(cfg, "kubelet", "kubelet")
    write_kubeconfig(cfg, "kube-proxy", "kube-proxy")
    containerd_config(cfg, f"{IMAGE_PREFIX}/pause:{pins.get('PAUSE_VERSION', '3.10')}")
    cni_config(cfg)
    kubelet_config(cfg)
    kube_proxy_config(cfg)
    cmds = commands(cfg)

    start(cfg, "etcd", cmds["etcd"])
    wait_until("etcd", lambda: etcd_healthy(cfg), 60, cfg, "etcd")
    start(cfg, "kube-apiserver", cmds["kube-apiserver"])
    wait_until("the API server", lambda: api_ready(cfg), timeout, cfg, "kube-apiserver")
    bootstrap_rbac(cfg)
    start(cfg, "kube-controller-manager", cmds["kube-controller-manager"])
    start(cfg, "kube-scheduler", cmds["kube-scheduler"])
    # containerd finds its shim and runc on PATH (/usr/sbin for Debian's runc).
    path_env = {"PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"}
    start(cfg, "containerd", cmds["containerd"], env=path_env)
    wait_until("containerd", lambda: containerd_ready(cfg), 60, cfg, "containerd")
    t_import = time.monotonic()
    imported = import_images(cfg)
    log(f"imported {imported} image archive(s) in {time.monotonic() - t_import:.1f} s")
    start(cfg, "kubelet", cmds["kubelet"], env=path_env)
    start(cfg, "kube-proxy", cmds["kube-proxy"], env=path_env)
    wait_until("kube-proxy", lambda: kube_proxy_healthy(cfg), 60, cfg, "kube-proxy")
    wait_until(f"node {cfg.node_name} Ready", lambda: node_ready(cfg), timeout, cfg, "kubelet")
    local_storage(cfg)
    if addons:
        apply_addons(cfg)
        wait_addons(cfg, timeout)
    log(f"e2e cluster up in {time.monotonic() - t0:.1f} s; kubeconfig {cfg.kubeconfig}; ingress {cfg.ingress_url}")


def delete_pods(cfg: Config) -> None:
    """Let the kubelet stop every pod properly (CNI DEL, unmounts) before it goes: controllers first, so
    nothing is recreated, then force-delete all pods and wait for containerd to run no task."""
    if not (recorded(cfg, "kubelet") and recorded(cfg, "kube-apiserver")):
        return
    stop(cfg, "kube-controller-manager")
    kubectl(
        "delete",
        "pods",
        "--all",
        "--all-namespaces",
        "--grace-period=0",
        "--force",
        "--wait=false",
        check=False,
        timeout=60,
        kubeconfig=cfg.kubeconfig,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        tasks = ctr(cfg, "tasks", "ls", "-q", check=False, timeout=20).stdout.split()
        if not tasks:
            return
        time.sleep(1)
    log("some containers outlived the pod deletion; they are killed below")


def kill_tasks(cfg: Config) -> None:
    if not recorded(cfg, "containerd"):
        return
    for task in ctr(cfg, "tasks", "ls", "-q", check=False).stdout.split():
        ctr(cfg, "tasks", "kill", "--signal=SIGKILL", task, check=False)
    time.sleep(1)
    netns: set[str] = set()
    for container in ctr(cfg, "containers", "ls", "-q", check=False).stdout.split():
        info = ctr(cfg, "containers", "info", container, check=False).stdout
        with contextlib.suppress(ValueError, KeyError, TypeError):
            for ns in json.loads(info)["Spec"]["linux"]["namespaces"]:
                if ns.get("type") == "network" and ns.get("path", "").startswith("/var/run/netns/"):
                    netns.add(Path(ns["path"]).name)
        ctr(cfg, "tasks", "delete", "--force", container, check=False)
        ctr(cfg, "containers", "delete", container, check=False)
    for name in sorted(netns):
        run(["ip", "netns", "delete", name], check=False)


def shim_pids(cfg: Config) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if (
                cmdline
                and cmdline[0].endswith(b"containerd-shim-runc-v2")
                and str(cfg.containerd_socket).encode() in cmdline
            ):
                pids.append(int(proc.name))
    return pids


def unmount_all(cfg: Config) -> None:
    """Everything the kubelet and containerd mounted under the state directory, deepest first."""
    prefix = str(cfg.state.resolve()) + "/"
    for _attempt in range(3):
        mounts = []
        for line in Path("/proc/self/mounts").read_text().splitlines():
            target = line.split()[1].replace("\\040", " ")
            if target.startswith(prefix):
                mounts.append(target)
        if not mounts:
            return
        for target in sorted(mounts, key=len, reverse=True):
            if run(["umount", target], check=False).returncode != 0:
                run(["umount", "-l", target], check=False)


def remove_cgroups() -> None:
    """The empty pod cgroups the kubelet created (cgroupfs driver: /kubepods in each v1 hierarchy)."""
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        top = hierarchy / "kubepods"
        if not top.is_dir():
            continue
        for path in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                path.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


# Chains the kubelet itself creates (its canaries, the localnet firewall, the backend hint), and kube-router's
# firewall chains and ipsets: kube-proxy's --cleanup knows neither, and kube-router v2.1.0's --cleanup-config
# reports success but leaves its chains (then panics in the service-proxy part this node never ran).
KUBELET_CHAINS = ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT")
KUBE_ROUTER_CHAIN_PREFIXES = ("KUBE-ROUTER-", "KUBE-NWPLCY-", "KUBE-POD-FW-")
KUBE_ROUTER_IPSET_PREFIXES = ("KUBE-SRC-", "KUBE-DST-", "kube-router-")


def _ours(chain: str) -> bool:
    return chain in KUBELET_CHAINS or chain.startswith(KUBE_ROUTER_CHAIN_PREFIXES)


def cleanup_chains() -> None:
    """Remove the kubelet's and kube-router's chains: first the jumps into them from other chains, then the
    chains themselves (flushed, so they no longer reference each other, then deleted)."""
    for tool in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            saved = run([tool, "-t", table, "-S"], check=False).stdout.splitlines()
            chains = [line.split()[1] for line in saved if line.startswith("-N ") and _ours(line.split()[1])]
            for rule in saved:
                parts = shlex.split(rule)
                jumps = "-j" in parts and _ours(parts[parts.index("-j") + 1])
                if parts[:1] == ["-A"] and jumps and not _ours(parts[1]):
                    run([tool, "-t", table, "-D", *parts[1:]], check=False)
            for chain in chains:
                run([tool, "-t", table, "-F", chain], check=False)
            for chain in chains:
                run([tool, "-t", table, "-X", chain], check=False)
    for name in run(["ipset", "list", "-n"], check=False).stdout.split():
        if name.startswith(KUBE_ROUTER_IPSET_PREFIXES):
            run(["ipset", "destroy", name], check=False)


def cleanup_iptables(cfg: Config) -> None:
    with contextlib.suppress(HarnessError):
        run(
            [binary(cfg, "kube-proxy"), "--cleanup", f"--config={cfg.state / 'kube-proxy-config.yaml'}"],
            check=False,
            timeout=60,
        )
    cleanup_chains()


def host_snapshot(cfg: Config) -> Path:
    return cfg.e2e / "host-before-up.json"


def check_clean(cfg: Config) -> None:
    """Compare the host with its state before `up`; every difference is something `down` left or broke."""
    before_path = host_snapshot(cfg)
    if not before_path.exists():
        return
    found = host.differences(json.loads(before_path.read_text()), host.snapshot(cfg.state))
    before_path.unlink()
    if found:
        raise ClusterError("the host is not as the node found it:\n  - " + "\n  - ".join(found))
    log(
        "host checked: links, iptables, ipsets, sysctls, mounts, network namespaces, cgroups and processes as before up"
    )


def diagnose(cfg: Config, out: Path | None = None) -> Path:
    target = out or cfg.e2e / "diagnosis" / time.strftime("%Y%m%d-%H%M%S")
    return host.diagnose(target, lambda *a, **k: kubectl(*a, **k, kubeconfig=cfg.kubeconfig), cfg.logs)


def down(cfg: Config) -> None:
    if not cfg.state.exists():
        log("no e2e cluster state; nothing to stop")
        check_clean(cfg)
        return
    t0 = time.monotonic()
    delete_pods(cfg)
    stop(cfg, "kube-proxy")
    stop(cfg, "kubelet")
    kill_tasks(cfg)
    stop(cfg, "containerd")
    for pid in shim_pids(cfg):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for component in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
        stop(cfg, component)
    unmount_all(cfg)
    remove_cgroups()
    if (cfg.state / "kube-proxy-config.yaml").exists():
        cleanup_iptables(cfg)
    for link in (cfg.cni_bridge, cfg.node_link):
        if link_exists(link):
            run(["ip", "link", "delete", link], check=False)
    release_netns_mount(cfg)
    restore_sysctls(cfg)
    keep = cfg.e2e / "logs-last"
    shutil.rmtree(keep, ignore_errors=True)
    if cfg.logs.exists():
        shutil.copytree(cfg.logs, keep)
    shutil.rmtree(cfg.state, ignore_errors=True)
    log(f"e2e cluster removed in {time.monotonic() - t0:.1f} s (its logs: {keep})")
    check_clean(cfg)


def status(cfg: Config) -> dict[str, object]:
    procs = {c: recorded(cfg, c) for c in COMPONENTS}
    running = all(procs.values())
    return {
        "state": "running" if running and node_ready(cfg) else ("absent" if not any(procs.values()) else "degraded"),
        "kubeconfig": str(cfg.kubeconfig),
        "server": cfg.server,
        "node": cfg.node_name,
        "node_ip": cfg.node_ip,
        "ingress": cfg.ingress_url,
        "processes": procs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "down", "status", "import-images", "addons", "preflight", "diagnose"))
    parser.add_argument("--out", type=Path, help="diagnose: the folder to write (default: e2e/diagnosis/<time>)")
    parser.add_argument("--timeout", type=int, default=300)
    parser.add_argument("--no-addons", action="store_true", help="up: stop after the node is Ready")
    args = parser.parse_args(argv)
    cfg = Config.from_env()
    try:
        if args.command == "up":
            up(cfg, args.timeout, addons=not args.no_addons)
        elif args.command == "down":
            down(cfg)
        elif args.command == "import-images":
            log(f"imported {import_images(cfg)} image archive(s)")
        elif args.command == "addons":
            apply_addons(cfg)
            wait_addons(cfg, args.timeout)
        elif args.command == "preflight":
            missing = host.preflight()
            for item in missing:
                print(f"missing: {item}")
            return 1 if missing else 0
        elif args.command == "diagnose":
            if not recorded(cfg, "kube-apiserver"):
                raise ClusterError("no running e2e cluster to diagnose")
            print(diagnose(cfg, args.out))
        else:
            report = status(cfg)
            print(json.dumps(report, indent=2))
            return 0 if report["state"] == "running" else 1
    except HarnessError as exc:
        log(f"ERROR: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
