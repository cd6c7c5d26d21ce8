"""TLS configuration, one module per concern.

* ``context``: the one context factory and its cache;
* ``errors``: `ssl.SSLError` -> the `SecurityError` tree (the TLS half of
  ``_errors.translate_os_error``);
* ``certinfo``: `CertificateInfo`, `SecurityInfo`, public-key pins;
* ``sessions``: the session cache and its key;
* ``cache``: the small LRU map both caches use.

The TLS engine itself (``_core.tls_engine``, no I/O) and its blocking driver
(``_tls_io``) build on these.
"""

from .certinfo import CertificateInfo, SecurityInfo, check_pins, public_key_pin
from .context import (
    CONTEXT_CACHE_SIZE,
    DEFAULT_CIPHERS,
    clear_context_cache,
    context_cache_size,
    get_context,
)
from .errors import map_ssl_error, truncated_error
from .sessions import SESSION_CACHE, SESSION_CACHE_SIZE, SessionCache, SessionKey, session_key

__all__ = [
    "CONTEXT_CACHE_SIZE",
    "DEFAULT_CIPHERS",
    "SESSION_CACHE",
    "SESSION_CACHE_SIZE",
    "CertificateInfo",
    "SecurityInfo",
    "SessionCache",
    "SessionKey",
    "check_pins",
    "clear_context_cache",
    "context_cache_size",
    "get_context",
    "map_ssl_error",
    "public_key_pin",
    "session_key",
    "truncated_error",
]
