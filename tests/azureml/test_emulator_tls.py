"""The emulator's certificates: a client that trusts the CAs of several emulators verifies each one's server.

A bundle comes to hold several emulator CAs when one process talks to emulators of two homes, or when a
home's emulator is made again while the environment still names the old bundle. Under xdist's third
worker that happened in one test process, and every call failed with "certificate signature failure":
all CAs had the same name, and OpenSSL checked the server's certificate against the first one.
"""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

from cryptography import x509

from infra.azureml_emulator.tls import CA_FILE, CERT_FILE, KEY_FILE, ensure_certificates


def _handshake(bundle: Path, server: Path) -> None:
    """A TLS handshake with a server presenting `server`'s certificate, trusting the CAs in `bundle`."""
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(server / CERT_FILE, server / KEY_FILE)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        errors: list[BaseException] = []

        def serve() -> None:
            connection, _ = listener.accept()
            try:
                server_side.wrap_socket(connection, server_side=True).close()
            except (ssl.SSLError, OSError) as exc:
                errors.append(exc)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        client = ssl.create_default_context(cafile=str(bundle))
        with socket.create_connection(listener.getsockname(), timeout=10) as raw:
            client.wrap_socket(raw, server_hostname="127.0.0.1").close()
        thread.join(timeout=10)


def test_a_bundle_with_two_emulators_cas_verifies_either_server(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    ensure_certificates(first)
    ensure_certificates(second)
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes((first / CA_FILE).read_bytes() + (second / CA_FILE).read_bytes())
    _handshake(bundle, second)  # raised ssl.SSLCertVerificationError when both CAs had one name
    _handshake(bundle, first)


def test_each_ca_has_a_name_of_its_own_and_the_server_names_its_key(tmp_path: Path) -> None:
    ensure_certificates(tmp_path / "a")
    ensure_certificates(tmp_path / "b")
    cas = [x509.load_pem_x509_certificate((tmp_path / h / CA_FILE).read_bytes()) for h in ("a", "b")]
    assert cas[0].subject != cas[1].subject
    server = x509.load_pem_x509_certificate((tmp_path / "a" / CERT_FILE).read_bytes())
    assert server.issuer == cas[0].subject
    authority = server.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    subject_key = cas[0].extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert authority.key_identifier == subject_key.digest
