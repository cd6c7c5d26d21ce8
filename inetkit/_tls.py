"""TLS configuration: the one context factory, error mapping, pins, sessions, `SecurityInfo`.

Theory of operation
-------------------
*One factory.* `get_context` is the only place that makes an
`ssl.SSLContext`. It applies inetkit's policy whatever the system's OpenSSL
configuration says: verification on, host name (or IP address) checked,
TLS 1.2 minimum, security level 2 (written into the cipher string, which is
where OpenSSL takes it from), no compression, no renegotiation, the certifi
bundle unless ``ca_file``/``ca_data`` are given. `Option.SECURE_FALLBACK`
lowers the floor to TLS 1.0 and security level 0; `Option.TRUSTEDSITE` turns
off certificate and name checks. Each logs a warning every time it is used.

*The context cache.* Building a context and parsing a CA bundle costs
milliseconds, far too much per connection, so contexts live in a bounded LRU
cache shared by the process. The key is the TLS-relevant option bits, the
whole `SecurityCredentials` value (hashable by design) and, for every file
it names (and the certifi bundle), the file's modification time, size and
inode, so that a replaced certificate or CA file is picked up by the next
connect. A context handed out by the cache is shared: it is never mutated
after it is built. The record engine only wraps it
(``ctx.wrap_bio(incoming, outgoing, server_hostname=..., session=...)``).

*Sessions.* `SessionCache` keeps one resumable session per (server name,
port, context). The context object itself is part of the key, not only the
settings: OpenSSL resumes a session only under the context that made it
(CPython refuses the mix with ``ValueError``), and a session made with
certificate checks off (`Option.TRUSTEDSITE`, another context) can therefore
never be offered by a verifying connect. A cached session keeps its context
alive, so the key cannot be confused with a later context.

*Errors.* `map_ssl_error` turns an `ssl.SSLError` into the `SecurityError`
tree: certificate verification results by their X509 error number, alerts
from the server by OpenSSL's reason string, each with the target and a hint
about what to do.
"""

from __future__ import annotations

import base64
import datetime
import errno as _errno
import hashlib
import logging
import os
import ssl
import threading
import time
import typing
import warnings
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from ._credentials import PIN_PREFIX, SecurityCredentials, apply_identity
from ._errors import CertificateError, ErrorCode, InvalidArgumentError, SecurityError
from ._options import Option

if TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "DEFAULT_CIPHERS",
    "SESSION_CACHE",
    "CertificateInfo",
    "SecurityInfo",
    "SessionCache",
    "check_pins",
    "clear_context_cache",
    "context_cache_size",
    "get_context",
    "map_ssl_error",
    "public_key_pin",
    "session_key",
]

logger = logging.getLogger("inetkit")

# -- policy --------------------------------------------------------------------------

#: TLS 1.2 suites by default: forward secrecy and AEAD only (TLS 1.3 suites are OpenSSL's).
DEFAULT_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS"
#: Security level 2: RSA/DH keys under 2048 bits and SHA-1 signatures are refused.
DEFAULT_SECURITY_LEVEL = 2
#: SECURE_FALLBACK: OpenSSL's whole default list, at the level that still allows TLS 1.0/1.1.
FALLBACK_CIPHERS = "DEFAULT"
FALLBACK_SECURITY_LEVEL = 0
DEFAULT_MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
FALLBACK_MINIMUM_VERSION = ssl.TLSVersion.TLSv1
#: SSL_OP_LEGACY_SERVER_CONNECT: talk to servers without RFC 5746 secure
#: renegotiation (OpenSSL 3 refuses them); Python names it only from 3.12.
OP_LEGACY_SERVER_CONNECT = getattr(ssl, "OP_LEGACY_SERVER_CONNECT", 0x4)

#: The option bits that change a context; the others are socket-level.
TLS_OPTION_BITS = Option.TRUSTEDSITE | Option.SECURE_FALLBACK
# Flag tests on plain ints: an IntFlag operation builds a new enum member
# (about a microsecond), and these run on every TLS connect.
_TRUSTEDSITE = int(Option.TRUSTEDSITE)
_SECURE_FALLBACK = int(Option.SECURE_FALLBACK)
_TLS_OPTION_BITS = int(TLS_OPTION_BITS)

