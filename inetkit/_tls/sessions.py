"""TLS session resumption: the process-wide session cache and its key.

Theory of operation
-------------------
`SessionCache` keeps one resumable session per (server name, port,
context). The context object itself is part of the key, not only the
settings: OpenSSL resumes a session only under the context that made it
(CPython refuses the mix with ``ValueError``), and a session made with
certificate checks off (`Option.TRUSTEDSITE`, another context) can therefore
never be offered by a verifying connect. A cached session keeps its context
alive, so the key cannot be confused with a later context.

TLS 1.2 sessions are complete when the handshake ends. TLS 1.3 sessions
need a ticket, which the server sends after the handshake; a handle that is
closed before one arrived has nothing to keep. The driver may then wait
briefly for the ticket at close (``_tls_io``), but only while the cache has
nothing for the server, and only until one such wait came back empty: a
server that sends no tickets must not make every close wait. That memory is
`note_no_ticket`; a session that is kept clears it.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Hashable

from .cache import LRU

__all__ = ["SESSION_CACHE", "SESSION_CACHE_SIZE", "SessionCache", "SessionKey", "session_key"]

#: Sessions kept: one per (server, port, context); a session is a few KB.
SESSION_CACHE_SIZE = 256

SessionKey = tuple[str, int, ssl.SSLContext]


def session_key(server_name: str, port: int, context: ssl.SSLContext) -> SessionKey:
    """The session cache key: server name (as verified, without a trailing dot), port, context."""
    return (server_name.rstrip(".").lower(), int(port), context)


class SessionCache:
    """A bounded, thread-safe LRU cache of resumable TLS sessions.

    Keys come from `session_key`. Only resumable sessions are kept (a TLS 1.3
    ticket, or a TLS 1.2 session id); expired ones are dropped when looked up.
    """

    __slots__ = ("_cache", "_no_ticket")

    def __init__(self, maxsize: int = SESSION_CACHE_SIZE) -> None:
        self._cache: LRU[Hashable, ssl.SSLSession] = LRU(maxsize)
        # Keys whose server sent no TLS 1.3 ticket within a close-time wait.
        self._no_ticket: LRU[Hashable, bool] = LRU(maxsize)

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
        self._no_ticket.pop(key)

    def worth_waiting(self, key: Hashable) -> bool:
        """Should a closing handle wait a moment for this server's TLS 1.3 ticket?

        Only when nothing is cached for it and no earlier wait came back empty.
        """
        return self._cache.get(key) is None and self._no_ticket.get(key) is None

    def note_no_ticket(self, key: Hashable) -> None:
        """A close-time wait saw no ticket from this server: do not wait for it again."""
        self._no_ticket.put(key, True)

    def clear(self) -> None:
        self._cache.clear()
        self._no_ticket.clear()

    def __len__(self) -> int:
        return len(self._cache)


#: The process-wide session cache.
SESSION_CACHE = SessionCache()
