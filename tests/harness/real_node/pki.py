"""The e2e node's certificates: one cluster CA, one front-proxy CA (API aggregation) and the leaf certificates
of the control plane, the kubelet and kube-proxy, plus the service-account signing key.

Everything is created once and kept: a second ``up`` reuses the files, so kubeconfigs handed out earlier stay
valid. The keys never leave the state directory (mode 0600).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class Leaf:
    """One certificate to issue: who it names and what it may be used for."""

    name: str
    common_name: str
    organizations: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    server: bool = False
    client: bool = True
    ca: str = "ca"


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.touch(mode=0o600, exist_ok=True)
    path.write_bytes(data)


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC private key")
    return key


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _now() -> datetime.datetime:
    # Backdated a little: a freshly issued certificate must already be valid for a component whose clock
    # read a moment earlier.
    return datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """Signatures for every certificate; certificate and CRL signing only for a CA."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def ensure_ca(pki: Path, name: str, common_name: str) -> None:
    crt, key_path = pki / f"{name}.crt", pki / f"{name}.key"
    if crt.exists() and key_path.exists():
        return
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now())
        .not_valid_after(_now() + 10 * VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def ensure_leaf(pki: Path, leaf: Leaf) -> None:
    crt, key_path = pki / f"{leaf.name}.crt", pki / f"{leaf.name}.key"
    if crt.exists() and key_path.exists():
        return
    ca_cert = x509.load_pem_x509_certificate((pki / f"{leaf.ca}.crt").read_bytes())
    ca_key = _load_key(pki / f"{leaf.ca}.key")
    key = ec.generate_private_key(ec.SECP256R1())
    usages = []
    if leaf.server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if leaf.client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(leaf.common_name, leaf.organizations))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now())
        .not_valid_after(_now() + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in leaf.dns]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in leaf.ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_key(key_path, key)
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def ensure_service_account_key(pki: Path) -> None:
    key_path, pub = pki / "sa.key", pki / "sa.pub"
    if key_path.exists() and pub.exists():
        return
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(key_path, key)
    pub.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def ensure_pki(pki: Path, *, node_name: str, node_ip: str, api_service_ip: str, cluster_domain: str) -> None:
    """Create whatever of the node's PKI is missing."""
    pki.mkdir(parents=True, exist_ok=True)
    pki.chmod(0o700)
    ensure_ca(pki, "ca", "threetier-e2e-ca")
    ensure_ca(pki, "front-proxy-ca", "threetier-e2e-front-proxy-ca")
    api_names = (
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{cluster_domain}",
        "localhost",
    )
    leaves = (
        Leaf(
            "apiserver",
            "kube-apiserver",
            dns=api_names,
            ips=(node_ip, api_service_ip, "127.0.0.1"),
            server=True,
            client=False,
        ),
        # The API server's identity towards kubelets (logs, exec, port-forward); RBAC grants it kubelet-api-admin.
        Leaf("apiserver-kubelet-client", "kube-apiserver-kubelet-client"),
        Leaf("front-proxy-client", "front-proxy-client", ca="front-proxy-ca"),
        Leaf("admin", "threetier-e2e-admin", organizations=("system:masters",)),
        Leaf("controller-manager", "system:kube-controller-manager"),
        Leaf("scheduler", "system:kube-scheduler"),
        Leaf("kube-proxy", "system:kube-proxy"),
        Leaf("kubelet", f"system:node:{node_name}", organizations=("system:nodes",)),
        # Signed by the cluster CA so metrics-server and the API server verify the kubelet (no insecure TLS).
        Leaf(
            "kubelet-serving", f"system:node:{node_name}", dns=(node_name,), ips=(node_ip,), server=True, client=False
        ),
    )
    for leaf in leaves:
        ensure_leaf(pki, leaf)
    ensure_service_account_key(pki)
