"""The e2e node's generated configuration and PKI (tests/harness/real_node: node.py, pki.py), without root.

`make e2e` runs the node itself; these tests pin the settings the node depends on on this kind of host (cgroup
v1, no CAP_SYS_RESOURCE, no IPVS) and the rule that nothing listens beyond loopback and the node's address.
"""

from __future__ import annotations

import ipaddress
import json
import tomllib
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.harness.real_node import node as e2e_node


@pytest.fixture
def cfg(tmp_path: Path) -> e2e_node.Config:
    config = e2e_node.Config(state=tmp_path / "cluster", e2e=tmp_path, bin=tmp_path / "bin")
    config.state.mkdir()  # `up` creates it before writing any file
    return config


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_pki_names_and_chains(cfg: e2e_node.Config) -> None:
    e2e_node.node_pki(cfg)
    ca = _cert(cfg.pki / "ca.crt")
    api = _cert(cfg.pki / "apiserver.crt")
    sans = api.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    # Pods reach the API through the kubernetes Service IP, kube-router and kubectl through the node address.
    assert {cfg.node_ip, cfg.api_service_ip} <= ips
    assert "kubernetes.default.svc.cluster.local" in sans.get_values_for_type(x509.DNSName)
    api.verify_directly_issued_by(ca)
    kubelet = _cert(cfg.pki / "kubelet.crt")
    assert kubelet.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == f"system:node:{cfg.node_name}"
    assert kubelet.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:nodes"
    # The kubelet's serving certificate is signed by the cluster CA: metrics-server verifies it.
    serving = _cert(cfg.pki / "kubelet-serving.crt")
    serving.verify_directly_issued_by(ca)
    usage = serving.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    _cert(cfg.pki / "front-proxy-client.crt").verify_directly_issued_by(_cert(cfg.pki / "front-proxy-ca.crt"))
    assert oct((cfg.pki / "ca.key").stat().st_mode & 0o777) == "0o600"
    # Only the CAs may sign certificates.
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert not serving.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign


def test_pki_is_created_once(cfg: e2e_node.Config) -> None:
    e2e_node.node_pki(cfg)
    before = {p.name: p.read_bytes() for p in cfg.pki.iterdir()}
    e2e_node.node_pki(cfg)
    assert before == {p.name: p.read_bytes() for p in cfg.pki.iterdir()}


def test_containerd_config(cfg: e2e_node.Config) -> None:
    doc = tomllib.loads(e2e_node.containerd_config(cfg, "localhost/threetier-e2e/pause:3.10.2").read_text())
    cri = doc["plugins"]["io.containerd.grpc.v1.cri"]
    # root lacks CAP_SYS_RESOURCE here: without this every sandbox fails to start.
    assert cri["restrict_oom_score_adj"] is True
    assert cri["sandbox_image"] == "localhost/threetier-e2e/pause:3.10.2"
    assert cri["stream_server_address"] == "127.0.0.1"
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    assert doc["root"].startswith(str(cfg.state)) and doc["state"].startswith(str(cfg.state))


def test_kubelet_config(cfg: e2e_node.Config) -> None:
    doc = yaml.safe_load(e2e_node.kubelet_config(cfg).read_text())
    assert doc["cgroupDriver"] == "cgroupfs"
    assert doc["failCgroupV1"] is False
    assert doc["address"] == cfg.node_ip and doc["healthzBindAddress"] == "127.0.0.1"
    assert doc["readOnlyPort"] == 0
    assert doc["authentication"]["anonymous"]["enabled"] is False
    assert doc["authorization"]["mode"] == "Webhook"
    assert doc["clusterDNS"] == [cfg.dns_ip]


def test_kube_proxy_config(cfg: e2e_node.Config) -> None:
    doc = yaml.safe_load(e2e_node.kube_proxy_config(cfg).read_text())
    assert doc["mode"] == "iptables"
    assert doc["nodePortAddresses"] == ["127.0.0.1/32"]
    assert doc["healthzBindAddress"].startswith("127.0.0.1:") and doc["metricsBindAddress"].startswith("127.0.0.1:")


def test_cni_config(cfg: e2e_node.Config) -> None:
    e2e_node.cni_config(cfg)
    (conf,) = (cfg.state / "cni" / "net.d").iterdir()
    bridge = json.loads(conf.read_text())["plugins"][0]
    assert bridge["bridge"] == cfg.cni_bridge and bridge["ipMasq"] is False and bridge["hairpinMode"] is True
    subnet = ipaddress.ip_network(bridge["ipam"]["ranges"][0][0]["subnet"])
    assert subnet.subnet_of(ipaddress.ip_network(cfg.pod_cidr))
    assert bridge["ipam"]["dataDir"].startswith(str(cfg.state))


