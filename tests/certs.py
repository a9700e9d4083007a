"""Test PKI made with ``cryptography``: a CA, a server certificate for
127.0.0.1/localhost/::1 and a client certificate, plus an unrelated CA for
"wrong CA" tests. Shared by collector and agent TLS tests."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_cert: Path        # a CA that signed nothing here: "wrong CA"
    other_client_cert: Path    # a client certificate signed by other_ca
    other_client_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: str, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2)))


def _ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    cert = (_builder(common_name, _name(common_name), key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def _leaf(common_name: str, ca: x509.Certificate, ca_key, usage, sans=None):
    key = _key()
    builder = (_builder(common_name, ca.subject, key.public_key())
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _write(path: Path, cert: x509.Certificate | None = None, key=None) -> Path:
    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        path.chmod(0o600)
    return path


def make_pki(directory: Path) -> Pki:
    """Write a fresh PKI into ``directory`` and return the file paths."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _ca("Worklens Test CA")
    other, other_key = _ca("Some Other CA")
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1"))]
    server, server_key = _leaf("localhost", ca, ca_key, ExtendedKeyUsageOID.SERVER_AUTH, sans)
    client, client_key = _leaf("agent", ca, ca_key, ExtendedKeyUsageOID.CLIENT_AUTH)
    stranger, stranger_key = _leaf("stranger", other, other_key,
                                   ExtendedKeyUsageOID.CLIENT_AUTH)
    d = directory
    return Pki(
        ca_cert=_write(d / "ca.pem", ca),
        server_cert=_write(d / "server.pem", server),
        server_key=_write(d / "server.key", key=server_key),
        client_cert=_write(d / "client.pem", client),
        client_key=_write(d / "client.key", key=client_key),
        other_ca_cert=_write(d / "other-ca.pem", other),
        other_client_cert=_write(d / "other-client.pem", stranger),
        other_client_key=_write(d / "other-client.key", key=stranger_key),
    )
