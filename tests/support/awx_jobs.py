"""AWX's job runtime for the tests: launch a job template of the AWX API double as AWX 24.6.1 runs jobs on Kubernetes.

AWX (container groups, the default on Kubernetes) turns a launch into a private data directory, streams it
with `ansible-runner transmit` into a pod of the template's execution environment that runs `ansible-runner
worker --private-data-dir=/runner`, and reads the events back with `ansible-runner process`. Here the pod is
a runc container of the EE image (scripts/build-ee.sh), and everything else follows AWX's code paths,
reimplemented (AWX itself cannot run here):

- the launch: survey defaults that pass AWX's own element validation, overridden by the answers given,
  then AWX's survey validation (required, text min/max, integer range, choices); launch-time tags, skip tags
  and limit only where the template asks for them (AWX ignores the others: here that is an error);
- the project: `scm_update_on_launch` syncs it (the double's registered checkout of the SCM URL, as a
  clone of it would hold: tracked and untracked-but-not-ignored files), copied into ``project/``;
- the inventory: `update_on_launch` runs the inventory source's import in the EE the same way (`ansible-inventory
  --list --export -i <source_path> --playbook-dir ...`, output through the artifacts), and the job gets AWX's
  script inventory (``inventory/hosts``, an executable printing Inventory.get_script_data()'s JSON);
- extra vars: AWX's meta variables (awx_*/tower_*) and the survey answers, every string `!unsafe` as AWX's
  safe_dump writes them (only the template's own extra_vars would be trusted);
- credentials: custom credential types through their injectors exactly as CredentialType.inject_credential
  renders them (file injectors into ``env/`` with the in-container path in ``tower.filename``, env and
  extra_vars injectors, Jinja2 sandbox), Amazon Web Services as AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, Vault
  as ``--vault-id <id>@prompt`` answered through ansible-runner's password prompts;
- the job's environment: AWX_TASK_ENV (the "Extra Environment Variables" job setting), the collections and roles
  paths from the project's ansible.cfg, JOB_ID, INVENTORY_ID, PROJECT_REVISION and the rest of RunJob.build_env;
  the command line of RunJob.build_args (check mode, forks, limit, verbosity, tags, skip tags, vault ids);
  the template's timeout as the job timeout;
- the pod: the image's entrypoint, user (1000, group 0), working directory and environment, a writable
  root file system (an overlay over the unpacked image), and what Kubernetes adds: KUBERNETES_SERVICE_HOST/PORT
  and a service account token under /var/run/secrets/kubernetes.io/serviceaccount (``InCluster``: a decoy API
  server on 127.0.0.1 that records every request, so a client that used the in-cluster configuration is seen).

Unlike a pod, the container shares the host's network namespace, so it reaches the local cluster and the chart
mirror on 127.0.0.1 (both listen nowhere else).
"""

from __future__ import annotations

import configparser
import copy
import datetime
import ipaddress
import json
import os
import shlex
import shutil
import ssl
import subprocess
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from awx_api import ApiDouble
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

CONTAINER_ROOT = "/runner"
# The control side of a job: ansible-runner's Python API streams the private data directory, as AWX does.
TRANSMIT = (
    "import json, sys, ansible_runner; "
    "ansible_runner.run(streamer='transmit', _output=sys.stdout.buffer, **json.loads(sys.argv[1]))"
)
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


# ---------------------------------------------------------------------------------------------- the image


@dataclass
class ExecutionEnvironment:
    """An EE image: its docker-archive (reference and config) and the runc bundle unpacked from it."""

    reference: str
    config: dict[str, Any]
    rootfs: Path

    @classmethod
    def load(cls, archive: Path, bundle: Path) -> ExecutionEnvironment:
        with tarfile.open(archive) as tar:
            (manifest,) = json.load(tar.extractfile("manifest.json"))
            config = json.load(tar.extractfile(manifest["Config"]))["config"]
        (reference,) = manifest["RepoTags"]
        return cls(reference, config, bundle / "rootfs")


def _unsafe_representer(dumper: yaml.SafeDumper, value: Unsafe) -> yaml.Node:
    return dumper.represent_scalar("!unsafe", str(value))


class Unsafe(str):
    """A string AWX writes as !unsafe (never templated by Ansible)."""

    __slots__ = ()


