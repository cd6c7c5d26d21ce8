"""The one TLS context factory and its cache.

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
connect (one ``stat`` per file per connect, about a microsecond each). A
context handed out by the cache is shared: it is never mutated after it is
built. The TLS engine only wraps it
(``ctx.wrap_bio(incoming, outgoing, server_hostname=..., session=...)``).
"""

from __future__ import annotations

import os
import ssl
import threading
import time
import warnings

from .._credentials import SecurityCredentials, apply_identity
from .._errors import ErrorCode, SecurityError
from .._log import logger
from .._types import Option
from .cache import LRU

__all__ = [
    "CONTEXT_CACHE_SIZE",
    "DEFAULT_CIPHERS",
    "clear_context_cache",
    "context_cache_size",
    "get_context",
]


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

# -- the context factory -------------------------------------------------------------

FileStamp = tuple[str, int, int, int] | tuple[str, None]
ContextKey = tuple[int, SecurityCredentials | None, tuple[FileStamp, ...]]

_contexts: LRU[ContextKey, ssl.SSLContext] = LRU(CONTEXT_CACHE_SIZE)
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
