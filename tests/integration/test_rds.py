"""The database role in rds and external mode, end to end against moto's server and the local cluster.

moto (``moto_server``) runs on 127.0.0.1 on a free port for the module and is stopped by PID at the end. The
test creates a VPC and private subnets in two availability zones the way an account would have them, then
drives the role through ``ansible-playbook`` (tests/integration/rds/site.yml with a prod-like inventory) and
checks what moto reports through boto3 and what the role put into the cluster (the ``cluster`` fixture).

Each scenario is an inventory host (the role runs once per host, in parallel), so one ansible-playbook run
covers several of them: a prod-like instance with the password managed in Secrets Manager, a single-AZ one with
the password from ansible-vault, check-mode variants, external endpoints, and every bad input. The tests share
those instances and run in file order: converge, idempotence, check mode, assertions, external mode, bad input,
and last the teardown.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
RDS_DIR = ROOT / "tests" / "integration" / "rds"
INVENTORY = RDS_DIR / "inventory"
REGION = "eu-central-1"
IDENTIFIER = "threetier-it"
VAULT_IDENTIFIER = "threetier-it-vault"
VAULT_PASSWORD_FOR_DB = "vaulted-Db-Passw0rd-0815"
MONITORING_ROLE = "arn:aws:iam::123456789012:role/rds-monitoring"
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
    # A customer-managed KMS key for the storage and the master user secret of the prod-like instance.
    kms_key_arn: str


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
    kms_key_arn = aws.client("kms").create_key(Description="threetier prod database")["KeyMetadata"]["Arn"]
    return Account(vpc_id=vpc_id, subnets=subnets[:2], extra_subnet_same_zone=subnets[2], kms_key_arn=kms_key_arn)


@dataclass
class Run:
    """One ansible-playbook run: exit code, output, and per host its PLAY RECAP and failure messages."""

    returncode: int
    output: str
    recaps: dict[str, dict[str, int]]
    failures: dict[str, str]  # host -> its "fatal:"/"failed:" output, whitespace flattened

    def changed(self, host: str) -> int:
        return self.recaps[host]["changed"]

    def failed(self, host: str) -> int:
        return self.recaps[host]["failed"]

    def task_results(self, task: str) -> str:
        """The output of the task whose name contains ``task`` (hosts' ok/changed lines)."""
        sections = [part for part in self.output.split("\nTASK [") if task in part.split("]", 1)[0]]
        return "\n".join(sections)

    def describe(self) -> str:
        return f"rc={self.returncode} recaps={self.recaps}\n{self.output[-8000:]}"


def parse_run(returncode: int, output: str) -> Run:
    recaps = {m["host"]: {k: int(v) for k, v in m.groupdict().items() if k != "host"} for m in RECAP.finditer(output)}
    failures: dict[str, str] = {}
    # "fatal: [host]: FAILED! =>" for a task, "failed: [host] (item=...) =>" for a loop item
    for chunk in re.split(r"^(?=(?:fatal|failed): \[)", output, flags=re.MULTILINE)[1:]:
        host = chunk[chunk.index("[") + 1 : chunk.index("]")]
        failures[host] = failures.get(host, "") + " ".join(chunk.split())
    return Run(returncode, output, recaps, failures)


@dataclass
class Runner:
    """ansible-playbook on tests/integration/rds: the prod-like inventory plus one generated host per scenario.

    The generated hosts carry the run's values (moto's URL, the subnets, the kubeconfig) and their scenario's
    overrides as host vars, which win over the inventory's group_vars (extra vars would win over everything).
    """

    workdir: Path
    base_vars: dict[str, Any]

    def __call__(
        self, playbook: str, hosts: dict[str, dict[str, Any]], *, check: bool = False, args: list[str] | None = None
    ) -> Run:
        inventory = self.workdir / f"hosts-{uuid.uuid4().hex[:8]}.json"
        inventory.write_text(
            json.dumps(
                {
                    "rds_it": {
                        "hosts": {
                            name: {
                                "ansible_connection": "local",
                                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                                **self.base_vars,
                                **overrides,
                            }
                            for name, overrides in hosts.items()
                        }
                    }
                }
            )
        )
        cmd = ["-i", str(INVENTORY), "-i", str(inventory), str(RDS_DIR / playbook), "-e", "rds_it_hosts=rds_it"]
        cmd += ["--check"] if check else []
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
            ["ansible-playbook", *cmd, *(args or [])],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=600,
            check=False,
        )
        return parse_run(proc.returncode, proc.stdout + proc.stderr)


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
        },
    )