class AwxDumper(yaml.SafeDumper):
    """YAML dumper with AWX's !unsafe strings."""


AwxDumper.add_representer(Unsafe, _unsafe_representer)


def safe_dump(variables: dict[str, Any], safe: dict[str, Any] | None = None) -> str:
    """awx.main.utils.safe_yaml.safe_dump: every string is !unsafe unless its top-level key/value is in ``safe``."""
    safe = safe or {}

    def mark(value: Any) -> Any:
        if isinstance(value, str):
            return Unsafe(value)
        if isinstance(value, dict):
            return {mark(k): mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    marked = {key: (value if safe.get(key) == value else mark(value)) for key, value in variables.items()}
    return yaml.dump(marked, Dumper=AwxDumper, default_flow_style=False, allow_unicode=True)


# ---------------------------------------------------------------------------------------------- in-cluster


class InCluster:
    """What Kubernetes gives every pod: KUBERNETES_SERVICE_* and a mounted service account token.

    The "API server" behind it is a decoy on 127.0.0.1 (TLS, its CA in the mounted ca.crt) that answers 401
    and records each request: any request it gets means a client used the in-cluster configuration instead
    of the kubeconfig the job was given.
    """

    def __init__(self, work: Path) -> None:
        self.dir = work / "serviceaccount"
        self.requests: list[dict[str, str]] = []
        self.server: ThreadingHTTPServer | None = None
        self.port = 0

    def start(self) -> InCluster:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.dir.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "decoy in-cluster API server")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("kubernetes.default.svc")]
                ),
                critical=False,
            )
            .sign(key, hashes.SHA256())
        )
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        (self.dir / "ca.crt").write_bytes(cert_pem)
        (self.dir / "namespace").write_text("awx")
        (self.dir / "token").write_text("decoy-service-account-token-of-the-awx-pod")
        for path in self.dir.iterdir():
            path.chmod(0o644)
        self.dir.chmod(0o755)
        key_file = self.dir.parent / "decoy.key"
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        decoy = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                decoy.requests.append(
                    {"method": self.command, "path": self.path, "authorization": self.headers.get("Authorization", "")}
                )
                body = json.dumps(
                    {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Unauthorized", "code": 401}
                ).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _record

            def log_message(self, format: str, *args: Any) -> None:  # pylint: disable=redefined-builtin
                """Requests are recorded, not printed."""

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.dir / "ca.crt", key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self.server, self.port = server, server.server_address[1]
        threading.Thread(target=server.serve_forever, name="in-cluster-decoy", daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def env(self) -> dict[str, str]:
        """The variables Kubernetes sets in every container of a pod for the kubernetes Service."""
        port = str(self.port)
        return {
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
            "KUBERNETES_PORT": f"tcp://127.0.0.1:{port}",
            "KUBERNETES_PORT_443_TCP": f"tcp://127.0.0.1:{port}",
            "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
            "KUBERNETES_PORT_443_TCP_ADDR": "127.0.0.1",
            "KUBERNETES_PORT_443_TCP_PORT": port,
        }


# ---------------------------------------------------------------------------------------------- the pod


@dataclass
class Pod:
    """A runc container of an EE image, as a container group pod runs it."""

    ee: ExecutionEnvironment
    work: Path
    in_cluster: InCluster | None = None

    def spec(self, name: str, args: list[str], rootfs: Path) -> dict[str, Any]:
        config = self.ee.config
        user = str(config.get("User") or "0")
        uid, _sep, gid = user.partition(":")
        env = list(config.get("Env") or [])
        env.append(f"HOSTNAME={name}")
        if self.in_cluster:
            env += [f"{k}={v}" for k, v in self.in_cluster.env().items()]
        mounts: list[dict[str, Any]] = [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {
                "destination": "/etc/resolv.conf",
                "type": "bind",
                "source": "/etc/resolv.conf",
                "options": ["rbind", "ro"],
            },
        ]
        if self.in_cluster:
            mounts.append(
                {
                    "destination": SERVICE_ACCOUNT_DIR,
                    "type": "bind",
                    "source": str(self.in_cluster.dir),
                    "options": ["rbind", "ro"],
                }
            )
        caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
        return {
            "ociVersion": "1.0.2",
            "process": {
                "terminal": False,
                "user": {"uid": int(uid), "gid": int(gid or 0)},
                "args": list(config.get("Entrypoint") or []) + args,
                "env": env,
                "cwd": config.get("WorkingDir") or "/",
                "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
                "noNewPrivileges": True,
            },
            "root": {"path": str(rootfs), "readonly": False},
            "hostname": name,
            "mounts": mounts,
            "linux": {
                # No network namespace: the container reaches the cluster and the chart mirror on 127.0.0.1.
                "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount")],
                "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
                "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
            },
        }

    def run(self, name: str, args: list[str], *, stdin: Any, stdout: Any, stderr: Any) -> subprocess.Popen:
        """Start the container; ``wait_and_remove`` cleans it up. The root file system is an overlay of the image."""
        run_dir = self.work / "pods" / name
        if run_dir.exists():
            self._cleanup(name, run_dir)
        for sub in ("upper", "overlay-work", "rootfs"):
            (run_dir / sub).mkdir(parents=True)
        subprocess.run(
            [
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                f"lowerdir={self.ee.rootfs},upperdir={run_dir / 'upper'},workdir={run_dir / 'overlay-work'}",
                str(run_dir / "rootfs"),
            ],
            check=True,
        )
        (run_dir / "config.json").write_text(json.dumps(self.spec(name, args, run_dir / "rootfs")))
        return subprocess.Popen(
            ["runc", "--root", str(self.work / "runc"), "run", "--bundle", str(run_dir), name],
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
        )

    def exec(
        self, args: list[str], *, timeout: float = 300, name: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run one command in a fresh container of the image (through its entrypoint) and remove it."""
        name = name or f"ee-exec-{os.getpid()}-{time.monotonic_ns()}"
        proc = self.run(name, args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
            self.remove(name)
        return subprocess.CompletedProcess(args, proc.returncode, out.decode(), err.decode())

    def remove(self, name: str) -> None:
        self._cleanup(name, self.work / "pods" / name)

    def _cleanup(self, name: str, run_dir: Path) -> None:
        subprocess.run(
            ["runc", "--root", str(self.work / "runc"), "delete", "--force", name], capture_output=True, check=False
        )
        if (run_dir / "rootfs").is_mount():
            subprocess.run(["umount", str(run_dir / "rootfs")], check=True)
        shutil.rmtree(run_dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- jobs


class LaunchRefused(Exception):
    """AWX refused the launch (400): the errors it would answer."""


@dataclass
class JobResult:
    """What AWX records of a finished job."""

    name: str
    job_id: int
    status: str
    rc: int | None
    stdout: str
    stats: dict[str, dict[str, int]]
    seconds: float
    extra_vars: dict[str, Any]
    args: list[str]
    env: dict[str, str]
    artifacts: Path
    events: list[dict[str, Any]] = field(default_factory=list)

    def host_stats(self, host: str = "localhost") -> dict[str, int]:
        return {key: counts.get(host, 0) for key, counts in self.stats.items()}

    def task_results(self, task: str) -> list[dict[str, Any]]:
        """event_data of the runner_on_ok/failed events of the tasks with this name."""
        return [
            e["event_data"]
            for e in self.events
            if e.get("event") in ("runner_on_ok", "runner_on_failed") and e.get("event_data", {}).get("task") == task
        ]


def survey_element_errors(element: dict[str, Any], data: dict[str, Any]) -> list[str]:
    """SurveyJobTemplateMixin._survey_element_validation of AWX 24."""
    variable, kind = element["variable"], element["type"]
    errors: list[str] = []
    if variable not in data:
        if element.get("required"):
            errors.append(f"'{variable}' value missing")
        return errors
    value = data[variable]
    if kind in ("text", "textarea", "password"):
        if not isinstance(value, str):
            return [f"Value {value} for '{variable}' expected to be a string."]
        if element.get("min") not in ("", None) and len(value) < int(element["min"]):
            errors.append(
                f"'{variable}' value {value} is too small (length is {len(value)} must be at least {element['min']})."
            )
        if element.get("max") not in ("", None) and len(value) > int(element["max"]):
            errors.append(f"'{variable}' value {value} is too large (must be no more than {element['max']}).")
    elif kind in ("integer", "float"):
        wanted = int if kind == "integer" else (int, float)
        if not isinstance(value, wanted) or isinstance(value, bool):
            article = "an integer" if kind == "integer" else "a numeric type"
            return [f"Value {value} for '{variable}' expected to be {article}."]
        if element.get("min") not in ("", None) and value < element["min"]:
            errors.append(f"'{variable}' value {value} is too small (must be at least {element['min']}).")
        if element.get("max") not in ("", None) and value > element["max"]:
            errors.append(f"'{variable}' value {value} is too large (must be no more than {element['max']}).")
    elif kind in ("multiplechoice", "multiselect"):
        choices = element["choices"]
        if isinstance(choices, str):
            choices = [c for c in choices.splitlines() if c.strip()]
        values = value if kind == "multiselect" else [value]
        if kind == "multiselect" and not isinstance(value, list):
            return [f"'{variable}' value is expected to be a list."]
        errors += [f"Value {v} for '{variable}' expected to be one of {choices}." for v in values if v not in choices]
    return errors


def script_inventory(export: dict[str, Any]) -> dict[str, Any]:
    """awx-manage inventory_import (overwrite) of `ansible-inventory --list --export`, then Inventory.get_script_data().

    The variables of group all become the inventory's variables; every other group keeps its hosts, children
    and variables; hosts keep their own variables plus AWX's remote_tower_enabled (remote_tower_id is popped
    into the job's host map before the file is written).
    """
    hostvars = export.get("_meta", {}).get("hostvars", {})
    groups = {name: data for name, data in export.items() if name not in ("_meta", "all", "ungrouped")}
    grouped = {host for data in groups.values() for host in data.get("hosts", [])}
    data: dict[str, Any] = {"all": {}}
    all_vars = export.get("all", {}).get("vars", {})
    if all_vars:
        data["all"]["vars"] = all_vars
    data["all"]["hosts"] = sorted(h for h in hostvars if h not in grouped) + sorted(
        export.get("ungrouped", {}).get("hosts", [])
    )
    for name, group in sorted(groups.items()):
        info = {key: group[key] for key in ("hosts", "children", "vars") if group.get(key)}
        if info:
            data[name] = info
    if groups:
        data["all"]["children"] = sorted(groups)
    every_host = sorted(set(hostvars) | grouped)
    data["_meta"] = {"hostvars": {h: {**hostvars.get(h, {}), "remote_tower_enabled": "true"} for h in every_host}}
    return data


class Awx:
    """Launches the job templates of an AWX API double in EE pods; one instance per test session."""

    def __init__(
        self,
        api: ApiDouble,
        images: dict[str, ExecutionEnvironment],
        work: Path,
        runner: str,
        in_cluster: InCluster | None = None,
    ) -> None:
        self.api = api
        self.images = images
        self.work = work
        self.runner = runner
        self.in_cluster = in_cluster
        self.job_ids = iter(range(1001, 100000))

    # ------------------------------------------------------------------ the pieces of a launch

    def pod(self, ee_id: int | None) -> Pod:
        if ee_id is None:
            raise LaunchRefused("no execution environment")
        image = self.api.get("execution_environments", ee_id)["image"]
        if image not in self.images:
            raise LaunchRefused(f"Failed to pull {image}: the image is not in the registry of this test")
        return Pod(self.images[image], self.work, self.in_cluster)

    def sync_project(self, project: dict[str, Any], dest: Path, *, update: bool = True) -> str:
        """The project in a job's private data directory: a fresh sync when ``update`` (scm_update_on_launch),
        copied into ``dest`` as a clone of the registered checkout holds it (tracked and untracked-not-ignored
        files). Returns the revision."""
        if update:
            self.api.project_update(project)
        checkout = self.api.checkouts.get(project["scm_url"])
        if checkout is None:
            raise LaunchRefused(f"project update failed: cannot clone {project['scm_url']}")
        listing = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=checkout,
            capture_output=True,
            check=True,
        ).stdout.decode()
        for rel in filter(None, listing.split("\0")):
            src = checkout / rel
            if not src.exists() and not src.is_symlink():
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target, follow_symlinks=False)
        return project["scm_revision"]

    def stream(self, pod: Pod, pdd: Path, ident: str, kwargs: dict[str, Any], timeout: float) -> tuple[str, int | None]:
        """transmit | worker (in the pod) | process, as receptor does; returns the job's status and rc."""
        name = f"awx-job-{ident}"
        log = pdd.parent / f"{ident}.pod.log"
        with log.open("w") as pod_log:
            # AWX calls ansible_runner.run(streamer="transmit", ...) (the CLI cannot run a non-playbook binary).
            transmit = subprocess.Popen(
                [str(Path(self.runner).resolve().parent / "python"), "-c", TRANSMIT,
                 json.dumps({"private_data_dir": str(pdd), "ident": ident, **kwargs})],
                stdout=subprocess.PIPE,
                stderr=pod_log,
            )  # fmt: skip
            worker = pod.run(
                name,
                ["ansible-runner", "worker", f"--private-data-dir={CONTAINER_ROOT}"],
                stdin=transmit.stdout,
                stdout=subprocess.PIPE,
                stderr=pod_log,
            )
            process = subprocess.Popen(
                [self.runner, "process", str(pdd), "--ident", ident],
                stdin=worker.stdout,
                stdout=subprocess.DEVNULL,
                stderr=pod_log,
            )
            assert transmit.stdout and worker.stdout
            transmit.stdout.close()
            worker.stdout.close()
            try:
                process.wait(timeout=timeout)
                worker.wait(timeout=60)
                transmit.wait(timeout=60)
            finally:
                for proc in (transmit, worker, process):
                    if proc.poll() is None:
                        proc.kill()
                pod.remove(name)
        artifacts = pdd / "artifacts" / ident
        status = (artifacts / "status").read_text().strip() if (artifacts / "status").is_file() else "error"
        rc_text = (artifacts / "rc").read_text().strip() if (artifacts / "rc").is_file() else ""
        if status == "error" and not (artifacts / "status").is_file():
            raise RuntimeError(f"the job stream broke; pod log:\n{log.read_text()[-4000:]}")
        return status, int(rc_text) if rc_text.lstrip("-").isdigit() else None

    def update_inventory(self, inventory: dict[str, Any], job_dir: Path) -> dict[str, Any]:
        """update_on_launch: the SCM inventory source imported in the source's EE; returns the script data."""
        (source,) = self.api.find("inventory_sources", inventory=inventory["id"])
        project = self.api.get("projects", source["source_project"])
        ident = f"{next(self.job_ids)}"
        pdd = job_dir / f"inventory-update-{ident}"
        (pdd / "env").mkdir(parents=True)
        self.sync_project(project, pdd / "project", update=False)
        path = f"{CONTAINER_ROOT}/project/{source['source_path']}"
        playbook_dir = os.path.dirname(path)
        output = f"{CONTAINER_ROOT}/artifacts/{ident}/output.json"
        cmdline = f"--list --export -i {path} --output {output} --playbook-dir {playbook_dir}"
        if source["verbosity"]:
            cmdline += " -" + "v" * min(5, source["verbosity"] * 2 + 1)
        env = {
            **self.api.settings["jobs"]["AWX_TASK_ENV"],
            "INVENTORY_SOURCE_ID": str(source["id"]),
            "INVENTORY_UPDATE_ID": ident,
            "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
            "ANSIBLE_INVENTORY_EXPORT": "True",
            "PROJECT_REVISION": project["scm_revision"],
        }
        (pdd / "env" / "envvars").write_text(json.dumps(env))
        (pdd / "env" / "settings").write_text(json.dumps({"job_timeout": source["timeout"] or 0}))
        status, rc = self.stream(
            self.pod(source["execution_environment"]),
            pdd,
            ident,
            {"binary": "ansible-inventory", "cmdline": cmdline},
            timeout=900,
        )
        result = pdd / "artifacts" / ident / "output.json"
        if status != "successful" or not result.is_file():
            stdout = (
                (pdd / "artifacts" / ident / "stdout").read_text()
                if (pdd / "artifacts" / ident / "stdout").is_file()
                else ""
            )
            raise LaunchRefused(f"inventory update {status} (rc {rc}):\n{stdout[-3000:]}")
        return script_inventory(json.loads(result.read_text()))

    def survey_answers(self, template: dict[str, Any], answers: dict[str, Any]) -> dict[str, Any]:
        """The extra vars a survey launch gives: valid defaults, then the answers; AWX's launch validation."""
        spec = template.get("_survey_spec") or {}
        if not template["survey_enabled"] or not spec:
            return dict(answers)
        values: dict[str, Any] = {}
        for element in spec.get("spec", []):
            default = element.get("default")
            if default is not None and not survey_element_errors(element, {element["variable"]: default}):
                values[element["variable"]] = default
        values.update(answers)
        errors = [e for element in spec["spec"] for e in survey_element_errors(element, values)]
        if errors:
            raise LaunchRefused({"variables_needed_to_start": errors})
        return values

    def inject(self, credential: dict[str, Any], env: dict[str, str], args: list[str], pdd: Path) -> dict[str, str]:
        """A credential's injection (CredentialType.inject_credential / the managed types); returns vault prompts."""
        ctype = self.api.get("credential_types", credential["credential_type"])
        inputs = self.api.secret_inputs(credential)
        passwords: dict[str, str] = {}
        if ctype["managed"]:
            if ctype["kind"] == "vault":
                vault_id = inputs.get("vault_id")
                args += ["--vault-id", f"{vault_id}@prompt"] if vault_id else ["--ask-vault-pass"]
                prompt = rf"Vault password \({vault_id}\):\s*?$" if vault_id else r"Vault password:\s*?$"
                passwords[prompt] = inputs.get("vault_password", "")
            elif ctype["namespace"] == "aws":
                env["AWS_ACCESS_KEY_ID"] = inputs.get("username", "")
                env["AWS_SECRET_ACCESS_KEY"] = inputs.get("password", "")
                if inputs.get("security_token"):
                    env["AWS_SECURITY_TOKEN"] = env["AWS_SESSION_TOKEN"] = inputs["security_token"]
            else:
                raise LaunchRefused(f"credential kind {ctype['kind']} is not replayed here")
            return passwords
        sandbox = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
        namespace: dict[str, Any] = {
            f["id"]: inputs.get(f["id"], f.get("default", "")) for f in ctype["inputs"].get("fields", [])
        }
        filenames: dict[str, str] = {}
        single: str | None = None
        for label, template in ctype["injectors"].get("file", {}).items():
            handle, path = tempfile.mkstemp(dir=pdd / "env")
            with os.fdopen(handle, "w") as out:
                out.write(sandbox.from_string(template).render(**namespace))
            os.chmod(path, 0o600)
            container_path = f"{CONTAINER_ROOT}/{Path(path).relative_to(pdd)}"
            if "." in label:
                filenames[label.split(".", 1)[1]] = container_path
            else:
                single = container_path
        namespace["tower"] = namespace["awx"] = {"filename": filenames or single}
        for key, template in ctype["injectors"].get("env", {}).items():
            env[key] = sandbox.from_string(template).render(**namespace)
        extra = {
            k: sandbox.from_string(v).render(**namespace) for k, v in ctype["injectors"].get("extra_vars", {}).items()
        }
        if extra:
            handle, path = tempfile.mkstemp(dir=pdd / "env")
            with os.fdopen(handle, "w") as out:
                out.write(safe_dump(extra))
            args += ["-e", f"@{CONTAINER_ROOT}/{Path(path).relative_to(pdd)}"]
        return passwords

    # ------------------------------------------------------------------ launch

    def launch(
        self,
        template_name: str,
        *,
        extra_vars: dict[str, Any] | None = None,
        job_tags: str | None = None,
        skip_tags: str | None = None,
        limit: str | None = None,
        credentials: list[str] | None = None,
        timeout: float | None = None,
    ) -> JobResult:
        """POST /job_templates/N/launch/ with these prompts, then run the job to its end."""
        start = time.monotonic()
        template = copy.deepcopy(self.api.one("job_templates", name=template_name))
        prompts = {"job_tags": job_tags, "skip_tags": skip_tags, "limit": limit, "credentials": credentials}
        asked = {
            "job_tags": "ask_tags_on_launch",
            "skip_tags": "ask_skip_tags_on_launch",
            "limit": "ask_limit_on_launch",
            "credentials": "ask_credential_on_launch",
        }
        for key, value in prompts.items():
            if value is not None and not template[asked[key]]:
                raise LaunchRefused(f"{template_name} does not prompt for {key}; AWX would ignore it")
        answers = self.survey_answers(template, extra_vars or {})
        job_id = next(self.job_ids)
        ident = str(job_id)
        job_dir = self.work / "jobs"
        pdd = job_dir / f"job-{ident}"
        for sub in ("env", "inventory", "project"):
            (pdd / sub).mkdir(parents=True, exist_ok=True)
        project = self.api.get("projects", template["project"])
        inventory = self.api.get("inventories", template["inventory"])
        revision = self.sync_project(project, pdd / "project", update=project["scm_update_on_launch"])
        script = self.update_inventory(inventory, job_dir)
        hosts = pdd / "inventory" / "hosts"
        hosts.write_text(f"#! /usr/bin/env python3\n# -*- coding: utf-8 -*-\nprint({json.dumps(script)!r})\n")
        hosts.chmod(0o700)

        creds = (
            [self.api.one("credentials", name=name) for name in credentials]
            if credentials is not None
            else self.api.associated("job_templates", template, "credentials")
        )
        env: dict[str, str] = dict(self.api.settings["jobs"]["AWX_TASK_ENV"])
        args: list[str] = []
        passwords: dict[str, str] = {}
        for credential in creds:
            passwords.update(self.inject(credential, env, args, pdd))
        env.update(self.job_env(template, project, inventory, job_id, revision, pdd))
        if template["job_type"] == "check":
            args.append("--check")
        tags = job_tags if job_tags is not None else template["job_tags"]
        skips = skip_tags if skip_tags is not None else template["skip_tags"]
        run_limit = limit if limit is not None else template["limit"]
        if template["forks"]:
            args.append(f"--forks={template['forks']}")
        if template["force_handlers"]:
            args.append("--force-handlers")
        if run_limit:
            args += ["-l", run_limit]
        if template["verbosity"]:
            args.append("-" + "v" * min(5, template["verbosity"]))
        if tags:
            args += ["-t", tags]
        if skips:
            args.append(f"--skip-tags={skips}")
        if template["start_at_task"]:
            args.append(f"--start-at-task={template['start_at_task']}")

        variables = {**self.meta_vars(template, project, inventory, job_id, revision), **answers}
        jt_vars = yaml.safe_load(template["extra_vars"] or "{}") or {}
        (pdd / "env" / "extravars").write_text(safe_dump({**jt_vars, **variables}, jt_vars))
        job_timeout = timeout if timeout is not None else template["timeout"]
        return self.execute(
            template_name,
            pdd,
            ident,
            template["execution_environment"],
            template["playbook"],
            env=env,
            args=args,
            passwords=passwords,
            timeout=job_timeout,
            start=start,
            extra_vars={**jt_vars, **variables},
        )

    def run_playbook(
        self,
        name: str,
        playbook: str,
        *,
        ee_id: int,
        inventory: dict[str, Any],
        extra_vars: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 1800,
    ) -> JobResult:
        """Run a playbook (YAML text) in an EE pod the way a job runs, outside any template (for control runs)."""
        start = time.monotonic()
        ident = str(next(self.job_ids))
        pdd = self.work / "jobs" / f"run-{ident}"
        for sub in ("env", "inventory", "project"):
            (pdd / sub).mkdir(parents=True, exist_ok=True)
        (pdd / "project" / "playbook.yml").write_text(playbook)
        hosts = pdd / "inventory" / "hosts"
        hosts.write_text(f"#! /usr/bin/env python3\n# -*- coding: utf-8 -*-\nprint({json.dumps(inventory)!r})\n")
        hosts.chmod(0o700)
        (pdd / "env" / "extravars").write_text(safe_dump(extra_vars or {}))
        return self.execute(
            name,
            pdd,
            ident,
            ee_id,
            "playbook.yml",
            env=dict(env or {}),
            args=[],
            passwords={},
            timeout=timeout,
            start=start,
            extra_vars=extra_vars or {},
        )

    def execute(
        self,
        name: str,
        pdd: Path,
        ident: str,
        ee_id: int | None,
        playbook: str,
        *,
        env: dict[str, str],
        args: list[str],
        passwords: dict[str, str],
        timeout: float,
        start: float,
        extra_vars: dict[str, Any],
    ) -> JobResult:
        """Stream a prepared private data directory through an EE pod and collect what AWX records."""
        (pdd / "env" / "envvars").write_text(json.dumps(env))
        (pdd / "env" / "cmdline").write_text(shlex.join(args))
        if passwords:
            (pdd / "env" / "passwords").write_text(json.dumps(passwords))
        (pdd / "env" / "settings").write_text(json.dumps({"job_timeout": timeout, "pexpect_timeout": 5}))
        status, rc = self.stream(self.pod(ee_id), pdd, ident, {"playbook": playbook}, timeout=(timeout or 3600) + 120)
        artifacts = pdd / "artifacts" / ident
        events = [
            json.loads(p.read_text()) for p in sorted((artifacts / "job_events").glob("*.json"), key=_event_order)
        ]
        stats: dict[str, dict[str, int]] = {}
        for event in events:
            if event.get("event") == "playbook_on_stats":
                data = event["event_data"]
                stats = {
                    k: data.get(k) or {} for k in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored")
                }
        stdout = (artifacts / "stdout").read_text() if (artifacts / "stdout").is_file() else ""
        return JobResult(
            name,
            int(ident),
            status,
            rc,
            stdout,
            stats,
            time.monotonic() - start,
            extra_vars,
            args,
            env,
            artifacts,
            events,
        )

    def job_env(
        self,
        template: dict[str, Any],
        project: dict[str, Any],
        inventory: dict[str, Any],
        job_id: int,
        revision: str,
        pdd: Path,
    ) -> dict[str, str]:
        """RunJob.build_env: what AWX adds to every job's environment."""
        env = {
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "MAX_EVENT_RES": "700000",
            "AWX_HOST": self.api.url,
            "ANSIBLE_SSH_CONTROL_PATH_DIR": f"{CONTAINER_ROOT}/cp",
            "ANSIBLE_PARAMIKO_RECORD_HOST_KEYS": "False",
            "JOB_ID": str(job_id),
            "INVENTORY_ID": str(inventory["id"]),
            "PROJECT_REVISION": revision,
            "AWX_PRIVATE_DATA_DIR": CONTAINER_ROOT,
        }
        config = _read_ansible_config(pdd / "project" / "ansible.cfg")
        for setting, key, folder, defaults in (
            (
                "roles_path",
                "ANSIBLE_ROLES_PATH",
                "requirements_roles",
                ["~/.ansible/roles", "/usr/share/ansible/roles", "/etc/ansible/roles"],
            ),
            (
                "collections_path",
                "ANSIBLE_COLLECTIONS_PATHS",
                "requirements_collections",
                ["~/.ansible/collections", "/usr/share/ansible/collections"],
            ),
        ):
            paths = (config[setting].split(":") if setting in config else []) + defaults
            env[key] = os.pathsep.join([f"{CONTAINER_ROOT}/{folder}", *paths])
        return env

    @staticmethod
    def meta_vars(
        template: dict[str, Any], project: dict[str, Any], inventory: dict[str, Any], job_id: int, revision: str
    ) -> dict[str, Any]:
        """Job.awx_meta_vars(): awx_* and tower_* variables of a job launched by a user."""
        meta: dict[str, Any] = {
            "job_id": job_id,
            "job_launch_type": "manual",
            "job_template_id": template["id"],
            "job_template_name": template["name"],
            "project_revision": revision,
            "project_scm_branch": project["scm_branch"],
            "inventory_id": inventory["id"],
            "inventory_name": inventory["name"],
            "user_id": 1,
            "user_name": "admin",
            "user_email": "",
            "user_first_name": "",
            "user_last_name": "",
            "execution_node": "awx-double",
        }
        return {f"{prefix}_{key}": value for prefix in ("awx", "tower") for key, value in meta.items()}


def _event_order(path: Path) -> tuple[int, str]:
    head = path.name.split("-", 1)[0]
    return (int(head) if head.isdigit() else 0, path.name)


def _read_ansible_config(path: Path) -> dict[str, str]:
    """awx.main.utils.ansible.read_ansible_config: roles_path and collections_path of the project's ansible.cfg."""

    parser = configparser.ConfigParser()
    if path.is_file():
        parser.read(path)
    if not parser.has_section("defaults"):
        return {}
    return {
        key: parser.get("defaults", key)
        for key in ("roles_path", "collections_path")
        if parser.has_option("defaults", key)
    }
