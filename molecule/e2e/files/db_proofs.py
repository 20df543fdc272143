"""The e2e tier's database proofs: the Zalando operator path on real pods (a 2-instance Spilo/Patroni cluster
behind PgBouncer), each printing ``PROOF <name>: <numbers>`` and exiting non-zero when the promise fails.

    db_proofs.py dbcluster     operator Running, leader + streaming replica, a row written through the app read on
                               the replica (lag), the app's real queries through the pooler (prepared statements)
    db_proofs.py failover      the leader pod deleted under closed-loop writes: failed requests, seconds without
                               writes, seconds to a new leader, acknowledged writes lost (must be 0)
    db_proofs.py switchover    the same numbers for a planned switchover (patronictl)
    db_proofs.py dbnetpol      the database flows of the graph enforced (probes from real pods), Patroni keeps its
                               leader lock through a 2-minute watch
    db_proofs.py dbpdb         a drain limited to the database pods evicts no Spilo pod
    db_proofs.py backup        a scheduled logical backup reaches S3; the cluster is lost, recreated by site.yml and
                               restored by playbooks/restore.yml; the app reads the rows written before the backup
    db_proofs.py external      external mode (what RDS looks like from the cluster): the host's PostgreSQL with the
                               migration hook off, playbooks/migrate.yml applies the schema, a second run changes
                               nothing

Shares the plumbing of proofs.py (same environment: KUBECONFIG, E2E_INGRESS_URL, E2E_HOST, E2E_NAMESPACE,
E2E_PROJECT, E2E_VARS, E2E_NODE_IP, PYTHONPATH), plus E2E_DB_NAMESPACE and E2E_DB_CLUSTER.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from proofs import (
    NS,
    ProofFailed,
    connect,
    emit,
    ensure_namespace,
    kube_json,
    kubectl,
    probe_pod_manifest,
    record,
    request,
    wait_for,
)

from tests.harness import proc as harness
from tests.harness.real_node import POSTGRES_SH

DB_NS = os.environ.get("E2E_DB_NAMESPACE", "threetier-db")
CLUSTER = os.environ.get("E2E_DB_CLUSTER", "acid-threetier")
OPERATOR_NS = os.environ.get("E2E_OPERATOR_NAMESPACE", "postgres-operator")
NODE = os.environ.get("E2E_NODE_NAME", "threetier-e2e")
NODE_IP = os.environ.get("E2E_NODE_IP", "10.213.0.1")
S3_URL = os.environ.get("E2E_S3_URL", f"http://{NODE_IP}:9000")
S3_BUCKET = os.environ.get("E2E_S3_BUCKET", "threetier-e2e-backups")
SPILO = f"application=spilo,cluster-name={CLUSTER}"
POOLER = f"application=db-connection-pooler,connection-pooler={CLUSTER}-pooler"
PATRONI_CONFIG = "/home/postgres/postgres.yml"


# --- plumbing ---------------------------------------------------------------------------------------------


def pods(selector: str, namespace: str = DB_NS) -> list[dict]:
    items = kube_json("-n", namespace, "get", "pods", "-l", selector)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def spilo_exec(pod: str, *argv: str, timeout: float = 60, check: bool = True) -> str:
    return kubectl("-n", DB_NS, "exec", pod, "-c", "postgres", "--", *argv, timeout=timeout, check=check).stdout


def psql(pod: str, sql: str, database: str = "postgres") -> str:
    """One statement as the superuser over the pod's Unix socket (pg_hba: local trust)."""
    return spilo_exec(pod, "psql", "-X", "-U", "postgres", "-d", database, "-tA", "-F", "|", "-c", sql).strip()


def patroni_cluster(pod: str) -> dict:
    """Patroni's view of the cluster from one member (its REST API on the pod's loopback)."""
    out = spilo_exec(pod, "curl", "-s", "--max-time", "3", "http://localhost:8008/cluster", timeout=20)
    return json.loads(out)


def roles() -> dict[str, str]:
    """Pod name -> Patroni role, from the spilo-role labels Patroni maintains."""
    return {p["metadata"]["name"]: p["metadata"]["labels"].get("spilo-role", "") for p in pods(SPILO)}


def leader_name() -> str:
    leaders = [name for name, role in roles().items() if role == "master"]
    if len(leaders) != 1:
        raise ProofFailed(f"expected one pod labelled spilo-role=master, got {roles()}")
    return leaders[0]


def replica_name() -> str:
    replicas = [name for name, role in roles().items() if role == "replica"]
    if not replicas:
        raise ProofFailed(f"no replica among {roles()}")
    return replicas[0]


def cluster_status() -> str:
    doc = kube_json("-n", DB_NS, "get", "postgresql", CLUSTER)
    return str(doc.get("status", {}).get("PostgresClusterStatus", ""))


def healthy_pair() -> bool:
    """One leader and one streaming replica, both running in Patroni's view."""
    members = patroni_cluster(leader_name())["members"]
    states = sorted((m["role"], m["state"]) for m in members)
    return len(members) == 2 and states[0][0] == "leader" and states[0][1] == "running" and states[1][1] == "streaming"