@pytest.fixture(scope="module")
def runner(aws_runner: Runner, cluster: Path, tmp_path_factory: pytest.TempPathFactory) -> Runner:
    return Runner(
        workdir=tmp_path_factory.mktemp("rds"),
        base_vars={**aws_runner.base_vars, "threetier_kubeconfig": str(cluster)},
    )


@pytest.fixture(scope="module")
def namespaces(kubectl: Kubectl) -> Iterator[dict[str, str]]:
    """App namespaces per scenario (in site.yml the namespaces role makes them), deleted afterwards."""
    suffix = uuid.uuid4().hex[:5]
    names = {scenario: f"rds-it-{scenario}-{suffix}" for scenario in ("prod", "vault", "ext-dns", "ext-ip")}
    for name in names.values():
        kubectl("create", "namespace", name)
    yield names
    for name in names.values():
        kubectl("delete", "namespace", name, "--wait=false", check=False)


@dataclass
class Vault:
    """An ansible-vault encrypted vars file with the master password of the vault-mode instance."""

    args: list[str]


@pytest.fixture(scope="module")
def vault(runner: Runner) -> Vault:
    key = runner.workdir / "vault-pass"
    key.write_text("integration-test-vault-key\n")
    vaulted = runner.workdir / "vaulted.yml"
    vaulted.write_text(f"database_rds_master_password: {VAULT_PASSWORD_FOR_DB}\n")
    proc = subprocess.run(
        ["ansible-vault", "encrypt", "--vault-password-file", str(key), str(vaulted)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert VAULT_PASSWORD_FOR_DB not in vaulted.read_text()
    return Vault(["-e", f"@{vaulted}", "--vault-password-file", str(key)])


def prod_host(namespaces: dict[str, str], account: Account, **overrides: Any) -> dict[str, Any]:
    """The prod-like instance: the inventory as it is (Multi-AZ, password managed by RDS, deletion protection),
    with a customer-managed KMS key for the storage and the master user secret."""
    return {
        "threetier_app_namespace": namespaces["prod"],
        "database_rds_kms_key_id": account.kms_key_arn,
        "database_rds_master_user_secret_kms_key_id": account.kms_key_arn,
        **overrides,
    }


def vault_host(namespaces: dict[str, str], **overrides: Any) -> dict[str, Any]:
    """A staging-like instance: single AZ, gp2, password from ansible-vault, enhanced monitoring on."""
    return {
        "threetier_environment": "staging",
        "threetier_app_namespace": namespaces["vault"],
        "database_rds_identifier": VAULT_IDENTIFIER,
        "database_rds_manage_master_user_password": False,
        "database_rds_multi_az": False,
        "database_rds_storage_type": "gp2",
        "database_rds_allocated_storage": 50,
        "database_rds_iops": 0,
        "database_rds_storage_throughput": 0,
        "database_rds_max_allocated_storage": 100,
        "database_rds_monitoring_interval": 60,
        "database_rds_monitoring_role_arn": MONITORING_ROLE,
        **overrides,
    }


@dataclass
class Converged:
    first: Run
    second: Run
    connection: dict[str, Any]


@pytest.fixture(scope="module")
def converged(runner: Runner, namespaces: dict[str, str], vault: Vault, account: Account) -> Converged:
    """Both instances applied twice."""
    connection_file = runner.workdir / "connection.json"
    hosts = {
        "rds-prod": prod_host(namespaces, account, rds_it_connection_file=str(connection_file)),
        "rds-vault": vault_host(namespaces),
    }
    first = runner("site.yml", hosts, args=vault.args)
    assert first.returncode == 0, first.describe()
    second = runner("site.yml", hosts, args=vault.args)
    assert second.returncode == 0, second.describe()
    return Converged(first, second, json.loads(connection_file.read_text()))


def test_first_run_changes_and_second_run_changes_nothing(converged: Converged) -> None:
    for host in ("rds-prod", "rds-vault"):
        assert converged.first.failed(host) == 0
        # subnet group, security group, instance, the database release (+ the master secret, the recorded connection)
        assert converged.first.changed(host) >= 4, converged.first.describe()
        assert converged.second.changed(host) == 0, converged.second.describe()


def test_check_mode_changes_nothing(
    runner: Runner, converged: Converged, aws: Aws, namespaces: dict[str, str], vault: Vault, account: Account
) -> None:
    """Check mode: converged = no change; a new instance = changes reported, nothing created.

    moto does not model Performance Insights (it never reports it enabled, so a run with it on could not be
    idempotent there). What can be checked is that switching it on reaches RDS as a modification, in check mode.
    """
    before = {name: stable(instance) for name, instance in aws.instances().items()}
    inventory_before = aws.inventory()
    run = runner(
        "site.yml",
        {
            "rds-prod": prod_host(namespaces, account),
            "rds-vault-insights": vault_host(
                namespaces,
                database_rds_performance_insights=True,
                database_rds_performance_insights_retention_period=31,
            ),
            "rds-dry": prod_host(namespaces, account, database_rds_identifier="threetier-it-dry"),
            # Taking the password back from Secrets Manager is refused (a deliberate manual step).
            "rds-prod-unmanage": prod_host(namespaces, account, database_rds_manage_master_user_password=False),
        },
        check=True,
        args=[*vault.args, "--diff"],
    )
    assert {host: run.failed(host) for host in run.recaps} == {
        "rds-prod": 0,
        "rds-vault-insights": 0,
        "rds-dry": 0,
        "rds-prod-unmanage": 1,
    }, run.describe()
    assert "RDS already manages the master password of threetier-it in Secrets Manager" in run.failures.get(
        "rds-prod-unmanage", ""
    ), run.describe()
    assert run.changed("rds-prod") == 0, run.describe()
    assert run.changed("rds-vault-insights") == 1, run.describe()
    assert "changed: [rds-vault-insights]" in run.task_results("Create or update the RDS instance")
    # subnet group, security group and instance would be created
    assert run.changed("rds-dry") >= 3, run.describe()
    # --diff shows no credential either
    arn = aws.instances()[IDENTIFIER]["MasterUserSecret"]["SecretArn"]
    managed = json.loads(aws.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])["password"]
    assert managed not in run.output
    assert VAULT_PASSWORD_FOR_DB not in run.output
    assert {name: stable(instance) for name, instance in aws.instances().items()} == before
    assert aws.inventory() == inventory_before


def test_connection_entry_point_changes_nothing(
    runner: Runner, converged: Converged, aws: Aws, namespaces: dict[str, str], account: Account
) -> None:
    """The role's ``connection`` entry point (tag-limited runs) reads the same fact back and changes nothing."""
    before = {name: stable(instance) for name, instance in aws.instances().items()}
    connection_file = runner.workdir / "connection-only.json"
    run = runner(
        "connection.yml", {"rds-prod": prod_host(namespaces, account, rds_it_connection_file=str(connection_file))}
    )
    assert run.returncode == 0, run.describe()
    assert run.changed("rds-prod") == 1, run.describe()  # only the test's own record of the fact
    assert json.loads(connection_file.read_text()) == converged.connection
    assert {name: stable(instance) for name, instance in aws.instances().items()} == before


def test_instance_is_configured_as_the_inventory_says(converged: Converged, aws: Aws, account: Account) -> None:
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
        "MonitoringInterval": 0,  # Performance Insights: moto does not model it (see the vault test)
        "DBInstanceStatus": "available",
    }
    assert {key: instance.get(key) for key in expected} == expected
    assert instance["Endpoint"]["Port"] == 5432
    assert instance["DBSubnetGroup"]["DBSubnetGroupName"] == IDENTIFIER
    assert instance["MasterUserSecret"]["SecretArn"], "the master password is not managed in Secrets Manager"
    assert instance["KmsKeyId"] == account.kms_key_arn
    assert instance["MasterUserSecret"]["KmsKeyId"] == account.kms_key_arn
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
    converged: Converged, aws: Aws, kubectl: Kubectl, namespaces: dict[str, str]
) -> None:
    app_namespace = namespaces["prod"]
    instance = aws.instances()[IDENTIFIER]
    service = kubectl.json("get", "service", "postgres", "-n", app_namespace)
    assert service["spec"]["type"] == "ExternalName"
    assert service["spec"]["externalName"] == instance["Endpoint"]["Address"]
    assert [(p["name"], p["port"], p["protocol"]) for p in service["spec"]["ports"]] == [("postgresql", 5432, "TCP")]
    # The Service is an object of the database release: Helm labels it as its own.
    assert service["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert service["metadata"]["annotations"]["meta.helm.sh/release-name"] == "database"
    assert service["metadata"]["labels"]["app.kubernetes.io/part-of"] == "threetier"
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


def test_connection_fact_matches_the_interface(converged: Converged, namespaces: dict[str, str]) -> None:
    assert converged.connection == {
        "mode": "rds",
        "host": f"postgres.{namespaces['prod']}.svc",
        "port": 5432,
        "database": "app",
        "secret_name": "postgres-credentials",
        "username_key": "username",
        "password_key": "password",
        "sslmode": "require",
        "cidrs": [cidr for _zone, cidr in SUBNETS],
    }


def test_secret_values_never_reach_the_output(converged: Converged, aws: Aws) -> None:
    arn = aws.instances()[IDENTIFIER]["MasterUserSecret"]["SecretArn"]
    password = json.loads(aws.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])["password"]
    for run in (converged.first, converged.second):
        assert password not in run.output