def test_control_plane_binds_loopback_or_the_node_address(cfg: e2e_node.Config, tmp_path: Path) -> None:
    cfg.bin.mkdir()
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"):
        (cfg.bin / name).write_text("#!/bin/sh\n")
        (cfg.bin / name).chmod(0o755)
    cmds = e2e_node.commands(cfg)
    flags = [arg for cmd in cmds.values() for arg in cmd if "address=" in arg or "-urls=" in arg]
    assert flags
    for flag in flags:
        value = flag.split("=", 1)[1]
        hosts = [part.split("//")[-1].rsplit(":", 1)[0] for part in value.split(",") if part]
        assert all(host in ("127.0.0.1", cfg.node_ip) for host in hosts), flag


def test_addons_render_every_placeholder(cfg: e2e_node.Config) -> None:
    e2e_node.node_pki(cfg)
    values = e2e_node.addon_values(cfg)
    assert all(values.values()), values
    import string

    for name in e2e_node.ADDON_ORDER:
        text = string.Template((e2e_node.ADDONS / name).read_text()).substitute(values)
        docs = [d for d in yaml.safe_load_all(text) if d]
        assert docs, name
        for doc in docs:
            for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                assert container["image"].startswith(e2e_node.IMAGE_PREFIX + "/"), (name, container["image"])
                assert container.get("imagePullPolicy") == "IfNotPresent", (name, container["name"])


def test_local_storage_is_default_node_bound_and_kept(cfg: e2e_node.Config) -> None:
    """The operator's volume claims name no StorageClass: the default one binds them to this node's
    directories, only once the pod is scheduled, and never deletes data behind a released claim."""
    docs = e2e_node.local_storage_manifests(cfg)
    classes = [d for d in docs if d["kind"] == "StorageClass"]
    volumes = [d for d in docs if d["kind"] == "PersistentVolume"]
    assert len(classes) == 1
    storage_class = classes[0]
    assert storage_class["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert storage_class["volumeBindingMode"] == "WaitForFirstConsumer"
    # Two for the cluster, two for a recreated one (the backup proof), spares.
    assert len(volumes) >= 4
    for volume in volumes:
        spec = volume["spec"]
        assert spec["storageClassName"] == storage_class["metadata"]["name"]
        assert spec["persistentVolumeReclaimPolicy"] == "Retain"
        assert Path(spec["local"]["path"]).is_relative_to(cfg.state)
        term = spec["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
        assert term == {"key": "kubernetes.io/hostname", "operator": "In", "values": [cfg.node_name]}
    assert len({v["spec"]["local"]["path"] for v in volumes}) == len(volumes)


def test_host_differences_name_what_down_left_behind() -> None:
    """The cleanliness check of `down` reports every kind of leftover, and nothing when the host is as before."""
    from tests.harness.real_node import host as e2e_host

    before = {
        "links": ["eth0", "lo"],
        "iptables": {"filter": {"chains": ["DOCKER"], "builtin_rules": ["-A INPUT -j ACCEPT"]}},
        "ipsets": [],
        "sysctls": {"net/ipv4/ip_forward": "0"},
        "processes": [],
    }
    assert e2e_host.differences(before, before) == []
    after = {
        "links": ["eth0", "lo", "tt-cni0"],
        "iptables": {"filter": {"chains": ["DOCKER", "KUBE-FIREWALL"], "builtin_rules": ["-A INPUT -j ACCEPT"]}},
        "ipsets": ["KUBE-DST-ABC"],
        "sysctls": {"net/ipv4/ip_forward": "1"},
        "processes": ["/usr/bin/containerd --config /x/state/containerd/config.toml"],
    }
    found = "\n".join(e2e_host.differences(before, after))
    for leftover in ("tt-cni0", "KUBE-FIREWALL", "KUBE-DST-ABC", "ip_forward", "containerd"):
        assert leftover in found, found
    assert "gone since before up" in "\n".join(e2e_host.differences(after, before))


def test_host_snapshot_covers_what_the_node_touches(tmp_path: Path) -> None:
    from tests.harness.real_node import host as e2e_host

    snap = e2e_host.snapshot(tmp_path)
    assert {"links", "iptables", "ip6tables", "ipsets", "sysctls", "mounts_under_state", "netns",
            "kubepods_cgroups", "processes"} <= set(snap)  # fmt: skip
    assert "lo" in snap["links"]
    assert snap["processes"] == []
