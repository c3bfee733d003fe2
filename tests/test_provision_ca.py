"""The broker's CA (``provisioning.ca``, ``termfleet provision ca``), down to real TLS handshakes.

Certificates are checked field by field, then put to work: Mosquitto serves the server
certificate to Python's ssl module, and a Mosquitto that requires client certificates takes one
signed by the CA and turns away a client without one.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import socket
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import click
import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from control_plane.cli.provision_ca import ca
from control_plane.services.broker import (
    BrokerSettings,
    TlsFiles,
    mosquitto_binary,
    start_broker,
    write_config,
)
from control_plane.services.processes import ManagedProcess, free_port
from provisioning.ca import (
    CaError,
    CaFiles,
    describe,
    init_ca,
    issue_client_certificate,
    subject_alt_names,
)

E = TypeVar("E", bound=x509.ExtensionType)
NAMES = ["localhost", "127.0.0.1", "broker", "::1"]
# MQTT 3.1.1 CONNECT, clean session, keepalive 60, client id "c1"; the broker answers CONNACK.
MQTT_CONNECT = b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02c1"
CONNACK_ACCEPTED = b"\x20\x02\x00\x00"


def make_ca(
    directory: Path, *, days_ca: int = 3650, days_server: int = 825, force: bool = False
) -> CaFiles:
    return init_ca(
        directory,
        common_name="test CA",
        server_names=NAMES,
        days_ca=days_ca,
        days_server=days_server,
        force=force,
    )


def certificates(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def extension(cert: x509.Certificate, kind: type[E]) -> x509.Extension[E]:
    return cert.extensions.get_extension_for_class(kind)


def test_the_server_certificate_is_signed_by_the_ca_for_every_name(tmp_path: Path) -> None:
    files = make_ca(tmp_path / "ca")
    (authority,) = certificates(files.ca_cert)
    server, chained = certificates(files.server_cert)
    assert chained == authority  # the chain: server certificate, then the CA
    server.verify_directly_issued_by(authority)
    authority.verify_directly_issued_by(authority)

    constraints = extension(authority, x509.BasicConstraints)
    assert constraints.critical
    assert (constraints.value.ca, constraints.value.path_length) == (True, 0)
    usage = extension(authority, x509.KeyUsage).value
    assert usage.key_cert_sign
    assert usage.crl_sign
    assert not usage.digital_signature

    assert not extension(server, x509.BasicConstraints).value.ca
    usage = extension(server, x509.KeyUsage).value
    assert usage.digital_signature
    assert not usage.key_cert_sign
    assert list(extension(server, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    alt_names = extension(server, x509.SubjectAlternativeName).value
    assert alt_names.get_values_for_type(x509.DNSName) == ["localhost", "broker"]
    assert alt_names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    authority_id = extension(server, x509.AuthorityKeyIdentifier).value.key_identifier
    assert authority_id == extension(authority, x509.SubjectKeyIdentifier).value.digest

    for cert, key_file in ((authority, files.ca_key), (server, files.server_key)):
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert isinstance(key.curve, ec.SECP256R1)
        assert key.public_key() == cert.public_key()


def test_serials_are_random(tmp_path: Path) -> None:
    serials = {certificates(make_ca(tmp_path / str(i)).ca_cert)[0].serial_number for i in range(3)}
    assert len(serials) == 3


def test_keys_are_0600_whatever_the_umask_and_no_temporary_file_remains(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        files = make_ca(tmp_path / "ca")
    finally:
        os.umask(previous)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in (tmp_path / "ca").iterdir()}
    assert modes == {"ca.pem": 0o644, "server.pem": 0o644, "ca.key": 0o600, "server.key": 0o600}
    assert files.ca_key.name == "ca.key"


def test_existing_files_are_kept_without_force_and_replaced_with_it(tmp_path: Path) -> None:
    files = make_ca(tmp_path)
    before = {path: path.read_bytes() for path in tmp_path.iterdir()}
    with pytest.raises(CaError, match=r"ca\.pem already exists: replace it with --force"):
        make_ca(tmp_path)
    assert {path: path.read_bytes() for path in tmp_path.iterdir()} == before

    make_ca(tmp_path, force=True)
    assert files.ca_key.read_bytes() != before[files.ca_key]
    certificates(files.server_cert)[0].verify_directly_issued_by(certificates(files.ca_cert)[0])


def test_one_existing_file_stops_the_others_being_written(tmp_path: Path) -> None:
    (tmp_path / "server.key").write_text("someone's key")
    with pytest.raises(CaError, match=r"server\.key already exists"):
        make_ca(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["server.key"]


def test_a_directory_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    # A regular file where a directory should be: unwritable for root too, who runs CI.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(
        CaError, match=r"cannot write .*not-a-directory/ca/ca\.pem: Not a directory; choose a"
    ):
        make_ca(blocker / "ca")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"server_names": []}, r"at least one server name"),
        ({"server_names": ["  "]}, r"neither an IP address nor a DNS name"),
        ({"server_names": ["bad name"]}, r"'bad name' is neither an IP address nor a DNS name"),
        ({"server_names": ["-leading.example"]}, r"neither"),
        ({"server_names": ["a" * 64 + ".example"]}, r"neither"),
        ({"server_names": ["单一窗口.example"]}, r"neither"),  # IDNs go in their xn-- form
        ({"common_name": ""}, r"common name must be 1 to 64 characters, not 0"),
        ({"common_name": "x" * 65}, r"not 65"),
        ({"days_ca": 0}, r"the CA must be valid for at least 1 day, not 0"),
        ({"days_server": -1}, r"server certificate must be valid for at least 1 day"),
        ({"days_ca": 10, "days_server": 11}, r"\(11 days\) would outlive the CA \(10 days\)"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"common_name": "test CA", "server_names": NAMES, **kwargs}
    with pytest.raises(CaError, match=message):
        init_ca(tmp_path / "ca", **arguments)  # type: ignore[arg-type]
    assert not (tmp_path / "ca").exists()


def test_server_names_become_ip_addresses_or_dns_names_once_each() -> None:
    names = subject_alt_names(["Broker", "broker", "10.0.0.1", "fe80::1", "*.hall.example"])
    assert names == [
        x509.DNSName("broker"),
        x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("fe80::1")),
        x509.DNSName("*.hall.example"),
    ]


def test_a_client_certificate_names_the_device_and_serves_client_auth(tmp_path: Path) -> None:
    files = make_ca(tmp_path / "ca")
    client = issue_client_certificate(tmp_path / "ca", "kiosk-01", tmp_path / "out", days=30)
    assert (client.cert.name, client.key.name) == ("kiosk-01.pem", "kiosk-01.key")
    assert stat.S_IMODE(client.key.stat().st_mode) == 0o600
    (cert,) = certificates(client.cert)
    cert.verify_directly_issued_by(certificates(files.ca_cert)[0])
    assert cert.subject.rfc4514_string() == "CN=kiosk-01"
    assert list(extension(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not extension(cert, x509.BasicConstraints).value.ca
    with pytest.raises(CaError, match=r"kiosk-01\.pem already exists"):
        issue_client_certificate(tmp_path / "ca", "kiosk-01", tmp_path / "out")


def test_client_certificates_refuse_bad_devices_days_and_cas(tmp_path: Path) -> None:
    make_ca(tmp_path / "ca", days_ca=100, days_server=50)
    out = tmp_path / "out"
    with pytest.raises(CaError, match=r"device id '\.\./x' is not valid"):
        issue_client_certificate(tmp_path / "ca", "../x", out)
    with pytest.raises(CaError, match=r"would outlive the CA .*: pass fewer days"):
        issue_client_certificate(tmp_path / "ca", "kiosk-01", out, days=101)
    with pytest.raises(CaError, match=r"ca\.pem does not exist: make the CA first"):
        issue_client_certificate(tmp_path / "nowhere", "kiosk-01", out)
    make_ca(tmp_path / "other")
    (tmp_path / "ca" / "ca.key").write_bytes((tmp_path / "other" / "ca.key").read_bytes())
    with pytest.raises(CaError, match=r"ca\.key is not the key of .*ca\.pem"):
        issue_client_certificate(tmp_path / "ca", "kiosk-01", out)
    assert not out.exists()


def test_describe_gives_names_dates_and_the_fingerprint(tmp_path: Path) -> None:
    files = make_ca(tmp_path)
    summary = describe(files.server_cert)
    server = certificates(files.server_cert)[0]
    der = server.public_bytes(serialization.Encoding.DER)
    assert summary["sha256"] == hashlib.sha256(der).digest().hex(":").upper()
    assert summary["names"] == ["localhost", "127.0.0.1", "broker", "::1"]
    assert (summary["subject"], summary["issuer"]) == ("CN=localhost", "CN=test CA")
    assert summary["not_after"] == server.not_valid_after_utc.isoformat()
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(CaError, match=r"junk\.pem holds no PEM certificate"):
        describe(tmp_path / "junk.pem")


# --- real TLS against Mosquitto --------------------------------------------------------------


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[BrokerSettings, CaFiles]]:
    files = make_ca(tmp_path / "ca")
    settings = BrokerSettings(tmp_path / "broker", free_port(), tls=tls_files(files))
    process = start_broker(settings)
    yield settings, files
    process.stop()


def tls_files(files: CaFiles) -> TlsFiles:
    return TlsFiles(certfile=files.server_cert, keyfile=files.server_key)


def client_context(cafile: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cafile)
    # Python 3.13 sets this by default; holding the certificates to it now keeps them valid there.
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


def mqtt_connect(settings: BrokerSettings, context: ssl.SSLContext, hostname: str) -> bytes:
    """TLS handshake, MQTT CONNECT, and the first bytes the broker answers."""
    with (
        socket.create_connection((settings.host, settings.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=hostname) as tls,
    ):
        tls.sendall(MQTT_CONNECT)
        return tls.recv(4)


def connects(settings: BrokerSettings, context: ssl.SSLContext) -> bool:
    """Whether the broker accepts the connection, or refuses it (in TLS or by closing it)."""
    try:
        answer = mqtt_connect(settings, context, "localhost")
    except (ssl.SSLError, ConnectionResetError):
        return False
    # TLS 1.3 reports a refused client certificate after the handshake: as an alert on the
    # first read, or as the connection closing.
    if answer == b"":
        return False
    assert answer == CONNACK_ACCEPTED
    return True


@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1"])
def test_mosquitto_serves_the_certificate_and_python_trusts_the_ca(
    tls_broker: tuple[BrokerSettings, CaFiles], hostname: str
) -> None:
    settings, files = tls_broker
    assert mqtt_connect(settings, client_context(files.ca_cert), hostname) == CONNACK_ACCEPTED


def test_another_ca_or_another_name_fails_verification(
    tls_broker: tuple[BrokerSettings, CaFiles], tmp_path: Path
) -> None:
    settings, files = tls_broker
    other = make_ca(tmp_path / "other")
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        mqtt_connect(settings, client_context(other.ca_cert), "localhost")
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        mqtt_connect(settings, client_context(files.ca_cert), "elsewhere.example")


def test_a_broker_requiring_client_certificates_takes_the_cas_only(tmp_path: Path) -> None:
    files = make_ca(tmp_path / "ca")
    settings = BrokerSettings(tmp_path / "broker", free_port(), tls=tls_files(files))
    config = write_config(settings)
    # Listener options apply to the listener declared last, which is write_config's only one.
    with config.open("a") as stream:
        stream.write(f"cafile {files.ca_cert}\nrequire_certificate true\n")
        stream.write("use_identity_as_username true\n")
    argv = [mosquitto_binary(), "-c", str(config)]
    broker = ManagedProcess("mosquitto", argv, settings.workdir / "mosquitto.log")
    broker.start_and_wait_port(settings.host, settings.port)
    try:
        device = issue_client_certificate(tmp_path / "ca", "kiosk-01", tmp_path / "out")
        make_ca(tmp_path / "stranger")
        stranger = issue_client_certificate(tmp_path / "stranger", "kiosk-01", tmp_path / "x")
        for client, accepted in ((device, True), (None, False), (stranger, False)):
            context = client_context(files.ca_cert)
            if client is not None:
                context.load_cert_chain(client.cert, client.key)
            assert connects(settings, context) is accepted, client
    finally:
        broker.stop()


# --- the CLI ---------------------------------------------------------------------------------


def run(*args: str) -> Result:
    @click.group()
    def root() -> None:
        """Stands in for `termfleet provision` until the group is registered there."""

    root.add_command(ca)
    return CliRunner().invoke(root, ["ca", *args], prog_name="termfleet")


def test_cli_init_prints_the_files_and_the_mosquitto_settings(tmp_path: Path) -> None:
    result = run("init", "--dir", str(tmp_path / "ca"))
    assert result.exit_code == 0, result.output
    ca_dir = (tmp_path / "ca").resolve()
    assert f"wrote {tmp_path / 'ca' / 'ca.key'} (the CA key, 0600" in result.output
    assert "for localhost, 127.0.0.1, broker," in result.output
    for line in (
        "listener 8883",
        f"cafile {ca_dir / 'ca.pem'}",
        f"keyfile {ca_dir / 'server.key'}",
    ):
        assert f"\n  {line}\n" in result.output
    assert 'broker.url = "mqtts://HOST:8883"' in result.output

    again = run("init", "--dir", str(tmp_path / "ca"))
    assert again.exit_code == 1
    assert "Error: " in again.output
    assert "ca.pem already exists: replace it with --force" in again.output
    assert "Traceback" not in again.output


def test_cli_init_json_and_its_refusals(tmp_path: Path) -> None:
    result = run("init", "--dir", str(tmp_path), "--name", "hall.example", "--name", "10.1.2.3",
                 "--days", "30", "--ca-name", "Conghua CA", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["files"]["server_key"] == str(tmp_path / "server.key")
    assert report["server"]["names"] == ["hall.example", "10.1.2.3"]
    assert report["ca"]["subject"] == "CN=Conghua CA"
    assert report["server"]["sha256"] == describe(tmp_path / "server.pem")["sha256"]

    bad = run("init", "--dir", str(tmp_path / "b"), "--name", "no such name!")
    assert bad.exit_code == 1
    assert "'no such name!' is neither an IP address nor a DNS name" in bad.output
    assert run("init", "--dir", str(tmp_path / "c"), "--days", "0").exit_code == 2
    assert run("init").exit_code == 2  # --dir is required


def test_cli_client_issues_a_certificate_the_ca_verifies(tmp_path: Path) -> None:
    assert run("init", "--dir", str(tmp_path / "ca")).exit_code == 0
    args = ("client", "--dir", str(tmp_path / "ca"), "--device-id", "pad-7", "--out")
    result = run(*args, str(tmp_path / "out"), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["certificate"]["subject"] == "CN=pad-7"
    (cert,) = certificates(Path(report["files"]["cert"]))
    cert.verify_directly_issued_by(certificates(tmp_path / "ca" / "ca.pem")[0])
    assert list(extension(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]

    human = run(*args, str(tmp_path / "human"))
    assert human.exit_code == 0, human.output
    assert f"wrote {tmp_path / 'human' / 'pad-7.key'} (0600" in human.output
    missing = run("client", "--dir", str(tmp_path / "none"), "--device-id", "pad-7", "--out", "o")
    assert missing.exit_code == 1
    assert "ca.pem does not exist: make the CA first" in missing.output
