"""The TLS engine: one OpenSSL connection (`ssl.SSLObject`'s C object) over two `ssl.MemoryBIO`, and no I/O.

Theory of operation
-------------------
The engine is trio's ``SSLStream._retry`` without the stream: every step is
one call into OpenSSL's connection, and its result says exactly what I/O the
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

Received bytes do not go into OpenSSL as they come. A `ssl.MemoryBIO` keeps
the largest amount it ever held (OpenSSL's ``BUF_MEM`` grows by a third and
never shrinks), so a driver that pushed 64 KiB receives into it would leave
every handle that once read in bulk holding about 87 KiB. The engine keeps
what was received (``_inbox``, the receive's own ``bytes``, not a copy) and
gives OpenSSL one record at a time, when a read needs it: it reads the
5-byte record header (RFC 8446 section 5.1) to find where the record ends,
writes the record into the BIO and decrypts it, then goes on to the next.
The incoming BIO therefore never holds more than one record. A record cut
by the end of a receive goes into the BIO as far as it came (``_need``
counts the bytes still to come), so the receive's buffer is freed at once
and nothing is copied twice; OpenSSL is not asked to read it until it is
whole, so a read never fails with "want more input" (an exception,
microseconds each) just to learn that a record is incomplete. Before the
handshake is done, bytes go in `HANDSHAKE_PIECE` at a time instead.
OpenSSL reads records exactly (CPython leaves read-ahead off), so when the
handshake ends the stream is at a record boundary. Bytes that do not look
like TLS records are given to OpenSSL as they are, which then reports them.

A read decrypts record after record in one call (`read_into` until the
view is full, `read` up to ``max_bytes``): a 64 KiB receive of 16 KiB
records is one step, and so is a receive of many small records (a line per
record). A record that came whole costs one header parse, one BIO write
and one OpenSSL read, in that loop; the rest of a record begun in an
earlier receive, a cut header and the end of the stream go through
`_feed`.
"""

from __future__ import annotations

import ssl
import struct
import sys
from typing import TYPE_CHECKING, Any, Final

from .._errors import InetError, SecurityError
from .._tls.certinfo import DerSource, SecurityInfo
from .._tls.errors import map_ssl_error, truncated_error

__all__ = ["MAX_RECORD", "SEND_SLICE", "WANT_READ", "TLSEngine"]

#: `read_into` result: nothing to decrypt until more bytes are received.
WANT_READ: Final = -1
#: Largest TLS record payload (RFC 8446 section 5.1); one SSL_read returns at most this.
MAX_RECORD: Final = 16384
#: Plaintext encrypted per `write` step: four full records. Bounds the
#: ciphertext held at once to 64 KiB and a bit (the outgoing BIO keeps
#: about 87 KiB after a bulk send), while a bulk send makes one system call
#: and one round of Python per 64 KiB, where ``SSLSocket`` makes four calls.
SEND_SLICE: Final = 4 * MAX_RECORD
#: TLS record header: content type (1), legacy version (2), length (2).
HEADER: Final = 5
#: Content types a record may carry (change_cipher_spec .. heartbeat).
_RECORD_TYPES = frozenset(range(20, 25))
#: A record header as (content type, major version, length): one C call
#: per header where indexing its bytes takes four.
_unpack_header = struct.Struct(">BBxH").unpack_from
#: Handshake bytes given to OpenSSL at once. The incoming BIO keeps its
#: largest size for the connection's life, so the server's flight goes in
#: pieces; 1 KiB holds an ECDSA server's whole flight (about 700 bytes) and
#: half of an RSA-2048 one (about 1,100). Each further piece is one more
#: handshake step: a WANT_READ exception and a release of the GIL, which
#: with many connecting threads costs more than the step itself (the
#: 32-thread row measured 1.16 with 512-byte pieces against 1.08 with
#: these), while an idle handle holds about 0.25 KiB more.
HANDSHAKE_PIECE: Final = 1024

#: ``SSLContext._wrap_bio``, the C-level constructor behind ``wrap_bio``: its
#: object is what `ssl.SSLObject` forwards every call to. The engine talks
#: to it directly: no Python frame per call (a handshake step, a record read
#: or written), and no ``SSLObject`` instance with its ``__dict__`` (about
#: 340 bytes) per handle. Without it (another implementation of `ssl`), the
#: engine uses the public ``wrap_bio``, whose object answers the same calls,
#: except that `_shutdown` is its ``unwrap``.
_C_LEVEL: Final = hasattr(ssl.SSLContext, "_wrap_bio")

