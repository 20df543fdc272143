# Copyright: threetier.k8s maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse and validate the ``threetier_network`` flow graph, then expand it into resolved edges.

The graph is the only input of the NetworkPolicy builder. Parsing turns it into frozen dataclasses and
rejects anything ambiguous with a :class:`NetworkGraphError` whose message names the offending entry.
Expansion adds the built-in rules (DNS, the Zalando Spilo/pooler/operator traffic, database clients) so
that the policy builder and the diagram work from one list of edges and cannot disagree.

Pure Python on purpose: no Ansible import, so the filter plugins, the tests and the benchmark share it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

PROTOCOLS = ("TCP", "UDP", "SCTP")
DATABASE_MODES = ("operator", "rds", "external")
DATABASE_KEYS = (
    "mode",
    "namespace",
    "cluster_name",
    "pooler",
    "operator_namespace",
    "operator_pod_labels",
    "clients",
    "cidrs",
    "port",
    "logical_backup",
)
LOGICAL_BACKUP_KEYS = ("enabled", "cidrs", "except", "ports")
METADATA_NAME_LABEL = "kubernetes.io/metadata.name"

# Names of the components the graph adds by itself; inventories may refer to them in flows.
DNS_COMPONENT = "kube-dns"
SPILO_COMPONENT = "spilo"
POOLER_COMPONENT = "pooler"
OPERATOR_COMPONENT = "postgres-operator"
BACKUP_COMPONENT = "logical-backup"
RESERVED_COMPONENTS = (
    DNS_COMPONENT,
    SPILO_COMPONENT,
    POOLER_COMPONENT,
    OPERATOR_COMPONENT,
    BACKUP_COMPONENT,
)

PATRONI_PORT = 8008
DNS_ORIGIN = "dns"  # origin of the built-in DNS edges

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# module_utils may be imported by Pythons older than the controller's: no runtime `int | str`.
PortNumber = Union[int, str]  # noqa: UP007


class NetworkGraphError(ValueError):
    """The graph is invalid; the message names the offending entry."""


@dataclass(frozen=True)
class Port:
    """One NetworkPolicy port entry: a number, a number range (``end_port``) or a container port name."""

    protocol: str
    port: PortNumber
    end_port: int | None = None

    @property
    def named(self) -> bool:
        return isinstance(self.port, str)

    def sort_key(self) -> tuple[str, int, int, str, int]:
        """Numbers before names, then ascending; gives a total order over mixed int/str ports."""
        if isinstance(self.port, str):
            return (self.protocol, 1, 0, self.port, 0)
        return (self.protocol, 0, self.port, "", self.end_port or self.port)

    def label(self) -> str:
        """Short human form for diagrams: ``TCP/5432``, ``TCP/8000-8010``, ``TCP/http``."""
        value = f"{self.port}-{self.end_port}" if self.end_port else str(self.port)
        return f"{self.protocol}/{value}"


@dataclass(frozen=True)
class Component:
    """A set of pods: one namespace and a non-empty equality selector."""

    name: str
    namespace: str
    pod_labels: tuple[tuple[str, str], ...]
    managed: bool = True
    builtin: bool = False

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.pod_labels)


@dataclass(frozen=True)
class Edge:
    """Traffic from component ``source`` to component ``target`` or to the CIDRs ``cidrs`` minus ``excepts``."""

    source: str
    ports: tuple[Port, ...]
    origin: str
    target: str | None = None
    cidrs: tuple[str, ...] = ()
    excepts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Graph:
    """A validated graph: components by name and every edge, built-in ones included."""

    name_prefix: str
    enabled: bool
    components: Mapping[str, Component]
    edges: tuple[Edge, ...]
    cidr_names: Mapping[str, str] = field(default_factory=dict)

    @property
    def managed_namespaces(self) -> list[str]:
        return sorted({c.namespace for c in self.components.values() if c.managed})


# ---------------------------------------------------------------------------------------------- scalars


