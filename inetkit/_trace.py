"""How a connect went, phase by phase.

A `ConnectTrace` is filled in while `connect` runs and is kept on the
`Connection` (``conn.trace``) or on the error a failed connect raises
(``exc.trace``). All times are seconds; ``start`` offsets are measured from the
moment `connect` was called, on the same monotonic clock as the deadline.
`inetkit probe` prints it with `ConnectTrace.format`.
"""

from __future__ import annotations

from collections.abc import Callable

from ._types import FieldValue

__all__ = ["Attempt", "ConnectTrace", "ProxyPhase", "Resolution"]

# These are plain classes with __slots__ rather than dataclasses: the
# `dataclasses` module (and the `inspect`, `ast`, `dis` it imports) would
# cost more than the rest of ``import inetkit``. They keep what the
# dataclasses gave: positional and keyword construction with the same field
# order and defaults, mutable fields, ``==`` between instances of the same
# class, no hash, the ``Name(field=value, ...)`` repr, ``__match_args__``, and
# pickling (of the errors that carry a trace, too); `FieldValue` gives the
# equality and the repr.


class Resolution(FieldValue):
    """The name lookup: where the addresses came from and how long it took.

    Attributes:
        source: ``"literal"``, ``"overrides"``, ``"hosts_file"``,
            ``"system_hosts"``, ``"dns"`` or ``"custom"`` (a `Resolver`
            subclass).
        addresses: the addresses found, in the order they were tried
            (``"ip"`` strings).
        duration: seconds the lookup took.
    """

    __slots__ = ("addresses", "duration", "source")
    __match_args__ = ("source", "addresses", "duration")
    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value: unhashable

    source: str
    addresses: list[str]
    duration: float

    def __init__(self, source: str, addresses: list[str], duration: float) -> None:
        self.source = source
        self.addresses = addresses
        self.duration = duration

    def _fields(self) -> tuple[object, ...]:
        return (self.source, self.addresses, self.duration)


class Attempt(FieldValue):
    """One connection attempt to one address.

    Attributes:
        address: the remote IP address (without port).
        port: the remote port.
        family: ``socket.AF_INET`` or ``socket.AF_INET6``.
        start: offset from the start of `connect`, in seconds.
        duration: how long the attempt ran until its outcome; ``None`` while
            running.
        outcome: ``"connected"``, ``"failed"``, ``"abandoned"`` (another
            address won) or ``"timed out"`` (the deadline ran out), or
            ``"pending"``.
        error: the attempt's own error (an `InetError`) when it failed.
    """

    __slots__ = ("address", "duration", "error", "family", "outcome", "port", "start")
    __match_args__ = ("address", "port", "family", "start", "duration", "outcome", "error")
    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value: unhashable

    address: str
    port: int
    family: int
    start: float
    duration: float | None
    outcome: str
    error: BaseException | None

    def __init__(
        self,
        address: str,
        port: int,
        family: int,
        start: float,
        duration: float | None = None,
        outcome: str = "pending",
        error: BaseException | None = None,
    ) -> None:
        self.address = address
        self.port = port
        self.family = family
        self.start = start
        self.duration = duration
        self.outcome = outcome
        self.error = error

    def _fields(self) -> tuple[object, ...]:
        return (self.address, self.port, self.family, self.start, self.duration, self.outcome, self.error)

    def describe(self) -> str:
        """One line: where, when it started, how it ended and after how long."""
        where = f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"
        took = "" if self.duration is None else f" after {self.duration * 1000:.1f} ms"
        detail = f": {self.error}" if self.error is not None else ""
        return f"{where} started at +{self.start * 1000:.1f} ms, {self.outcome}{took}{detail}"


