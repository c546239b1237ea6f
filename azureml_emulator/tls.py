"""The emulator's certificates: a CA of its own (made at first start) and a server certificate for 127.0.0.1.

azure-core refuses bearer tokens over plain HTTP, so the emulator speaks HTTPS. Clients trust it
through `REQUESTS_CA_BUNDLE` = `ca-bundle.pem`: certifi's bundle followed by the emulator's CA
(requests and azure-core read that variable; `SSL_CERT_FILE` is not enough for them).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CA_FILE = "ca.pem"
BUNDLE_FILE = "ca-bundle.pem"
CERT_FILE = "server.pem"
KEY_FILE = "server-key.pem"


def ensure_certificates(folder: Path) -> Path:
    """Create the CA, the server certificate and the client bundle under `folder` unless present; return the bundle."""
    folder.mkdir(parents=True, exist_ok=True)
    bundle = folder / BUNDLE_FILE
    if all((folder / name).is_file() for name in (CA_FILE, CERT_FILE, KEY_FILE, BUNDLE_FILE)):
        return bundle
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    # A name of its own per CA, and key identifiers: a client bundle holding the CAs of two emulators (two
    # workspaces' homes, or a home whose emulator was made again) picks the one that signed the server's
    # certificate. Under one shared name, OpenSSL took the first CA of that name and failed the handshake
    # with "certificate signature failure".
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"mlops Azure ML emulator CA {secrets.token_hex(6)}")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_pem = ca.public_bytes(pem)
    _write(folder / KEY_FILE, key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    _write(folder / CERT_FILE, cert.public_bytes(pem))
    _write(folder / CA_FILE, ca_pem)
    _write(bundle, Path(certifi.where()).read_bytes().rstrip(b"\n") + b"\n" + ca_pem)
    return bundle


def _write(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(data)
    os.chmod(temporary, 0o600 if "key" in path.name else 0o644)
    os.replace(temporary, path)
