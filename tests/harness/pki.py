"""Throw-away PKI for the test control plane: a CA with the API server's and virt-api's serving
certificates, a front-proxy CA with the client certificate kube-apiserver presents to aggregated
APIs, and a service-account key."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK_SANS = (
    x509.DNSName("localhost"),
    x509.DNSName("kubernetes.default.svc"),
    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
)
FRONT_PROXY_CLIENT = "front-proxy-client"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return builder.not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(
        now + dt.timedelta(days=7)
    )


def _ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    return _validity(builder).sign(key, hashes.SHA256()), key


def _leaf(ca: x509.Certificate, ca_key, common_name: str, client: bool = False):
    """A serving certificate for loopback, or (`client`) a client certificate named `common_name`."""
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if not client:
        builder = builder.add_extension(x509.SubjectAlternativeName(LOOPBACK_SANS), critical=False)
    return _validity(builder).sign(ca_key, hashes.SHA256()), key


def write_pki(directory: Path) -> dict[str, Path]:
    """Write the files; the keys of the answer name them (ca, cert/key for kube-apiserver,
    virt_api_cert/key, front_proxy_ca(_key), front_proxy_cert/key, sa_key/sa_pub)."""
    pem = serialization.Encoding.PEM
    ca, ca_key = _ca("migration-guard-test-ca")
    front_ca, front_ca_key = _ca("migration-guard-test-front-proxy-ca")
    files: dict[str, Path] = {}

    def write(name: str, filename: str, data: bytes) -> None:
        files[name] = directory / filename
        files[name].write_bytes(data)

    write("ca", "ca.crt", ca.public_bytes(pem))
    write("front_proxy_ca", "front-proxy-ca.crt", front_ca.public_bytes(pem))
    write("front_proxy_ca_key", "front-proxy-ca.key", _pem_key(front_ca_key))
    for prefix, issuer, common_name, client in (
        ("", (ca, ca_key), "kube-apiserver", False),
        ("virt_api_", (ca, ca_key), "virt-api", False),
        ("front_proxy_", (front_ca, front_ca_key), FRONT_PROXY_CLIENT, True),
    ):
        cert, key = _leaf(*issuer, common_name, client=client)
        stem = prefix.rstrip("_").replace("_", "-") or "apiserver"
        write(f"{prefix}cert", f"{stem}.crt", cert.public_bytes(pem))
        write(f"{prefix}key", f"{stem}.key", _pem_key(key))
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    write("sa_key", "sa.key", _pem_key(sa_key))
    write(
        "sa_pub",
        "sa.pub",
        sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo),
    )
    return files


def new_ca(directory: Path, common_name: str) -> tuple[Path, Path]:
    """A CA of its own (certificate, key files): for tests of certificates it must not accept."""
    cert, key = _ca(common_name)
    return _write_pair(directory, common_name, cert, key)


def client_cert(directory: Path, ca: Path, ca_key: Path, common_name: str) -> tuple[Path, Path]:
    """A client certificate named `common_name` signed by the CA in files `ca`, `ca_key`."""
    issuer = x509.load_pem_x509_certificate(ca.read_bytes())
    issuer_key = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    cert, key = _leaf(issuer, issuer_key, common_name, client=True)
    return _write_pair(directory, f"{common_name}-client", cert, key)


def _write_pair(directory: Path, stem: str, cert: x509.Certificate, key) -> tuple[Path, Path]:
    cert_file, key_file = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(_pem_key(key))
    return cert_file, key_file