#: Contexts kept: one per distinct (options, credentials); each holds a parsed CA bundle (~1 MB).
CONTEXT_CACHE_SIZE = 64
#: Sessions kept: one per (server, port, context); a session is a few KB.
SESSION_CACHE_SIZE = 256

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _LRU(Generic[K, V]):
    """A small thread-safe least-recently-used map."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise InvalidArgumentError(
                f"cache size must be at least 1, got {maxsize}", ErrorCode.INVALID_ARGUMENT
            )
        self.maxsize = maxsize
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)

    def pop(self, key: K) -> None:
        with self._lock:
            self._items.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


# -- the context factory -------------------------------------------------------------

FileStamp = tuple[str, int, int, int] | tuple[str, None]
ContextKey = tuple[int, SecurityCredentials | None, tuple[FileStamp, ...]]

_contexts: _LRU[ContextKey, ssl.SSLContext] = _LRU(CONTEXT_CACHE_SIZE)
#: Serializes context builds so that concurrent first connects build one context, not N.
_build_lock = threading.Lock()


def _stamp(path: str | os.PathLike[str]) -> FileStamp:
    name = os.fspath(path)
    try:
        st = os.stat(name)
    except OSError:
        return (name, None)  # the build reports the problem; nothing is cached then
    return (name, st.st_mtime_ns, st.st_size, st.st_ino)


def _uses_default_bundle(credentials: SecurityCredentials | None, options: int) -> bool:
    if options & _TRUSTEDSITE:
        return False
    return credentials is None or (credentials.ca_file is None and credentials.ca_data is None)


def _context_key(credentials: SecurityCredentials | None, options: int) -> ContextKey:
    bits = int(options) & _TLS_OPTION_BITS
    stamps: list[FileStamp] = []
    if credentials is not None:
        for value in (credentials.cert_store, credentials.private_key, credentials.ca_file):
            if value is not None and not isinstance(value, bytes):
                stamps.append(_stamp(value))
    if _uses_default_bundle(credentials, bits):
        import certifi

        stamps.append(_stamp(certifi.where()))
    return (bits, credentials, tuple(stamps))


def _warn_weakened(options: int, target: str | None) -> None:
    if not options & _TLS_OPTION_BITS:
        return
    where = target or "the server"
    if options & _TRUSTEDSITE:
        logger.warning(
            "Option.TRUSTEDSITE: the certificate and host name of %s are NOT verified; "
            "anyone on the network path can pose as the server",
            where,
        )
    if options & _SECURE_FALLBACK:
        logger.warning(
            "Option.SECURE_FALLBACK: TLS 1.0/1.1, weak cipher suites and weak keys "
            "(OpenSSL security level 0) are allowed with %s",
            where,
        )


def get_context(
    credentials: SecurityCredentials | None,
    options: Option | int,
    *,
    target: str | None = None,
    warn: bool = True,
) -> ssl.SSLContext:
    """The client `ssl.SSLContext` for these credentials and options, built once and cached.

    Loads and checks the credentials (client identity, CA file) before any
    network I/O: `SecurityError` (``INVALID_CREDENTIALS``,
    ``CERTIFICATE_NOT_FOUND``) or `InvalidArgumentError` come from here.

    With ``warn`` (the default), `Option.TRUSTEDSITE` and
    `Option.SECURE_FALLBACK` log a warning on every call, cache hit or not,
    naming ``target`` when given. A caller that calls this twice for one
    connection passes ``warn=False`` on one of the calls.

    The returned context is shared and must not be modified; wrap it with
    ``ctx.wrap_bio(...)`` or ``ctx.wrap_socket(...)`` only.
    """
    if credentials is not None and not isinstance(credentials, SecurityCredentials):
        raise TypeError(f"credentials must be inetkit.SecurityCredentials, not {type(credentials).__name__}")
    if isinstance(options, bool) or not isinstance(options, int):
        raise TypeError(f"options must be an Option (int flags), not {type(options).__name__}")
    if warn:
        _warn_weakened(int(options), target)
    key = _context_key(credentials, options)
    ctx = _contexts.get(key)
    if ctx is not None:
        return ctx
    with _build_lock:
        ctx = _contexts.get(key)  # another thread may have built it meanwhile
        if ctx is None:
            started = time.monotonic()
            ctx = _build_context(credentials, key[0])
            _contexts.put(key, ctx)
            logger.debug("built a TLS context in %.1f ms", (time.monotonic() - started) * 1000)
    return ctx


def clear_context_cache() -> None:
    """Forget every cached context (the next connect builds afresh)."""
    _contexts.clear()


def context_cache_size() -> int:
    """How many contexts are cached now."""
    return len(_contexts)


def _set_versions(ctx: ssl.SSLContext, minimum: ssl.TLSVersion, maximum: ssl.TLSVersion) -> None:
    with warnings.catch_warnings():
        # Python 3.10+ deprecates TLS 1.0/1.1 with a DeprecationWarning when
        # they are set; lowering the floor is SECURE_FALLBACK's whole point.
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = minimum
        ctx.maximum_version = maximum


def _load_trust(ctx: ssl.SSLContext, credentials: SecurityCredentials | None, options: int) -> None:
    ca_file = credentials.ca_file if credentials is not None else None
    ca_data = credentials.ca_data if credentials is not None else None
    if ca_file is not None:
        name = os.fspath(ca_file)
        try:
            ctx.load_verify_locations(cafile=name)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
            raise SecurityError(
                f"cannot load the trust anchors in ca_file {name!r}: {reason} "
                "(it must be a PEM file of CA certificates)",
                ErrorCode.INVALID_CREDENTIALS,
                errno=exc.errno if not isinstance(exc, ssl.SSLError) else None,
            ) from exc
    if ca_data is not None:
        data: str | bytes = ca_data
        if isinstance(data, bytes) and b"-----BEGIN" in data:
            data = data.decode("ascii", errors="replace")  # PEM is passed to ssl as text
        try:
            ctx.load_verify_locations(cadata=data)
        except (ssl.SSLError, ValueError) as exc:
            raise SecurityError(
                f"cannot load the trust anchors in ca_data: {exc} "
                "(it must be PEM text or DER bytes of CA certificates)",
                ErrorCode.INVALID_CREDENTIALS,
            ) from exc
    if _uses_default_bundle(credentials, options):
        import certifi

        ctx.load_verify_locations(cafile=certifi.where())


def _build_context(credentials: SecurityCredentials | None, options: int) -> ssl.SSLContext:
    fallback = bool(options & _SECURE_FALLBACK)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname on
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    if fallback:
        ctx.options |= OP_LEGACY_SERVER_CONNECT
    ciphers = (credentials.ciphers if credentials is not None else None) or (
        FALLBACK_CIPHERS if fallback else DEFAULT_CIPHERS
    )
    if "@SECLEVEL=" not in ciphers.upper():
        # The security level is part of the cipher string; setting it here
        # overrides whatever the system's openssl.cnf says.
        level = FALLBACK_SECURITY_LEVEL if fallback else DEFAULT_SECURITY_LEVEL
        ciphers = f"{ciphers}@SECLEVEL={level}"
    ctx.set_ciphers(ciphers)
    minimum = credentials.min_version if credentials is not None else None
    maximum = credentials.max_version if credentials is not None else None
    _set_versions(
        ctx,
        minimum or (FALLBACK_MINIMUM_VERSION if fallback else DEFAULT_MINIMUM_VERSION),
        maximum or ssl.TLSVersion.MAXIMUM_SUPPORTED,
    )
    if options & _TRUSTEDSITE:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        # A trust anchor that is an intermediate (or a leaf) in ca_file is
        # enough, as in Python 3.13's default context.
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    _load_trust(ctx, credentials, options)
    if credentials is not None:
        if credentials.alpn_protocols:
            ctx.set_alpn_protocols(list(credentials.alpn_protocols))
        if credentials.cert_store is not None:
            apply_identity(ctx, credentials)
            # TLS 1.3 servers that ask for a certificate after the handshake
            # (per-resource client authentication) need this extension.
            ctx.post_handshake_auth = True
    return ctx


# -- error mapping -------------------------------------------------------------------

#: X509 verification errors (OpenSSL x509_vfy.h) with their own codes.
X509_V_ERR_CERT_NOT_YET_VALID = 9
X509_V_ERR_CERT_HAS_EXPIRED = 10
X509_V_ERR_HOSTNAME_MISMATCH = 62
X509_V_ERR_EMAIL_MISMATCH = 63
X509_V_ERR_IP_ADDRESS_MISMATCH = 64

_VERIFY_CODES: dict[int, tuple[ErrorCode, str]] = {
    X509_V_ERR_CERT_HAS_EXPIRED: (
        ErrorCode.CERTIFICATE_EXPIRED,
        "the server's certificate has expired; check the server, and this machine's clock",
    ),
    X509_V_ERR_CERT_NOT_YET_VALID: (
        ErrorCode.CERTIFICATE_NOT_YET_VALID,
        "the server's certificate is not valid yet; check this machine's clock",
    ),
    X509_V_ERR_HOSTNAME_MISMATCH: (
        ErrorCode.CERTIFICATE_NAME_MISMATCH,
        "the certificate was issued for other names; connect with a name it lists",
    ),
    X509_V_ERR_EMAIL_MISMATCH: (
        ErrorCode.CERTIFICATE_NAME_MISMATCH,
        "the certificate is for another address",
    ),
    X509_V_ERR_IP_ADDRESS_MISMATCH: (
        ErrorCode.CERTIFICATE_NAME_MISMATCH,
        "the certificate does not list this IP address; connect by a host name it lists",
    ),
}

_TRUST_HINT = "if the server uses a private CA, trust it with SecurityCredentials(ca_file=...) or ca_data="
#: Hints for the X509 errors that all mean "not trusted".
_UNTRUSTED_HINTS: dict[int, str] = {
    2: "the issuer of a certificate in the chain is unknown; " + _TRUST_HINT,  # UNABLE_TO_GET_ISSUER_CERT
    7: "a signature in the chain does not verify",  # CERT_SIGNATURE_FAILURE
    18: "the server sent a self-signed certificate that is not a trust anchor; " + _TRUST_HINT,
    19: "the chain ends at a root CA that is not trusted; " + _TRUST_HINT,
    20: "the issuer is unknown: the server may not send its intermediate certificates, or " + _TRUST_HINT,
    21: "the issuer is unknown: the server may not send its intermediate certificates, or " + _TRUST_HINT,
    24: "a certificate in the chain is not a CA certificate",  # INVALID_CA
    26: "the certificate is not meant for TLS servers (its extended key usage)",  # INVALID_PURPOSE
    27: "the root CA is not trusted for this purpose",  # CERT_UNTRUSTED
    28: "the root CA is explicitly rejected",  # CERT_REJECTED
    23: "the certificate has been revoked",  # CERT_REVOKED
    66: "the server's key is too weak for security level 2; Option.SECURE_FALLBACK accepts it",
    67: "a CA key in the chain is too weak for security level 2; Option.SECURE_FALLBACK accepts it",
    68: "a signature in the chain uses a weak digest (SHA-1, MD5); Option.SECURE_FALLBACK accepts it",
}

#: Alerts by which a server refuses our client certificate (RFC 8446 section 6.2).
_REJECTED_ALERTS: dict[str, str] = {
    "SSLV3_ALERT_BAD_CERTIFICATE": "bad_certificate (42)",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "unsupported_certificate (43)",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "certificate_revoked (44)",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "certificate_expired (45)",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "certificate_unknown (46)",
    "TLSV1_ALERT_UNKNOWN_CA": "unknown_ca (48)",
    "TLSV1_ALERT_ACCESS_DENIED": "access_denied (49)",
}
_REQUIRED_ALERT = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
_HANDSHAKE_FAILURE_ALERT = "SSLV3_ALERT_HANDSHAKE_FAILURE"

_VERSION_REASONS: dict[str, str] = {
    "UNSUPPORTED_PROTOCOL": "the server supports no TLS version we allow",
    "TLSV1_ALERT_PROTOCOL_VERSION": "the server refused our TLS version (protocol_version alert 70)",
    "NO_PROTOCOLS_AVAILABLE": "no TLS version is allowed by min_version/max_version",
    "VERSION_TOO_LOW": "the server offered a TLS version below our minimum",
    "VERSION_TOO_HIGH": "the server offered a TLS version above our maximum",
    "WRONG_SSL_VERSION": "the server answered with an unexpected TLS version",
    "TLSV1_ALERT_INAPPROPRIATE_FALLBACK": "the server refused a downgraded TLS version (alert 86)",
}
_VERSION_HINT = (
    "servers that speak only TLS 1.0/1.1 need Option.SECURE_FALLBACK; check min_version/max_version"
)

_PLAINTEXT_REASONS = frozenset({"WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "PACKET_LENGTH_TOO_LONG"})
_PLAINTEXT_HINT = (
    "the port probably speaks plaintext first (use starttls=...), "
    "or TLS was used where the server expects plaintext"
)

_WEAK_PEER_REASONS: dict[str, str] = {
    "DH_KEY_TOO_SMALL": "the server's Diffie-Hellman key is too small for security level 2",
    "UNSAFE_LEGACY_RENEGOTIATION_DISABLED": "the server does not support secure renegotiation (RFC 5746)",
    "TLSV1_ALERT_INSUFFICIENT_SECURITY": (
        "the server wants stronger cipher suites (insufficient_security alert 71)"
    ),
    "NO_CIPHERS_AVAILABLE": "no cipher suite is allowed by the configured cipher string",
    "NO_SHARED_CIPHER": "we share no cipher suite with the server",
}

_EOF_MESSAGE = (
    "the server closed the connection during the handshake (it may not speak TLS on this port, "
    "refuse our TLS version or ciphers, or require a client certificate)"
)


#: errno values by which a peer that hung up shows during the handshake.
_CLOSED_ERRNOS = frozenset({_errno.EPIPE, _errno.ECONNRESET, _errno.ECONNABORTED})


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason.upper()
    text = str(exc)
    if text.startswith("[") and "]" in text:
        # "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"
        return text[1 : text.index("]")].partition(":")[2].strip().upper()
    return ""


def _describe(exc: BaseException) -> str:
    """The OpenSSL message without the "[SSL: X]" prefix and the "(_ssl.c:N)" suffix."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if text.startswith("[") and "] " in text:
        text = text.split("] ", 1)[1]
    if text.endswith(")") and "(_ssl.c:" in text:
        text = text[: text.rindex("(_ssl.c:")].rstrip()
    return text


