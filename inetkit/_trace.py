"""How a connect went, phase by phase.

A `ConnectTrace` is filled in while `connect` runs and is kept on the
`Connection` (``conn.trace``) or on the error a failed connect raises
(``exc.trace``). All times are seconds; ``start`` offsets are measured from the
moment `connect` was called, on the same monotonic clock as the deadline.
`inetkit probe` prints it with `ConnectTrace.format`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Attempt", "ConnectTrace", "Resolution"]


@dataclass(slots=True)
class Resolution:
    """The name lookup: where the addresses came from and how long it took."""

    source: str
    """``"literal"``, ``"overrides"``, ``"hosts_file"``, ``"system_hosts"``,
    ``"dns"`` or ``"custom"`` (a `Resolver` subclass)."""
    addresses: list[str]
    """The addresses found, in the order they were tried (``"ip"`` strings)."""
    duration: float


@dataclass(slots=True)
class Attempt:
    """One connection attempt to one address."""

    address: str
    """The remote IP address (without port)."""
    port: int
    family: int
    start: float
    """Offset from the start of `connect`, in seconds."""
    duration: float | None = None
    """How long the attempt ran until its outcome; ``None`` while running."""
    outcome: str = "pending"
    """``"connected"``, ``"failed"``, ``"abandoned"`` (another address won) or
    ``"timed out"`` (the deadline ran out), or ``"pending"``."""
    error: BaseException | None = None
    """The attempt's own error (an `InetError`) when it failed."""

    def describe(self) -> str:
        where = f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"
        took = "" if self.duration is None else f" after {self.duration * 1000:.1f} ms"
        detail = f": {self.error}" if self.error is not None else ""
        return f"{where} started at +{self.start * 1000:.1f} ms, {self.outcome}{took}{detail}"


@dataclass(slots=True)
class ConnectTrace:
    """The record of one `connect`: resolution, attempts, TLS, STARTTLS."""

    host: str
    port: int
    resolution: Resolution | None = None
    attempts: list[Attempt] = field(default_factory=list)
    tls_handshake: float | None = None
    """Seconds spent in the TLS handshake, when there was one."""
    starttls: float | None = None
    """Seconds spent in the STARTTLS dialog, when there was one."""
    total: float | None = None
    """Seconds from the call to the connected (or failed) handle."""

    def format(self) -> str:
        """A human-readable multi-line summary (what ``inetkit probe`` prints)."""
        lines = [f"connect {self.host} port {self.port}"]
        if self.resolution is not None:
            res = self.resolution
            lines.append(
                f"  resolve: {len(res.addresses)} address(es) from {res.source} "
                f"in {res.duration * 1000:.1f} ms: {', '.join(res.addresses)}"
            )
        for attempt in self.attempts:
            lines.append(f"  attempt {attempt.describe()}")
        if self.starttls is not None:
            lines.append(f"  starttls dialog: {self.starttls * 1000:.1f} ms")
        if self.tls_handshake is not None:
            lines.append(f"  tls handshake: {self.tls_handshake * 1000:.1f} ms")
        if self.total is not None:
            lines.append(f"  total: {self.total * 1000:.1f} ms")
        return "\n".join(lines)
