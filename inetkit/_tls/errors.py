"""TLS errors: an `ssl.SSLError` from OpenSSL becomes the `SecurityError` tree.

Theory of operation
-------------------
`map_ssl_error` is the TLS half of inetkit's one error translator
(``_errors.translate_os_error`` hands every `ssl.SSLError` here, and the
non-TLS errors met during a handshake are classified by that translator's
errno table): certificate verification results by their X509 error number,
alerts from the server by OpenSSL's reason string, each with the target and a
hint about what to do. A TLS stream cut without close_notify is not a
`SecurityError` but a `ConnectionClosedError` (`truncated_error`): the data
before it was genuine, only its end is unproven.
"""

from __future__ import annotations

import ssl

from .._errors import (
    CertificateError,
    ConnectionClosedError,
    ErrorCode,
    SecurityError,
    translate_os_error,
)

__all__ = ["map_ssl_error", "truncated_error"]

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

_TRUST_HINT = (
    "if the server uses a private CA, trust it with SecurityCredentials(ca_file=...) or ca_data=, "
    "or trust='system' if it is in the system store"
)
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


#: Codes by which a peer that hung up shows during the handshake.
_CLOSED_CODES = frozenset({ErrorCode.CONNECTION_RESET, ErrorCode.CONNECTION_ABORTED})


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
        # Not from OpenSSL (the socket under the handshake): the one errno
        # table classifies it; during TLS it is a failed exchange all the same.
        base = translate_os_error(exc, action="TLS with", target=target)
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        if base.code in _CLOSED_CODES:
            message = f"{prefix}: {_EOF_MESSAGE} ({reason})"
        else:
            message = f"{prefix}: the TLS exchange failed: {reason}"
        return SecurityError(message, ErrorCode.HANDSHAKE_FAILED, errno=base.errno)
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


def truncated_error(target: str) -> ConnectionClosedError:
    """The error for a TLS stream that ended without close_notify (a bare TCP FIN).

    Everything decrypted before the end was authentic and has been
    delivered; what is not proven is that the stream ended where the server
    meant it to (an attacker, or a crashed server, can cut it short). Go's
    crypto/tls, trio and curl report this too, instead of a clean end.
    """
    return ConnectionClosedError(
        f"read from {target}: the TLS stream ended without close_notify (the TCP connection was "
        "closed under it); the data may be cut short",
        ErrorCode.TLS_TRUNCATED,
    )
