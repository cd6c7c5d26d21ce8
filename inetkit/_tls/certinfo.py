"""What a secure connection reports: `CertificateInfo`, `SecurityInfo`, public-key pins.

Parsing a certificate with ``cryptography`` costs tens of microseconds, a
few per cent of a loopback handshake, and most handles never look at it: a
`SecurityInfo` is made from the handshake's cheap facts, and its
`peer_certificate` is parsed from DER on first access. ``cryptography`` is
imported only then.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .._credentials import PIN_PREFIX
from .._errors import ErrorCode, InvalidArgumentError, SecurityError

if TYPE_CHECKING:
    from cryptography import x509

__all__ = ["CertificateInfo", "DerSource", "SecurityInfo", "check_pins", "public_key_pin"]

#: `SecurityInfo._peer` before the certificate was parsed.
_UNPARSED = object()


def _load_der(der: bytes) -> x509.Certificate:
    from cryptography import x509 as _x509

    if not isinstance(der, bytes | bytearray | memoryview):
        raise TypeError(f"a DER certificate must be bytes, not {type(der).__name__}")
    try:
        return _x509.load_der_x509_certificate(bytes(der))
    except ValueError as exc:
        raise InvalidArgumentError(f"not a DER certificate: {exc}", ErrorCode.INVALID_ARGUMENT) from exc


def _alt_names(cert: x509.Certificate) -> list[str]:
    from cryptography import x509 as _x509

    try:
        ext = cert.extensions.get_extension_for_class(_x509.SubjectAlternativeName)
    except _x509.ExtensionNotFound:
        return []
    except ValueError:  # a malformed extension: report no names rather than fail
        return []
    names: list[str] = []
    for name in ext.value:
        if isinstance(name, _x509.DNSName):
            names.append(f"DNS:{name.value}")
        elif isinstance(name, _x509.IPAddress):
            names.append(f"IP:{name.value}")
        elif isinstance(name, _x509.UniformResourceIdentifier):
            names.append(f"URI:{name.value}")
        elif isinstance(name, _x509.RFC822Name):
            names.append(f"email:{name.value}")
    return names


@typing.final
@dataclass(frozen=True)
class CertificateInfo:
    """The facts of a certificate that users look at, in plain Python types.

    Attributes:
        subject, issuer: RFC 4514 strings (``"CN=example.com,O=Example"``).
        common_name: the subject's first common name, or None.
        subject_alt_names: ``"DNS:name"`` / ``"IP:address"`` entries (also
            ``"URI:..."`` and ``"email:..."`` when present).
        not_before, not_after: validity, timezone-aware UTC datetimes.
        serial_number: the serial number.
        fingerprint_sha256: SHA-256 of the DER certificate, lowercase hex.
    """

    subject: str
    issuer: str
    common_name: str | None
    subject_alt_names: list[str]
    not_before: datetime.datetime
    not_after: datetime.datetime
    serial_number: int
    fingerprint_sha256: str

    def __hash__(self) -> int:
        return hash((self.fingerprint_sha256, tuple(self.subject_alt_names)))

    @classmethod
    def from_der(cls, der: bytes) -> CertificateInfo:
        """Read a DER certificate (as ``getpeercert(binary_form=True)`` returns it)."""
        from cryptography.x509.oid import NameOID

        cert = _load_der(der)
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return cls(
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            common_name=str(cns[0].value) if cns else None,
            subject_alt_names=_alt_names(cert),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            serial_number=cert.serial_number,
            fingerprint_sha256=hashlib.sha256(bytes(der)).hexdigest(),
        )


def public_key_pin(der_cert: bytes) -> str:
    """The ``"sha256//<base64>"`` pin of a DER certificate's public key (as curl computes it)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    spki = _load_der(der_cert).public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return PIN_PREFIX + base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


def check_pins(der_cert: bytes, pins: Sequence[str], *, target: str) -> None:
    """Check the server's leaf certificate against the pinned public keys.

    Raises `SecurityError` (``PIN_MISMATCH``) naming ``target`` and the
    server's actual pin when none matches. Called whenever pins are set, also
    with `Option.TRUSTEDSITE`.
    """
    if not pins:
        return
    if not der_cert:
        raise SecurityError(
            f"TLS with {target}: public key pinning is on, but the server sent no certificate",
            ErrorCode.PIN_MISMATCH,
        )
    actual = public_key_pin(der_cert)
    if actual in pins:
        return
    raise SecurityError(
        f"TLS with {target}: the server's public key matches none of the pinned keys; its pin is {actual} "
        f"(pinned: {', '.join(pins)})",
        ErrorCode.PIN_MISMATCH,
    )


class DerSource(Protocol):
    """What holds a live connection's peer certificate until somebody asks for it."""

    def peer_der(self) -> bytes | None: ...


@typing.final
@dataclass(frozen=True, slots=True)
class SecurityInfo:
    """What a secure connection negotiated.

    Attributes:
        protocol: ``"TLSv1"`` ... ``"TLSv1.3"`` (the `ssl` module's names).
        cipher: the OpenSSL cipher suite name.
        cipher_bits: the suite's secret bits.
        alpn_protocol: the protocol the server chose by ALPN, or None.
        session_reused: True when an earlier session was resumed.
        peer_certificate: the server's certificate, or None when it sent none
            (parsed on first access).
    """

    protocol: str
    cipher: str
    cipher_bits: int
    alpn_protocol: str | None
    session_reused: bool
    #: The server's certificate (DER), or what fetches it when first needed:
    #: most handles never ask, and the bytes are a kilobyte each.
    peer_der: bytes | DerSource | None = field(default=None, repr=False, compare=False)
    _peer: object = field(default=_UNPARSED, init=False, repr=False, compare=False)

    @property
    def peer_certificate(self) -> CertificateInfo | None:
        peer = self._peer
        if peer is _UNPARSED:
            der = self.peer_der
            if der is not None and not isinstance(der, bytes):
                der = der.peer_der()
                object.__setattr__(self, "peer_der", der)  # frozen: set once, by the class itself
            peer = CertificateInfo.from_der(der) if der else None
            object.__setattr__(self, "_peer", peer)
        return typing.cast("CertificateInfo | None", peer)