def pooler_admin(sql: str) -> list[list[str]]:
    """SHOW ... on every pooler pod's admin console, as the pooler's own user (its container environment)."""
    rows: list[list[str]] = []
    for pod in pods(POOLER):
        out = kubectl(
            "-n",
            DB_NS,
            "exec",
            pod["metadata"]["name"],
            "--",
            "sh",
            "-c",
            'psql "host=127.0.0.1 port=5432 dbname=pgbouncer user=$PGUSER sslmode=require" -X -tA -F"|" -c "$0"',
            sql,
            timeout=30,
        ).stdout
        rows.extend([line.split("|") for line in out.strip().splitlines() if line])
    return rows


def pooler_columns(command: str) -> list[str]:
    pod = pods(POOLER)[0]["metadata"]["name"]
    out = kubectl(
        "-n",
        DB_NS,
        "exec",
        pod,
        "--",
        "sh",
        "-c",
        'psql "host=127.0.0.1 port=5432 dbname=pgbouncer user=$PGUSER sslmode=require" -X -A -F"|" -c "$0"',
        command,
        timeout=30,
    ).stdout
    return out.splitlines()[0].split("|")


def pooler_table(command: str) -> list[dict[str, str]]:
    columns = pooler_columns(command)
    return [dict(zip(columns, row, strict=False)) for row in pooler_admin(command)]


def app_write(author: str, body: str, timeout: float = 10) -> int:
    status, _body, _latency = request(
        "/api/messages", method="POST", body={"author": author, "body": body}, timeout=timeout
    )
    return status


def app_bodies(limit: int = 200) -> set[str]:
    status, body, _latency = request(f"/api/messages?limit={limit}")
    if status != 200:
        raise ProofFailed(f"GET /api/messages returned {status}: {body[:300]!r}")
    return {m["body"] for m in json.loads(body)["data"]}


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# --- 1. the cluster, the replica and the pooler -----------------------------------------------------------


def proof_dbcluster() -> None:
    status = cluster_status()
    if status != "Running":
        raise ProofFailed(f"postgresql/{CLUSTER} reports {status!r}, not Running")
    leader, replica = leader_name(), replica_name()
    members = patroni_cluster(leader)["members"]
    replication = psql(
        leader,
        "SELECT application_name, state, sync_state, coalesce(extract(epoch FROM replay_lag), 0)"
        " FROM pg_stat_replication",
    )
    streams = [line.split("|") for line in replication.splitlines() if line]
    if not any(row[1] == "streaming" for row in streams):
        raise ProofFailed(f"pg_stat_replication on {leader} shows no streaming replica: {streams}")
    version = psql(leader, "SHOW server_version")

    # A row written through the app (ingress -> backend -> pooler -> leader), then read on the replica.
    marker = f"replica-{int(time.time() * 1000)}"
    status_code = app_write("e2e-replica", marker)
    if status_code != 201:
        raise ProofFailed(f"POST /api/messages returned {status_code}")
    # From the app's acknowledgement to the row being readable on the replica (each check is a kubectl exec,
    # so this is an upper bound; pg_stat_replication's replay_lag above is the server's own figure).
    query = f"SELECT count(*) FROM messages WHERE body = {sql_literal(marker)}"
    lag_ms = 1000 * wait_for(f"{marker} on {replica}", lambda: psql(replica, query, "app") == "1", 30, interval=0.05)

    # The app's own queries through the pooler under load: Laravel's PDO prepares server-side statements,
    # which transaction pooling only carries with max_prepared_statements (PgBouncer >= 1.21).
    stats_before = pooler_totals()
    sent, failed = app_burst(60)
    stats_after = pooler_totals()
    delta = {k: stats_after.get(k, 0) - stats_before.get(k, 0) for k in stats_after}
    clients = pooler_table("SHOW CLIENTS")
    servers = pooler_table("SHOW SERVERS")
    app_clients = [c for c in clients if c.get("database") == "app"]
    app_servers = [c for c in servers if c.get("database") == "app"]
    prepared_on_servers = sum(int(c.get("prepared_statements") or 0) for c in app_servers)
    max_prepared = {
        row[0]: row[1] for row in pooler_admin("SHOW CONFIG") if row and row[0] == "max_prepared_statements"
    }
    backend_ips = {
        p["status"].get("podIP")
        for p in kube_json("-n", NS, "get", "pods", "-l", "app.kubernetes.io/name=backend")["items"]
    }
    pooler_ips = {p["status"].get("podIP") for p in pods(POOLER)}
    sessions = psql(
        leader,
        "SELECT client_addr, usename FROM pg_stat_activity WHERE datname = 'app' AND backend_type = 'client backend'",
    )
    session_rows = [line.split("|") for line in sessions.splitlines() if line]
    direct = [row for row in session_rows if row[0] in backend_ips]
    via_pooler = [row for row in session_rows if row[0] in pooler_ips]
    secret = backend_database_secret()
    memory = pod_memory()
    summary = (
        f"operator Running, PostgreSQL {version}, leader {leader} + replica {replica} "
        f"({', '.join(f'{r[0]} {r[1]}/{r[2]}' for r in streams)}); a row written through the app was read on the "
        f"replica after {lag_ms:.0f} ms; {sent} app requests through the pooler ({failed} failed): "
        f"{delta.get('xact', 0)} transactions with {delta.get('client_parse', 0)} client Parse messages (PDO's "
        f"native prepares) answered with {delta.get('server_parse', 0)} new server prepares: PgBouncer's cache "
        f"(max_prepared_statements {sorted(set(max_prepared.values()))}) holds {prepared_on_servers} statements on "
        f"{len(app_servers)} server connections ({stats_after.get('server_parse', 0)} server prepares since start); "
        f"app sessions on the leader from pooler pods {len(via_pooler)}, from backend pods {len(direct)}; "
        f"credentials Secret {secret}; memory (working set) "
        f"{', '.join(f'{name} {mib} MiB' for name, mib in sorted(memory.items()))}"
    )
    emit(
        "dbcluster",
        summary,
        {
            "members": members,
            "replication": streams,
            "replica_visible_ms": round(lag_ms, 1),
            "pooler_delta": delta,
            "pooler_clients": app_clients[:10],
            "pooler_servers": servers[:10],
            "leader_sessions": session_rows,
            "backend_secret": secret,
            "memory_mib": memory,
        },
    )
    if failed:
        raise ProofFailed(f"{failed} of {sent} app requests through the pooler failed")
    if direct:
        raise ProofFailed(f"backend pods hold sessions on the leader directly, bypassing the pooler: {direct}")
    if not via_pooler or delta.get("xact", 0) <= 0:
        raise ProofFailed("no application traffic went through the pooler")
    if delta.get("client_parse", 0) <= 0:
        raise ProofFailed("the app sent no protocol-level prepared statements: the proof did not exercise them")


