"""What both connection handles show of themselves: the request, the peer, the trace, TLS.

`Connection` (blocking) and `inetkit.aio.AsyncConnection` differ in how they
wait and who may call them, not in what they describe. The read-only
properties they share live here once, over the private fields both
constructors fill in from the connect plan (the slots for them are
declared here; each handle class adds its own).
"""

from __future__ import annotations

import _socket
import socket
import time
from typing import TYPE_CHECKING

from ._core.buffer import EMPTY, ReceiveBuffer
from ._errors import (
    ConnectionClosedError,
    ErrorCode,
    InetError,
    InvalidArgumentError,
    SecurityError,
    translate_os_error,
)
from ._types import Protocol, check_timeout

if TYPE_CHECKING:
    from typing import Protocol as TypingProtocol

    from ._core.plan import Plan
    from ._tls import SecurityInfo
    from ._trace import ConnectTrace
    from ._types import Option

    class TraceSource(TypingProtocol):
        """What builds a handle's `ConnectTrace` when it is first asked for (``_connect._Record``).

        It keeps the figures noted before the trace exists and puts them into it.
        """

        tls_handshake: float | None
        total: float | None

        def trace(self) -> ConnectTrace: ...

    class LayerBelow(TypingProtocol):
        """The TLS layer to an HTTPS proxy under a handle (either driver's), as `_refuse_upgrade` asks it."""

        def ready_to_read(self) -> bool: ...

        def pending(self) -> int: ...


__all__ = ["DEFAULT_MAX_BYTES", "HandleFace"]

#: Default `read` size and `read_line` limit (API.md).
DEFAULT_MAX_BYTES = 65536

_monotonic = time.monotonic
_UDP = Protocol.UDP


