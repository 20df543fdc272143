"""Helpers of tests/harness/images/build-db-images.sh for testing the database images without a cluster.

``spilo-configuration``
    Prints the SPILO_CONFIGURATION value the postgres-operator puts into a Spilo pod for a ``postgresql``
    resource's ``postgresql.parameters`` (pkg/cluster/k8sres.go, generateSpiloJSONConfiguration, with
    enable_pgversion_env_var on as in the chart): the parameters Patroni keeps per node under
    ``postgresql.parameters``, every other one under ``bootstrap.dcs.postgresql.parameters``, initdb's
    scram-sha-256/trust options. ``--pg-listen``/``--api-listen`` add what only the test needs: its two Spilo
    containers share one loopback-only network namespace, so each listens on an address of its own instead
    of Spilo's wildcard.
``field KEY...``
    Reads one JSON object on stdin (a Patroni REST answer) and prints the values of KEY, one per line.
``pgbench``
    Reads pgbench's report on stdin and prints ``tps failed processed latency_ms`` (exit 1 when a number is
    missing, so a changed report format fails the test instead of passing it).
``pgbouncer-stats DATABASE``
    Reads ``SHOW STATS`` as ``psql -A -F'|'`` output (header line first) and prints ``KEY=VALUE`` for the
    row of DATABASE.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

# The parameters the operator writes into the node's own `postgresql.parameters` (Spilo sets them per node);
# every other parameter of the manifest goes into bootstrap.dcs (pkg/cluster/k8sres.go, isBootstrapOnlyParameter).
LOCAL_PARAMETERS = frozenset(
    {
        "archive_command",
        "shared_buffers",
        "logging_collector",
        "log_destination",
        "log_directory",
        "log_filename",
        "log_file_mode",
        "log_rotation_age",
        "log_truncate_on_rotation",
        "ssl",
        "ssl_ca_file",
        "ssl_crl_file",
        "ssl_cert_file",
        "ssl_key_file",
        "shared_preload_libraries",
        "bg_mon.listen_address",
        "bg_mon.history_buckets",
        "pg_stat_statements.track_utility",
        "extwlist.extensions",
        "extwlist.custom_path",
    }
)


def spilo_configuration(
    parameters: dict[str, str], *, pg_listen: str | None = None, api_listen: str | None = None
) -> dict[str, Any]:
    """SPILO_CONFIGURATION as the operator builds it (keys in Go's order: struct fields, then sorted map keys)."""
    local = {k: parameters[k] for k in sorted(parameters) if k in LOCAL_PARAMETERS}
    bootstrap = {k: parameters[k] for k in sorted(parameters) if k not in LOCAL_PARAMETERS}
    postgresql: dict[str, Any] = {}
    if local:
        postgresql["parameters"] = local
    dcs: dict[str, Any] = {"postgresql": {"parameters": bootstrap}} if bootstrap else {}
    config: dict[str, Any] = {
        "postgresql": postgresql,
        "bootstrap": {"initdb": [{"auth-host": "scram-sha-256"}, {"auth-local": "trust"}], "dcs": dcs},
    }
    if pg_listen:
        postgresql["listen"] = pg_listen
    if api_listen:
        config["restapi"] = {"listen": api_listen}
    return config


_PGBENCH = {
    "tps": re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.M),
    "failed": re.compile(r"^number of failed transactions: (\d+)", re.M),
    "processed": re.compile(r"^number of transactions actually processed: (\d+)", re.M),
    "latency": re.compile(r"^latency average = ([0-9.]+) ms", re.M),
}


def pgbench_numbers(report: str) -> dict[str, str]:
    """tps, failed, processed and latency from pgbench's report; raises KeyError naming a missing one."""
    numbers: dict[str, str] = {}
    for key, pattern in _PGBENCH.items():
        match = pattern.search(report)
        if not match:
            raise KeyError(f"pgbench report without {key!r}")
        numbers[key] = match.group(1)
    return numbers


def pgbouncer_stats(table: str, database: str) -> dict[str, str]:
    """One row of SHOW STATS (psql -A -F'|' output) as a dict; empty when DATABASE has no row."""
    lines = [line for line in table.splitlines() if "|" in line]
    if not lines:
        return {}
    header = lines[0].split("|")
    for line in lines[1:]:
        row = dict(zip(header, line.split("|"), strict=False))
        if row.get("database") == database:
            return row
    return {}


def _parse_parameter(spec: str) -> tuple[str, str]:
    key, sep, value = spec.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--parameter wants KEY=VALUE, got {spec!r}")
    return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sc = sub.add_parser("spilo-configuration", help="the operator's SPILO_CONFIGURATION for some parameters")
    sc.add_argument("--parameter", type=_parse_parameter, action="append", default=[], metavar="KEY=VALUE")
    sc.add_argument("--pg-listen", help="test only: postgresql.listen of this node")
    sc.add_argument("--api-listen", help="test only: restapi.listen of this node")
    fd = sub.add_parser("field", help="values of top-level keys of a JSON object on stdin")
    fd.add_argument("keys", nargs="+")
    sub.add_parser("pgbench", help="numbers of a pgbench report on stdin")
    st = sub.add_parser("pgbouncer-stats", help="one database's row of SHOW STATS on stdin")
    st.add_argument("database")

    ns = parser.parse_args(argv)
    if ns.command == "spilo-configuration":
        config = spilo_configuration(dict(ns.parameter), pg_listen=ns.pg_listen, api_listen=ns.api_listen)
        print(json.dumps(config, separators=(",", ":")))
    elif ns.command == "field":
        try:
            data = json.loads(sys.stdin.read() or "{}")
        except json.JSONDecodeError:
            data = {}
        for key in ns.keys:
            print(data.get(key, "") if isinstance(data, dict) else "")
    elif ns.command == "pgbench":
        try:
            numbers = pgbench_numbers(sys.stdin.read())
        except KeyError as err:
            print(err, file=sys.stderr)
            return 1
        print(numbers["tps"], numbers["failed"], numbers["processed"], numbers["latency"])
    else:
        for key, value in pgbouncer_stats(sys.stdin.read(), ns.database).items():
            print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
