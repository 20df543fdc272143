"""Helpers of the database images' contract test (tests/harness/images: db_pod.py, app_pod.py's runc-config), no root.

`tests/harness/images/build-db-images.sh test` runs the containers; these tests pin what it feeds them: the operator's
SPILO_CONFIGURATION shape, the parsing of pgbench and pgbouncer output (a changed format must fail, not pass),
and the runc settings that emulate the operator's pods.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness.images import app_pod, db_pod

PGBENCH_REPORT = """\
pgbench (17.12 (Debian 17.12-0+deb13u1))
transaction type: <builtin: TPC-B (sort of)>
scaling factor: 2
query mode: prepared
number of clients: 8
number of threads: 2
maximum number of tries: 1
duration: 15 s
number of transactions actually processed: 23456
number of failed transactions: 0 (0.000%)
latency average = 5.118 ms
initial connection time = 40.220 ms
tps = 1563.123456 (without initial connection time)
"""


def test_spilo_configuration_is_the_operators_shape() -> None:
    config = db_pod.spilo_configuration({"shared_preload_libraries": "pg_stat_statements,set_user"})
    # json.Marshal of spiloConfiguration: postgresql (the node's parameters), then bootstrap with initdb and
    # an empty dcs when every parameter is a node-local one.
    assert json.dumps(config, separators=(",", ":")) == (
        '{"postgresql":{"parameters":{"shared_preload_libraries":"pg_stat_statements,set_user"}},'
        '"bootstrap":{"initdb":[{"auth-host":"scram-sha-256"},{"auth-local":"trust"}],"dcs":{}}}'
    )


def test_spilo_configuration_puts_bootstrap_parameters_into_dcs() -> None:
    config = db_pod.spilo_configuration({"max_connections": "200", "ssl": "on", "work_mem": "8MB"})
    assert config["postgresql"] == {"parameters": {"ssl": "on"}}
    assert config["bootstrap"]["dcs"] == {"postgresql": {"parameters": {"max_connections": "200", "work_mem": "8MB"}}}


def test_spilo_configuration_test_only_listen_keys() -> None:
    config = db_pod.spilo_configuration({}, pg_listen="127.0.0.2:5432", api_listen="127.0.0.2:8008")
    assert config["postgresql"] == {"listen": "127.0.0.2:5432"}
    assert config["restapi"] == {"listen": "127.0.0.2:8008"}


def test_pgbench_numbers() -> None:
    assert db_pod.pgbench_numbers(PGBENCH_REPORT) == {
        "tps": "1563.123456",
        "failed": "0",
        "processed": "23456",
        "latency": "5.118",
    }


def test_pgbench_numbers_fail_on_a_report_without_failures_line() -> None:
    report = PGBENCH_REPORT.replace("number of failed transactions: 0 (0.000%)\n", "")
    with pytest.raises(KeyError, match="failed"):
        db_pod.pgbench_numbers(report)


def test_pgbouncer_stats_row() -> None:
    table = (
        "database|total_xact_count|total_client_parse_count|total_server_parse_count|total_bind_count\n"
        "app|23500|56|9|164500\n"
        "pgbouncer|3|0|0|0\n"
        "(2 rows)\n"
    )
    row = db_pod.pgbouncer_stats(table, "app")
    assert row["total_bind_count"] == "164500"
    assert row["total_server_parse_count"] == "9"
    assert db_pod.pgbouncer_stats(table, "nope") == {}


def test_image_groups_and_home_follow_etc_passwd_and_group(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/bash\npostgres:x:101:103::/home/postgres:/bin/bash\n")
    (tmp_path / "etc/group").write_text("root:x:0:postgres\nssl-cert:x:102:postgres\npostgres:x:103:\nusers:x:100:\n")
    assert app_pod.image_groups(tmp_path, 101) == [0, 102]
    assert app_pod.image_groups(tmp_path, 4242) == []
    # HOME as containerd derives it for an image without one (umoci's config.json would say /root).
    assert app_pod.image_home(tmp_path, 101) == "/home/postgres"
    assert app_pod.image_home(tmp_path, 4242) == "/"


def test_runc_config_netns_writable_root_memory() -> None:
    base = {"process": {"env": ["PATH=/bin"]}, "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}]}}
    config = app_pod.runc_config(
        base,
        rootfs="/r",
        args=None,
        uid=101,
        gid=103,
        supplementary_gids=[0, 103],
        cwd=None,
        env=["PGVERSION=17"],
        binds=[],
        hostname="acid-e2e-0",
        netns="/var/run/netns/t",
        readonly_root=False,
        memory_limit=1 << 30,
    )
    assert config["root"] == {"path": "/r", "readonly": False}
    assert {"type": "network", "path": "/var/run/netns/t"} in config["linux"]["namespaces"]
    assert {"type": "network"} not in config["linux"]["namespaces"]
    assert config["linux"]["resources"]["memory"] == {"limit": 1 << 30}
    assert config["process"]["user"] == {"uid": 101, "gid": 103, "additionalGids": [0, 103]}
    assert config["process"]["noNewPrivileges"] is True
    assert not any(config["process"]["capabilities"].values())