class HandleFace:
    """What both handles share: the properties that read what the connect made, and the helpers
    that word their errors and keep their receive buffer (any thread, any task)."""

    # The fields the properties read, filled in by each handle's constructor.
    __slots__ = (
        "_buffer",
        "_negotiated",
        "_plan",
        "_remote",
        "_starttls_extensions",
        "_timeout",
        "_trace",
        "_trace_source",
    )

    _buffer: ReceiveBuffer
    _plan: Plan
    """The checked request (host, port, protocol, options, credentials, session cache); plans are shared."""
    _remote: tuple[str, int]
    _timeout: float | None
    _trace: ConnectTrace | None
    _trace_source: TraceSource | None
    _negotiated: SecurityInfo | None
    _starttls_extensions: tuple[str, ...] | None

    @property
    def host_name(self) -> str:
        """The host as asked for, in its normalized form."""
        return self._plan.host

    @property
    def port(self) -> int:
        return self._plan.port

    @property
    def protocol(self) -> Protocol:
        return self._plan.protocol

    @property
    def options(self) -> Option:
        return self._plan.options

    @property
    def remote_address(self) -> tuple[str, int]:
        """``(ip, port)`` of the peer that won the connect.

        Through a proxy that is the proxy's address (the socket's real peer);
        `host_name` and `port` stay the target's.
        """
        return self._remote

    @property
    def trace(self) -> ConnectTrace:
        """How the connect went: resolution, attempts, TLS and STARTTLS times."""
        trace = self._trace
        if trace is None:
            source = self._trace_source
            assert source is not None  # dropped only once the trace is built
            trace = self._trace = source.trace()
            # The readings (and the plan and race they hang on) are not needed again.
            self._trace_source = None
        return trace

    def _note_times(self, tls_handshake: float | None = None, total: float | None = None) -> None:
        """Note the TLS handshake's and the whole connect's seconds in the trace.

        Before the trace exists (nobody asked for it yet) they go to its
        readings, which put them in when it is built: a connect that nobody
        traces builds no trace objects.
        """
        trace = self._trace
        noted: ConnectTrace | TraceSource
        if trace is not None:
            noted = trace
        else:
            source = self._trace_source
            assert source is not None  # dropped only once the trace is built
            noted = source
        if tls_handshake is not None:
            noted.tls_handshake = tls_handshake
        if total is not None:
            noted.total = total

    @property
    def is_secure(self) -> bool:
        return self._negotiated is not None

    @property
    def security_info(self) -> SecurityInfo | None:
        """TLS details once security is enabled, else None (the certificate is parsed on first access)."""
        return self._negotiated

    @property
    def starttls_extensions(self) -> tuple[str, ...] | None:
        """What the server offered over TLS after an ``smtp`` STARTTLS dialog, else None.

        The dialog's second EHLO reply, one entry per extension line as the
        server wrote it (keyword, then parameters): ``("PIPELINING",
        "AUTH PLAIN LOGIN", "SIZE 35882577")``. It saves a third EHLO to
        learn the AUTH mechanisms or the size limit, after
        ``connect(..., starttls="smtp")`` as after `inetkit.starttls.smtp`.
        """
        return self._starttls_extensions

    @property
    def timeout(self) -> float | None:
        """The I/O timeout in seconds for each call as a whole; None waits forever."""
        return self._timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self._timeout = check_timeout(value, "timeout")

    # -- shared helpers ------------------------------------------------

    @property
    def _target(self) -> str:
        """How messages name this handle (each handle knows its peer its own way)."""
        raise NotImplementedError

    def _deadline(self) -> float | None:
        """When the current call must end: the handle's timeout from now (None: never)."""
        timeout = self._timeout
        return None if timeout is None else _monotonic() + timeout

    def _stream_only(self, what: str) -> None:
        if self._plan.protocol is _UDP:
            raise InvalidArgumentError(
                f"{what} is a stream operation; a UDP handle to {self._target} reads one datagram "
                "per read() call",
                ErrorCode.INVALID_ARGUMENT,
            )

    def _filling(self) -> ReceiveBuffer:
        """The handle's own buffer, to feed: made here the first time (until then, the shared `EMPTY`)."""
        buffer = self._buffer
        if buffer is EMPTY:
            buffer = self._buffer = ReceiveBuffer(DEFAULT_MAX_BYTES)
        return buffer

    def _closed_early(self, got: int, n: int) -> ConnectionClosedError:
        return ConnectionClosedError(
            f"read from {self._target}: the peer closed the connection after {got} of {n} bytes",
            ErrorCode.CONNECTION_CLOSED,
        )

    def _line_too_long(self, max_length: int) -> InetError:
        return InetError(
            f"read_line from {self._target}: the line is longer than max_length={max_length} bytes; "
            "raise max_length or read the data with read()",
            ErrorCode.LINE_TOO_LONG,
        )

    def _unexpected_plaintext(self, count: int | None) -> SecurityError:
        amount = f"{count} byte(s) of" if count is not None else ""
        return SecurityError(
            f"enable_security on {self._target}: the server sent {amount} plaintext before the TLS "
            "handshake; refusing to start TLS (bytes sent in the clear must not be mistaken for "
            "protected data). Read the server's reply completely before enabling security.",
            ErrorCode.UNEXPECTED_PLAINTEXT,
        )

    def _refuse_upgrade(self, below: LayerBelow | None, sock: _socket.socket) -> None:
        """The checks `enable_security` makes before its handshake, in both drivers.

        Refused: a secure handle (``ALREADY_SECURE``), UDP, and plaintext the
        server sent that nobody read (``UNEXPECTED_PLAINTEXT``): in the buffer,
        decrypted in the proxy's TLS layer ``below`` when there is one (the
        socket then holds that layer's records), else waiting in ``sock``.
        """
        if self._negotiated is not None:
            raise SecurityError(
                f"enable_security on {self._target}: the connection is already secure",
                ErrorCode.ALREADY_SECURE,
            )
        if self._plan.protocol is _UDP:
            raise InvalidArgumentError(
                f"enable_security on {self._target}: TLS needs TCP (inetkit has no DTLS)",
                ErrorCode.INVALID_ARGUMENT,
            )
        if self._buffer:
            raise self._unexpected_plaintext(len(self._buffer))
        if below is not None:
            below.ready_to_read()
            if below.pending():
                raise self._unexpected_plaintext(below.pending())
            return
        try:
            waiting = sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            waiting = b""
        except OSError as exc:
            raise translate_os_error(exc, action="enable_security on", target=self._target) from exc
        if waiting:
            raise self._unexpected_plaintext(None)