if TYPE_CHECKING:
    from typing import Literal, Protocol

    class TLSObject(Protocol):
        """What the engine calls on OpenSSL's connection (the C object, or an `ssl.SSLObject`)."""

        session: ssl.SSLSession | None

        @property
        def session_reused(self) -> bool: ...
        def do_handshake(self) -> None: ...
        def read(self, len: int = ..., buffer: Any = ...) -> Any: ...
        def write(self, data: Any, /) -> int: ...
        def pending(self) -> int: ...
        def cipher(self) -> tuple[str, str, int] | None: ...
        def version(self) -> str | None: ...
        def selected_alpn_protocol(self) -> str | None: ...
        def getpeercert(self, binary_form: Literal[True], /) -> bytes | None: ...


def _wrap(
    context: ssl.SSLContext,
    incoming: ssl.MemoryBIO,
    outgoing: ssl.MemoryBIO,
    hostname: str,
    session: ssl.SSLSession | None,
) -> TLSObject:
    """A client connection over the two BIOs (``hostname``, ASCII: SNI and the name checked)."""
    if _C_LEVEL:
        return context._wrap_bio(  # type: ignore[attr-defined,no-any-return]
            incoming, outgoing, server_side=False, server_hostname=hostname, session=session
        )
    # As ASCII bytes, which ssl decodes as they are (a str would go through the idna codec).
    return context.wrap_bio(incoming, outgoing, server_hostname=hostname.encode("ascii"), session=session)


def _shutdown(obj: TLSObject) -> None:
    """Queue our close_notify: ``shutdown`` on the C object, ``unwrap`` on an `ssl.SSLObject`."""
    if _C_LEVEL:
        obj.shutdown()  # type: ignore[attr-defined]
    else:
        obj.unwrap()  # type: ignore[attr-defined]


_EMPTY = memoryview(b"")
#: One string per protocol name: every handle shares it.
_PROTOCOLS = {name: name for name in ("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")}