def _copy_ssl_attributes(err: SecurityError, exc: BaseException) -> SecurityError:
    # Code written for ssl.SSLError reads .reason and .library; keep them.
    err.reason = getattr(exc, "reason", None)
    err.library = getattr(exc, "library", None)
    return err


def map_ssl_error(exc: BaseException, *, target: str, credentials_given: bool) -> SecurityError:
    """Turn an error from the TLS handshake (or a later TLS read/write) into a `SecurityError`.

    ``target`` names the host, port and address for the message;
    ``credentials_given`` says whether a client certificate was configured
    (it decides how a bare handshake failure is explained). The caller
    raises the result ``from exc``. A `SecurityError` is returned as it is.
    """
    if isinstance(exc, SecurityError):
        return exc
    prefix = f"TLS with {target}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        verify_code = getattr(exc, "verify_code", None)
        verify_message = getattr(exc, "verify_message", None) or _describe(exc)
        code, hint = _VERIFY_CODES.get(verify_code or -1, (ErrorCode.CERTIFICATE_UNTRUSTED, ""))
        if code is ErrorCode.CERTIFICATE_UNTRUSTED:
            hint = _UNTRUSTED_HINTS.get(verify_code or -1, "")
        message = f"{prefix}: certificate verify failed: {verify_message}"
        if hint:
            message = f"{message} ({hint})"
        cert_err = CertificateError(message, code)
        cert_err.verify_code = verify_code  # type: ignore[assignment]
        cert_err.verify_message = verify_message
        return _copy_ssl_attributes(cert_err, exc)
    if isinstance(exc, ssl.SSLEOFError):
        return _copy_ssl_attributes(
            SecurityError(f"{prefix}: {_EOF_MESSAGE}", ErrorCode.HANDSHAKE_FAILED), exc
        )
    if not isinstance(exc, ssl.SSLError):
        value = getattr(exc, "errno", None)
        errno = value if isinstance(value, int) else None
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        if errno in _CLOSED_ERRNOS:
            message = f"{prefix}: {_EOF_MESSAGE} ({reason})"
        else:
            message = f"{prefix}: the TLS exchange failed: {reason}"
        return SecurityError(
            message, ErrorCode.HANDSHAKE_FAILED, errno=errno if isinstance(errno, int) else None
        )
    reason = _reason(exc)
    detail = _describe(exc)
    code = ErrorCode.HANDSHAKE_FAILED
    if reason == _REQUIRED_ALERT:
        code = ErrorCode.CLIENT_CERTIFICATE_REQUIRED
        message = f"{prefix}: the server requires a client certificate (certificate_required alert 116)" + (
            "" if credentials_given else "; give one with SecurityCredentials(cert_store=...)"
        )
    elif reason in _REJECTED_ALERTS:
        alert = _REJECTED_ALERTS[reason]
        if credentials_given:
            code = ErrorCode.CLIENT_CERTIFICATE_REJECTED
            message = (
                f"{prefix}: the server rejected our client certificate ({alert} alert); "
                "check that the server trusts its CA and that it is valid"
            )
        else:
            code = ErrorCode.CLIENT_CERTIFICATE_REQUIRED
            message = (
                f"{prefix}: the server refused the connection without a client certificate ({alert} alert); "
                "give one with SecurityCredentials(cert_store=...)"
            )
    elif reason == _HANDSHAKE_FAILURE_ALERT:
        if credentials_given:
            message = (
                f"{prefix}: the server aborted the handshake (handshake_failure alert 40): it shares no "
                "TLS version or cipher suite with us, or it refused our client certificate"
            )
        else:
            message = (
                f"{prefix}: the server aborted the handshake (handshake_failure alert 40): the server may "
                "require a client certificate, and none was given (SecurityCredentials(cert_store=...)); "
                "or it shares no TLS version or cipher suite with us (Option.SECURE_FALLBACK allows "
                "legacy servers)"
            )
    elif reason in _VERSION_REASONS:
        code = ErrorCode.PROTOCOL_VERSION
        message = f"{prefix}: {_VERSION_REASONS[reason]} ({_VERSION_HINT})"
    elif reason in _PLAINTEXT_REASONS:
        message = f"{prefix}: {detail}: the reply is not TLS ({_PLAINTEXT_HINT})"
    elif reason in _WEAK_PEER_REASONS:
        message = f"{prefix}: {_WEAK_PEER_REASONS[reason]} (Option.SECURE_FALLBACK allows legacy servers)"
    elif reason == "UNEXPECTED_EOF_WHILE_READING":
        message = f"{prefix}: {_EOF_MESSAGE}"
    else:
        message = f"{prefix}: {detail}"
    return _copy_ssl_attributes(SecurityError(message, code), exc)


