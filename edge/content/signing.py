"""Content-signing keys, their ids, and the signature over manifest.json (Ed25519, PyNaCl).

Pure: keys come in and go out as the text of their files; the CLI reads and writes the files.

PyNaCl (with cffi and libsodium, ~0.8 MB of an agent's memory) is loaded when a signature is
made or checked, not when keys are read: an agent reads its trusted keys at start and may
not see a package for weeks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import msgspec

from .manifest import ContentError, PackageError, PackageReason

if TYPE_CHECKING:
    from nacl.signing import SigningKey, VerifyKey

SEED_BYTES = 32
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
KEY_ID_CHARS = 16
"""A key id is this many hex characters of sha256(public key): 64 bits tell keys apart."""

MAX_SIGNATURE_FILE_BYTES = 4096
"""manifest.sig's size: its two fields take about 130 bytes."""


@dataclass(frozen=True, slots=True)
class PublicKey:
    """An Ed25519 public key's 32 bytes (``bytes(key)``, as PyNaCl's ``VerifyKey``)."""

    raw: bytes

    def __bytes__(self) -> bytes:
        return self.raw

    def verifies(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's over ``message``."""
        from nacl.exceptions import BadSignatureError  # noqa: PLC0415 - loaded when used
        from nacl.signing import VerifyKey  # noqa: PLC0415

        try:
            VerifyKey(self.raw).verify(message, signature)
        except BadSignatureError:
            return False
        return True


TrustedKeys: TypeAlias = Mapping[str, PublicKey]
"""The public keys whose signatures are accepted, by key id; several, so keys can be rotated."""


class ContentKeyError(ContentError):
    """Text that is no content-signing key of the expected kind."""

    reason = "bad_key"


class SignatureFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    key_id: str
    signature: str
    """base64 of the Ed25519 signature of the exact manifest.json bytes."""


def new_signing_key() -> SigningKey:
    from nacl.signing import SigningKey  # noqa: PLC0415 - loaded when used

    return SigningKey.generate()


def key_id(public_key: PublicKey | VerifyKey) -> str:
    """The key's id: the first KEY_ID_CHARS hex characters of sha256 of its 32 raw bytes."""
    return hashlib.sha256(bytes(public_key)).hexdigest()[:KEY_ID_CHARS]


def signing_key_text(key: SigningKey) -> bytes:
    """The private key file's content: base64 of the 32-byte seed, then a newline."""
    return base64.b64encode(bytes(key)) + b"\n"


def public_key_text(key: PublicKey | VerifyKey) -> str:
    """base64 of the 32-byte public key, as the agent's ``content_keys`` hold it."""
    return base64.b64encode(bytes(key)).decode("ascii")


def parse_signing_key(text: bytes) -> SigningKey:
    """The private key in a key file's ``text``; ContentKeyError if it holds none."""
    from nacl.signing import SigningKey  # noqa: PLC0415 - loaded when used

    return SigningKey(_key_bytes(text, SEED_BYTES, "a private key (32-byte seed)"))


def parse_public_key(text: str | bytes) -> PublicKey:
    """The public key in ``text`` (base64 of 32 bytes); ContentKeyError if it holds none."""
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    return PublicKey(_key_bytes(raw, PUBLIC_KEY_BYTES, "an Ed25519 public key"))


def trusted_keys(base64_keys: Iterable[str]) -> TrustedKeys:
    """The public keys by key id; ContentKeyError naming the first one that is no key."""
    keys = (parse_public_key(text) for text in base64_keys)
    return {key_id(key): key for key in keys}


def sign_manifest(manifest_bytes: bytes, key: SigningKey) -> bytes:
    """manifest.sig for ``manifest_bytes``: the key id and the base64 signature, as JSON."""
    signature = key.sign(manifest_bytes).signature
    sig = SignatureFile(
        key_id=key_id(key.verify_key), signature=base64.b64encode(signature).decode("ascii")
    )
    return msgspec.json.encode(sig, order="sorted")


def verify_manifest(manifest_bytes: bytes, signature_file: bytes, trusted: TrustedKeys) -> str:
    """The id of the trusted key that signed ``manifest_bytes``, else PackageError."""
    sig = _decode_signature_file(signature_file)
    public_key = trusted.get(sig.key_id)
    if public_key is None:
        msg = f"signed by key {sig.key_id!r}, which is not among the {len(trusted)} trusted"
        raise PackageError(PackageReason.UNKNOWN_KEY, msg)
    signature = _strict_base64(sig.signature.encode("ascii", "replace"))
    if signature is None or len(signature) != SIGNATURE_BYTES:
        msg = "manifest.sig holds no Ed25519 signature"
        raise PackageError(PackageReason.BAD_SIGNATURE, msg)
    if not public_key.verifies(manifest_bytes, signature):
        msg = f"the signature of manifest.json does not verify with key {sig.key_id}"
        raise PackageError(PackageReason.BAD_SIGNATURE, msg)
    return sig.key_id


def signature_key_id(signature_file: bytes) -> str:
    """The key id manifest.sig names, NOT verified; PackageError if it is no manifest.sig."""
    return _decode_signature_file(signature_file).key_id


def _decode_signature_file(signature_file: bytes) -> SignatureFile:
    if len(signature_file) > MAX_SIGNATURE_FILE_BYTES:
        msg = f"manifest.sig takes {len(signature_file)} bytes, more than the format allows"
        raise PackageError(PackageReason.MALFORMED, msg)
    try:
        return msgspec.json.decode(signature_file, type=SignatureFile)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        msg = f"manifest.sig: {exc}"
        raise PackageError(PackageReason.MALFORMED, msg) from None


def _key_bytes(text: bytes, length: int, what: str) -> bytes:
    raw = _strict_base64(text.strip())
    if raw is None or len(raw) != length:
        msg = f"not {what} in base64"
        raise ContentKeyError(msg)
    return raw


def _strict_base64(text: bytes) -> bytes | None:
    """The bytes ``text`` encodes in canonical base64 (the unused low bits zero), else None."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    # Otherwise several texts would stand for one signature, and a changed manifest.sig pass.
    return raw if base64.b64encode(raw) == text else None


def read_trusted_keys(key_files: Iterable[Path]) -> TrustedKeys:
    """The public keys in ``key_files`` (NAME.pub) by key id; ContentKeyError naming the file."""
    keys = {}
    for key_file in key_files:
        try:
            key = parse_public_key(key_file.read_bytes())
        except (ContentKeyError, OSError) as exc:
            msg = f"{key_file}: {exc}"
            raise ContentKeyError(msg) from None
        keys[key_id(key)] = key
    return keys
