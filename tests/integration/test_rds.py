"""The database role in rds and external mode, end to end against moto's server and the local cluster.

moto (``moto_server``) runs on 127.0.0.1 on a free port for the module and is stopped by PID at the end. The
test creates a VPC and private subnets in two availability zones the way an account would have them, then
drives the role through ``ansible-playbook`` (tests/integration/rds/site.yml with a prod-like inventory) and
checks what moto reports through boto3 and what the role put into the cluster (the ``cluster`` fixture).

The tests of this module share one instance and run in file order: converge, idempotence, check mode,
assertions, external mode, bad input, and last the teardown of that instance.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.request
import uuid
from base64 import b64decode
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
RDS_DIR = ROOT / "tests" / "integration" / "rds"
INVENTORY = RDS_DIR / "inventory"
REGION = "eu-central-1"
IDENTIFIER = "threetier-it"
# The inventory's values (tests/integration/rds/inventory/group_vars/all/main.yml) that the assertions check.
ALLOWED_CIDRS = ["10.20.0.0/16", "100.64.0.0/16"]
SUBNETS = [("eu-central-1a", "10.20.32.0/20"), ("eu-central-1b", "10.20.48.0/20")]
RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
    r"failed=(?P<failed>\d+)",
    re.MULTILINE,
)


class Kubectl(Protocol):
    """The ``kubectl`` fixture of tests/integration/conftest.py."""

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]: ...

    def json(self, *args: str) -> Any: ...


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """moto's server on 127.0.0.1, stopped by its PID when the module is done."""
    port = free_port()
    proc = subprocess.Popen(
        ["moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"moto_server exited with {proc.returncode}"
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "moto_server did not answer within 30s"
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def stable(instance: dict[str, Any]) -> dict[str, Any]:
    """An instance description without the fields that change by themselves between two calls."""
    return {k: v for k, v in instance.items() if k != "LatestRestorableTime"}


@dataclass
class Aws:
    """boto3 clients on moto."""

    url: str

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def instances(self) -> dict[str, dict[str, Any]]:
        return {i["DBInstanceIdentifier"]: i for i in self.client("rds").describe_db_instances()["DBInstances"]}

    def subnet_groups(self) -> set[str]:
        return {g["DBSubnetGroupName"] for g in self.client("rds").describe_db_subnet_groups()["DBSubnetGroups"]}

    def security_groups(self) -> dict[str, dict[str, Any]]:
        return {g["GroupName"]: g for g in self.client("ec2").describe_security_groups()["SecurityGroups"]}

    def inventory(self) -> tuple[set[str], set[str], set[str]]:
        """Everything the role could create, by name."""
        return set(self.instances()), self.subnet_groups(), set(self.security_groups())


@dataclass
class Account:
    """The VPC and subnets of the account, as a user would have them before the first run."""

    vpc_id: str
    subnets: list[dict[str, str]]
    # A second subnet in the first zone: only used to build a one-zone subnet list.
    extra_subnet_same_zone: dict[str, str]


@pytest.fixture(scope="module")
def aws(moto_url: str) -> Aws:
    return Aws(moto_url)


@pytest.fixture(scope="module")
def account(aws: Aws) -> Account:
    ec2 = aws.client("ec2")
    vpc_id = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    ec2.create_tags(Resources=[vpc_id], Tags=[{"Key": "Name", "Value": "platform-prod"}])
    subnets = []
    for zone, cidr in [*SUBNETS, ("eu-central-1a", "10.20.64.0/20")]:
        subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]
        subnets.append({"id": subnet["SubnetId"], "availability_zone": zone, "cidr": cidr})
    return Account(vpc_id=vpc_id, subnets=subnets[:2], extra_subnet_same_zone=subnets[2])


@dataclass
class Run:
    """One ansible-playbook run: exit code, output, and the PLAY RECAP of localhost."""

    returncode: int
    output: str
    recap: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> int:
        return self.recap["changed"]

    def describe(self) -> str:
        return f"rc={self.returncode} recap={self.recap}\n{self.output[-6000:]}"


@dataclass
class Runner:
    """ansible-playbook with the test inventory, moto's URL and the cluster's kubeconfig."""

    workdir: Path
    base_vars: dict[str, Any]

    def __call__(
        self, playbook: str, extra: dict[str, Any] | None = None, *, check: bool = False, args: list[str] | None = None
    ) -> Run:
        """Run a playbook of tests/integration/rds with the base vars and ``extra`` as extra vars."""
        variables = {**self.base_vars, **(extra or {})}
        vars_file = self.workdir / f"vars-{uuid.uuid4().hex[:8]}.json"
        vars_file.write_text(json.dumps(variables))
        cmd = ["-i", str(INVENTORY), str(RDS_DIR / playbook), "-e", f"@{vars_file}", *(args or [])]
        return self.run([*cmd, "--check"] if check else cmd)

    def run(self, args: list[str]) -> Run:
        """ansible-playbook with these arguments; the recap is the one of localhost."""
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
        }
        proc = subprocess.run(
            ["ansible-playbook", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600, check=False
        )
        output = proc.stdout + proc.stderr
        recaps = [m.groupdict() for m in RECAP.finditer(proc.stdout) if m["host"] == "localhost"]
        recap = {k: int(v) for k, v in recaps[-1].items() if k != "host"} if recaps else {}
        return Run(proc.returncode, output, recap)


@pytest.fixture(scope="module")
def app_namespace(kubectl: Kubectl) -> Iterator[str]:
    """The app namespace the role publishes the endpoint in (the namespaces role makes it in site.yml)."""
    name = f"rds-it-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def aws_runner(moto_url: str, account: Account, tmp_path_factory: pytest.TempPathFactory) -> Runner:
    """Runs that fail before touching the cluster (bad input): no cluster needed."""
    return Runner(
        workdir=tmp_path_factory.mktemp("rds-input"),
        base_vars={
            "database_rds_aws_endpoint_url": moto_url,
            "database_rds_vpc_id": account.vpc_id,
            "database_rds_subnets": account.subnets,
            # Not a cluster: a run that got as far as the Kubernetes tasks would fail there.
            "threetier_kubeconfig": "/nonexistent/kubeconfig",
            "threetier_app_namespace": "threetier",
        },
    )


@pytest.fixture(scope="module")
def runner(aws_runner: Runner, cluster: Path, app_namespace: str, tmp_path_factory: pytest.TempPathFactory) -> Runner:
    return Runner(
        workdir=tmp_path_factory.mktemp("rds"),
        base_vars={
            **aws_runner.base_vars,
            "threetier_kubeconfig": str(cluster),
            "threetier_app_namespace": app_namespace,
        },
    )


@dataclass
class Converged:
    first: Run
    second: Run
    connection: dict[str, Any]


@pytest.fixture(scope="module")
def converged(runner: Runner) -> Converged:
    """The role applied twice in rds mode."""
    connection_file = runner.workdir / "connection.json"
    extra = {"rds_it_connection_file": str(connection_file)}
    first = runner("site.yml", extra)
    assert first.returncode == 0, first.describe()
    second = runner("site.yml", extra)
    assert second.returncode == 0, second.describe()
    return Converged(first, second, json.loads(connection_file.read_text()))


def test_first_run_changes_and_second_run_changes_nothing(converged: Converged) -> None:
    assert converged.first.recap["failed"] == 0
    # subnet group, security group, instance, master secret, Secret, Service, the recorded connection
    assert converged.first.changed >= 6, converged.first.describe()
    assert converged.second.changed == 0, converged.second.describe()


def test_check_mode_after_converge_changes_nothing(runner: Runner, converged: Converged, aws: Aws) -> None:
    before = aws.instances()[IDENTIFIER]
    run = runner("site.yml", check=True)
    assert run.returncode == 0, run.describe()
    assert run.changed == 0, run.describe()
    assert aws.instances()[IDENTIFIER]["MasterUserSecret"] == before["MasterUserSecret"]


def test_check_mode_on_a_new_instance_creates_nothing(runner: Runner, converged: Converged, aws: Aws) -> None:
    before = aws.inventory()
    run = runner("site.yml", {"database_rds_identifier": "threetier-it-dry"}, check=True)
    assert run.returncode == 0, run.describe()
    assert run.changed >= 3, run.describe()  # subnet group, security group and instance would be created
    assert aws.inventory() == before


def test_instance_is_configured_as_the_inventory_says(converged: Converged, aws: Aws) -> None:
    instance = aws.instances()[IDENTIFIER]
    expected = {
        "Engine": "postgres",
        "EngineVersion": "17.6",
        "DBInstanceClass": "db.m7g.large",
        "DBName": "app",
        "StorageType": "gp3",
        "AllocatedStorage": 400,
        "MaxAllocatedStorage": 1000,
        "Iops": 12000,
        "StorageThroughput": 500,
        "StorageEncrypted": True,
        "MultiAZ": True,
        "BackupRetentionPeriod": 14,
        "PreferredBackupWindow": "01:00-02:00",
        "PreferredMaintenanceWindow": "sun:03:00-sun:04:00",
        "DeletionProtection": True,  # threetier_environment: prod
        "PubliclyAccessible": False,
        "CopyTagsToSnapshot": True,
        "MasterUsername": "threetier_admin",
        "PerformanceInsightsEnabled": False,
        "MonitoringInterval": 0,
        "DBInstanceStatus": "available",
    }
    assert {key: instance.get(key) for key in expected} == expected
    assert instance["Endpoint"]["Port"] == 5432
    assert instance["DBSubnetGroup"]["DBSubnetGroupName"] == IDENTIFIER
    assert instance["MasterUserSecret"]["SecretArn"], "the master password is not managed in Secrets Manager"
    tags = {t["Key"]: t["Value"] for t in instance["TagList"]}
    assert tags == {
        "ManagedBy": "threetier.k8s",
        "Environment": "prod",
        "Component": "database",
        "CostCenter": "platform",
        "Owner": "team-db",
    }


def test_subnet_group_and_security_group(converged: Converged, aws: Aws, account: Account) -> None:
    rds = aws.client("rds")
    group = rds.describe_db_subnet_groups(DBSubnetGroupName=IDENTIFIER)["DBSubnetGroups"][0]
    assert group["VpcId"] == account.vpc_id
    assert {s["SubnetIdentifier"] for s in group["Subnets"]} == {s["id"] for s in account.subnets}

    security_group = aws.security_groups()[f"{IDENTIFIER}-postgres"]
    instance = aws.instances()[IDENTIFIER]
    assert [g["VpcSecurityGroupId"] for g in instance["VpcSecurityGroups"]] == [security_group["GroupId"]]
    assert security_group["VpcId"] == account.vpc_id
    ingress = [
        (p["IpProtocol"], p["FromPort"], p["ToPort"], sorted(r["CidrIp"] for r in p.get("IpRanges", [])))
        for p in security_group["IpPermissions"]
    ]
    assert ingress == [("tcp", 5432, 5432, sorted(ALLOWED_CIDRS))]
    assert all(not p.get("UserIdGroupPairs") and not p.get("Ipv6Ranges") for p in security_group["IpPermissions"])
    assert security_group["IpPermissionsEgress"] == []


def test_kubernetes_objects_point_at_the_instance(
    converged: Converged, aws: Aws, kubectl: Kubectl, app_namespace: str
) -> None:
    instance = aws.instances()[IDENTIFIER]
    service = kubectl.json("get", "service", "postgres", "-n", app_namespace)
    assert service["spec"]["type"] == "ExternalName"
    assert service["spec"]["externalName"] == instance["Endpoint"]["Address"]
    assert [(p["name"], p["port"], p["protocol"]) for p in service["spec"]["ports"]] == [("postgresql", 5432, "TCP")]
    assert service["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "threetier.k8s"
    assert service["metadata"]["labels"]["threetier.k8s/database-mode"] == "rds"

    secret = kubectl.json("get", "secret", "postgres-credentials", "-n", app_namespace)
    stored = json.loads(
        aws.client("secretsmanager").get_secret_value(SecretId=instance["MasterUserSecret"]["SecretArn"])[
            "SecretString"
        ]
    )
    assert {k: b64decode(v).decode() for k, v in secret["data"].items()} == {
        "username": stored["username"],
        "password": stored["password"],
    }


def test_connection_fact_matches_the_interface(converged: Converged, app_namespace: str) -> None:
    assert converged.connection == {
        "mode": "rds",
        "host": f"postgres.{app_namespace}.svc",
        "port": 5432,
        "database": "app",
        "secret_name": "postgres-credentials",
        "username_key": "username",
        "password_key": "password",
        "sslmode": "require",
        "cidrs": [cidr for _, cidr in SUBNETS],
    }


def test_secret_values_never_reach_the_output(converged: Converged, aws: Aws) -> None:
    arn = aws.instances()[IDENTIFIER]["MasterUserSecret"]["SecretArn"]
    password = json.loads(aws.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])["password"]
    for run in (converged.first, converged.second):
        assert password not in run.output


# ----------------------------------------------------------------------------------------------------------
# the other switches: password from ansible-vault, single-AZ, Performance Insights and enhanced monitoring on
# ----------------------------------------------------------------------------------------------------------
VAULT_PASSWORD_FOR_DB = "vaulted-Db-Passw0rd-0815"


def test_vaulted_password_single_az_with_insights_and_monitoring(
    runner: Runner, aws: Aws, kubectl: Kubectl, namespace: str
) -> None:
    identifier = "threetier-it-vault"
    vault_pass = runner.workdir / "vault-pass"
    vault_pass.write_text("integration-test-vault-key\n")
    vaulted = runner.workdir / "vaulted.yml"
    vaulted.write_text(f"database_rds_master_password: {VAULT_PASSWORD_FOR_DB}\n")
    encrypt = subprocess.run(
        ["ansible-vault", "encrypt", "--vault-password-file", str(vault_pass), str(vaulted)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert encrypt.returncode == 0, encrypt.stderr
    assert VAULT_PASSWORD_FOR_DB not in vaulted.read_text()
    extra = {
        "threetier_environment": "staging",
        "threetier_app_namespace": namespace,
        "database_rds_identifier": identifier,
        "database_rds_manage_master_user_password": False,
        "database_rds_multi_az": False,
        "database_rds_storage_type": "gp2",
        "database_rds_allocated_storage": 50,
        "database_rds_iops": 0,
        "database_rds_storage_throughput": 0,
        "database_rds_max_allocated_storage": 100,
        "database_rds_monitoring_interval": 60,
        "database_rds_monitoring_role_arn": "arn:aws:iam::123456789012:role/rds-monitoring",
    }
    vault_args = ["-e", f"@{vaulted}", "--vault-password-file", str(vault_pass)]
    first = runner("site.yml", extra, args=vault_args)
    assert first.returncode == 0, first.describe()
    second = runner("site.yml", extra, args=vault_args)
    assert second.returncode == 0 and second.changed == 0, second.describe()
    assert VAULT_PASSWORD_FOR_DB not in first.output + second.output

    instance = aws.instances()[identifier]
    assert {
        key: instance.get(key) for key in ("MultiAZ", "DeletionProtection", "MonitoringInterval", "StorageType")
    } == {
        "MultiAZ": False,
        "DeletionProtection": False,  # not prod
        "MonitoringInterval": 60,
        "StorageType": "gp2",
    }
    assert instance.get("MonitoringRoleArn") == "arn:aws:iam::123456789012:role/rds-monitoring"
    assert not instance.get("MasterUserSecret"), "vault mode must not hand the password to Secrets Manager"
    secret = kubectl.json("get", "secret", "postgres-credentials", "-n", namespace)
    assert {k: b64decode(v).decode() for k, v in secret["data"].items()} == {
        "username": "threetier_admin",
        "password": VAULT_PASSWORD_FOR_DB,
    }

    # moto does not model Performance Insights (it never reports it enabled, so a run with it on could not be
    # idempotent there). What can be checked: the switch reaches RDS as a modification, and --check sends none.
    insights = runner(
        "site.yml",
        {**extra, "database_rds_performance_insights": True, "database_rds_performance_insights_retention_period": 31},
        args=vault_args,
        check=True,
    )
    assert insights.returncode == 0 and insights.changed == 1, insights.describe()
    assert re.search(r"Create or update the RDS instance\][^\n]*\n(?:[^\n]*\n)?changed: \[localhost\]", insights.output)
    assert stable(aws.instances()[identifier]) == stable(instance)

    snapshots_before = aws.client("rds").describe_db_snapshots()["DBSnapshots"]
    delete = runner(
        "teardown.yml",
        {**extra, "database_delete_data": True, "database_rds_teardown_skip_final_snapshot": True},
        args=vault_args,
    )
    assert delete.returncode == 0, delete.describe()
    assert identifier not in aws.instances()
    assert aws.client("rds").describe_db_snapshots()["DBSnapshots"] == snapshots_before


# ----------------------------------------------------------------------------------------------------------
# external mode: no AWS call at all (the AWS endpoint points at a closed port, so any call would fail)
# ----------------------------------------------------------------------------------------------------------
def external_vars(namespace: str, connection_file: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "threetier_database_mode": "external",
        "threetier_app_namespace": namespace,
        "database_rds_aws_endpoint_url": f"http://127.0.0.1:{free_port()}",
        "database_external_username": "app_user",
        "database_external_password": "not-a-real-password-4711",
        "rds_it_connection_file": str(connection_file),
        **overrides,
    }


def test_external_mode_with_a_dns_name(runner: Runner, kubectl: Kubectl, namespace: str, aws: Aws) -> None:
    before = aws.inventory()
    connection_file = runner.workdir / "external-dns.json"
    extra = external_vars(
        namespace,
        connection_file,
        database_external_host="pg.shared-data.example.internal",
        database_external_cidrs=["10.30.0.0/24"],
    )
    first = runner("site.yml", extra)
    assert first.returncode == 0 and first.changed >= 2, first.describe()
    second = runner("site.yml", extra)
    assert second.returncode == 0 and second.changed == 0, second.describe()
    assert aws.inventory() == before

    service = kubectl.json("get", "service", "postgres", "-n", namespace)
    assert (service["spec"]["type"], service["spec"]["externalName"]) == (
        "ExternalName",
        "pg.shared-data.example.internal",
    )
    connection = json.loads(connection_file.read_text())
    assert (connection["mode"], connection["host"], connection["cidrs"]) == (
        "external",
        f"postgres.{namespace}.svc",
        ["10.30.0.0/24"],
    )
    assert "not-a-real-password-4711" not in first.output + second.output


def test_external_mode_with_an_ip_address(runner: Runner, kubectl: Kubectl, namespace: str) -> None:
    connection_file = runner.workdir / "external-ip.json"
    run = runner("site.yml", external_vars(namespace, connection_file, database_external_host="10.30.0.17"))
    assert run.returncode == 0, run.describe()
    service = kubectl.json("get", "service", "postgres", "-n", namespace)
    assert service["spec"]["type"] == "ClusterIP"
    assert "selector" not in service["spec"]
    endpoint_slice = kubectl.json("get", "endpointslice", "postgres-external", "-n", namespace)
    assert endpoint_slice["metadata"]["labels"]["kubernetes.io/service-name"] == "postgres"
    assert [e["addresses"] for e in endpoint_slice["endpoints"]] == [["10.30.0.17"]]
    assert json.loads(connection_file.read_text())["cidrs"] == ["10.30.0.17/32"]


# ----------------------------------------------------------------------------------------------------------
# bad input: a clear message naming the variable, and nothing created in AWS
# ----------------------------------------------------------------------------------------------------------
BAD_INPUT = {
    "engine-version-16": (
        {"database_rds_engine_version": "16.4"},
        'database_rds_engine_version must be PostgreSQL 17.x (e.g. "17.6", or "17" for the RDS default minor), '
        'got "16.4"',
    ),
    "no-subnets": ({"database_rds_subnets": []}, "database_rds_subnets is empty"),
    "storage-below-minimum": (
        {"database_rds_allocated_storage": 10, "database_rds_iops": 0, "database_rds_storage_throughput": 0},
        'database_rds_allocated_storage (10 GiB) must be at least 20 GiB for database_rds_storage_type "gp3"',
    ),
    "multi-az-one-zone": (
        "one-zone",
        "database_rds_multi_az is true but database_rds_subnets covers only eu-central-1a",
    ),
    "cidr-prefix-out-of-range": (
        {"database_rds_allowed_cidrs": ["10.20.0.0/16", "100.64.0.0/33"]},
        'database_rds_allowed_cidrs[1]: "100.64.0.0/33" is not a valid IPv4 CIDR',
    ),
    "cidr-host-bits": (
        {"database_rds_allowed_cidrs": ["10.20.0.1/16"]},
        'database_rds_allowed_cidrs[0]: "10.20.0.1/16" is not a valid IPv4 CIDR (a.b.c.d/n with octets 0-255, n 0-32 '
        "and no bits set after the prefix, e.g. 10.20.0.0/16)",
    ),
    "cidr-not-an-address": (
        {"database_rds_allowed_cidrs": ["cluster-nodes"]},
        'database_rds_allowed_cidrs[0]: "cluster-nodes" is not a valid IPv4 CIDR',
    ),
}


@dataclass
class BadInputRun:
    run: Run
    failures: dict[str, str]  # host (= case) -> its failure output, whitespace flattened
    recaps: dict[str, dict[str, int]]
    aws_before: tuple[set[str], set[str], set[str]]
    aws_after: tuple[set[str], set[str], set[str]]


@pytest.fixture(scope="module")
def bad_input_run(aws_runner: Runner, account: Account, aws: Aws) -> BadInputRun:
    """Every bad input at once: one inventory host per case, so a single ansible-playbook run covers them all."""
    hosts: dict[str, Any] = {}
    for case, (overrides, _) in BAD_INPUT.items():
        if overrides == "one-zone":
            overrides = {"database_rds_subnets": [account.subnets[0], account.extra_subnet_same_zone]}
        hosts[case] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "database_rds_identifier": f"bad-{case}",
            **overrides,
        }
    inventory = aws_runner.workdir / "bad-input.json"
    # Group vars of this inventory, host vars per case: host vars win, so the base values are not extra vars here.
    inventory.write_text(json.dumps({"all": {"hosts": hosts, "vars": aws_runner.base_vars}}))
    before = aws.inventory()
    run = aws_runner.run(
        ["-i", str(INVENTORY), "-i", str(inventory), str(RDS_DIR / "site.yml"), "-e", "rds_it_hosts=all:!localhost"]
    )
    failures: dict[str, str] = {}
    # "fatal: [host]: FAILED! =>" for a task, "failed: [host] (item=...) =>" for a loop item
    for chunk in re.split(r"^(?=(?:fatal|failed): \[)", run.output, flags=re.MULTILINE)[1:]:
        host = chunk[chunk.index("[") + 1 : chunk.index("]")]
        failures[host] = failures.get(host, "") + " ".join(chunk.split())
    recaps = {
        m["host"]: {k: int(v) for k, v in m.groupdict().items() if k != "host"} for m in RECAP.finditer(run.output)
    }
    return BadInputRun(run, failures, recaps, before, aws.inventory())


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_fails_before_any_aws_call(case: str, bad_input_run: BadInputRun) -> None:
    _, message = BAD_INPUT[case]
    assert bad_input_run.run.returncode != 0, bad_input_run.run.describe()
    assert bad_input_run.recaps[case]["failed"] == 1, bad_input_run.run.describe()
    assert bad_input_run.recaps[case]["changed"] == 0, bad_input_run.run.describe()
    assert message in bad_input_run.failures.get(case, ""), bad_input_run.run.describe()
    assert bad_input_run.aws_after == bad_input_run.aws_before
    assert not any(f"bad-{case}" in name for names in bad_input_run.aws_after for name in names)


# ----------------------------------------------------------------------------------------------------------
# teardown (last: it removes what the converge made)
# ----------------------------------------------------------------------------------------------------------
def test_teardown_keeps_the_instance_unless_told(
    runner: Runner, converged: Converged, aws: Aws, kubectl: Kubectl, app_namespace: str
) -> None:
    keep = runner("teardown.yml")
    assert keep.returncode == 0, keep.describe()
    assert IDENTIFIER in aws.instances()
    assert kubectl("get", "service", "postgres", "-n", app_namespace, check=False).returncode != 0
    assert kubectl("get", "secret", "postgres-credentials", "-n", app_namespace, check=False).returncode != 0

    protected = runner("teardown.yml", {"database_delete_data": True})
    assert protected.returncode != 0, protected.describe()
    assert "has deletion protection on" in " ".join(protected.output.split())
    assert IDENTIFIER in aws.instances()

    unprotect = runner("site.yml", {"database_rds_deletion_protection": False, "database_rds_apply_immediately": True})
    assert unprotect.returncode == 0, unprotect.describe()
    assert aws.instances()[IDENTIFIER]["DeletionProtection"] is False

    delete = runner("teardown.yml", {"database_delete_data": True})
    assert delete.returncode == 0, delete.describe()
    assert IDENTIFIER not in aws.instances()
    snapshots = aws.client("rds").describe_db_snapshots()["DBSnapshots"]
    assert [
        s["DBInstanceIdentifier"] for s in snapshots if s["DBSnapshotIdentifier"].startswith(f"{IDENTIFIER}-final-")
    ] == [IDENTIFIER]
    assert IDENTIFIER not in aws.subnet_groups()
    assert f"{IDENTIFIER}-postgres" not in aws.security_groups()
