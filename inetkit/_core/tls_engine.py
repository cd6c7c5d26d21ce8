"""The TLS engine: one `ssl.SSLObject` over two `ssl.MemoryBIO`, and no I/O.

Theory of operation
-------------------
The engine is trio's ``SSLStream._retry`` without the stream: every step is
one call into the `SSLObject`, and its result says exactly what I/O the
driver has to do next. Bytes the server sent go in with `receive` (or
`receive_eof` when the TCP stream ended); bytes for the server come out of
`data_to_send`. The steps:

* `handshake` -- True when done; False means "send `data_to_send`, then
  receive". The driver passes the current time, from which the engine takes
  the handshake round-trip time (ClientHello out to the first answer in).
* `read_into` -- decrypt into the caller's buffer: a count, ``0`` for a clean
  end (the server's close_notify), or `WANT_READ`. A stream that ends without
  close_notify (a bare TCP FIN, an attacker's cut) raises
  `ConnectionClosedError` (``TLS_TRUNCATED``) once the data before it has
  been delivered; an alert raises its `SecurityError`. Such an end is
  sticky: every later read reports it again.
* `take_records` -- process what was received (session tickets, alerts)
  without giving up application data: at most one byte is decrypted and kept
  for the next read (``SSLObject`` has no peek).
* `write` -- encrypt one slice (`SEND_SLICE`) of the caller's data. Slices
  keep the ciphertext in memory small (not the whole buffer at once) and let
  the driver count exactly the plaintext whose records were sent.
* `close_notify` -- our end of the stream.

Errors go through `map_ssl_error` (``_tls.errors``), the TLS half of
inetkit's one translator.

The engine holds no socket, lock, wait or clock. Its caller serializes calls
into it: OpenSSL forbids concurrent use of one ``SSL`` object (the blocking
driver ``_tls_io`` holds its engine lock around every call).

Memory: a `ssl.MemoryBIO` keeps the largest amount it ever held (OpenSSL's
``BUF_MEM`` grows by a third and never shrinks), so the driver feeds and
drains in pieces of about one TLS record, never whole megabytes.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Final, cast

from .._errors import InetError, SecurityError
from .._tls.certinfo import SecurityInfo
from .._tls.errors import map_ssl_error, truncated_error

__all__ = ["MAX_RECORD", "SEND_SLICE", "WANT_READ", "TLSEngine"]

#: `read_into` result: nothing to decrypt until more bytes are received.
WANT_READ: Final = -1
#: Largest TLS record payload (RFC 8446 section 5.1); one SSL_read returns at most this.
MAX_RECORD: Final = 16384
#: Plaintext encrypted per `write` step: two full records. Bounds the
#: ciphertext held at once (and the outgoing BIO's lasting capacity) to
#: about 44 KiB, while a bulk send still makes one system call per 32 KiB.
SEND_SLICE: Final = 2 * MAX_RECORD


class TLSEngine:
    """A TLS client connection as a state machine: bytes in, bytes out, one step at a time."""

    __slots__ = (
        "_done",
        "_failure",
        "_heard",
        "_hello_at",
        "_incoming",
        "_obj",
        "_outgoing",
        "_peeked",
        "credentials_given",
        "ended",
        "rtt",
        "target",
    )

    def __init__(
        self,
        context: ssl.SSLContext,
        server_name: str,
        *,
        session: ssl.SSLSession | None = None,
        target: str,
        credentials_given: bool = False,
    ) -> None:
        """A client engine for ``server_name`` (SNI for names; checked against the certificate).

        ``session`` is offered for resumption; ``target`` names host, port and
        address in error messages; ``credentials_given`` says whether a client
        certificate was configured (it decides how some alerts are explained).
        """
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        # server_hostname drives both SNI (names only) and hostname/IP checks.
        self._obj = context.wrap_bio(
            self._incoming, self._outgoing, server_hostname=server_name, session=session
        )
        self.target = target
        self.credentials_given = credentials_given
        self._done = False
        self._heard = False  # bytes arrived after the handshake (tickets, data)
        self._hello_at: float | None = None
        self._peeked = b""  # at most one byte decrypted by take_records
        self._failure: InetError | None = None  # the sticky end: an alert or a truncation
        self.ended = False  # the server's close_notify was read
        self.rtt: float | None = None  # ClientHello sent -> first answer, seconds

    # -- bytes in, bytes out -------------------------------------------

    def receive(self, data: bytes | bytearray | memoryview) -> None:
        """Bytes the server sent (ciphertext), in order."""
        self._incoming.write(data)
        if self._done:
            self._heard = True

    def receive_eof(self) -> None:
        """The TCP stream from the server ended."""
        self._incoming.write_eof()
        if self._done:
            self._heard = True

    def data_to_send(self) -> bytes:
        """Everything the engine produced for the server so far (``b""`` if nothing)."""
        return self._outgoing.read()

    @property
    def output_pending(self) -> int:
        """How many bytes `data_to_send` would return."""
        return self._outgoing.pending

    # -- steps ---------------------------------------------------------

    def handshake(self, now: float) -> bool:
        """One handshake step: True when done, False when it needs the server's answer.

        On False, send `data_to_send` and then `receive` what comes back (or
        `receive_eof`) before calling again. ``now`` is the driver's clock
        (seconds); the first two calls give the round-trip time, `rtt`.
        Raises `SecurityError` (also a `CertificateError`); `data_to_send`
        then holds our alert, which is worth sending.
        """
        try:
            self._obj.do_handshake()
        except ssl.SSLWantReadError:
            if self._hello_at is None:
                self._hello_at = now
            elif self.rtt is None:
                self.rtt = now - self._hello_at
            if self._incoming.eof:
                # OpenSSL waits for more, but no more will come.
                raise map_ssl_error(
                    ssl.SSLEOFError(ssl.SSL_ERROR_EOF, "EOF occurred in violation of protocol"),
                    target=self.target,
                    credentials_given=self.credentials_given,
                ) from None
            return False
        except ssl.SSLError as exc:
            raise map_ssl_error(exc, target=self.target, credentials_given=self.credentials_given) from exc
        if self.rtt is None and self._hello_at is not None:
            self.rtt = now - self._hello_at
        self._done = True
        return True

    def read_into(self, view: memoryview) -> int:
        """Decrypt into ``view``: the count, ``0`` at a clean end, or `WANT_READ`.

        Records already received fill the rest of ``view`` without waiting
        (fewer steps per byte); the step returns as soon as any data is
        there. Raises `ConnectionClosedError` (``TLS_TRUNCATED``) when the
        stream ended without close_notify, and the mapped `SecurityError`
        for an alert; both only after the data before them was returned.
        """
        size = len(view)
        if not size:
            return 0
        obj = self._obj
        if self._peeked:
            view[0] = self._peeked[0]
            self._peeked = b""
            # Already decrypted plaintext: read without touching the records.
            more = min(obj.pending(), size - 1)
            return 1 + (cast(int, obj.read(more, view[1:])) if more else 0)
        if self._failure is not None:
            raise self._failure.with_traceback(None)
        if self.ended:
            return 0
        try:
            # With a buffer, SSLObject.read returns the count (typeshed says bytes).
            count = cast(int, obj.read(size, view))
        except ssl.SSLWantReadError:
            return WANT_READ
        except ssl.SSLError as exc:
            failure = self._end(exc)
            if failure is None:
                return 0
            raise failure from exc
        if not count:
            self.ended = True  # CPython returns 0 for close_notify before we sent ours
            return 0
        incoming = self._incoming
        while count < size and incoming.pending:
            try:
                more = cast(int, obj.read(size - count, view[count:]))
            except ssl.SSLWantReadError:
                break  # a partial record
            except ssl.SSLError as exc:
                self._end(exc)  # reported by the next call, after this data
                break
            if not more:
                self.ended = True
                break
            count += more
        return count

    def read(self, max_bytes: int) -> bytes | None:
        """Like `read_into`, returning the bytes (``b""`` at a clean end), or None for `WANT_READ`.

        At most one record's plaintext per call, as ``SSLSocket.recv`` returns.
        """
        if self._peeked:
            data = self._peeked
            self._peeked = b""
            more = min(self._obj.pending(), max_bytes - 1)
            return data + self._obj.read(more) if more else data
        if self._failure is not None:
            raise self._failure.with_traceback(None)
        if self.ended:
            return b""
        try:
            data = self._obj.read(min(max_bytes, MAX_RECORD))
        except ssl.SSLWantReadError:
            return None
        except ssl.SSLError as exc:
            failure = self._end(exc)
            if failure is None:
                return b""
            raise failure from exc
        if not data:
            self.ended = True
        return data

    def take_records(self) -> bool:
        """Process the records received so far; True when a read would not wait.

        Session tickets and key updates are consumed; an alert or the end of
        the stream is recorded for the next read; of application data one
        byte is decrypted and kept (the rest stays in OpenSSL's buffer).
        """
        if self._peeked or self._failure is not None or self.ended or self._obj.pending():
            return True
        if not self._incoming.pending and not self._incoming.eof:
            return False
        try:
            data = self._obj.read(1)
        except ssl.SSLWantReadError:
            return False
        except ssl.SSLError as exc:
            self._end(exc)
            return True
        if data:
            self._peeked = data
        else:
            self.ended = True
        return True

    def _end(self, exc: ssl.SSLError) -> InetError | None:
        """Record how the stream ended: close_notify (None), a cut or an alert (the error)."""
        if isinstance(exc, ssl.SSLZeroReturnError):
            self.ended = True
            return None
        if isinstance(exc, ssl.SSLEOFError):
            failure: InetError = truncated_error(self.target)
        else:
            failure = map_ssl_error(exc, target=self.target, credentials_given=self.credentials_given)
        self._failure = failure
        return failure

    @property
    def failure(self) -> InetError | None:
        """The alert (`SecurityError`) or truncation that ended the stream, if one did."""
        return self._failure

    def pending(self) -> int:
        """Plaintext bytes a read returns without more input (processing received records)."""
        if not self._peeked and not self._obj.pending() and self._incoming.pending:
            self.take_records()
        return len(self._peeked) + self._obj.pending()

    def write(self, data: memoryview, start: int = 0) -> int:
        """Encrypt the next slice of ``data`` from ``start``; return how many bytes it took.

        At most `SEND_SLICE` bytes per step; the records are then in
        `data_to_send`. After the server's alert (seen by a read) every write
        raises that alert's `SecurityError`.
        """
        failure = self._failure
        if isinstance(failure, SecurityError):
            # The server's alert ended the connection (a read saw it first).
            raise failure.with_traceback(None)
        end = start + SEND_SLICE
        chunk = data[start:end] if start or end < len(data) else data
        if not len(chunk):
            return 0
        try:
            # A memory BIO never refuses bytes, so the whole slice is taken.
            return self._obj.write(chunk)
        except ssl.SSLError as exc:
            raise map_ssl_error(exc, target=self.target, credentials_given=self.credentials_given) from exc

    def close_notify(self) -> None:
        """Queue our close_notify (we do not wait for the server's)."""
        try:
            self._obj.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError, ssl.SSLEOFError):
            pass  # ours is queued; the server's has not come (or never will)
        except ssl.SSLError:
            pass  # a broken connection: there is nothing left to close politely

    # -- what was negotiated -------------------------------------------

    @property
    def version(self) -> str | None:
        """``"TLSv1.2"``, ``"TLSv1.3"``, ... once the handshake is done."""
        return self._obj.version()

    @property
    def session_reused(self) -> bool:
        return bool(self._obj.session_reused)

    @property
    def heard_since_handshake(self) -> bool:
        """Did anything arrive after the handshake? (A TLS 1.3 ticket can only come so.)"""
        return self._heard

    def session(self) -> ssl.SSLSession | None:
        """The current session (CPython copies it: about 0.1-0.3 ms with the certificate)."""
        return self._obj.session

    def peer_der(self) -> bytes | None:
        """The server's certificate, DER, or None when it sent none."""
        return self._obj.getpeercert(binary_form=True)

    def security_info(self, peer_der: bytes | Callable[[], bytes | None] | None) -> SecurityInfo:
        """What the handshake settled; ``peer_der`` is the certificate or a call that fetches it."""
        obj = self._obj
        cipher = obj.cipher()
        return SecurityInfo(
            obj.version() or "",
            cipher[0] if cipher else "",
            int(cipher[2] or 0) if cipher else 0,
            obj.selected_alpn_protocol(),
            bool(obj.session_reused),
            peer_der,
        )