def pod_memory() -> dict[str, int]:
    """Working-set memory of the database pods and the operator, in MiB, from the metrics API."""
    result: dict[str, int] = {}
    for namespace in (DB_NS, OPERATOR_NS):
        doc = json.loads(kubectl("get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods").stdout)
        for item in doc["items"]:
            total = 0
            for container in item["containers"]:
                value = container["usage"]["memory"]
                units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
                suffix = value[-2:]
                total += int(value[:-2]) * units[suffix] if suffix in units else int(value) / 2**20
            result[item["metadata"]["name"]] = round(total)
    return result


def pooler_totals() -> dict[str, int]:
    """Cumulative SHOW STATS counters of database app over every pooler pod."""
    totals: Counter[str] = Counter()
    for row in pooler_table("SHOW STATS"):
        if row.get("database") != "app":
            continue
        totals["xact"] += int(row.get("total_xact_count", 0) or 0)
        totals["query"] += int(row.get("total_query_count", 0) or 0)
        totals["client_parse"] += int(row.get("total_client_parse_count", 0) or 0)
        totals["server_parse"] += int(row.get("total_server_parse_count", 0) or 0)
        totals["bind"] += int(row.get("total_bind_count", 0) or 0)
    return dict(totals)


def app_burst(count: int) -> tuple[int, int]:
    failed = 0
    for index in range(count):
        path = "/api/db" if index % 2 else "/api/messages?limit=5"
        status, _body, _latency = request(path)
        failed += status != 200
    return count, failed


def backend_database_secret() -> str:
    dep = kube_json("-n", NS, "get", "deployment", "backend")
    for container in dep["spec"]["template"]["spec"]["containers"]:
        for env in container.get("env") or []:
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if env["name"] == "DB_PASSWORD" and ref:
                return str(ref["name"])
    raise ProofFailed("the backend takes DB_PASSWORD from no Secret")


# --- 2. failover and switchover under load ----------------------------------------------------------------