def _fail(where: str, message: str) -> NetworkGraphError:
    return NetworkGraphError(f"threetier_network.{where}: {message}")


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(where, f"expected a mapping, got {type(value).__name__} {value!r}")
    return value


def _sequence(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise _fail(where, f"expected a list, got {type(value).__name__} {value!r}")
    return list(value)


def _known_keys(value: Mapping[str, Any], allowed: tuple[str, ...], where: str, hint: str | None = None) -> None:
    """A misspelt key would silently fall back to a default: refuse it.

    ``hint`` replaces the default "expected some of ..." after the key list; an empty hint leaves it out.
    """
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        hint = f"expected some of {', '.join(allowed)}" if hint is None else hint
        raise _fail(where, f"unknown keys {unknown}" + (f"; {hint}" if hint else ""))


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(where, f"expected true or false, got {value!r}")
    return value


def _dns_label(value: Any, where: str, max_length: int = 63) -> str:
    if not isinstance(value, str) or len(value) > max_length or not _DNS_LABEL.match(value):
        raise _fail(
            where,
            f"{value!r} is not a valid name (lowercase letters, digits and '-', at most {max_length} characters)",
        )
    return value


def _label_key(key: Any, where: str) -> str:
    if not isinstance(key, str) or not key:
        raise _fail(where, f"label key {key!r} is not a string")
    prefix, _slash, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not all(_DNS_LABEL.match(part) for part in prefix.split("."))):
        raise _fail(where, f"label key {key!r} has an invalid prefix")
    if len(name) > 63 or not _LABEL_NAME.match(name):
        raise _fail(where, f"label key {key!r} is not a valid label name")
    return key