# -- certificates and pins -----------------------------------------------------------


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


@typing.final
@dataclass(frozen=True)
class SecurityInfo:
    """What a secure connection negotiated.

    Attributes:
        protocol: ``"TLSv1"`` ... ``"TLSv1.3"`` (the `ssl` module's names).
        cipher: the OpenSSL cipher suite name.
        cipher_bits: the suite's secret bits.
        alpn_protocol: the protocol the server chose by ALPN, or None.
        session_reused: True when an earlier session was resumed.
        peer_certificate: the server's certificate, or None when it sent none.
    """

    protocol: str
    cipher: str
    cipher_bits: int
    alpn_protocol: str | None
    session_reused: bool
    peer_certificate: CertificateInfo | None

    @classmethod
    def from_sslobject(cls, obj: ssl.SSLObject | ssl.SSLSocket) -> SecurityInfo:
        """Read the negotiated parameters after the handshake.

        The peer certificate comes from ``getpeercert(binary_form=True)``,
        which works with verification off too.
        """
        cipher = obj.cipher()
        name, bits = (cipher[0], int(cipher[2] or 0)) if cipher else ("", 0)
        der = obj.getpeercert(binary_form=True)
        return cls(
            protocol=obj.version() or "",
            cipher=name,
            cipher_bits=bits,
            alpn_protocol=obj.selected_alpn_protocol(),
            session_reused=bool(obj.session_reused),
            peer_certificate=CertificateInfo.from_der(der) if der else None,
        )


