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

*Trust anchors.* ``ca_file``/``ca_data`` when given; otherwise
``SecurityCredentials.trust`` picks the certifi bundle, the system store or
both. The system store is OpenSSL's default file and directory
(``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` override them, as for
`ssl.SSLContext.set_default_verify_paths`). The paths are resolved once per
connect, when the cache key is made, and the context is built from exactly
those paths (not by asking OpenSSL again), so a key always describes the
anchors of its context. A missing location is skipped, as OpenSSL skips it;
one named by the environment and not usable logs a warning.

*Key logging.* When ``SSLKEYLOGFILE`` is set (and not empty), every context
writes its TLS secrets there in the NSS key log format
(`ssl.SSLContext.keylog_filename`), as curl, browsers and
`ssl.create_default_context` do, so Wireshark can decrypt a capture. A
warning says so once per process. A file inetkit creates gets mode 0600
(it holds secrets). A path that cannot be opened logs a warning and the
context is built without key logging: a debugging aid never breaks a
connection (curl and browsers also go on silently).

*The context cache.* Building a context and parsing a CA bundle costs
milliseconds, far too much per connection, so contexts live in a bounded LRU
cache shared by the process. The key is the TLS-relevant option bits, the
whole `SecurityCredentials` value (hashable by design), for every file
it names (and the certifi bundle, and the system store's file and
directories when ``trust`` uses them) the file's path, modification time,
size and inode, so that a replaced certificate or CA file, or a changed
``SSL_CERT_FILE``, is picked up by the next connect (one ``stat`` per file
per connect, about a microsecond each), and the ``SSLKEYLOGFILE`` path (not
stamped: the file grows with every handshake). A
context handed out by the cache is shared: it is never mutated after it is
built. The TLS engine only wraps it
(``ctx.wrap_bio(incoming, outgoing, server_hostname=..., session=...)``).
"""

from __future__ import annotations

import functools
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

#: The environment variable naming the file every context logs its TLS secrets to.
KEYLOG_VARIABLE = "SSLKEYLOGFILE"
#: Mode of a key log file inetkit creates: its owner only, the file holds secrets.
KEYLOG_FILE_MODE = 0o600

# -- the context factory -------------------------------------------------------------

FileStamp = tuple[str, int, int, int] | tuple[str, None]
#: The system store's locations: OpenSSL's trust file and its certificate directories.
SystemPaths = tuple[str, tuple[str, ...]]
#: (option bits, credentials, file stamps, system store paths or None, key log path or None).
ContextKey = tuple[int, SecurityCredentials | None, tuple[FileStamp, ...], SystemPaths | None, str | None]

_contexts: LRU[ContextKey, ssl.SSLContext] = LRU(CONTEXT_CACHE_SIZE)
#: Serializes context builds so that concurrent first connects build one context, not N.
_build_lock = threading.Lock()
#: Whether the once-per-process SSLKEYLOGFILE warning was logged (set under _build_lock).
_keylog_warned = False


def _stamp(path: str | os.PathLike[str]) -> FileStamp:
    name = os.fspath(path)
    try:
        st = os.stat(name)
    except OSError:
        # A named file: the build reports the problem and nothing is cached. A system
        # store location: skipped; the stamp changes once it appears.
        return (name, None)
    return (name, st.st_mtime_ns, st.st_size, st.st_ino)


def _trust_sources(credentials: SecurityCredentials | None, options: int) -> tuple[bool, bool]:
    """(certifi bundle, system store): which default anchors a context loads."""
    if options & _TRUSTEDSITE:
        return (False, False)  # nothing is verified: no anchors to parse
    if credentials is None:
        return (True, False)
    if credentials.ca_file is not None or credentials.ca_data is not None:
        return (False, False)  # they replace the defaults
    trust = credentials.trust
    return (trust != "system", trust != "certifi")


@functools.cache
def _openssl_defaults() -> ssl.DefaultVerifyPaths:
    """OpenSSL's compiled-in trust locations and the names of the variables that override them."""
    return ssl.get_default_verify_paths()


def _system_paths() -> SystemPaths:
    """The system store's file and directories now, as OpenSSL's default-paths lookup finds them.

    OpenSSL takes ``SSL_CERT_FILE`` when it is set (even to the empty
    string) and its compiled-in file otherwise; likewise ``SSL_CERT_DIR``, a
    list of directories separated like ``PATH``.
    """
    defaults = _openssl_defaults()
    environ = os.environ
    cafile = environ.get(defaults.openssl_cafile_env, defaults.openssl_cafile)
    capath = environ.get(defaults.openssl_capath_env, defaults.openssl_capath)
    return (cafile, tuple(part for part in capath.split(os.pathsep) if part))


def _context_key(credentials: SecurityCredentials | None, options: int) -> ContextKey:
    bits = int(options) & _TLS_OPTION_BITS
    stamps: list[FileStamp] = []
    if credentials is not None:
        for value in (credentials.cert_store, credentials.private_key, credentials.ca_file):
            if value is not None and not isinstance(value, bytes):
                stamps.append(_stamp(value))
    use_certifi, use_system = _trust_sources(credentials, bits)
    if use_certifi:
        import certifi

        stamps.append(_stamp(certifi.where()))
    system: SystemPaths | None = None
    if use_system:
        system = _system_paths()
        stamps.append(_stamp(system[0]))
        stamps.extend(_stamp(directory) for directory in system[1])
    keylog = os.environ.get(KEYLOG_VARIABLE) or None  # empty means not set, as curl reads it
    return (bits, credentials, tuple(stamps), system, keylog)


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
            ctx = _build_context(credentials, key[0], system=key[3], keylog=key[4])
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


def _skipped_location(variable: str, path: str, reason: str) -> None:
    logger.warning(
        "%s names %r, which holds no usable trust anchors (%s); it is skipped, "
        "and servers only it would vouch for fail verification",
        variable,
        path,
        reason,
    )


def _load_system_trust(ctx: ssl.SSLContext, paths: SystemPaths) -> None:
    """Load the system store from ``paths`` as OpenSSL's default-paths lookup would.

    A location that is missing or cannot be read is skipped (OpenSSL
    ignores those too); when the environment named it, a warning says so,
    since the variable then trusts nothing.
    """
    defaults = _openssl_defaults()
    cafile, directories = paths
    named = defaults.openssl_cafile_env in os.environ  # SSL_CERT_FILE chose it
    if os.path.isfile(cafile):
        try:
            ctx.load_verify_locations(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            if named:
                reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
                _skipped_location(defaults.openssl_cafile_env, cafile, reason)
    elif named:
        _skipped_location(defaults.openssl_cafile_env, cafile, "not a file")
    named = defaults.openssl_capath_env in os.environ
    for directory in directories:
        if os.path.isdir(directory):
            # Certificates in a hashed directory are read when a verification needs them.
            ctx.load_verify_locations(capath=directory)
        elif named:
            _skipped_location(defaults.openssl_capath_env, directory, "not a directory")


def _enable_keylog(ctx: ssl.SSLContext, path: str) -> None:
    """Log this context's TLS secrets to ``path`` (``SSLKEYLOGFILE``); a warning instead if it cannot."""
    global _keylog_warned
    try:
        # Create it owner-only before OpenSSL opens it (fopen would use the umask, often 0644);
        # O_NONBLOCK: a FIFO without a reader fails here rather than blocking the connect.
        fd = os.open(
            path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, KEYLOG_FILE_MODE
        )
        os.close(fd)
        ctx.keylog_filename = path
    except OSError as exc:
        logger.warning(
            "%s=%r cannot be opened for writing (%s): TLS secrets are not logged",
            KEYLOG_VARIABLE,
            path,
            exc.strerror or exc,
        )
        return
    if not _keylog_warned:
        _keylog_warned = True
        logger.warning(
            "%s is set: the TLS secrets of inetkit's connections are written to %r; "
            "anyone who can read that file can decrypt traffic captured from them",
            KEYLOG_VARIABLE,
            path,
        )


def _load_trust(
    ctx: ssl.SSLContext,
    credentials: SecurityCredentials | None,
    options: int,
    system: SystemPaths | None,
) -> None:
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
    use_certifi, _ = _trust_sources(credentials, options)
    if use_certifi:
        import certifi

        ctx.load_verify_locations(cafile=certifi.where())
    if system is not None:
        _load_system_trust(ctx, system)


def _build_context(
    credentials: SecurityCredentials | None,
    options: int,
    *,
    system: SystemPaths | None = None,
    keylog: str | None = None,
) -> ssl.SSLContext:
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
    _load_trust(ctx, credentials, options, system)
    if credentials is not None:
        if credentials.alpn_protocols:
            ctx.set_alpn_protocols(list(credentials.alpn_protocols))
        if credentials.cert_store is not None:
            apply_identity(ctx, credentials)
            # TLS 1.3 servers that ask for a certificate after the handshake
            # (per-resource client authentication) need this extension.
            ctx.post_handshake_auth = True
    if keylog is not None:
        _enable_keylog(ctx, keylog)
    return ctx
