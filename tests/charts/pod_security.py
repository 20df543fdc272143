"""Pod Security Standards checker: the `baseline` and `restricted` profiles, for rendered pod templates.

Written from the published Pod Security Standards (kubernetes.io/docs/concepts/security/pod-security-standards)
at the latest policy version. `restricted` includes every `baseline` control, so `restricted_violations`
checks both. Each violation is a readable sentence naming the control, the container and the offending value,
the way the admission plugin words its rejections.

The checker works on plain dicts (a PodSpec and the pod's metadata) so it runs on `helm template` output.
It is deliberately stricter in two places: it grants no relaxation to pods in a user namespace
(`hostUsers: false`), and it applies the capability rules to ephemeral containers too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

# Capabilities `baseline` lets containers add; `restricted` narrows this to NET_BIND_SERVICE.
BASELINE_ADDABLE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
RESTRICTED_ADDABLE_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})

# The "safe" sysctl set of `baseline` (latest policy version).
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
        "net.ipv4.tcp_slow_start_after_idle",
        "net.ipv4.tcp_notsent_lowat",
    }
)

# SELinux types `baseline` allows (an empty/unset type is allowed too).
ALLOWED_SELINUX_TYPES = frozenset({"container_t", "container_init_t", "container_kvm_t", "container_engine_t"})

# Volume sources `restricted` allows; any other source (hostPath, nfs, iscsi, ...) is a violation.
RESTRICTED_VOLUME_SOURCES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)

APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Yield (kind/name, container) for every init, app and ephemeral container of a PodSpec."""
    for field in CONTAINER_LISTS:
        for container in spec.get(field) or []:
            yield f"{field[:-1]} {container.get('name', '?')!r}", container