def _label_value(key: str, value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _fail(where, f"label {key!r} has value {value!r}; label values are strings")
    text = str(value)
    if len(text) > 63 or not _LABEL_VALUE.match(text):
        raise _fail(where, f"label {key}={text!r} is not a valid label value")
    return text


def _labels(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    labels = _mapping(value, where)
    if not labels:
        raise _fail(
            where,
            "has no selector labels; an empty selector would select every pod of the namespace",
        )
    return tuple(sorted((_label_key(k, where), _label_value(k, v, where)) for k, v in labels.items()))


def _protocol(value: Any, where: str) -> str:
    protocol = str(value).upper() if isinstance(value, str) else value
    if protocol not in PROTOCOLS:
        raise _fail(where, f"protocol {value!r} is not one of {', '.join(PROTOCOLS)}")
    return protocol


def _port_number(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise _fail(where, f"port {value!r} is outside 1-65535")
    return value


def _port_value(value: Any, where: str) -> PortNumber:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, str):
        if (
            len(value) > 15
            or not _PORT_NAME.match(value)
            or "--" in value
            or value.isdigit()
            or not re.search("[a-z]", value)
        ):
            raise _fail(
                where,
                f"port name {value!r} is not a valid container port name (IANA service name)",
            )
        return value
    return _port_number(value, where)


def _port(value: Any, default_protocol: str, where: str) -> Port:
    if not isinstance(value, Mapping):
        return Port(default_protocol, _port_value(value, where))
    _known_keys(value, ("port", "end_port", "protocol"), where, "a port has port, end_port and protocol")
    if "port" not in value:
        raise _fail(where, "a port entry needs 'port'")
    protocol = _protocol(value.get("protocol", default_protocol), where)
    port = _port_value(value["port"], where)
    end_port = value.get("end_port")
    if end_port is None:
        return Port(protocol, port)
    if isinstance(port, str):
        raise _fail(where, f"end_port needs a numeric port, not the name {port!r}")
    end = _port_number(end_port, where)
    if end < port:
        raise _fail(where, f"end_port {end} is below port {port}")
    return Port(protocol, port, None if end == port else end)


def _ports(value: Any, default_protocol: str, where: str) -> tuple[Port, ...]:
    entries = _sequence(value, where)
    if not entries:
        raise _fail(where, "lists no ports; every flow names the ports it allows")
    return tuple(_port(entry, default_protocol, f"{where}[{index}]") for index, entry in enumerate(entries))


def _cidr(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(where, f"CIDR {value!r} is not a string")
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise _fail(where, f"invalid CIDR {value!r}: {exc}") from None
    return str(network)


def _cidrs(value: Any, where: str) -> tuple[str, ...]:
    entries = _sequence(value, where)
    if not entries:
        raise _fail(where, "lists no CIDRs")
    return tuple(
        sorted(
            {_cidr(entry, f"{where}[{index}]") for index, entry in enumerate(entries)},
            key=_cidr_key,
        )
    )


def _excepts(value: Any, cidrs: tuple[str, ...], where: str) -> tuple[str, ...]:
    """Holes in the CIDRs; each must lie strictly inside at least one of them (as the API server demands)."""
    excepts = tuple(
        sorted(
            {_cidr(entry, f"{where}[{index}]") for index, entry in enumerate(_sequence(value, where))}, key=_cidr_key
        )
    )
    for index, hole in enumerate(excepts):
        if not excepts_within(cidrs, hole):
            raise _fail(f"{where}[{index}]", f"{hole!r} is not strictly inside any of {', '.join(cidrs)}")
    return excepts


def excepts_within(cidrs: Iterable[str], hole: str) -> list[str]:
    """The CIDRs that strictly contain ``hole``: an except applies to each of them."""
    inner = ipaddress.ip_network(hole)
    result = []
    for cidr in cidrs:
        outer = ipaddress.ip_network(cidr)
        if outer.version == inner.version and inner.subnet_of(outer) and inner.prefixlen > outer.prefixlen:
            result.append(cidr)
    return result


def _cidr_key(cidr: str) -> tuple[int, int, int]:
    network = ipaddress.ip_network(cidr)
    return (network.version, int(network.network_address), network.prefixlen)


# ---------------------------------------------------------------------------------------------- components


def _component(name: str, spec: Any, where: str) -> Component:
    spec = _mapping(spec, where)
    _known_keys(
        spec, ("name", "namespace", "pod_labels", "managed"), where, "a component has namespace, pod_labels and managed"
    )
    if "namespace" not in spec:
        raise _fail(where, "has no namespace")
    return Component(
        name=name,
        namespace=_dns_label(spec["namespace"], f"{where}.namespace"),
        pod_labels=_labels(spec.get("pod_labels"), f"{where}.pod_labels"),
        managed=_bool(spec.get("managed", True), f"{where}.managed"),
    )


def _component_entries(value: Any) -> list[tuple[str, Any, str]]:
    """(name, spec, where) for the mapping form and for the list form (which can carry duplicates)."""
    if isinstance(value, Mapping):
        return [(name, spec, f"components.{name}") for name, spec in value.items()]
    entries = []
    for index, spec in enumerate(_sequence(value, "components")):
        where = f"components[{index}]"
        name = _mapping(spec, where).get("name")
        entries.append((name, spec, f"{where} ({name})"))
    return entries


def _user_components(value: Any, name_prefix: str) -> dict[str, Component]:
    components: dict[str, Component] = {}
    for name, spec, where in _component_entries(value):
        _dns_label(name, where, max_length=63 - len(name_prefix) - 1)
        if name in RESERVED_COMPONENTS:
            raise _fail(
                where,
                f"duplicate component name {name!r}: it is built in ({', '.join(RESERVED_COMPONENTS)})",
            )
        if name in components:
            raise _fail(where, f"duplicate component name {name!r}")
        components[name] = _component(name, spec, where)
    return components


def _check_disjoint(components: Mapping[str, Component]) -> None:
    """Refuse a selector that is a subset of another one in the same namespace.

    Every pod of the wider component would then be selected as the narrower one too: two policies would
    apply to it and every peer rule naming the narrower component would admit it. Selectors that merely could
    overlap (no common key) are accepted, since the pods of the two components carry different labels.
    """
    ordered = sorted(components.values(), key=lambda c: (c.namespace, len(c.pod_labels), c.name))
    for index, narrow in enumerate(ordered):
        for wide in ordered[index + 1 :]:
            if wide.namespace == narrow.namespace and set(narrow.pod_labels) <= set(wide.pod_labels):
                raise _fail(
                    f"components.{wide.name}",
                    f"the pod_labels of {narrow.name!r} are a subset of its own in namespace {wide.namespace!r}, so"
                    f" every {wide.name!r} pod would also be selected as {narrow.name!r};"
                    " add a label that tells them apart",
                )


def _check_unmanaged_namespaces(components: Mapping[str, Component]) -> None:
    managed = {c.namespace for c in components.values() if c.managed}
    for component in sorted(components.values(), key=lambda c: c.name):
        if not component.managed and component.namespace in managed:
            raise _fail(
                f"components.{component.name}",
                f"is managed: false but namespace {component.namespace!r} holds managed components and gets a"
                " default-deny policy, which would cut this component off; make it managed",
            )


# ---------------------------------------------------------------------------------------------- graph


@dataclass
class _Builder:
    """Mutable state while the graph is read; :meth:`graph` freezes it."""

    name_prefix: str
    enabled: bool
    components: dict[str, Component]
    edges: list[Edge] = field(default_factory=list)
    cidr_names: dict[str, str] = field(default_factory=dict)

    def known(self, name: Any, where: str) -> Component:
        if not isinstance(name, str) or name not in self.components:
            known = ", ".join(sorted(self.components))
            raise _fail(where, f"unknown component {name!r} (known: {known})")
        return self.components[name]

    def add(self, edge: Edge) -> None:
        self.edges.append(edge)

    def graph(self) -> Graph:
        return Graph(
            self.name_prefix,
            self.enabled,
            dict(self.components),
            tuple(self.edges),
            dict(self.cidr_names),
        )


def _check_enforced(builder: _Builder, source: Component, target: Component | None, where: str) -> None:
    if source.managed or (target is not None and target.managed):
        return
    target_name = f" nor {target.name!r}" if target is not None else ""
    raise _fail(
        where,
        f"neither {source.name!r}{target_name} is managed, so no policy would enforce this flow",
    )


def _check_cidr_ports(ports: tuple[Port, ...], where: str) -> None:
    for port in ports:
        if port.named:
            raise _fail(
                where,
                f"named port {port.port!r} cannot match a CIDR destination; use a number",
            )


def _read_flows(builder: _Builder, value: Any) -> None:
    for index, flow in enumerate(_sequence(value, "flows")):
        where = f"flows[{index}]"
        flow = _mapping(flow, where)
        where = f"flows[{index}] ({flow.get('from')} -> {flow.get('to')})"
        _known_keys(
            flow,
            ("from", "to", "ports", "protocol", "description"),
            where,
            "a flow has from, to, ports, protocol and description",
        )
        source = builder.known(flow.get("from"), f"{where}.from")
        target = builder.known(flow.get("to"), f"{where}.to")
        _check_enforced(builder, source, target, where)
        protocol = _protocol(flow.get("protocol", "TCP"), where)
        ports = _ports(flow.get("ports"), protocol, f"{where}.ports")
        builder.add(Edge(source.name, ports, where, target=target.name))


def _read_egress(builder: _Builder, value: Any) -> None:
    for index, entry in enumerate(_sequence(value, "egress")):
        where = f"egress[{index}]"
        entry = _mapping(entry, where)
        where = f"egress[{index}] ({entry.get('from')} -> CIDRs)"
        _known_keys(
            entry,
            ("from", "cidrs", "except", "ports", "protocol", "description", "name"),
            where,
            "an egress entry has from, cidrs, except, ports, protocol, name and description",
        )
        source = builder.known(entry.get("from"), f"{where}.from")
        _check_enforced(builder, source, None, where)
        protocol = _protocol(entry.get("protocol", "TCP"), where)
        ports = _ports(entry.get("ports"), protocol, f"{where}.ports")
        _check_cidr_ports(ports, f"{where}.ports")
        cidrs = _cidrs(entry.get("cidrs"), f"{where}.cidrs")
        if "name" in entry:
            _remember_cidr_name(builder, cidrs, _dns_label(entry["name"], f"{where}.name"))
        excepts = _excepts(entry.get("except"), cidrs, f"{where}.except")
        builder.add(Edge(source.name, ports, where, cidrs=cidrs, excepts=excepts))


def _remember_cidr_name(builder: _Builder, cidrs: tuple[str, ...], name: str) -> None:
    builder.cidr_names[",".join(cidrs)] = name


def _api_server(builder: _Builder, network: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[Port, ...]]:
    spec = _mapping(network.get("api_server"), "api_server")
    _known_keys(spec, ("cidrs", "ports"), "api_server")
    if not spec:
        raise _fail(
            "api_server",
            "is required in database mode 'operator': Patroni keeps its leader lock in the API server",
        )
    cidrs = _cidrs(spec.get("cidrs"), "api_server.cidrs")
    ports = _ports(spec.get("ports", [443, 6443]), "TCP", "api_server.ports")
    _check_cidr_ports(ports, "api_server.ports")
    _remember_cidr_name(builder, cidrs, "api-server")
    return cidrs, ports


def _database_clients(builder: _Builder, database: Mapping[str, Any]) -> list[Component]:
    clients = [
        builder.known(name, f"database.clients[{index}]")
        for index, name in enumerate(_sequence(database.get("clients"), "database.clients"))
    ]
    for index, client in enumerate(clients):
        if not client.managed:
            raise _fail(
                f"database.clients[{index}]",
                f"client {client.name!r} is managed: false; its egress would not be enforced",
            )
    return clients


def _operator_mode(
    builder: _Builder,
    network: Mapping[str, Any],
    database: Mapping[str, Any],
    port: int,
) -> None:
    """Spilo and pooler pods of the Zalando operator, and the traffic Patroni and the operator need."""
    namespace = _dns_label(database.get("namespace"), "database.namespace")
    cluster = _dns_label(database.get("cluster_name"), "database.cluster_name")
    builder.components[SPILO_COMPONENT] = Component(
        SPILO_COMPONENT,
        namespace,
        (("application", "spilo"), ("cluster-name", cluster)),
        builtin=True,
    )
    pooler = _bool(database.get("pooler", True), "database.pooler")
    if pooler:
        builder.components[POOLER_COMPONENT] = Component(
            POOLER_COMPONENT,
            namespace,
            (
                ("application", "db-connection-pooler"),
                ("connection-pooler", f"{cluster}-pooler"),
            ),
            builtin=True,
        )
    operator_namespace = database.get("operator_namespace")
    if operator_namespace:
        operator_namespace = _dns_label(operator_namespace, "database.operator_namespace")
        # In a namespace of its own the operator is a peer; next to managed pods it gets a policy, since
        # the namespace's default-deny would otherwise cut it off from the API server.
        operator_managed = operator_namespace in {c.namespace for c in builder.components.values() if c.managed}
        builder.components[OPERATOR_COMPONENT] = Component(
            OPERATOR_COMPONENT,
            operator_namespace,
            _labels(
                database.get(
                    "operator_pod_labels",
                    {"app.kubernetes.io/name": "postgres-operator"},
                ),
                "database.operator_pod_labels",
            ),
            managed=operator_managed,
            builtin=True,
        )
    clients = _database_clients(builder, database)
    cidrs, api_ports = _api_server(builder, network)
    postgres = Port("TCP", port)
    patroni = Port("TCP", PATRONI_PORT)
    builder.add(
        Edge(
            SPILO_COMPONENT,
            (postgres, patroni),
            "database: Spilo replication and Patroni",
            target=SPILO_COMPONENT,
        )
    )
    builder.add(
        Edge(
            SPILO_COMPONENT,
            api_ports,
            "database: Patroni leader lock in the API server",
            cidrs=cidrs,
        )
    )
    if pooler:
        builder.add(
            Edge(
                POOLER_COMPONENT,
                (postgres,),
                "database: pooler to Spilo",
                target=SPILO_COMPONENT,
            )
        )
    if operator_namespace:
        builder.add(
            Edge(
                OPERATOR_COMPONENT,
                (postgres, patroni),
                "database: operator to Spilo (roles over SQL, Patroni API)",
                target=SPILO_COMPONENT,
            )
        )
        if builder.components[OPERATOR_COMPONENT].managed:
            builder.add(
                Edge(
                    OPERATOR_COMPONENT,
                    api_ports,
                    "database: operator to the API server",
                    cidrs=cidrs,
                )
            )
    # With the pooler the clients reach the pooler only: every application connection is pooled and counted
    # there, and nothing in the app namespace can open sessions on Spilo directly.
    for client in clients:
        builder.add(
            Edge(
                client.name,
                (postgres,),
                f"database.clients ({client.name})",
                target=POOLER_COMPONENT if pooler else SPILO_COMPONENT,
            )
        )
    _logical_backup(builder, database, namespace, cluster, postgres, (cidrs, api_ports))


def _logical_backup(
    builder: _Builder,
    database: Mapping[str, Any],
    namespace: str,
    cluster: str,
    postgres: Port,
    api_server: tuple[tuple[str, ...], tuple[Port, ...]],
) -> None:
    """The operator's logical backup pods: pg_dumpall from Spilo, the API server (dump.sh looks its target pod
    up there), and the object store the dumps go to."""
    spec = _mapping(database.get("logical_backup"), "database.logical_backup")
    _known_keys(spec, LOGICAL_BACKUP_KEYS, "database.logical_backup")
    if not _bool(spec.get("enabled", False), "database.logical_backup.enabled"):
        return
    where = "database.logical_backup"
    if not spec.get("cidrs"):
        raise _fail(
            f"{where}.cidrs",
            "is empty while logical backups are enabled: list the CIDRs of the S3 endpoint the dumps go to"
            " (for AWS, the region's S3 prefix list)",
        )
    cidrs = _cidrs(spec["cidrs"], f"{where}.cidrs")
    excepts = _excepts(spec.get("except"), cidrs, f"{where}.except")
    ports = _ports(spec.get("ports", [443]), "TCP", f"{where}.ports")
    _check_cidr_ports(ports, f"{where}.ports")
    _remember_cidr_name(builder, cidrs, "backup-store")
    builder.components[BACKUP_COMPONENT] = Component(
        BACKUP_COMPONENT,
        namespace,
        (("application", "spilo-logical-backup"), ("cluster-name", cluster)),
        builtin=True,
    )
    api_cidrs, api_ports = api_server
    builder.add(Edge(BACKUP_COMPONENT, (postgres,), "database: logical backup from Spilo", target=SPILO_COMPONENT))
    builder.add(Edge(BACKUP_COMPONENT, api_ports, "database: logical backup finds its pod", cidrs=api_cidrs))
    builder.add(
        Edge(BACKUP_COMPONENT, ports, "database: logical backup to the object store", cidrs=cidrs, excepts=excepts)
    )


def _external_mode(builder: _Builder, database: Mapping[str, Any], mode: str, port: int) -> None:
    clients = _database_clients(builder, database)
    cidrs = _cidrs(database.get("cidrs"), "database.cidrs")
    _remember_cidr_name(builder, cidrs, f"database-{mode}")
    for client in clients:
        builder.add(
            Edge(
                client.name,
                (Port("TCP", port),),
                f"database.clients ({client.name})",
                cidrs=cidrs,
            )
        )


def _read_database(builder: _Builder, network: Mapping[str, Any]) -> None:
    database = _mapping(network.get("database"), "database")
    _known_keys(database, DATABASE_KEYS, "database")
    if not database or database.get("mode") in (None, "none"):
        return
    mode = database["mode"]
    if mode not in DATABASE_MODES:
        raise _fail(
            "database.mode",
            f"{mode!r} is not one of {', '.join(DATABASE_MODES)} (or none)",
        )
    port = _port_number(database.get("port", 5432), "database.port")
    if mode == "operator":
        _operator_mode(builder, network, database, port)
    else:
        _external_mode(builder, database, mode, port)


@dataclass(frozen=True)
class _Dns:
    ports: tuple[Port, ...]
    cidrs: tuple[str, ...]


def _add_dns_component(builder: _Builder, network: Mapping[str, Any]) -> _Dns | None:
    """The DNS pods as a peer, before the flows are read (so flows may name ``kube-dns``); None when disabled."""
    dns = _mapping(network.get("dns"), "dns")
    _known_keys(dns, ("enabled", "namespace", "pod_labels", "port", "cidrs"), "dns")
    if not _bool(dns.get("enabled", True), "dns.enabled"):
        return None
    builder.components[DNS_COMPONENT] = Component(
        DNS_COMPONENT,
        _dns_label(dns.get("namespace", "kube-system"), "dns.namespace"),
        _labels(dns.get("pod_labels", {"k8s-app": "kube-dns"}), "dns.pod_labels"),
        managed=False,
        builtin=True,
    )
    port = _port_number(dns.get("port", 53), "dns.port")
    # A node-local DNS cache (169.254.20.10 and the like) is reached by address, not through the DNS pods.
    cidrs = _cidrs(dns["cidrs"], "dns.cidrs") if dns.get("cidrs") else ()
    if cidrs:
        _remember_cidr_name(builder, cidrs, "node-local-dns")
    return _Dns((Port("UDP", port), Port("TCP", port)), cidrs)


def _add_dns_edges(builder: _Builder, dns: _Dns | None) -> None:
    """DNS egress for every managed component that sends anything, since it resolves names first."""
    if dns is None:
        return
    senders = sorted({edge.source for edge in builder.edges if builder.components[edge.source].managed})
    for name in senders:
        builder.add(Edge(name, dns.ports, DNS_ORIGIN, target=DNS_COMPONENT))
        if dns.cidrs:
            builder.add(Edge(name, dns.ports, DNS_ORIGIN, cidrs=dns.cidrs))


def parse_graph(network: Any) -> Graph:
    """Validate ``threetier_network`` and return it with every built-in edge added."""
    network = _mapping(network, "(root)")
    known_keys = {
        "name_prefix",
        "enabled",
        "dns",
        "api_server",
        "database",
        "components",
        "flows",
        "egress",
    }
    _known_keys(network, tuple(known_keys), "(root)", hint="")
    name_prefix = _dns_label(network.get("name_prefix", "threetier"), "name_prefix", max_length=40)
    enabled = _bool(network.get("enabled", True), "enabled")
    if enabled and not _sequence(network.get("flows"), "flows"):
        raise _fail(
            "flows",
            "is empty while policies are enabled: with default-deny every component would be cut off",
        )
    builder = _Builder(name_prefix, enabled, _user_components(network.get("components"), name_prefix))
    if not builder.components:
        raise _fail("components", "declares no components")
    dns = _add_dns_component(builder, network)
    _read_database(builder, network)
    _read_flows(builder, network.get("flows"))
    _read_egress(builder, network.get("egress"))
    _add_dns_edges(builder, dns)
    _check_disjoint(builder.components)
    _check_unmanaged_namespaces(builder.components)
    return builder.graph()


def sorted_ports(ports: Iterable[Port]) -> list[Port]:
    """Deduplicated ports in their canonical order."""
    return sorted(set(ports), key=Port.sort_key)


def cidr_sort_key(cidr: str) -> tuple[int, int, int]:
    """IPv4 before IPv6, then by address and prefix length."""
    return _cidr_key(cidr)


def validate_name(value: Any, where: str, max_length: int = 63) -> str:
    """A namespace or prefix: a lowercase DNS label, else :class:`NetworkGraphError` naming ``where``."""
    return _dns_label(value, where, max_length)
