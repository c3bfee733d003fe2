"""A private CA for the broker's TLS listener: the CA, the server certificate, client certificates.

ECDSA P-256 with SHA-256 throughout: every Mosquitto and OpenSSL that Debian ships accepts it, and
a terminal's TLS handshake stays cheap. Keys are written 0600 from the moment their file exists,
and every file lands atomically, so a crash leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypedDict

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge.atomic_file import fsync_directory, stage
from edge.protocol.common import ID_PATTERN

CA_CERT, CA_KEY = "ca.pem", "ca.key"
SERVER_CERT, SERVER_KEY = "server.pem", "server.key"
KEY_MODE = 0o600
CERT_MODE = 0o644
DEFAULT_CA_DAYS = 3650
DEFAULT_SERVER_DAYS = 825
"""Apple's platforms refuse TLS server certificates valid for longer than 825 days."""
DEFAULT_CLIENT_DAYS = 825
BACKDATE = timedelta(minutes=5)
"""``not_before`` lies this far back, so a peer whose clock runs a little behind accepts a new
certificate at once."""
MAX_COMMON_NAME = 64  # RFC 5280's upper bound, which cryptography enforces
# A DNS name as a certificate may carry it: ASCII labels (IDNs in their xn-- form), at most 253
# characters, optionally one leading wildcard label.
DNS_NAME = re.compile(
    r"(\*\.)?(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
)


class CaError(ValueError):
    """A CA, certificate or key cannot be made, read or written; the message says what to do."""


@dataclass(frozen=True)
class CaFiles:
    """Where ``init_ca`` puts the CA and the broker's server certificate."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path

    @classmethod
    def in_directory(cls, directory: Path) -> CaFiles:
        return cls(
            directory / CA_CERT, directory / CA_KEY, directory / SERVER_CERT, directory / SERVER_KEY
        )

    def to_dict(self) -> dict[str, str]:
        return {name: str(path) for name, path in vars(self).items()}


@dataclass(frozen=True)
class ClientFiles:
    """A client certificate (``<device id>.pem``) and its key (``<device id>.key``)."""

    cert: Path
    key: Path

    def to_dict(self) -> dict[str, str]:
        return {"cert": str(self.cert), "key": str(self.key)}


def init_ca(  # noqa: PLR0913 - each keyword is one property of the CA or its server certificate
    directory: Path,
    *,
    common_name: str,
    server_names: Iterable[str],
    days_ca: int = DEFAULT_CA_DAYS,
    days_server: int = DEFAULT_SERVER_DAYS,
    force: bool = False,
) -> CaFiles:
    """Make a CA and a server certificate for ``server_names`` signed by it, in ``directory``."""
    ca_name = _name(_checked_common_name(common_name, "the CA's common name"))
    alt_names = subject_alt_names(server_names)
    _check_days(days_ca, "the CA")
    _check_days(days_server, "the server certificate")
    if days_server > days_ca:
        msg = f"the server certificate ({days_server} days) would outlive the CA ({days_ca} days)"
        raise CaError(msg)
    files = CaFiles.in_directory(directory)
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now, days_ca)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    # Clients check the SANs, never the CN; the CN only names the certificate for people.
    server_cn = next((n.value for n in alt_names if isinstance(n, x509.DNSName)), None)
    server_cert = _leaf(
        (ca_cert, ca_key),
        server_key.public_key(),
        subject=_name(str(server_cn or alt_names[0].value)),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        days=days_server,
        alt_names=alt_names,
    )
    _write_files(
        {
            files.ca_cert: (_cert_pem(ca_cert), CERT_MODE),
            files.ca_key: (_key_pem(ca_key), KEY_MODE),
            files.server_cert: (_cert_pem(server_cert) + _cert_pem(ca_cert), CERT_MODE),
            files.server_key: (_key_pem(server_key), KEY_MODE),
        },
        force=force,
    )
    return files


def issue_client_certificate(
    ca_dir: Path,
    common_name: str,
    out_dir: Path,
    *,
    days: int = DEFAULT_CLIENT_DAYS,
    force: bool = False,
) -> ClientFiles:
    """Sign a clientAuth certificate whose CN is the device id, with the CA in ``ca_dir``.

    With Mosquitto's ``use_identity_as_username`` the CN becomes the broker username, which is
    the device id; so the CN must be one, and it also names the files.
    """
    if not re.fullmatch(ID_PATTERN, common_name):
        msg = (
            f"device id {common_name!r} is not valid: use 1 to 64 letters, digits, '_', '.' or"
            " '-', starting with a letter or digit"
        )
        raise CaError(msg)
    _check_days(days, "the client certificate")
    ca_cert, ca_key = load_ca(ca_dir)
    if datetime.now(UTC) + timedelta(days=days) > ca_cert.not_valid_after_utc:
        msg = (
            f"a client certificate valid for {days} days would outlive the CA in {ca_dir}"
            f" (valid until {ca_cert.not_valid_after_utc:%Y-%m-%d}): pass fewer days"
        )
        raise CaError(msg)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _leaf(
        (ca_cert, ca_key),
        key.public_key(),
        subject=_name(common_name),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        days=days,
        alt_names=[],
    )
    files = ClientFiles(out_dir / f"{common_name}.pem", out_dir / f"{common_name}.key")
    _write_files(
        {files.cert: (_cert_pem(cert), CERT_MODE), files.key: (_key_pem(key), KEY_MODE)},
        force=force,
    )
    return files


def load_ca(ca_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA certificate and key ``init_ca`` wrote, checked to belong together."""
    files = CaFiles.in_directory(ca_dir)
    cert = _load_certificates(files.ca_cert)[0]
    try:
        key = serialization.load_pem_private_key(_read(files.ca_key), password=None)
    except (ValueError, TypeError) as exc:
        msg = f"{files.ca_key} is not an unencrypted PEM private key: {exc}"
        raise CaError(msg) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        msg = f"{files.ca_key} is not the key of {files.ca_cert}: run `ca init` again with --force"
        raise CaError(msg)
    return cert, key