class ProxyPhase(FieldValue):
    """The hop through a proxy: which one, and how long its TLS and its dialog took.

    Through a proxy, the trace's ``resolution`` and ``attempts`` are those
    of the proxy's host (the connection the client made is to the proxy).

    Attributes:
        endpoint: the proxy as ``scheme://host:port`` (never with credentials).
        tls_handshake: seconds of the TLS handshake with an ``https://`` proxy, else None.
        dialog: seconds of the CONNECT or SOCKS dialog (None: it did not run or
            did not end).
        target_address: the address the client resolved the target to
            (``socks5://``), else None (the proxy resolves it).
    """

    __slots__ = ("dialog", "endpoint", "target_address", "tls_handshake")
    __match_args__ = ("endpoint", "tls_handshake", "dialog", "target_address")
    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value: unhashable

    endpoint: str
    tls_handshake: float | None
    dialog: float | None
    target_address: str | None

    def __init__(
        self,
        endpoint: str,
        tls_handshake: float | None = None,
        dialog: float | None = None,
        target_address: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.tls_handshake = tls_handshake
        self.dialog = dialog
        self.target_address = target_address

    def _fields(self) -> tuple[object, ...]:
        return (self.endpoint, self.tls_handshake, self.dialog, self.target_address)

    def describe(self) -> str:
        """One line: the proxy, its TLS and dialog times, the address the client chose."""
        parts = [self.endpoint]
        if self.target_address is not None:
            parts.append(f"target address {self.target_address}")
        if self.tls_handshake is not None:
            parts.append(f"tls handshake {_ms(self.tls_handshake)}")
        parts.append("dialog " + ("not completed" if self.dialog is None else _ms(self.dialog)))
        return ", ".join(parts)


class ConnectTrace(FieldValue):
    """The record of one `connect`: resolution, attempts, TLS, STARTTLS.

    Attributes:
        host: the normalized host name or IP literal connected to.
        port: the port number.
        resolution: the `Resolution`, once the lookup is done.
        attempts: one `Attempt` per address tried, in the order they started.
        tls_handshake: seconds spent in the TLS handshake, when there was one.
        starttls: seconds spent in the STARTTLS dialog, when there was one.
        total: seconds from the call to the connected (or failed) handle.
        proxy: the `ProxyPhase` when the connect went through a proxy (then
            ``resolution`` and ``attempts`` are the proxy's), else None.
    """

    __slots__ = ("attempts", "host", "port", "proxy", "resolution", "starttls", "tls_handshake", "total")
    __match_args__ = ("host", "port", "resolution", "attempts", "tls_handshake", "starttls", "total", "proxy")
    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value: unhashable

    host: str
    port: int
    resolution: Resolution | None
    attempts: list[Attempt]
    tls_handshake: float | None
    starttls: float | None
    total: float | None
    proxy: ProxyPhase | None

    def __init__(
        self,
        host: str,
        port: int,
        resolution: Resolution | None = None,
        attempts: list[Attempt] | None = None,
        tls_handshake: float | None = None,
        starttls: float | None = None,
        total: float | None = None,
        proxy: ProxyPhase | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.resolution = resolution
        # A fresh list per trace when none is given (the dataclass's default_factory).
        self.attempts = [] if attempts is None else attempts
        self.tls_handshake = tls_handshake
        self.starttls = starttls
        self.total = total
        self.proxy = proxy

    def _fields(self) -> tuple[object, ...]:
        return (
            self.host,
            self.port,
            self.resolution,
            self.attempts,
            self.tls_handshake,
            self.starttls,
            self.total,
            self.proxy,
        )

    def format(self) -> str:
        """A human-readable multi-line summary (what ``inetkit probe`` prints)."""
        return "\n".join(self.lines())

    def lines(self, attempt_line: Callable[[Attempt], str] | None = None) -> list[str]:
        """`format`'s lines; ``attempt_line`` words each attempt (``inetkit probe`` colours them)."""
        ms = _ms
        lines = [f"connect {self.host} port {self.port}"]
        if self.proxy is not None:  # then the resolution and the attempts are the proxy's
            lines[0] += f" through {self.proxy.endpoint}"
        if self.resolution is not None:
            res = self.resolution
            lines.append(
                f"  resolve: {len(res.addresses)} address(es) from {res.source} "
                f"in {ms(res.duration)}: {', '.join(res.addresses)}"
            )
        for attempt in self.attempts:
            lines.append(f"  attempt {attempt.describe() if attempt_line is None else attempt_line(attempt)}")
        if self.proxy is not None:
            lines.append(f"  proxy: {self.proxy.describe()}")
        if self.starttls is not None:
            lines.append(f"  starttls dialog: {ms(self.starttls)}")
        if self.tls_handshake is not None:
            lines.append(f"  tls handshake: {ms(self.tls_handshake)}")
        if self.total is not None:
            lines.append(f"  total: {ms(self.total)}")
        return lines


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"