class TLSEngine:
    """A TLS client connection as a state machine: bytes in, bytes out, one step at a time."""

    __slots__ = (
        "_done",
        "_eof",
        "_failure",
        "_framed",
        "_heard",
        "_hello_at",
        "_inbox",
        "_incoming",
        "_need",
        "_obj",
        "_outgoing",
        "_peeked",
        "_starved",
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
        # ``server_name`` is already an A-label or an IP literal: the C object
        # takes it as it is (``wrap_bio`` would run it through the idna codec
        # again, Python code costing about a microsecond per connect).
        self._obj = _wrap(context, self._incoming, self._outgoing, server_name, session)
        self.target = target
        self.credentials_given = credentials_given
        self._done = False
        self._heard = False  # bytes arrived after the handshake (tickets, data)
        self._hello_at: float | None = None
        self._inbox = _EMPTY  # received, not yet given to OpenSSL
        self._need = 0  # after the handshake: bytes still to come of the record begun in the BIO
        self._framed = True  # the stream looks like TLS records (see the header)
        self._eof = False  # the TCP stream ended (after the handshake)
        self._peeked = b""  # at most one byte decrypted by take_records
        self._starved = False  # no read makes progress before the next receive
        self._failure: InetError | None = None  # the sticky end: an alert or a truncation
        self.ended = False  # the server's close_notify was read
        self.rtt: float | None = None  # ClientHello sent -> first answer, seconds

    # -- bytes in, bytes out -------------------------------------------

    def receive(self, data: bytes | bytearray | memoryview) -> None:
        """Bytes the server sent (ciphertext), in order.

        They are kept (not copied) until OpenSSL needs them: pass an object
        that is not changed afterwards, such as the ``bytes`` of a receive.
        """
        self._starved = False
        if self._done:
            self._heard = True
            if not self._framed:
                self._incoming.write(data)
                return
        if self._inbox:
            self._inbox = memoryview(bytes(self._inbox) + bytes(data))
        else:
            self._inbox = memoryview(data)

    def receive_eof(self) -> None:
        """The TCP stream from the server ended."""
        self._starved = False
        if not self._done:
            self._give_all()
            self._incoming.write_eof()
        else:
            self._heard = True
            self._eof = True  # given to OpenSSL once the whole records before it were read

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

        The server's flight goes into OpenSSL `HANDSHAKE_PIECE` bytes at a
        time, each consumed before the next: the incoming BIO keeps the
        largest size it ever held, and on an idle handle that is most of
        what it costs beyond OpenSSL's own state.
        """
        obj = self._obj
        if self._hello_at is not None and self.rtt is None:
            self.rtt = now - self._hello_at  # the first call after the server answered
            self._hello_at = None
        while True:  # bounded: every pass after the first gives OpenSSL a piece of the inbox
            inbox = self._inbox
            if inbox:
                # The next piece goes in before the step, not after a step
                # that could only fail for want of it (a wasted call into
                # OpenSSL, an exception and a release of the GIL per connect).
                self._incoming.write(inbox[:HANDSHAKE_PIECE])
                self._inbox = inbox[HANDSHAKE_PIECE:] if len(inbox) > HANDSHAKE_PIECE else _EMPTY
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                if self._inbox:
                    continue
                if self._incoming.eof:
                    # OpenSSL waits for more, but no more will come.
                    raise map_ssl_error(
                        ssl.SSLEOFError(ssl.SSL_ERROR_EOF, "EOF occurred in violation of protocol"),
                        target=self.target,
                        credentials_given=self.credentials_given,
                    ) from None
                if self.rtt is None and self._hello_at is None:
                    self._hello_at = now  # our first flight is about to leave
                return False
            except ssl.SSLError as exc:
                raise map_ssl_error(
                    exc, target=self.target, credentials_given=self.credentials_given
                ) from exc
            break
        self._done = True
        # OpenSSL stopped at the end of the handshake's last record; what it
        # did not read (a TLS 1.3 ticket that came with it) starts a record.
        rest = self._incoming.read()
        if rest or self._inbox:
            self._inbox = memoryview(rest + bytes(self._inbox))
            self._heard = True
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
        if self._starved:
            return WANT_READ
        if self._peeked:
            view[0] = self._peeked[0]
            self._peeked = b""
            # Already decrypted plaintext: read without touching the records.
            obj = self._obj
            extra = min(obj.pending(), size - 1)
            return 1 + (obj.read(extra, view[1:]) if extra else 0)
        if self._failure is not None:
            raise self._failure.with_traceback(None)
        if self.ended:
            return 0
        count = self._decrypt(size, view, None)
        if count:
            return count
        return 0 if self.ended else WANT_READ

    def read(self, max_bytes: int) -> bytes | None:
        """Like `read_into`, returning the bytes (``b""`` at a clean end), or None for `WANT_READ`.

        Up to ``max_bytes`` from the records already received (a line reader
        asks for 64 KiB: one call then serves every record of a 64 KiB
        receive, not one). An end or an alert met after some data is kept
        for the next call, so the data comes first.
        """
        if self._starved:
            return None
        if self._peeked:
            data = self._peeked
            self._peeked = b""
            obj = self._obj
            extra = min(obj.pending(), max_bytes - 1)
            return data + obj.read(extra) if extra else data
        if self._failure is not None:
            raise self._failure.with_traceback(None)
        if self.ended:
            return b""
        chunks: list[bytes] = []
        self._decrypt(max_bytes, None, chunks)
        if not chunks:
            return b"" if self.ended else None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _decrypt(self, size: int, view: memoryview | None, chunks: list[bytes] | None) -> int:
        """Decrypt record after record, up to ``size`` bytes: into ``view``, or onto ``chunks``.

        Returns the count. Stops at the first record not wholly received
        (the engine is then *starved*: no read makes progress before the
        next `receive`), at the end of the stream, or at an alert, which is
        raised when nothing was decrypted before it and otherwise kept for
        the next read.

        The loop is the engine's hot path, one pass per record: a record
        that starts at a record boundary and came whole (the common case)
        is parsed and given to OpenSSL here, with the received bytes kept
        in locals; everything else (the rest of a record begun in an
        earlier receive, a header cut in two, the end of the stream, bytes
        that are not records) goes through `_feed`. A record is at most 16
        KiB of plaintext, so a read of MAX_RECORD takes it whole and leaves
        no plaintext in OpenSSL; only a read cut short by ``size`` does,
        and that ends the call. So OpenSSL is asked for its plaintext once,
        before the first pass. Bounded: every pass decrypts a whole record,
        or stops.
        """
        obj = self._obj
        sslread = obj.read
        write = self._incoming.write
        inbox = self._inbox
        have = len(inbox)
        pos = count = 0
        need = self._need
        held = obj.pending()
        try:
            while count < size:
                if held:
                    held = 0
                else:
                    whole = False
                    if not need and have - pos >= HEADER:
                        kind, major, length = _unpack_header(inbox, pos)
                        end = pos + HEADER + length
                        if end <= have and major == 3 and kind in _RECORD_TYPES:
                            write(inbox[pos:end])
                            pos = end
                            whole = True
                    if not whole:
                        if pos:
                            self._inbox = inbox[pos:] if pos < have else _EMPTY
                            pos = 0
                        whole = self._feed()
                        inbox = self._inbox
                        have = len(inbox)
                        need = self._need
                        if not whole:
                            self._starved = True
                            break
                try:
                    if view is None:
                        data = sslread(min(size - count, MAX_RECORD))
                        got = len(data)
                        if got:
                            chunks.append(data)  # type: ignore[union-attr]
                    else:
                        # With a buffer, read returns the count.
                        got = sslread(size - count, view[count:]) if count else sslread(size, view)
                except ssl.SSLWantReadError:
                    continue  # not application data (a ticket, a key update): the next record
                except ssl.SSLError as exc:
                    failure = self._end(exc)  # reported now, or by the next call after this data
                    if count or failure is None:
                        break
                    raise failure from exc
                if not got:
                    self.ended = True  # CPython returns nothing for close_notify before we sent ours
                    break
                count += got
            else:
                # Full. A record cut by the end of the receive goes into the
                # BIO now, so that the next read knows at once that it waits.
                rest = 0 if need else have - pos  # (with a record begun in the BIO, the next read sees it)
                if rest and (rest < HEADER or pos + HEADER + _unpack_header(inbox, pos)[2] > have):
                    self._inbox = inbox[pos:]
                    pos = 0
                    if not self._feed() and not obj.pending():
                        self._starved = True
        finally:
            if pos:
                self._inbox = inbox[pos:] if pos < have else _EMPTY
        return count

    def take_records(self) -> bool:
        """Process the records received so far; True when a read would not wait.

        Session tickets and key updates are consumed; an alert or the end of
        the stream is recorded for the next read; of application data one
        byte is decrypted and kept (the rest stays in OpenSSL's buffer).
        """
        if self._peeked or self._failure is not None or self.ended or self._obj.pending():
            return True
        if self._starved:
            return False
        while True:  # bounded: every pass decrypts a whole record, or stops
            if not self._feed():
                self._starved = True
                return False
            try:
                data = self._obj.read(1)
                break
            except ssl.SSLWantReadError:
                continue  # not application data (tickets): the next records
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
        if not self._peeked and not self._obj.pending() and (self._inbox or self._incoming.pending):
            self.take_records()
        return len(self._peeked) + self._obj.pending()

    # -- giving OpenSSL whole records ----------------------------------

    def _feed(self) -> bool:
        """Give OpenSSL the next record; True when a read can make progress without more input.

        True when the incoming BIO now holds one whole record (and nothing
        else), or at the end of the stream, or for bytes that are not
        records. False when the record is still incomplete: what came of it
        is in the BIO, ``_need`` more bytes are to come.
        """
        inbox = self._inbox
        have = len(inbox)
        need = self._need
        if need:
            # The start of this record is in the BIO already.
            if have < need:
                if have:
                    self._incoming.write(inbox)
                    self._inbox = _EMPTY
                    self._need = need - have
                return self._at_end()
            self._need = 0
        elif have >= HEADER:
            kind, major, length = _unpack_header(inbox)
            if major != 3 or kind not in _RECORD_TYPES:
                return self._unframed()
            need = HEADER + length
            if have < need:
                # Cut by the end of the receive: its start goes in now, so
                # that the receive's buffer is freed (and nothing is copied).
                self._incoming.write(inbox)
                self._inbox = _EMPTY
                self._need = need - have
                return self._at_end()
        elif not self._framed:
            return self._give_all()
        else:
            if have:  # the start of a header: a copy of it, so that the receive's buffer is freed
                self._inbox = memoryview(bytes(inbox))
            return self._at_end()
        if have == need:
            self._incoming.write(inbox)
            self._inbox = _EMPTY
        else:
            self._incoming.write(inbox[:need])
            self._inbox = inbox[need:]
        return True

    def _unframed(self) -> bool:
        """Not TLS records after all: from now on OpenSSL gets the bytes as they come."""
        self._framed = False
        return self._give_all()

    def _give_all(self) -> bool:
        """Everything received goes to OpenSSL as it is (the handshake, garbage, the end)."""
        if self._inbox:
            self._incoming.write(self._inbox)
            self._inbox = _EMPTY
        if self._eof and not self._incoming.eof:
            self._incoming.write_eof()
        return bool(self._incoming.pending or self._incoming.eof)

    def _at_end(self) -> bool:
        """No whole record is waiting: at the end of the stream OpenSSL gets the rest, and the EOF."""
        if not self._eof:
            return False
        return self._give_all()

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
            _shutdown(self._obj)
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
        return self._obj.getpeercert(True)

    def security_info(self, peer_der: bytes | DerSource | None) -> SecurityInfo:
        """What the handshake settled; ``peer_der`` is the certificate or what fetches it later."""
        obj = self._obj
        cipher = obj.cipher()
        version = obj.version() or ""
        return SecurityInfo(
            _PROTOCOLS.get(version, version),
            sys.intern(cipher[0]) if cipher else "",
            int(cipher[2] or 0) if cipher else 0,
            obj.selected_alpn_protocol(),
            bool(obj.session_reused),
            peer_der,
        )