@dataclass
class Writes:
    """Closed-loop writers and readers through the ingress; every write has a unique body."""

    tag: str
    writers: int = 3
    readers: int = 1
    results: list[tuple[float, str, int, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _writer(self, index: int) -> None:
        seq = 0
        while not self._stop.is_set():
            body = f"{self.tag}-{index}-{seq}"
            seq += 1
            t = time.monotonic()
            try:
                status = app_write(self.tag, body, timeout=15)
            except OSError:
                status = 0
            with self._lock:
                self.results.append((t, "write", status, body))

    def _reader(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                status, _body, _latency = request("/api/messages?limit=5", timeout=15)
            except OSError:
                status = 0
            with self._lock:
                self.results.append((t, "read", status, ""))
            time.sleep(0.05)

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._writer, args=(i,), daemon=True) for i in range(self.writers)]
        threads += [threading.Thread(target=self._reader, daemon=True) for _reader in range(self.readers)]
        for thread in threads:
            thread.start()
        return threads

    def stop(self, threads: list[threading.Thread]) -> None:
        self._stop.set()
        for thread in threads:
            thread.join(timeout=20)

    def acknowledged(self) -> set[str]:
        return {body for _t, kind, status, body in self.results if kind == "write" and status == 201}

    def report(self, since: float) -> dict:
        writes = [r for r in self.results if r[1] == "write"]
        reads = [r for r in self.results if r[1] == "read"]
        failed_writes = [r for r in writes if r[2] != 201 and r[0] >= since - 1]
        failed_reads = [r for r in reads if r[2] != 200]
        outage = 0.0
        if failed_writes:
            first_failure = min(r[0] for r in failed_writes)
            later_ok = [r[0] for r in writes if r[2] == 201 and r[0] > max(r[0] for r in failed_writes)]
            outage = (min(later_ok) if later_ok else time.monotonic()) - min(since, first_failure)
        # Writes per second around the disturbance: where the failures sit, and how the service came back.
        timeline: dict[int, list[int]] = {}
        for t, _kind, status, _body in writes:
            second = int(t - since)
            if -3 <= second <= 20:
                timeline.setdefault(second, [0, 0])[0 if status == 201 else 1] += 1
        return {
            "writes": len(writes),
            "reads": len(reads),
            "timeline_ok_failed": {str(k): v for k, v in sorted(timeline.items())},
            "failed_writes": len([r for r in writes if r[2] != 201]),
            "failed_reads": len(failed_reads),
            "by_status": dict(Counter(f"{r[1]} {r[2]}" for r in self.results)),
            "write_outage_s": round(outage, 1),
        }


def written_bodies(tag: str) -> set[str]:
    out = psql(leader_name(), f"SELECT body FROM messages WHERE author = {sql_literal(tag)}", "app")
    return set(out.splitlines())


def wait_new_leader(old: str, timeout: float) -> float:
    """Seconds until a pod other than ``old`` is Patroni's running leader (asked from the other members)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        for pod in pods(SPILO):
            name = pod["metadata"]["name"]
            if name == old:
                continue
            try:
                members = patroni_cluster(name)["members"]
            except (ProofFailed, ValueError, subprocess.TimeoutExpired):
                continue
            if any(m["role"] == "leader" and m["name"] != old and m["state"] == "running" for m in members):
                return time.monotonic() - start
        time.sleep(0.25)
    raise ProofFailed(f"no new leader within {timeout:.0f} s of losing {old}")


def disturbance(name: str, act: Callable[[str], object], settle: float) -> None:
    """Run ``act(old_leader)`` under closed-loop writes; report the numbers; fail if an ack'ed write is lost."""
    wait_for("a leader and a streaming replica", healthy_pair, 300, interval=3)
    old = leader_name()
    tag = f"{name}-{int(time.time())}"
    load = Writes(tag)
    threads = load.start()
    try:
        time.sleep(5)
        acted = time.monotonic()
        act(old)
        leader_seconds = wait_new_leader(old, 120)
        time.sleep(settle)
    finally:
        load.stop(threads)
    report = load.report(acted)
    wait_for("the cluster healthy again (old leader back as a streaming replica)", healthy_pair, 300, interval=3)
    new = leader_name()
    acked = load.acknowledged()
    present = written_bodies(tag)
    lost = sorted(acked - present)
    report |= {
        "old_leader": old,
        "new_leader": new,
        "new_leader_after_s": round(leader_seconds, 1),
        "acknowledged_writes": len(acked),
        "present_in_db": len(acked & present),
        "lost": lost[:20],
    }
    emit(
        name,
        f"{old} -> {new}: {report['writes']} writes + {report['reads']} reads through the ingress, "
        f"{report['failed_writes']} writes and {report['failed_reads']} reads failed; writes succeeded again "
        f"{report['write_outage_s']} s after the first failure; new leader after {report['new_leader_after_s']} s; "
        f"{len(acked)} acknowledged writes, {len(lost)} lost",
        report,
    )
    if lost:
        raise ProofFailed(f"{len(lost)} acknowledged writes are missing after the {name}: {lost[:5]}")
    if new == old:
        raise ProofFailed(f"the leader is still {old} after the {name}")


def proof_failover() -> None:
    disturbance("failover", lambda old: kubectl("-n", DB_NS, "delete", "pod", old, "--wait=false"), settle=20)


def proof_switchover() -> None:
    def switch(old: str) -> None:
        candidate = replica_name()
        spilo_exec(
            old,
            "patronictl",
            "-c",
            PATRONI_CONFIG,
            "switchover",
            "--leader",
            old,
            "--candidate",
            candidate,
            "--force",
            timeout=120,
        )

    disturbance("switchover", switch, settle=15)


# --- 3. the database flows --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DbProbe:
    name: str
    source: str  # a probe pod key, or "pod:<namespace>/<name>/<container>" to run from a real pod
    host: str
    port: int
    allowed: bool


PROBE_SOURCES = {
    "backend": (
        NS,
        {
            "app.kubernetes.io/name": "backend",
            "app.kubernetes.io/instance": "backend",
            "threetier.e2e/probe": "backend",
        },
    ),
    "frontend": (
        NS,
        {
            "app.kubernetes.io/name": "frontend",
            "app.kubernetes.io/instance": "frontend",
            "threetier.e2e/probe": "frontend",
        },
    ),
    "ingress": ("ingress", {"app.kubernetes.io/name": "traefik", "threetier.e2e/probe": "ingress"}),
    "other-namespace": ("e2e-dbprobe", {"threetier.e2e/probe": "other"}),
    "operator": (OPERATOR_NS, {"app.kubernetes.io/name": "postgres-operator", "threetier.e2e/probe": "operator"}),
}


def tcp_from_pod(namespace: str, pod: str, container: str, host: str, port: int) -> tuple[bool, float, str]:
    """A TCP connect from inside a running pod that has bash (Spilo, the pooler) but no nc."""
    start = time.monotonic()
    proc = kubectl(
        "-n",
        namespace,
        "exec",
        pod,
        "-c",
        container,
        "--",
        "timeout",
        "3",
        "bash",
        "-c",
        f"exec 3<>/dev/tcp/{host}/{port}",
        check=False,
        timeout=30,
    )
    return proc.returncode == 0, time.monotonic() - start, proc.stderr.strip()[-120:]


def db_probes(leader_ip: str, replica_ip: str, leader: str, replica: str, pooler: str) -> list[DbProbe]:
    pooler_svc = f"{CLUSTER}-pooler.{DB_NS}.svc.cluster.local"
    return [
        # Declared: each must connect.
        DbProbe("backend -> pooler:5432", "backend", pooler_svc, 5432, True),
        DbProbe("pooler -> Spilo leader:5432", f"pod:{DB_NS}/{pooler}/connection-pooler", leader_ip, 5432, True),
        DbProbe("Spilo replica -> leader:5432", f"pod:{DB_NS}/{replica}/postgres", leader_ip, 5432, True),
        DbProbe("Spilo replica -> leader:8008 (Patroni)", f"pod:{DB_NS}/{replica}/postgres", leader_ip, 8008, True),
        DbProbe("Spilo leader -> replica:8008 (Patroni)", f"pod:{DB_NS}/{leader}/postgres", replica_ip, 8008, True),
        DbProbe("operator -> Spilo:8008 (Patroni API)", "operator", leader_ip, 8008, True),
        DbProbe("operator -> Spilo:5432 (roles over SQL)", "operator", leader_ip, 5432, True),
        # Not declared: each must be blocked; the targets above answer, so a block is the policy's.
        DbProbe("backend -> Spilo:5432 (bypassing the pooler)", "backend", leader_ip, 5432, False),
        DbProbe("backend -> Spilo:8008", "backend", leader_ip, 8008, False),
        DbProbe("frontend -> pooler:5432", "frontend", pooler_svc, 5432, False),
        DbProbe("frontend -> Spilo:5432", "frontend", leader_ip, 5432, False),
        DbProbe("ingress -> pooler:5432", "ingress", pooler_svc, 5432, False),
        DbProbe("ingress -> Spilo:5432", "ingress", leader_ip, 5432, False),
        DbProbe("other namespace -> pooler:5432", "other-namespace", pooler_svc, 5432, False),
        DbProbe("other namespace -> Spilo:8008", "other-namespace", leader_ip, 8008, False),
        DbProbe(
            "pooler -> Spilo:8008 (not its port)", f"pod:{DB_NS}/{pooler}/connection-pooler", leader_ip, 8008, False
        ),
    ]


def leader_lock_watch(seconds: float) -> dict:
    """Patroni's leader lock (the <cluster>-leader ConfigMap's annotations) sampled while nothing disturbs it."""
    leader = leader_name()
    samples, holders, renewals = 0, set(), set()
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        annotations = kube_json("-n", DB_NS, "get", "configmap", f"{CLUSTER}-leader")["metadata"].get("annotations", {})
        holders.add(annotations.get("leader"))
        renewals.add(annotations.get("renewTime") or annotations.get("acquireTime"))
        samples += 1
        time.sleep(5)
    return {
        "leader_before": leader,
        "leader_after": leader_name(),
        "holders": sorted(h for h in holders if h),
        "renewals_seen": len(renewals),
        "samples": samples,
        "seconds": round(time.monotonic() - start),
    }


def proof_dbnetpol() -> None:
    spilo = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods(SPILO)}
    leader, replica = leader_name(), replica_name()
    pooler = pods(POOLER)[0]["metadata"]["name"]
    plan = db_probes(spilo[leader], spilo[replica], leader, replica, pooler)
    started: dict[str, tuple[str, str]] = {}
    results, wrong = [], []
    try:
        for key, (namespace, labels) in PROBE_SOURCES.items():
            if namespace == "e2e-dbprobe":
                ensure_namespace(namespace)
            name = f"e2e-dbprobe-{key}"
            kubectl("-n", namespace, "delete", "pod", name, "--ignore-not-found", "--wait=true")
            kubectl("apply", "-f", "-", stdin=json.dumps(probe_pod_manifest(name, namespace, labels)))
            started[key] = (namespace, name)
        for namespace, name in started.values():
            kubectl("-n", namespace, "wait", "--for=condition=Ready", f"pod/{name}", "--timeout=120s", timeout=150)
        for probe in plan:
            if probe.source.startswith("pod:"):
                namespace, pod, container = probe.source[4:].split("/")
                ok, seconds, err = tcp_from_pod(namespace, pod, container, probe.host, probe.port)
            else:
                namespace, pod = started[probe.source]
                ok, seconds, err = connect(namespace, pod, probe.host, probe.port)
            verdict = "connected" if ok else "blocked"
            expected = "connect" if probe.allowed else "blocked"
            print(f"  {probe.name:52} expected {expected:8} got {verdict} ({seconds:.1f} s)")
            results.append(
                {
                    "flow": probe.name,
                    "expected": expected,
                    "result": verdict,
                    "seconds": round(seconds, 2),
                    "detail": err,
                }
            )
            if ok != probe.allowed:
                wrong.append(probe.name)
    finally:
        for namespace, name in started.values():
            kubectl("-n", namespace, "delete", "pod", name, "--ignore-not-found", "--wait=false", check=False)
        kubectl("delete", "namespace", "e2e-dbprobe", "--ignore-not-found", "--wait=false", check=False)
    watch = leader_lock_watch(120)
    allowed = sum(1 for p in plan if p.allowed)
    emit(
        "dbnetpol",
        f"{len(results)} probes in and out of {DB_NS}: {allowed} expected to connect, {len(results) - allowed} "
        f"expected blocked, {len(wrong)} wrong; Patroni's leader lock held by {watch['holders']} through a "
        f"{watch['seconds']} s watch ({watch['renewals_seen']} renewals seen, leader {watch['leader_before']} -> "
        f"{watch['leader_after']})",
        {"probes": results, "wrong": wrong, "leader_lock": watch},
    )
    if wrong:
        raise ProofFailed("database flows that did not behave as declared: " + "; ".join(wrong))
    if watch["leader_before"] != watch["leader_after"] or len(watch["holders"]) != 1 or watch["renewals_seen"] < 3:
        raise ProofFailed(f"Patroni did not keep its leader lock steadily: {watch}")