def test_vault_mode_instance(converged: Converged, aws: Aws, kubectl: Kubectl, namespaces: dict[str, str]) -> None:
    instance = aws.instances()[VAULT_IDENTIFIER]
    assert {
        key: instance.get(key) for key in ("MultiAZ", "DeletionProtection", "MonitoringInterval", "StorageType")
    } == {
        "MultiAZ": False,
        "DeletionProtection": False,  # not prod
        "MonitoringInterval": 60,
        "StorageType": "gp2",
    }
    assert instance.get("MonitoringRoleArn") == MONITORING_ROLE
    assert not instance.get("MasterUserSecret"), "vault mode must not hand the password to Secrets Manager"
    secret = kubectl.json("get", "secret", "postgres-credentials", "-n", namespaces["vault"])
    assert {k: b64decode(v).decode() for k, v in secret["data"].items()} == {
        "username": "threetier_admin",
        "password": VAULT_PASSWORD_FOR_DB,
    }
    assert VAULT_PASSWORD_FOR_DB not in converged.first.output + converged.second.output


# ----------------------------------------------------------------------------------------------------------
# external mode: no AWS call at all (the AWS endpoint points at a closed port, so any call would fail)
# ----------------------------------------------------------------------------------------------------------
def external_host(namespace: str, connection_file: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "threetier_database_mode": "external",
        "threetier_app_namespace": namespace,
        "database_rds_aws_endpoint_url": f"http://127.0.0.1:{free_port()}",
        "database_external_username": "app_user",
        "database_external_password": "not-a-real-password-4711",
        "rds_it_connection_file": str(connection_file),
        **overrides,
    }


