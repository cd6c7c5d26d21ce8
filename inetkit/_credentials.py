"""`SecurityCredentials`, client identities from PEM or PKCS#12, and handing them to OpenSSL.

Theory of operation
-------------------
`SecurityCredentials` is a frozen, hashable value: it checks types and values
when it is made (no I/O), so a mistake surfaces before any connection, and it
can key the TLS context cache. List fields are stored as tuples.

A client identity (certificate, chain, private key) is read with
``cryptography``, imported lazily so that ``import inetkit`` stays cheap:

* PEM: certificates and keys in one file, or the key in ``private_key``;
  encrypted keys (PKCS#8 or traditional) are opened with ``password``;
* PKCS#12 (``.p12``/``.pfx``): modern AES and legacy RC2/3DES stores alike;
* from a path or from bytes.

``cert_name`` picks one certificate of the store by common name, by full
subject (RFC 4514, case-insensitive, either order) or by SHA-1/SHA-256
thumbprint; without it, the certificate that matches the private key is
used. The chosen leaf must match a private key, and the chain sent with it is
found by walking issuers among the store's other certificates.

The standard library's `ssl.SSLContext.load_cert_chain` reads only files.
To keep the decrypted key off every disk, `apply_identity` re-encrypts the
key under a one-time random password (PKCS#8, the best encryption the
library offers) and writes certificate chain and encrypted key into an
anonymous in-memory file (``memfd_create``), which OpenSSL opens through
``/proc/self/fd/N``. The descriptor is closed as soon as OpenSSL has read
it; the one-time password lives only in this process's memory. Where
``memfd_create`` (or ``/proc``) is missing, a private temporary file (mode
0600) holding the certificates and only the *re-encrypted* key is used and
removed in ``finally``. Rejected alternative: writing the decrypted key to a
temporary file, as many programs do, which leaves a usable secret on disk
if the process dies at the wrong moment.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
import re
import secrets
import ssl
import tempfile
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._errors import ErrorCode, InvalidArgumentError, SecurityError
from ._log import logger

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

__all__ = [
    "DEFAULT_TRUST",
    "TRUST_CHOICES",
    "Identity",
    "SecurityCredentials",
    "Trust",
    "apply_identity",
    "load_identity",
]


StrPath = str | os.PathLike[str]

#: Where trust anchors come from when ``ca_file``/``ca_data`` are not given.
Trust = typing.Literal["certifi", "system", "both"]
TRUST_CHOICES: tuple[Trust, ...] = ("certifi", "system", "both")
DEFAULT_TRUST: Trust = "certifi"

#: An SPKI pin is "sha256//" followed by the base64 of a 32-byte SHA-256 digest.
PIN_PREFIX = "sha256//"
PIN_DIGEST_SIZE = 32

#: ALPN protocol names are 1..255 bytes (RFC 7301 section 3.1).
ALPN_MAX_LENGTH = 255

#: Bytes of entropy in the one-time password that protects the key on its way to OpenSSL.
ONE_TIME_PASSWORD_BYTES = 32

#: Name of the anonymous in-memory file (shows in /proc/PID/fd while it exists).
MEMFD_NAME = "inetkit-identity"

#: Hex digits of a SHA-1 and a SHA-256 thumbprint.
SHA1_HEX_LENGTH = 40
SHA256_HEX_LENGTH = 64

#: Upper bound for walking an issuer chain (real chains are 2-4 long).
MAX_CHAIN_LENGTH = 16

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)
_HEX_SEPARATORS = re.compile(r"[\s:]")
_HEX = re.compile(r"[0-9a-f]+")

#: TLS versions below this are refused outright (SSL 3.0 is broken, RFC 7568).
_LOWEST_VERSION = ssl.TLSVersion.TLSv1
_VERSION_RANK = {
    ssl.TLSVersion.MINIMUM_SUPPORTED: -1,
    ssl.TLSVersion.MAXIMUM_SUPPORTED: 1 << 16,
}


def _rank(version: ssl.TLSVersion) -> int:
    return _VERSION_RANK.get(version, int(version))


def _describe_source(value: StrPath | bytes) -> str:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return repr(os.fspath(value))


# -- SecurityCredentials -------------------------------------------------------------


def _check_path_or_bytes(name: str, value: object) -> StrPath | bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        if not data:
            raise InvalidArgumentError(f"SecurityCredentials.{name} is empty", ErrorCode.INVALID_ARGUMENT)
        return data
    if isinstance(value, str | os.PathLike):
        path = os.fspath(value)
        if not isinstance(path, str):
            raise TypeError(f"SecurityCredentials.{name} must be a str path, os.PathLike[str] or bytes")
        _check_path_text(name, path)
        if "-----BEGIN" in path:
            raise InvalidArgumentError(
                f"SecurityCredentials.{name} looks like PEM text, but a str is taken as a file path; "
                "pass the PEM content as bytes (text.encode())",
                ErrorCode.INVALID_ARGUMENT,
            )
        return value
    raise TypeError(
        f"SecurityCredentials.{name} must be a path (str or os.PathLike) or bytes, not {type(value).__name__}"
    )


def _check_path_text(name: str, path: str) -> None:
    """Refuse a path no file can have, here rather than as a bare error from ``os.stat`` at connect."""
    if not path:
        raise InvalidArgumentError(f"SecurityCredentials.{name} is an empty path", ErrorCode.INVALID_ARGUMENT)
    if "\0" in path:
        raise InvalidArgumentError(
            f"SecurityCredentials.{name} contains a NUL character, which no file path can hold: {path!r}",
            ErrorCode.INVALID_ARGUMENT,
        )
    try:
        os.fsencode(path)
    except UnicodeEncodeError as exc:
        raise InvalidArgumentError(
            f"SecurityCredentials.{name} cannot be encoded as a file name ({exc.reason}): {path!r}",
            ErrorCode.INVALID_ARGUMENT,
        ) from None


def _check_str_list(name: str, value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise TypeError(
            f"SecurityCredentials.{name} must be a sequence of str (for example a list), "
            f"not {type(value).__name__}"
        )
    items = tuple(value)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"SecurityCredentials.{name} entries must be str, not {type(item).__name__}")
    return items


def _check_pin(pin: str) -> None:
    problem = None
    if not pin.startswith(PIN_PREFIX):
        problem = f"it does not start with {PIN_PREFIX!r}"
    else:
        try:
            digest = base64.b64decode(pin[len(PIN_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            problem = "the part after 'sha256//' is not base64"
        else:
            if len(digest) != PIN_DIGEST_SIZE:
                problem = f"it decodes to {len(digest)} bytes, a SHA-256 digest has {PIN_DIGEST_SIZE}"
    if problem is not None:
        raise InvalidArgumentError(
            f"SecurityCredentials.pinned_public_keys: {pin!r} is not a valid pin ({problem}); "
            "a pin looks like 'sha256//' + base64(SHA-256 of the SubjectPublicKeyInfo)",
            ErrorCode.INVALID_ARGUMENT,
        )


@functools.lru_cache(maxsize=64)
def _cipher_problem(ciphers: str) -> str | None:
    """Why OpenSSL refuses a cipher string, or None (cached: the check builds a context)."""
    # OpenSSL cipher strings are ASCII; the C API cannot take a NUL, and a
    # lone surrogate cannot even be encoded (ValueError / UnicodeEncodeError
    # from set_ciphers otherwise).
    if "\0" in ciphers:
        return "it contains a NUL character"
    if not ciphers.isascii():
        return "it is not ASCII"
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).set_ciphers(ciphers)
    except ssl.SSLError as exc:
        return getattr(exc, "reason", None) or str(exc)
    return None


def _ca_data_text(ca_data: str | bytes) -> str | bytes:
    """``ca_data`` in the form `ssl.SSLContext.load_verify_locations` takes: PEM as str, DER as bytes."""
    if isinstance(ca_data, bytes) and b"-----BEGIN" in ca_data:
        return ca_data.decode("ascii")  # checked to be ASCII when the credentials were made
    return ca_data


@functools.lru_cache(maxsize=64)
def _ca_data_problem(ca_data: str | bytes) -> str | None:
    """Why OpenSSL cannot load ``ca_data`` as trust anchors, or None (cached: the check builds a context).

    PEM must be ASCII (``ssl`` raises TypeError for anything else); the rest
    is what OpenSSL says when it parses the certificates.
    """
    pem = ca_data if isinstance(ca_data, str) else ca_data if b"-----BEGIN" in ca_data else None
    if pem is not None and not pem.isascii():
        return "PEM text must be ASCII"
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=_ca_data_text(ca_data))
    except (ssl.SSLError, ValueError, TypeError) as exc:
        return getattr(exc, "reason", None) or str(exc)
    return None


@typing.final
@dataclass(frozen=True, repr=False)
class SecurityCredentials:
    """What a secure connection uses besides the defaults: client identity, trust, versions.

    Every field is optional; ``SecurityCredentials()`` means the default
    policy (see ``docs/security.md``). Values are checked here, before any
    I/O: a wrong type raises `TypeError`, a bad value `InvalidArgumentError`.
    Files are read when a connection first needs them (and then cached until
    they change).

    Attributes:
        cert_store: the client certificate source: path to a PEM or PKCS#12
            (``.p12``/``.pfx``) file, or its content as bytes.
        cert_name: which certificate of the store to use: its subject common
            name, its full subject (``"CN=client,O=Example"``), or its SHA-1 or
            SHA-256 thumbprint in hex (colons, spaces and case ignored).
        password: for an encrypted PKCS#12 store or private key.
        private_key: a separate PEM (or DER) key, path or bytes, when the
            store holds only certificates.
        min_version, max_version: `ssl.TLSVersion` bounds; default TLS 1.2
            up to the newest.
        ciphers: OpenSSL cipher string for TLS 1.2 and below.
        ca_file: path of a PEM file of trust anchors; ``ca_data``: the same as
            PEM text (str or bytes) or DER bytes. Either replaces ``trust``.
        alpn_protocols: ALPN protocol names, most preferred first.
        pinned_public_keys: ``"sha256//<base64>"`` pins of the server's public
            key; one must match (checked even with `Option.TRUSTEDSITE`).
        trust: the trust anchors when neither ``ca_file`` nor ``ca_data`` is
            given: ``"certifi"`` (the default: the certifi bundle),
            ``"system"`` (OpenSSL's default file and directory, which the
            ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` environment variables
            override) or ``"both"``.
    """

    cert_store: StrPath | bytes | None = None
    cert_name: str | None = None
    password: str | bytes | None = None
    private_key: StrPath | bytes | None = None
    min_version: ssl.TLSVersion | None = None
    max_version: ssl.TLSVersion | None = None
    ciphers: str | None = None
    ca_file: StrPath | None = None
    ca_data: str | bytes | None = None
    alpn_protocols: Sequence[str] | None = field(default=None)
    pinned_public_keys: Sequence[str] | None = field(default=None)
    trust: Trust = DEFAULT_TRUST

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "cert_store", _check_path_or_bytes("cert_store", self.cert_store))
        setattr_(self, "private_key", _check_path_or_bytes("private_key", self.private_key))
        if self.cert_name is not None:
            if not isinstance(self.cert_name, str):
                raise TypeError(
                    f"SecurityCredentials.cert_name must be a str, not {type(self.cert_name).__name__}"
                )
            if not self.cert_name.strip():
                raise InvalidArgumentError(
                    "SecurityCredentials.cert_name is empty", ErrorCode.INVALID_ARGUMENT
                )
        password: object = self.password
        if password is not None:
            if isinstance(password, bytearray | memoryview):
                setattr_(self, "password", bytes(password))
            elif not isinstance(password, str | bytes):
                raise TypeError(
                    f"SecurityCredentials.password must be a str or bytes, not {type(password).__name__}"
                )
        if self.cert_store is None:
            for name in ("cert_name", "private_key", "password"):
                if getattr(self, name) is not None:
                    raise InvalidArgumentError(
                        f"SecurityCredentials.{name} is given but cert_store is not; "
                        "cert_store names the client certificate it applies to",
                        ErrorCode.INVALID_ARGUMENT,
                    )
        self._check_versions()
        if self.ciphers is not None:
            if not isinstance(self.ciphers, str):
                raise TypeError(
                    f"SecurityCredentials.ciphers must be a str, not {type(self.ciphers).__name__}"
                )
            problem = _cipher_problem(self.ciphers)
            if problem is not None:
                raise InvalidArgumentError(
                    f"SecurityCredentials.ciphers: OpenSSL accepts no cipher from {self.ciphers!r} "
                    f"({problem}); the string governs TLS 1.2 and below (TLS 1.3 suites are fixed)",
                    ErrorCode.INVALID_ARGUMENT,
                )
        if self.ca_file is not None:
            if not isinstance(self.ca_file, str | os.PathLike) or not isinstance(
                os.fspath(self.ca_file), str
            ):
                raise TypeError(
                    "SecurityCredentials.ca_file must be a path (str or os.PathLike[str]), "
                    f"not {type(self.ca_file).__name__}"
                )
            _check_path_text("ca_file", os.fspath(self.ca_file))
        ca_data: object = self.ca_data
        if ca_data is not None:
            if isinstance(ca_data, bytearray | memoryview):
                ca_data = bytes(ca_data)
                setattr_(self, "ca_data", ca_data)
            elif not isinstance(ca_data, str | bytes):
                raise TypeError(
                    f"SecurityCredentials.ca_data must be PEM text (str or bytes) or DER bytes, "
                    f"not {type(ca_data).__name__}"
                )
            if not ca_data:
                raise InvalidArgumentError("SecurityCredentials.ca_data is empty", ErrorCode.INVALID_ARGUMENT)
            problem = _ca_data_problem(ca_data)
            if problem is not None:
                raise SecurityError(
                    f"SecurityCredentials.ca_data holds no usable trust anchor: {problem} "
                    "(it must be PEM text or DER bytes of CA certificates)",
                    ErrorCode.INVALID_CREDENTIALS,
                )
        alpn = _check_str_list("alpn_protocols", self.alpn_protocols)
        for proto in alpn or ():
            if not proto or not proto.isascii() or len(proto) > ALPN_MAX_LENGTH:
                raise InvalidArgumentError(
                    f"SecurityCredentials.alpn_protocols: {proto!r} is not a valid ALPN protocol name "
                    f"(1 to {ALPN_MAX_LENGTH} ASCII characters)",
                    ErrorCode.INVALID_ARGUMENT,
                )
        setattr_(self, "alpn_protocols", alpn)
        pins = _check_str_list("pinned_public_keys", self.pinned_public_keys)
        for pin in pins or ():
            _check_pin(pin)
        setattr_(self, "pinned_public_keys", pins)
        self._check_trust()

    def _check_trust(self) -> None:
        trust: object = self.trust
        choices = ", ".join(repr(choice) for choice in TRUST_CHOICES)
        if not isinstance(trust, str):
            raise TypeError(
                f"SecurityCredentials.trust must be a str ({choices}), not {type(trust).__name__}"
            )
        if trust not in TRUST_CHOICES:
            raise InvalidArgumentError(
                f"SecurityCredentials.trust must be one of {choices}, not {trust!r}",
                ErrorCode.INVALID_ARGUMENT,
            )
        # Keep a plain str: a str subclass may compare or hash unlike the spelling it stands for.
        object.__setattr__(self, "trust", str.__str__(trust))

    def _check_versions(self) -> None:
        for name in ("min_version", "max_version"):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, ssl.TLSVersion):
                raise TypeError(
                    f"SecurityCredentials.{name} must be an ssl.TLSVersion, not {type(value).__name__}"
                )
            if value not in _VERSION_RANK and value < _LOWEST_VERSION:
                raise InvalidArgumentError(
                    f"SecurityCredentials.{name}: {value.name} is not supported "
                    "(SSL 3.0 is broken, RFC 7568)",
                    ErrorCode.INVALID_ARGUMENT,
                )
        if (
            self.min_version is not None
            and self.max_version is not None
            and _rank(self.min_version) > _rank(self.max_version)
        ):
            raise InvalidArgumentError(
                f"SecurityCredentials: min_version {self.min_version.name} is above "
                f"max_version {self.max_version.name}",
                ErrorCode.INVALID_ARGUMENT,
            )

    def __hash__(self) -> int:
        # What the generated hash would be (every field), computed once per
        # value: the context cache hashes its key on every TLS connect.
        cached: int | None = self.__dict__.get("_hash")
        if cached is None:
            cached = hash(tuple(getattr(self, name) for name in self.__dataclass_fields__))
            object.__setattr__(self, "_hash", cached)  # frozen: set once, by the class itself
        return cached

    def __getstate__(self) -> dict[str, object]:
        # The cached hash stays behind: string hashes differ between processes.
        state = dict(self.__dict__)
        state.pop("_hash", None)
        return state

    def __repr__(self) -> str:
        parts = []
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value is None or (name == "trust" and value == DEFAULT_TRUST):
                continue
            if name == "password":
                shown = "<hidden>"
            elif name == "private_key" and isinstance(value, bytes):
                shown = f"<hidden, {len(value)} bytes>"
            elif isinstance(value, bytes):
                shown = f"<{len(value)} bytes>"
            elif name == "ca_data":
                shown = f"<PEM, {len(value)} characters>"
            elif isinstance(value, ssl.TLSVersion):
                shown = f"ssl.TLSVersion.{value.name}"
            else:
                shown = repr(value)
            parts.append(f"{name}={shown}")
        return f"SecurityCredentials({', '.join(parts)})"


# -- reading identities --------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """A client identity ready for TLS: leaf certificate, chain to send, private key."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    private_key: PrivateKeyTypes = field(repr=False)
    source: str

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()


def _invalid(message: str) -> SecurityError:
    return SecurityError(message, ErrorCode.INVALID_CREDENTIALS)


def _read(value: StrPath | bytes, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    path = os.fspath(value)
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SecurityError(
            f"cannot read the {what} {path!r}: {reason}",
            ErrorCode.INVALID_CREDENTIALS,
            errno=exc.errno,
        ) from exc


def _password_bytes(password: str | bytes | None) -> bytes | None:
    if password is None:
        return None
    return password.encode("utf-8") if isinstance(password, str) else password


def _pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    return [(m.group(1).decode("ascii"), m.group(0)) for m in _PEM_BLOCK.finditer(data)]


def _load_key(data: bytes, password: bytes | None, source: str, *, der: bool = False) -> PrivateKeyTypes:
    """A private key from PEM (or ``der``) bytes, its failures told in the user's terms.

    The one loader for a key in a PEM block and for a DER key file: the same
    password rules hold for both (none given for an encrypted key, a wrong
    one, one given for a key that needs none), only the words for bytes that
    hold no key differ.
    """
    from cryptography.hazmat.primitives.serialization import load_der_private_key, load_pem_private_key

    load = load_der_private_key if der else load_pem_private_key
    try:
        return load(data, password)
    except TypeError as exc:
        if password is None:
            raise _invalid(
                f"the private key in {source} is encrypted; give SecurityCredentials(password=...)"
            ) from exc
        # A password was given but this key is not encrypted: use it as it is.
        return load(data, None)
    except ValueError as exc:
        if password is not None and "password" in str(exc).lower():
            raise _invalid(f"wrong password for the private key in {source}") from exc
        # 200 bytes: "BEGIN ENCRYPTED PRIVATE KEY" (PKCS#8) or "Proc-Type:
        # 4,ENCRYPTED" (traditional) stand in a PEM block's first lines; DER
        # carries no such mark.
        if password is not None and not der and b"ENCRYPTED" in data[:200]:
            # A wrong password usually fails the padding check ("Bad decrypt"),
            # but about one time in 256 the garbage it decrypts to happens to
            # end in valid padding and fails later, as a parse error.
            raise _invalid(
                f"wrong password for the private key in {source} (or the key is damaged: {exc})"
            ) from exc
        if der:
            raise _invalid(f"{source} holds no PEM or DER private key: {exc}") from exc
        raise _invalid(f"cannot read the private key in {source}: {exc}") from exc
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm for exotic keys
        raise _invalid(f"cannot read the private key in {source}: {exc}") from exc


def _load_pem(
    data: bytes, password: bytes | None, source: str
) -> tuple[list[x509.Certificate], list[PrivateKeyTypes]]:
    from cryptography import x509 as _x509

    certs: list[x509.Certificate] = []
    keys: list[PrivateKeyTypes] = []
    for label, block in _pem_blocks(data):
        if label in ("CERTIFICATE", "X509 CERTIFICATE"):
            try:
                certs.append(_x509.load_pem_x509_certificate(block))
            except ValueError as exc:
                raise _invalid(f"a certificate in {source} is damaged: {exc}") from exc
        elif label.endswith("PRIVATE KEY"):
            keys.append(_load_key(block, password, source))
    return certs, keys


def _load_pkcs12(
    data: bytes, password: bytes | None, source: str
) -> tuple[list[x509.Certificate], list[PrivateKeyTypes]]:
    from cryptography.hazmat.primitives.serialization import pkcs12

    # Stores exported "without a password" use either no password or the
    # empty one; a password given for an unprotected store is harmless.
    attempts: list[bytes | None] = [password] if password is not None else []
    attempts += [None, b""]
    for attempt in attempts:
        try:
            key, cert, additional = pkcs12.load_key_and_certificates(data, attempt)
        except ValueError:
            continue
        except Exception as exc:
            raise _invalid(f"cannot read the PKCS#12 store {source}: {exc}") from exc
        certs = ([cert] if cert is not None else []) + list(additional)
        return certs, ([key] if key is not None else [])
    if password is None:
        raise _invalid(
            f"cannot open the PKCS#12 store {source}: it is protected; give SecurityCredentials(password=...)"
            " (or it is not a PKCS#12 or PEM file)"
        )
    raise _invalid(f"wrong password for the PKCS#12 store {source} (or the file is damaged)")


def _spki(public_key: object) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined, no-any-return]


def _key_for(cert: x509.Certificate, keys: Sequence[PrivateKeyTypes]) -> PrivateKeyTypes | None:
    wanted = _spki(cert.public_key())
    for key in keys:
        if _spki(key.public_key()) == wanted:
            return key
    return None


def _normalize_dn(text: str) -> tuple[str, ...]:
    """An RFC 4514 (or OpenSSL "/O=x/CN=y") subject as comparable parts."""
    text = text.strip()
    parts = text.strip("/").split("/") if text.startswith("/") else re.split(r"(?<!\\),", text)
    normalized = []
    for part in parts:
        attribute, sep, value = part.partition("=")
        if not sep:
            return ()
        normalized.append(f"{attribute.strip().upper()}={value.strip().casefold()}")
    return tuple(normalized)


def _common_names(cert: x509.Certificate) -> list[str]:
    from cryptography.x509.oid import NameOID

    return [str(attr.value) for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def _matches(cert: x509.Certificate, cert_name: str) -> bool:
    from cryptography.hazmat.primitives.serialization import Encoding

    wanted = cert_name.strip()
    if any(cn.casefold() == wanted.casefold() for cn in _common_names(cert)):
        return True
    dn = _normalize_dn(wanted)
    if dn:
        subject = _normalize_dn(cert.subject.rfc4514_string())
        if dn in (subject, tuple(reversed(subject))):
            return True
    digits = _HEX_SEPARATORS.sub("", wanted).lower()
    if _HEX.fullmatch(digits):
        der = cert.public_bytes(Encoding.DER)
        if len(digits) == SHA1_HEX_LENGTH:
            return hashlib.sha1(der, usedforsecurity=False).hexdigest() == digits
        if len(digits) == SHA256_HEX_LENGTH:
            return hashlib.sha256(der).hexdigest() == digits
    return False


def _chain_for(leaf: x509.Certificate, certs: Sequence[x509.Certificate]) -> tuple[x509.Certificate, ...]:
    """The issuers of ``leaf`` found among ``certs``, nearest first."""
    chain: list[x509.Certificate] = []
    current = leaf
    for _ in range(MAX_CHAIN_LENGTH):
        if current.issuer == current.subject:
            break  # self-signed: the top
        issuer = next(
            (
                c
                for c in certs
                if c.subject == current.issuer and c != current and c not in chain and c != leaf
            ),
            None,
        )
        if issuer is None:
            break
        chain.append(issuer)
        current = issuer
    return tuple(chain)


def _subjects(certs: Sequence[x509.Certificate]) -> str:
    return "; ".join(c.subject.rfc4514_string() or "(empty subject)" for c in certs) or "no certificates"


def _select(
    certs: list[x509.Certificate],
    keys: list[PrivateKeyTypes],
    cert_name: str | None,
    source: str,
) -> tuple[x509.Certificate, PrivateKeyTypes]:
    if not certs:
        raise _invalid(f"{source} holds no certificate")
    if cert_name is not None:
        candidates = [c for c in certs if _matches(c, cert_name)]
        if not candidates:
            raise SecurityError(
                f"cert_name {cert_name!r} matches no certificate in {source}; it holds: {_subjects(certs)} "
                "(cert_name is a common name, a full subject such as 'CN=name,O=org', "
                "or a SHA-1/SHA-256 thumbprint in hex)",
                ErrorCode.CERTIFICATE_NOT_FOUND,
            )
        for cert in candidates:
            key = _key_for(cert, keys)
            if key is not None:
                return cert, key
        raise _invalid(
            f"cert_name {cert_name!r} selects {_subjects(candidates)} in {source}, "
            "but no private key given matches it (give the matching key with private_key=)"
        )
    if not keys:
        raise _invalid(
            f"{source} holds no private key; give the key with SecurityCredentials(private_key=...)"
        )
    for cert in certs:
        key = _key_for(cert, keys)
        if key is not None:
            return cert, key
    raise _invalid(f"no certificate in {source} matches the private key (it holds: {_subjects(certs)})")


def load_identity(credentials: SecurityCredentials | None) -> Identity | None:
    """Read and check the client identity of ``credentials``, before any network I/O.

    Returns None when no client certificate is configured. Raises
    `SecurityError`: ``INVALID_CREDENTIALS`` for a missing or unreadable
    file, a wrong password, a damaged store or a key that matches no
    certificate; ``CERTIFICATE_NOT_FOUND`` when ``cert_name`` matches nothing.
    """
    if credentials is None or credentials.cert_store is None:
        return None
    from cryptography import x509 as _x509

    store = credentials.cert_store
    source = f"the certificate store {_describe_source(store)}"
    password = _password_bytes(credentials.password)
    data = _read(store, "certificate store")
    if b"-----BEGIN" in data:
        certs, keys = _load_pem(data, password, source)
    else:
        try:
            certs, keys = [_x509.load_der_x509_certificate(data)], []
        except ValueError:
            certs, keys = _load_pkcs12(data, password, source)
    if credentials.private_key is not None:
        key_source = f"the private key file {_describe_source(credentials.private_key)}"
        key_data = _read(credentials.private_key, "private key file")
        if b"-----BEGIN" in key_data:
            _, extra = _load_pem(key_data, password, key_source)
            if not extra:
                raise _invalid(f"{key_source} holds no private key")
        else:
            extra = [_load_key(key_data, password, key_source, der=True)]
        keys = extra + keys
        source = f"{source} with {key_source}"
    leaf, key = _select(certs, keys, credentials.cert_name, source)
    return Identity(leaf, _chain_for(leaf, certs), key, source)


# -- handing an identity to OpenSSL --------------------------------------------------


def _identity_file_content(identity: Identity, password: bytes) -> bytes:
    """Certificate chain (PEM) followed by the key, encrypted under ``password`` (PKCS#8 PEM)."""
    from cryptography.hazmat.primitives.serialization import (
        BestAvailableEncryption,
        Encoding,
        PrivateFormat,
    )

    certs = b"".join(c.public_bytes(Encoding.PEM) for c in (identity.certificate, *identity.chain))
    key = identity.private_key.private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(password)
    )
    return certs + key


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


#: Whether to try the anonymous in-memory file (Linux); tests turn it off to check the fallback.
_USE_MEMFD = hasattr(os, "memfd_create")


def _load_via_memfd(ctx: ssl.SSLContext, content: bytes, password: bytes) -> bool:
    """Load through ``memfd_create``; False when this system cannot (then use the fallback)."""
    if not _USE_MEMFD:
        return False
    try:
        fd = os.memfd_create(MEMFD_NAME, os.MFD_CLOEXEC)
    except OSError:
        logger.debug("memfd_create is not available; using a temporary file for the encrypted key")
        return False
    try:
        path = f"/proc/self/fd/{fd}"
        if not os.path.exists(path):
            return False  # /proc is not mounted
        _write_all(fd, content)
        ctx.load_cert_chain(path, password=password)
    finally:
        os.close(fd)
    return True


def _load_via_tempfile(ctx: ssl.SSLContext, content: bytes, password: bytes) -> None:
    """Fallback: a private temporary file with the certificates and the re-encrypted key."""
    fd, path = tempfile.mkstemp(prefix="inetkit-identity-", suffix=".pem")  # mode 0600
    try:
        try:
            _write_all(fd, content)
        finally:
            os.close(fd)
        ctx.load_cert_chain(path, password=password)
    finally:
        os.unlink(path)


def apply_identity(ctx: ssl.SSLContext, credentials: SecurityCredentials | None) -> None:
    """Load the client identity of ``credentials`` into ``ctx`` without its key touching a file.

    Does nothing when no client certificate is configured. Raises
    `SecurityError` (``INVALID_CREDENTIALS`` / ``CERTIFICATE_NOT_FOUND``), also
    when OpenSSL refuses the identity (for example a key too weak for the
    security level).
    """
    identity = load_identity(credentials)
    if identity is None:
        return
    password = secrets.token_urlsafe(ONE_TIME_PASSWORD_BYTES).encode("ascii")
    content = _identity_file_content(identity, password)
    try:
        if not _load_via_memfd(ctx, content, password):
            _load_via_tempfile(ctx, content, password)
    except ssl.SSLError as exc:
        raise _invalid(
            f"OpenSSL refused the client certificate {identity.subject!r} from {identity.source}: "
            f"{getattr(exc, 'reason', None) or exc} (a key too weak for the security level, or a damaged key)"
        ) from exc
    except OSError as exc:
        raise _invalid(f"cannot hand the client identity from {identity.source} to OpenSSL: {exc}") from exc
