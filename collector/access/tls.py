"""TLS for both listeners, and the rule that plain text is for loopback only.

gRPC: ``[grpc] tls_cert`` + ``tls_key`` turn on server TLS; ``client_ca`` on
top requires every client to present a certificate signed by that CA
(mutual TLS). HTTP: ``[http] tls_cert`` + ``tls_key`` (handed to uvicorn).
Without TLS a listener may only bind a loopback address unless its section
says ``insecure = true``: credentials and activity data must not cross a
network in the clear by accident.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
from worklens.common.addresses import is_loopback
from worklens.common.cli import UserError


def split_host_port(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def _read(section: str, key: str, path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"[{section}] {key}: cannot read {path}: {exc.strerror}") from None
    if b"-----BEGIN" not in data:
        raise UserError(f"[{section}] {key}: {path} is not a PEM file")
    return data


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None = None


def tls_files(section_name: str, section: object) -> TlsFiles | None:
    """The TLS files a [grpc]/[http] section asks for, checked for consistency."""
    cert, key = getattr(section, "tls_cert", None), getattr(section, "tls_key", None)
    client_ca = getattr(section, "client_ca", None)
    if (cert is None) != (key is None):
        raise UserError(f"[{section_name}] tls_cert and tls_key must be set together")
    if cert is None:
        if client_ca is not None:
            raise UserError(f"[{section_name}] client_ca needs tls_cert and tls_key too")
        return None
    for k, path in (("tls_cert", cert), ("tls_key", key), ("client_ca", client_ca)):
        if path is not None:
            _read(section_name, k, path)
    return TlsFiles(cert, key, client_ca)


def check_plaintext(section_name: str, listen: str, insecure: bool) -> None:
    host, _ = split_host_port(listen)
    if not insecure and not is_loopback(host):
        raise UserError(f"refusing plain-text {section_name} on {listen}, which is not a "
                        f"loopback address: set [{section_name}] tls_cert and tls_key, or "
                        f"[{section_name}] insecure = true to allow it")


def grpc_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    cert = _read("grpc", "tls_cert", files.cert)
    key = _read("grpc", "tls_key", files.key)
    ca = _read("grpc", "client_ca", files.client_ca) if files.client_ca else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca,
                                       require_client_auth=ca is not None)