class CertificateSummary(TypedDict):
    """What ``describe`` tells of a certificate; JSON as it stands."""

    path: str
    subject: str
    issuer: str
    names: list[str]
    serial: str
    not_before: str
    not_after: str
    sha256: str


def describe(path: Path) -> CertificateSummary:
    """Subject, issuer, names, validity and SHA-256 fingerprint of a file's first certificate."""
    cert = _load_certificates(path)[0]
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        alt_names = [str(name.value) for name in names]
    except x509.ExtensionNotFound:
        alt_names = []
    return {
        "path": str(path),
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "names": alt_names,
        "serial": f"{cert.serial_number:x}",
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        # Spelled as `openssl x509 -fingerprint -sha256` prints it, so the two compare by eye.
        "sha256": cert.fingerprint(hashes.SHA256()).hex(":").upper(),
    }


def subject_alt_names(names: Iterable[str]) -> list[x509.GeneralName]:
    """IP addresses as IPAddress entries, everything else as a DNSName; duplicates dropped."""
    found: list[x509.GeneralName] = []
    for raw in names:
        name = raw.strip()
        entry: x509.GeneralName
        try:
            entry = x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            if not DNS_NAME.fullmatch(name):
                msg = f"server name {raw!r} is neither an IP address nor a DNS name"
                raise CaError(msg) from None
            entry = x509.DNSName(name.lower())
        if entry not in found:
            found.append(entry)
    if not found:
        msg = "give at least one server name (a DNS name or IP address) the broker is reached by"
        raise CaError(msg)
    return found


def _leaf(  # noqa: PLR0913 - the parts of a certificate, each its own
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    public_key: ec.EllipticCurvePublicKey,
    *,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    days: int,
    alt_names: list[x509.GeneralName],
) -> x509.Certificate:
    ca_cert, ca_key = issuer
    ca_key_id = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        _builder(subject, ca_cert.subject, public_key, datetime.now(UTC), days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # ECDHE-ECDSA, the only ECDSA key exchange TLS 1.2 and 1.3 still use, needs only
        # digitalSignature; keyAgreement is for static ECDH suites, which nobody offers.
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id),
            critical=False,
        )
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime,
    days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(*, key_cert_sign: bool = False, digital_signature: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _checked_common_name(value: str, what: str) -> str:
    name = value.strip()
    if not 1 <= len(name) <= MAX_COMMON_NAME:
        msg = f"{what} must be 1 to {MAX_COMMON_NAME} characters, not {len(name)}"
        raise CaError(msg)
    return name


def _check_days(days: int, what: str) -> None:
    if days < 1:
        msg = f"{what} must be valid for at least 1 day, not {days}"
        raise CaError(msg)


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        msg = f"{path} does not exist: make the CA first with `ca init --dir {path.parent}`"
        raise CaError(msg) from None
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror}"
        raise CaError(msg) from None


def _load_certificates(path: Path) -> list[x509.Certificate]:
    data = _read(path)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        msg = f"{path} holds no PEM certificate"
        raise CaError(msg)
    return certs


def _write_files(contents: dict[Path, tuple[bytes, int]], *, force: bool) -> None:
    """Write every file or none: all are staged beside their targets before any is replaced."""
    if not force:
        for path in contents:
            if path.exists():
                msg = f"{path} already exists: replace it with --force, or choose another directory"
                raise CaError(msg)
    staged: list[tuple[Path, Path]] = []
    path = next(iter(contents))
    try:
        for path, (data, mode) in contents.items():
            staged.append((stage(path, data, mode), path))
        for temporary, path in staged:
            temporary.replace(path)
        for directory in {target.parent for target in contents}:
            fsync_directory(directory)
    except OSError as exc:
        msg = f"cannot write {path}: {exc.strerror}; choose a directory you may write to"
        raise CaError(msg) from None
    finally:
        for temporary, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