# --- 4. disruption ----------------------------------------------------------------------------------------


def proof_dbpdb() -> None:
    budgets = {p["metadata"]["name"]: p["spec"] for p in kube_json("-n", DB_NS, "get", "pdb")["items"]}
    before = {p["metadata"]["name"] for p in pods(SPILO)}
    ready_low = [len(before)]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                ready = [
                    p for p in pods(SPILO) if all(c.get("ready") for c in p["status"].get("containerStatuses") or [{}])
                ]
                ready_low.append(len(ready))
            except ProofFailed:
                pass
            time.sleep(1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start = time.monotonic()
    try:
        drain = kubectl(
            "drain",
            NODE,
            f"--pod-selector=cluster-name={CLUSTER}",
            "--delete-emptydir-data",
            "--ignore-daemonsets",
            "--timeout=40s",
            check=False,
            timeout=90,
        )
    finally:
        elapsed = time.monotonic() - start
        kubectl("uncordon", NODE)
        stop.set()
        watcher.join(timeout=5)
    output = drain.stdout + drain.stderr
    evicted = [line for line in output.splitlines() if line.strip().endswith("evicted")]
    spilo_evicted = [line for line in evicted if any(name in line for name in before)]
    pooler_evicted = [line for line in evicted if f"{CLUSTER}-pooler-" in line]
    # Finished logical backup pods carry the cluster's label too: a drain removes them, which is harmless.
    backup_evicted = [line for line in evicted if "logical-backup-" in line]
    refusals = output.count("would violate the pod's disruption budget")
    wait_for(
        "the database pods back at full strength", lambda: len(pods(SPILO)) == len(before) and healthy_pair(), 300, 3
    )
    emit(
        "dbpdb",
        f"drain of {NODE} limited to cluster-name={CLUSTER} exited {drain.returncode} after {elapsed:.0f} s: "
        f"{len(spilo_evicted)} of {len(before)} Spilo pods evicted, {len(pooler_evicted)} pooler pod(s) evicted "
        f"(its budget keeps one), {len(backup_evicted)} finished backup pod(s) removed, {refusals} evictions refused "
        f"by the budgets ({', '.join(sorted(budgets))}); ready Spilo pods never below {min(ready_low)}",
        {
            "budgets": budgets,
            "exit": drain.returncode,
            "evicted": evicted,
            "refusals": refusals,
            "tail": output.splitlines()[-8:],
        },
    )
    if spilo_evicted:
        raise ProofFailed(f"the drain evicted database pods: {spilo_evicted}")
    if refusals == 0 or drain.returncode == 0:
        raise ProofFailed("the drain was not refused by a disruption budget")


# --- 5. backup and restore --------------------------------------------------------------------------------


def s3_objects(prefix: str) -> list[dict]:
    import boto3  # the project's virtualenv has it (moto's dependency)

    client = boto3.client(
        "s3", endpoint_url=S3_URL, region_name="us-east-1", aws_access_key_id="e2e", aws_secret_access_key="e2e"
    )
    listing = client.list_objects_v2(Bucket=S3_BUCKET, Prefix=prefix)
    return sorted(listing.get("Contents", []), key=lambda o: o["LastModified"])


def s3_get(key: str) -> bytes:
    import boto3

    client = boto3.client(
        "s3", endpoint_url=S3_URL, region_name="us-east-1", aws_access_key_id="e2e", aws_secret_access_key="e2e"
    )
    return client.get_object(Bucket=S3_BUCKET, Key=key)["Body"].read()


def scheduled_backup_after(since_epoch: float, timeout: float) -> dict:
    """The first Job the backup CronJob itself started after ``since_epoch`` that succeeded."""
    cronjob = f"logical-backup-{CLUSTER}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for job in kube_json("-n", DB_NS, "get", "jobs")["items"]:
            owners = job["metadata"].get("ownerReferences") or []
            if not any(o.get("kind") == "CronJob" and o.get("name") == cronjob for o in owners):
                continue
            created = (
                time.mktime(time.strptime(job["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
            )
            if created < since_epoch:
                continue
            status = job.get("status", {})
            if status.get("failed"):
                logs = kubectl("-n", DB_NS, "logs", f"job/{job['metadata']['name']}", check=False).stdout[-1500:]
                raise ProofFailed(f"backup Job {job['metadata']['name']} failed:\n{logs}")
            if status.get("succeeded"):
                return job
        time.sleep(5)
    raise ProofFailed(f"no scheduled run of cronjob/{cronjob} succeeded within {timeout:.0f} s")


def run_playbook(playbook: str, *extra: str, timeout: float = 1500) -> tuple[float, str]:
    project = Path(os.environ["E2E_PROJECT"])
    cmd = [
        "ansible-playbook",
        "-i",
        str(project / "inventories" / "local"),
        "-e",
        f"@{os.environ['E2E_VARS']}",
        *extra,
        str(project / playbook),
    ]
    start = time.monotonic()
    proc = harness.run(cmd, timeout=timeout, error=ProofFailed)
    return time.monotonic() - start, proc.stdout


def recap_changed(stdout: str) -> int:
    for line in stdout.splitlines():
        if "changed=" in line and "ok=" in line:
            return int(line.split("changed=")[1].split()[0])
    raise ProofFailed("no PLAY RECAP in the playbook's output")


def after_restore_diagnosis(wait: float = 90) -> str:
    """What the backend and the pooler said when the restored app did not answer, and whether it came back."""
    backend = kubectl(
        "-n",
        NS,
        "logs",
        "-l",
        "app.kubernetes.io/name=backend",
        "--all-containers",
        "--tail=15",
        "--prefix",
        check=False,
    ).stdout
    pooler = kubectl("-n", DB_NS, "logs", "-l", POOLER, "--tail=15", "--prefix", check=False).stdout
    start = time.monotonic()
    answered = "never"
    while time.monotonic() - start < wait:
        try:
            status, _body, _latency = request("/api/messages?limit=1")
        except (OSError, http.client.HTTPException):
            status = 0
        if status == 200:
            answered = f"after {time.monotonic() - start:.0f} s"
            break
        time.sleep(2)
    return (
        f"polling GET /api/messages for {wait:.0f} s: 200 {answered}\n"
        f"backend logs:\n{backend[-3000:]}\npooler logs:\n{pooler[-3000:]}"
    )


def proof_backup() -> None:
    cronjob = kube_json("-n", DB_NS, "get", "cronjob", f"logical-backup-{CLUSTER}")
    run = int(time.time())
    before, after = f"before-backup-{run}", f"after-backup-{run}"
    if app_write("e2e-backup", before) != 201:
        raise ProofFailed("writing the pre-backup row failed")
    written_at = time.time()
    job = scheduled_backup_after(written_at, 300)
    job_seconds = time.mktime(time.strptime(job["status"]["completionTime"], "%Y-%m-%dT%H:%M:%SZ")) - time.mktime(
        time.strptime(job["status"]["startTime"], "%Y-%m-%dT%H:%M:%SZ")
    )
    objects = s3_objects(f"spilo/{CLUSTER}/")
    if not objects:
        raise ProofFailed(f"the backup Job succeeded but s3://{S3_BUCKET}/spilo/{CLUSTER}/ is empty")
    dump = objects[-1]
    sql = gzip.decompress(s3_get(dump["Key"])).decode(errors="replace")
    if before not in sql:
        raise ProofFailed(f"the newest dump {dump['Key']} does not hold the row written before it")
    if app_write("e2e-backup", after) != 201:
        raise ProofFailed("writing the post-backup row failed")

    # The disaster: the cluster and its volumes are gone.
    uid = kube_json("-n", DB_NS, "get", "postgresql", CLUSTER)["metadata"]["uid"]
    lost_at = time.monotonic()
    kubectl("-n", DB_NS, "delete", "postgresql", CLUSTER, "--wait=true", timeout=300)
    wait_for("the Spilo pods to be gone", lambda: not pods(SPILO), 300, 3)
    kubectl("-n", DB_NS, "delete", "pvc", "-l", f"cluster-name={CLUSTER}", "--wait=true", timeout=300)
    try:
        status, _body, _latency = request("/api/messages?limit=1")
    except (OSError, http.client.HTTPException):
        status = 0  # the backend waits on a pooler with no database behind it: no answer is an answer
    # Recreated by the collection: an empty cluster, its roles and its database.
    recreate_seconds, _out = run_playbook("playbooks/site.yml", "--tags", "database")
    new_uid = kube_json("-n", DB_NS, "get", "postgresql", CLUSTER)["metadata"]["uid"]
    restore_seconds, _restore_out = run_playbook("playbooks/restore.yml", "-e", f"database_restore_key={dump['Key']}")
    jobs = kube_json("-n", DB_NS, "get", "jobs", "-l", "threetier.k8s/restore=true")["items"]
    newest = max(jobs, key=lambda j: j["metadata"]["creationTimestamp"])["metadata"]["name"]
    restore_log = kubectl("-n", DB_NS, "logs", f"job/{newest}").stdout
    restore_lines = [line for line in restore_log.splitlines() if line.startswith("restore: ")]
    downtime = time.monotonic() - lost_at
    try:
        bodies = app_bodies()
    except ProofFailed as failure:
        raise ProofFailed(f"{failure}; {after_restore_diagnosis()}") from failure
    emit(
        "backup",
        f"scheduled run {job['metadata']['name']} (cronjob '{cronjob['spec']['schedule']}') wrote {dump['Key']} "
        f"({dump['Size']} bytes gzip) in {job_seconds:.0f} s; cluster deleted with its volumes (app answered "
        f"{status} meanwhile), recreated by site.yml --tags database in {recreate_seconds:.0f} s (uid {uid[:8]} -> "
        f"{new_uid[:8]}), restored by playbooks/restore.yml in {restore_seconds:.0f} s; the app reads the row "
        f"written before the backup: {before in bodies}, the row written after it: {after in bodies}; "
        f"{downtime:.0f} s from loss to a restored app; {'; '.join(line[9:] for line in restore_lines)}",
        {"dump": {"key": dump["Key"], "size": dump["Size"]}, "restore": restore_lines, "objects": len(objects)},
    )
    if before not in bodies:
        raise ProofFailed(f"after the restore the app does not return {before}")
    if after in bodies:
        raise ProofFailed(f"{after} was written after the backup, yet the restored database has it")


# --- 7. external mode and production migrations ------------------------------------------------------------


def proof_external() -> None:
    """External mode with the hook off (as production runs): the schema comes from playbooks/migrate.yml."""
    external = json.loads(os.environ["E2E_EXTERNAL_VARS"])
    password = Path(os.environ["E2E_PG_PASSWORD_FILE"]).read_text().strip()
    extra_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"e2e-external-{os.getpid()}.json"
    extra_file.write_text(
        json.dumps(
            external
            | {
                "database_external_password": password,
                "backend_migrations_enabled": False,
                "backend_seed_enabled": False,
            }
        )
    )
    extra_file.chmod(0o600)
    try:
        # A fresh database on the host: only the hook-less path may create the schema.
        harness.run([str(POSTGRES_SH), "reset"], timeout=120, error=ProofFailed)
        converge_seconds, _out = run_playbook("playbooks/site.yml", "-e", f"@{extra_file}")
        status_before, body_before, _latency = request("/api/messages?limit=1")
        first_seconds, first = run_playbook("playbooks/migrate.yml", "-e", f"@{extra_file}")
        status_after, _body, _latency = request("/api/messages?limit=1")
        marker = f"external-{int(time.time())}"
        write_status = app_write("e2e-external", marker)
        read_back = marker in app_bodies()
        _second_seconds, second = run_playbook("playbooks/migrate.yml", "-e", f"@{extra_file}")
        _again_seconds, again = run_playbook("playbooks/site.yml", "-e", f"@{extra_file}")
    finally:
        extra_file.unlink(missing_ok=True)
    migrated = [line.strip().strip('",') for line in first.splitlines() if "DONE" in line or "Migrating" in line]
    first_changed, second_changed, again_changed = recap_changed(first), recap_changed(second), recap_changed(again)
    db = kube_json("-n", NS, "get", "svc", "postgres")
    emit(
        "external",
        f"site.yml in external mode (host PostgreSQL at {NODE_IP}, Service {db['metadata']['name']}, hook off) in "
        f"{converge_seconds:.0f} s; before migrate.yml GET /api/messages answered {status_before}; migrate.yml "
        f"({first_seconds:.0f} s, changed={first_changed}) applied {len(migrated)} migration line(s); then GET "
        f"{status_after}, POST {write_status}, read back {read_back}; second migrate.yml changed={second_changed}, "
        f"site.yml again changed={again_changed}",
        {"migrate_output": migrated, "before_body": body_before[:200].decode(errors="replace")},
    )
    if status_before == 200:
        raise ProofFailed(
            "the app served /api/messages before any migration ran: the schema did not come from migrate.yml"
        )
    if status_after != 200 or write_status != 201 or not read_back:
        raise ProofFailed(
            f"after migrate.yml the app answered GET {status_after}, POST {write_status}, read back {read_back}"
        )
    if first_changed == 0 or second_changed != 0 or again_changed != 0:
        raise ProofFailed(
            f"changed counts: first migrate {first_changed}, second {second_changed}, site.yml again {again_changed}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "proof", choices=("dbcluster", "failover", "switchover", "dbnetpol", "dbpdb", "backup", "external")
    )
    args = parser.parse_args(argv)
    proofs = {
        "dbcluster": proof_dbcluster,
        "failover": proof_failover,
        "switchover": proof_switchover,
        "dbnetpol": proof_dbnetpol,
        "dbpdb": proof_dbpdb,
        "backup": proof_backup,
        "external": proof_external,
    }
    try:
        proofs[args.proof]()
    except ProofFailed as exc:
        record(f"PROOF {args.proof} FAILED: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
