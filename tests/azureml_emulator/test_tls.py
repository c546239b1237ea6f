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

import certifi
import pytest
from cryptography import x509

from azureml_emulator.tls import CA_FILE, CERT_FILE, KEY_FILE, ensure_certificates


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


def test_the_client_trusts_the_local_emulator_s_ca_alone_unless_it_sends_https_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests loads its bundle for every new TLS connection: certifi's 140 CAs cost 28 ms of CPU each time,
    one CA 0.5 ms (profiled: 48 s of one test worker's CPU went there). A process whose only HTTPS peer is
    the local emulator trusts its CA alone; one that also exports spans over HTTPS keeps certifi's too."""
    from infra.azureml.client import trust_emulator
    from infra.settings import load_settings

    for name, value in {"MLOPS_HOME": str(tmp_path), "MLOPS_BACKEND": "azureml", "MLOPS_AZUREML_EMULATOR": "1"}.items():
        monkeypatch.setenv(name, value)
    for name in ("REQUESTS_CA_BUNDLE", "APPLICATIONINSIGHTS_CONNECTION_STRING", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    ensure_certificates(settings.emulator_dir / "tls")
    ca = settings.emulator_dir / "tls" / CA_FILE
    assert trust_emulator(settings) == str(ca)
    assert trust_emulator(settings) == str(ca)  # an emulator bundle already set is ours to replace
    monkeypatch.setenv("APPLICATIONINSIGHTS_CONNECTION_STRING", "InstrumentationKey=0")
    combined = Path(trust_emulator(settings))
    assert combined.read_bytes().startswith(Path(certifi.where()).read_bytes().rstrip(b"\n"))
    assert combined.read_bytes().endswith(ca.read_bytes())
    monkeypatch.delenv("APPLICATIONINSIGHTS_CONNECTION_STRING")
    own = tmp_path / "corporate.pem"
    own.write_bytes(Path(certifi.where()).read_bytes())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(own))
    kept = Path(trust_emulator(settings))
    assert kept != ca
    assert kept.read_bytes().endswith(ca.read_bytes())  # your bundle is kept, the emulator's CA added