# -- session resumption --------------------------------------------------------------

SessionKey = tuple[str, int, ssl.SSLContext]


def session_key(server_name: str, port: int, context: ssl.SSLContext) -> SessionKey:
    """The session cache key: server name (as verified, without a trailing dot), port, context."""
    return (server_name.rstrip(".").lower(), int(port), context)


class SessionCache:
    """A bounded, thread-safe LRU cache of resumable TLS sessions.

    Keys come from `session_key`. Only resumable sessions are kept (a TLS 1.3
    ticket, or a TLS 1.2 session id); expired ones are dropped when looked up.
    """

    def __init__(self, maxsize: int = SESSION_CACHE_SIZE) -> None:
        self._cache: _LRU[Hashable, ssl.SSLSession] = _LRU(maxsize)

    @property
    def maxsize(self) -> int:
        return self._cache.maxsize

    def get(self, key: Hashable) -> ssl.SSLSession | None:
        """The session to offer for ``key``, or None."""
        session = self._cache.get(key)
        if session is None:
            return None
        if session.timeout and session.time + session.timeout <= time.time():
            self._cache.pop(key)
            return None
        return session

    def put(self, key: Hashable, session: ssl.SSLSession | None) -> None:
        """Keep ``session`` for ``key`` if it can be resumed."""
        if session is None or not (session.has_ticket or session.id):
            return
        self._cache.put(key, session)

    def clear(self) -> None:
        self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)


#: The process-wide session cache.
SESSION_CACHE = SessionCache()