def test_external_mode(runner: Runner, kubectl: Kubectl, namespaces: dict[str, str], aws: Aws) -> None:
    """A DNS name becomes an ExternalName Service, an IP address a Service with an EndpointSlice; no AWS call."""
    before = aws.inventory()
    dns_file, ip_file = runner.workdir / "external-dns.json", runner.workdir / "external-ip.json"
    hosts = {
        "ext-dns": external_host(
            namespaces["ext-dns"],
            dns_file,
            database_external_host="pg.shared-data.example.internal",
            database_external_cidrs=["10.30.0.0/24"],
        ),
        "ext-ip": external_host(namespaces["ext-ip"], ip_file, database_external_host="10.30.0.17"),
    }
    first = runner("site.yml", hosts)
    assert first.returncode == 0, first.describe()
    second = runner("site.yml", hosts)
    assert second.returncode == 0, second.describe()
    for host in hosts:
        assert first.changed(host) >= 2 and second.changed(host) == 0, second.describe()
    assert aws.inventory() == before
    assert "not-a-real-password-4711" not in first.output + second.output

    service = kubectl.json("get", "service", "postgres", "-n", namespaces["ext-dns"])
    assert (service["spec"]["type"], service["spec"]["externalName"]) == (
        "ExternalName",
        "pg.shared-data.example.internal",
    )
    connection = json.loads(dns_file.read_text())
    assert (connection["mode"], connection["host"], connection["cidrs"]) == (
        "external",
        f"postgres.{namespaces['ext-dns']}.svc",
        ["10.30.0.0/24"],
    )

    service = kubectl.json("get", "service", "postgres", "-n", namespaces["ext-ip"])
    assert service["spec"]["type"] == "ClusterIP"
    assert "selector" not in service["spec"]
    endpoint_slice = kubectl.json("get", "endpointslice", "postgres-external", "-n", namespaces["ext-ip"])
    assert endpoint_slice["metadata"]["labels"]["kubernetes.io/service-name"] == "postgres"
    assert [e["addresses"] for e in endpoint_slice["endpoints"]] == [["10.30.0.17"]]
    assert json.loads(ip_file.read_text())["cidrs"] == ["10.30.0.17/32"]
    secret = kubectl.json("get", "secret", "postgres-credentials", "-n", namespaces["ext-ip"])
    assert b64decode(secret["data"]["password"]).decode() == "not-a-real-password-4711"


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
    "storage-ceiling-too-close": (
        {"database_rds_max_allocated_storage": 420},
        "database_rds_max_allocated_storage (420) must equal it (autoscaling off) or be at least 10 % above it",
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
    aws_before: tuple[set[str], set[str], set[str]]
    aws_after: tuple[set[str], set[str], set[str]]


@pytest.fixture(scope="module")
def bad_input_run(aws_runner: Runner, account: Account, aws: Aws) -> BadInputRun:
    """Every bad input at once: one inventory host per case, so a single ansible-playbook run covers them all."""
    hosts: dict[str, Any] = {}
    for case, (overrides, _message) in BAD_INPUT.items():
        if overrides == "one-zone":
            overrides = {"database_rds_subnets": [account.subnets[0], account.extra_subnet_same_zone]}
        hosts[case] = {"database_rds_identifier": f"bad-{case}", **overrides}
    before = aws.inventory()
    run = aws_runner("site.yml", hosts)
    return BadInputRun(run, before, aws.inventory())


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_fails_before_any_aws_call(case: str, bad_input_run: BadInputRun) -> None:
    message = BAD_INPUT[case][1]
    assert bad_input_run.run.returncode != 0, bad_input_run.run.describe()
    assert bad_input_run.run.failed(case) == 1, bad_input_run.run.describe()
    assert bad_input_run.run.changed(case) == 0, bad_input_run.run.describe()
    assert message in bad_input_run.run.failures.get(case, ""), bad_input_run.run.describe()
    assert bad_input_run.aws_after == bad_input_run.aws_before
    assert not any(f"bad-{case}" in name for names in bad_input_run.aws_after for name in names)


# ----------------------------------------------------------------------------------------------------------
# teardown (last: it removes what the converge made)
# ----------------------------------------------------------------------------------------------------------
def test_teardown_keeps_the_instance_unless_told(
    runner: Runner,
    converged: Converged,
    aws: Aws,
    kubectl: Kubectl,
    namespaces: dict[str, str],
    vault: Vault,
    account: Account,
) -> None:
    rds = aws.client("rds")
    manual_snapshots_before = rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]
    # rds-prod: the default keeps the instance; rds-vault: delete the data, skip the final snapshot.
    first = runner(
        "teardown.yml",
        {
            "rds-prod": prod_host(namespaces, account),
            "rds-vault": vault_host(
                namespaces, database_delete_data=True, database_rds_teardown_skip_final_snapshot=True
            ),
        },
        args=vault.args,
    )
    assert first.returncode == 0, first.describe()
    assert IDENTIFIER in aws.instances()
    assert VAULT_IDENTIFIER not in aws.instances()
    assert rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"] == manual_snapshots_before
    for namespace in (namespaces["prod"], namespaces["vault"]):
        assert kubectl("get", "service", "postgres", "-n", namespace, check=False).returncode != 0
        assert kubectl("get", "secret", "postgres-credentials", "-n", namespace, check=False).returncode != 0

    protected = runner("teardown.yml", {"rds-prod": prod_host(namespaces, account, database_delete_data=True)})
    assert protected.returncode != 0, protected.describe()
    assert "has deletion protection on" in protected.failures.get("rds-prod", ""), protected.describe()
    assert IDENTIFIER in aws.instances()

    # Storage autoscaling grew the instance past the inventory's 400 GiB: the role must not try to shrink it.
    aws.client("rds").modify_db_instance(DBInstanceIdentifier=IDENTIFIER, AllocatedStorage=480, ApplyImmediately=True)
    unprotect = runner(
        "site.yml",
        {
            "rds-prod": prod_host(
                namespaces, account, database_rds_deletion_protection=False, database_rds_apply_immediately=True
            )
        },
    )
    assert unprotect.returncode == 0, unprotect.describe()
    assert aws.instances()[IDENTIFIER]["DeletionProtection"] is False
    assert aws.instances()[IDENTIFIER]["AllocatedStorage"] == 480
    # the instance's deletion protection, and the database release (Secret and Service) the first teardown
    # uninstalled; nothing else
    assert unprotect.changed("rds-prod") == 2, unprotect.describe()

    delete = runner("teardown.yml", {"rds-prod": prod_host(namespaces, account, database_delete_data=True)})
    assert delete.returncode == 0, delete.describe()
    assert IDENTIFIER not in aws.instances()
    final = [
        s["DBInstanceIdentifier"]
        for s in rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]
        if s["DBSnapshotIdentifier"].startswith(f"{IDENTIFIER}-final-")
    ]
    assert final == [IDENTIFIER]
    assert IDENTIFIER not in aws.subnet_groups()
    assert f"{IDENTIFIER}-postgres" not in aws.security_groups()
