"""What both connection handles show of themselves: the request, the peer, the trace, TLS.

`Connection` (blocking) and `inetkit.aio.AsyncConnection` differ in how they
wait and who may call them, not in what they describe. The read-only
properties they share live here once, over the private fields both
constructors fill in from the connect plan (the slots for them are
declared here; each handle class adds its own).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._types import check_timeout

if TYPE_CHECKING:
    from typing import Protocol as TypingProtocol

    from ._tls import SecurityInfo
    from ._trace import ConnectTrace
    from ._types import Option, Protocol

    class TraceSource(TypingProtocol):
        """What builds a handle's `ConnectTrace` when it is first asked for (``_connect._Record``)."""

        def trace(self) -> ConnectTrace: ...


__all__ = ["HandleFace"]


class HandleFace:
    """The properties of a handle that read what the connect made (any thread, any task)."""

    # The fields the properties read, filled in by each handle's constructor.
    __slots__ = (
        "_host",
        "_negotiated",
        "_options",
        "_port",
        "_protocol",
        "_remote",
        "_starttls_extensions",
        "_timeout",
        "_trace",
        "_trace_source",
    )

    _host: str
    _port: int
    _protocol: Protocol
    _options: Option
    _remote: tuple[str, int]
    _timeout: float | None
    _trace: ConnectTrace | None
    _trace_source: TraceSource | None
    _negotiated: SecurityInfo | None
    _starttls_extensions: tuple[str, ...] | None

    @property
    def host_name(self) -> str:
        """The host as asked for, in its normalized form."""
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def protocol(self) -> Protocol:
        return self._protocol

    @property
    def options(self) -> Option:
        return self._options

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