def _security_context(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("securityContext") or {}


def _baseline_host_namespaces(spec: Mapping[str, Any]) -> list[str]:
    return [
        f"host namespaces: {field}={spec[field]!r} must be unset or false"
        for field in ("hostNetwork", "hostPID", "hostIPC")
        if spec.get(field)
    ]


def _baseline_host_process(spec: Mapping[str, Any]) -> list[str]:
    found = []
    if (_security_context(spec).get("windowsOptions") or {}).get("hostProcess"):
        found.append("HostProcess: pod securityContext.windowsOptions.hostProcess must be unset or false")
    for where, container in containers(spec):
        if (_security_context(container).get("windowsOptions") or {}).get("hostProcess"):
            found.append(f"HostProcess: {where} securityContext.windowsOptions.hostProcess must be unset or false")
    return found


def _baseline_privileged(spec: Mapping[str, Any]) -> list[str]:
    return [
        f"privileged: {where} securityContext.privileged must be unset or false"
        for where, c in containers(spec)
        if _security_context(c).get("privileged")
    ]


def _baseline_host_path_and_ports(spec: Mapping[str, Any]) -> list[str]:
    found = [
        f"hostPath volumes: volume {v.get('name')!r} uses hostPath"
        for v in spec.get("volumes") or []
        if "hostPath" in v
    ]
    for where, container in containers(spec):
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                port_name = port.get("name") or port.get("containerPort")
                found.append(f"host ports: {where} port {port_name} sets hostPort {port['hostPort']}")
    return found


PROBE_FIELDS = ("livenessProbe", "readinessProbe", "startupProbe")


def _handlers(container: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Yield (field, handler) for every probe and lifecycle handler of a container."""
    for field in PROBE_FIELDS:
        if container.get(field):
            yield field, container[field]
    for hook, handler in (container.get("lifecycle") or {}).items():
        yield f"lifecycle.{hook}", handler or {}


def _baseline_host_probes(spec: Mapping[str, Any]) -> list[str]:
    """Probes and lifecycle handlers must not name another host (policy version 1.34+)."""
    found = []
    for where, container in containers(spec):
        for field, handler in _handlers(container):
            for action in ("httpGet", "tcpSocket"):
                host = (handler.get(action) or {}).get("host")
                if host:
                    found.append(f"host probes / lifecycle: {where} {field}.{action}.host {host!r} must be unset")
    return found


def _apparmor_type_ok(profile: Mapping[str, Any] | None) -> bool:
    return not profile or profile.get("type") in {None, "RuntimeDefault", "Localhost"}


def _baseline_apparmor(spec: Mapping[str, Any], annotations: Mapping[str, str]) -> list[str]:
    found = []
    if not _apparmor_type_ok(_security_context(spec).get("appArmorProfile")):
        found.append("AppArmor: pod securityContext.appArmorProfile.type must be RuntimeDefault or Localhost")
    for where, container in containers(spec):
        if not _apparmor_type_ok(_security_context(container).get("appArmorProfile")):
            found.append(f"AppArmor: {where} securityContext.appArmorProfile.type must be RuntimeDefault or Localhost")
    for key, value in annotations.items():
        if (
            key.startswith(APPARMOR_ANNOTATION_PREFIX)
            and value != "runtime/default"
            and not value.startswith("localhost/")
        ):
            found.append(f"AppArmor: annotation {key}={value!r} must be runtime/default or localhost/*")
    return found


def _selinux_problems(options: Mapping[str, Any] | None, where: str) -> list[str]:
    if not options:
        return []
    found = []
    if options.get("type") not in (None, "", *ALLOWED_SELINUX_TYPES):
        found.append(f"SELinux: {where} seLinuxOptions.type {options['type']!r} is not allowed")
    found += [
        f"SELinux: {where} seLinuxOptions.{field} must be unset" for field in ("user", "role") if options.get(field)
    ]
    return found


def _baseline_selinux(spec: Mapping[str, Any]) -> list[str]:
    found = _selinux_problems(_security_context(spec).get("seLinuxOptions"), "pod")
    for where, container in containers(spec):
        found += _selinux_problems(_security_context(container).get("seLinuxOptions"), where)
    return found


def _baseline_proc_mount_and_sysctls(spec: Mapping[str, Any]) -> list[str]:
    found = [
        f"/proc mount type: {where} securityContext.procMount must be unset or Default"
        for where, c in containers(spec)
        if _security_context(c).get("procMount") not in (None, "Default")
    ]
    for sysctl in _security_context(spec).get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            found.append(f"sysctls: {sysctl.get('name')!r} is not in the safe set")
    return found


def _capabilities(container: Mapping[str, Any]) -> Mapping[str, Any]:
    return _security_context(container).get("capabilities") or {}


def _baseline_capabilities(spec: Mapping[str, Any]) -> list[str]:
    found = []
    for where, container in containers(spec):
        for cap in _capabilities(container).get("add") or []:
            if cap not in BASELINE_ADDABLE_CAPABILITIES:
                found.append(f"capabilities: {where} adds {cap}, outside the baseline set")
    return found


def _seccomp_type(obj: Mapping[str, Any]) -> str | None:
    return (_security_context(obj).get("seccompProfile") or {}).get("type")


def _baseline_seccomp(spec: Mapping[str, Any]) -> list[str]:
    found = ["seccomp: pod seccompProfile.type must not be Unconfined"] if _seccomp_type(spec) == "Unconfined" else []
    return found + [
        f"seccomp: {where} seccompProfile.type must not be Unconfined"
        for where, c in containers(spec)
        if _seccomp_type(c) == "Unconfined"
    ]


def baseline_violations(spec: Mapping[str, Any], annotations: Mapping[str, str] | None = None) -> list[str]:
    """Return every `baseline` control the PodSpec breaks (empty when it passes)."""
    return [
        *_baseline_host_process(spec),
        *_baseline_host_namespaces(spec),
        *_baseline_privileged(spec),
        *_baseline_capabilities(spec),
        *_baseline_host_path_and_ports(spec),
        *_baseline_host_probes(spec),
        *_baseline_apparmor(spec, annotations or {}),
        *_baseline_selinux(spec),
        *_baseline_proc_mount_and_sysctls(spec),
        *_baseline_seccomp(spec),
    ]


def _restricted_volumes(spec: Mapping[str, Any]) -> list[str]:
    found = []
    for volume in spec.get("volumes") or []:
        sources = set(volume) - {"name"}
        bad = sorted(sources - RESTRICTED_VOLUME_SOURCES)
        if bad:
            found.append(f"volume types: volume {volume.get('name')!r} uses {', '.join(bad)}")
    return found


def _restricted_privilege_escalation(spec: Mapping[str, Any]) -> list[str]:
    return [
        f"privilege escalation: {where} must set securityContext.allowPrivilegeEscalation=false"
        for where, c in containers(spec)
        if _security_context(c).get("allowPrivilegeEscalation") is not False
    ]


def _restricted_non_root(spec: Mapping[str, Any]) -> list[str]:
    """runAsNonRoot must be true at pod level or in every container, and never false in a container."""
    pod_level = _security_context(spec).get("runAsNonRoot")
    found = ["running as non-root: pod securityContext.runAsNonRoot must not be false"] if pod_level is False else []
    for where, container in containers(spec):
        value = _security_context(container).get("runAsNonRoot")
        if value is False or (value is None and pod_level is not True):
            found.append(f"running as non-root: {where} must set runAsNonRoot=true (or inherit it from the pod)")
    return found


def _restricted_non_root_user(spec: Mapping[str, Any]) -> list[str]:
    found = (
        ["running as non-root user: pod securityContext.runAsUser must not be 0"]
        if _security_context(spec).get("runAsUser") == 0
        else []
    )
    return found + [
        f"running as non-root user: {where} runAsUser must not be 0"
        for where, c in containers(spec)
        if _security_context(c).get("runAsUser") == 0
    ]


def _restricted_seccomp(spec: Mapping[str, Any]) -> list[str]:
    """seccompProfile.type must be RuntimeDefault or Localhost at pod level or in every container."""
    allowed = {"RuntimeDefault", "Localhost"}
    pod_type = _seccomp_type(spec)
    found = (
        [f"seccomp: pod seccompProfile.type {pod_type!r} must be RuntimeDefault or Localhost"]
        if pod_type not in (None, *allowed)
        else []
    )
    for where, container in containers(spec):
        own = _seccomp_type(container)
        if own not in (None, *allowed) or (own is None and pod_type not in allowed):
            found.append(
                f"seccomp: {where} must run with seccompProfile RuntimeDefault or Localhost (own or the pod's)"
            )
    return found


def _restricted_capabilities(spec: Mapping[str, Any]) -> list[str]:
    found = []
    for where, container in containers(spec):
        caps = _capabilities(container)
        if "ALL" not in (caps.get("drop") or []):
            found.append(f"capabilities: {where} must drop ALL")
        for cap in caps.get("add") or []:
            if cap not in RESTRICTED_ADDABLE_CAPABILITIES:
                found.append(f"capabilities: {where} may add only NET_BIND_SERVICE, not {cap}")
    return found


def restricted_violations(spec: Mapping[str, Any], annotations: Mapping[str, str] | None = None) -> list[str]:
    """Return every `restricted` (and so `baseline`) control the PodSpec breaks (empty when it passes)."""
    return [
        *baseline_violations(spec, annotations),
        *_restricted_volumes(spec),
        *_restricted_privilege_escalation(spec),
        *_restricted_non_root(spec),
        *_restricted_non_root_user(spec),
        *_restricted_seccomp(spec),
        *_restricted_capabilities(spec),
    ]
