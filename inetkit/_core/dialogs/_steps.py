"""The vocabulary every STARTTLS dialog speaks with its driver, and the base class.

Theory of operation. A dialog is a script: send this, read a line, read
exactly n bytes, start TLS now, send that over TLS, done. Each dialog writes
its script once, as a generator (``_script``) that yields the next `Step` and
is resumed with what the step produced (the bytes read, or None after a send
or the handshake). `Dialog` wraps the generator into a plain object with
three calls, `start`, `receive` and `proceed`, each answering with the next
step; a refusal inside the script (`Refusal`) comes out as a `Refused` step.
No socket, clock or lock is involved, so the blocking driver
(``inetkit.starttls``), an asyncio driver and the tests with made-up bytes run
the same code.

The contract on reads keeps the driver from swallowing bytes: after
`ReadLine` the driver hands over exactly one line (or what was left when the
stream ended), after `ReadExactly` exactly that many bytes (fewer only at the
end of the stream), after `ReadSome` at most that many. A line dialog's
go-ahead is the last line it reads before `StartTLS`, so whatever the server
pipelined behind it stays in the driver's buffer, where
``Connection.enable_security`` finds it and refuses (``UNEXPECTED_PLAINTEXT``).

Rejected alternative: one hand-written state machine (an enum of states and a
``feed`` method) per protocol. Seven of those are long and hard to compare
with the RFCs; the generator keeps each dialog readable top to bottom while
remaining a sans-I/O object.
"""

from __future__ import annotations

from collections.abc import Generator

from ..._errors import ErrorCode
from ..._types import FieldValue

__all__ = [
    "Dialog",
    "Done",
    "ReadExactly",
    "ReadLine",
    "ReadSome",
    "Refusal",
    "Refused",
    "Send",
    "StartTLS",
    "Step",
]


class _Value(FieldValue):
    """An immutable step: a script makes it, a driver reads it.

    Written out by hand rather than as frozen dataclasses: ``dataclasses``
    and the code it generates per class cost about 20 ms at the first
    STARTTLS or proxy connect of a process. Equality and repr by fields
    (`FieldValue`: equal only to the same class), hashable, and assigning a
    field raises `AttributeError`.
    """

    __slots__ = ()

    def __hash__(self) -> int:
        return hash((type(self), self._fields()))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot assign to {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot delete {name!r}")


class Send(_Value):
    """Write these bytes, then call `Dialog.proceed`."""

    __slots__ = ("data",)
    __match_args__ = ("data",)
    data: bytes

    def __init__(self, data: bytes) -> None:
        object.__setattr__(self, "data", data)

    def _fields(self) -> tuple[bytes]:
        return (self.data,)


class ReadLine(_Value):
    """Read one line (terminator included), at most ``max_length`` bytes before it; then `Dialog.receive`."""

    __slots__ = ("max_length",)
    __match_args__ = ("max_length",)
    max_length: int

    def __init__(self, max_length: int) -> None:
        object.__setattr__(self, "max_length", max_length)

    def _fields(self) -> tuple[int]:
        return (self.max_length,)


class ReadExactly(_Value):
    """Read exactly ``count`` bytes (fewer only when the stream ends); then `Dialog.receive`."""

    __slots__ = ("count",)
    __match_args__ = ("count",)
    count: int

    def __init__(self, count: int) -> None:
        object.__setattr__(self, "count", count)

    def _fields(self) -> tuple[int]:
        return (self.count,)


class ReadSome(_Value):
    """Read whatever is there, 1 to ``max_bytes`` bytes (``b""`` at the end); then `Dialog.receive`."""

    __slots__ = ("max_bytes",)
    __match_args__ = ("max_bytes",)
    max_bytes: int

    def __init__(self, max_bytes: int) -> None:
        object.__setattr__(self, "max_bytes", max_bytes)

    def _fields(self) -> tuple[int]:
        return (self.max_bytes,)


class StartTLS(_Value):
    """The server agreed: run the TLS handshake now, then call `Dialog.proceed`."""

    __slots__ = ()

    def _fields(self) -> tuple[()]:
        return ()


class Done(_Value):
    """The dialog is over and the handle is ready for the protocol's next command."""

    __slots__ = ("result",)
    __match_args__ = ("result",)
    result: object

    def __init__(self, result: object = None) -> None:
        object.__setattr__(self, "result", result)

    def _fields(self) -> tuple[object]:
        return (self.result,)


class Refused(_Value):
    """The dialog failed closed: the driver raises ``SecurityError(code)`` and closes the handle.

    (A proxy dialog's codes are ``PROXY_*``, raised as ``ProxyError``.)
    For STARTTLS ``code`` is ``STARTTLS_REFUSED`` (not offered, refused, malformed or
    oversize replies, the server hung up) or ``UNEXPECTED_PLAINTEXT`` (the
    server sent more after its go-ahead); ``reason`` says what happened, in
    words that quote the server where that helps; ``after_tls`` is True when
    the handshake had already run (a refusal of ftp's ``PROT P``, say).
    """

    __slots__ = ("after_tls", "code", "reason")
    __match_args__ = ("code", "reason", "after_tls")
    code: ErrorCode
    reason: str
    after_tls: bool

    def __init__(self, code: ErrorCode, reason: str, after_tls: bool = False) -> None:
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "after_tls", after_tls)

    def _fields(self) -> tuple[ErrorCode, str, bool]:
        return (self.code, self.reason, self.after_tls)


Step = Send | ReadLine | ReadExactly | ReadSome | StartTLS | Done | Refused

#: What a dialog's script is: it yields steps and is sent what they produced.
Script = Generator[Step, bytes | None, object]


class Refusal(Exception):
    """Raised inside a script to end it with a `Refused` step."""

    def __init__(self, reason: str, code: ErrorCode = ErrorCode.STARTTLS_REFUSED) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class Dialog:
    """One STARTTLS dialog, fed what the server said, answering with the next `Step`.

    Use: ``step = dialog.start()``; then, until the step is `Done` or
    `Refused`, perform it and call ``dialog.receive(data)`` after a read or
    ``dialog.proceed()`` after a `Send` or `StartTLS`.
    """

    #: The name ``connect(starttls=...)`` knows the dialog by.
    name = "?"
    #: The code of a refusal the driver makes itself (a reply line over the
    #: step's limit, a dialog that never ends): a STARTTLS refusal, or for a
    #: proxy dialog ``PROXY_PROTOCOL``.
    oversize_code = ErrorCode.STARTTLS_REFUSED

    def __init__(self) -> None:
        self._steps: Script | None = None
        self._step: Step | None = None
        self._tls = False

    def _script(self) -> Script:
        raise NotImplementedError  # pragma: no cover - every dialog defines its script

    @property
    def step(self) -> Step | None:
        """The step the dialog waits on (None before `start`)."""
        return self._step

    def start(self) -> Step:
        """Begin the dialog; return its first step."""
        if self._steps is not None:
            raise RuntimeError(f"the {self.name} dialog has already started")
        self._steps = self._script()
        return self._resume(None)

    def receive(self, data: bytes) -> Step:
        """Hand over what a read step produced (``b""``: the stream ended); return the next step."""
        step = self._step
        if isinstance(step, ReadLine):
            newline = data.find(b"\n")
            if newline not in (-1, len(data) - 1):
                raise ValueError("ReadLine takes one line at a time")
        elif isinstance(step, ReadExactly):
            if len(data) > step.count:
                raise ValueError(f"ReadExactly({step.count}) was handed {len(data)} bytes")
        elif isinstance(step, ReadSome):
            if len(data) > step.max_bytes:
                raise ValueError(f"ReadSome({step.max_bytes}) was handed {len(data)} bytes")
        else:
            raise RuntimeError(f"the {self.name} dialog is not waiting for input (step: {step!r})")
        return self._resume(bytes(data))

    def proceed(self) -> Step:
        """Say that a `Send` was written or the `StartTLS` handshake completed; return the next step."""
        step = self._step
        if not isinstance(step, Send | StartTLS):
            raise RuntimeError(f"the {self.name} dialog is not waiting for a send or a handshake ({step!r})")
        if isinstance(step, StartTLS):
            self._tls = True
        return self._resume(None)

    def _resume(self, value: bytes | None) -> Step:
        assert self._steps is not None
        try:
            step = self._steps.send(value)
        except StopIteration as stop:
            step = Done(stop.value)
        except Refusal as refusal:
            step = Refused(refusal.code, refusal.reason, self._tls)
        self._step = step
        return step


# -- helpers shared by the line-based dialogs -------------------------------------

#: How much of a server's text a refusal quotes (enough to read, not a flood).
QUOTE_LENGTH = 120


def quote(text: str | bytes) -> str:
    """A server's words, cut to `QUOTE_LENGTH`, for a refusal message."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text.strip()
    if len(text) > QUOTE_LENGTH:
        text = text[:QUOTE_LENGTH] + "..."
    return repr(text)


def read_line(max_length: int) -> Generator[Step, bytes | None, str]:
    """One line from the server, decoded, without its terminator; refuses at the end of the stream.

    The driver enforces ``max_length`` while reading (so an endless line never
    fills memory); it is checked here again for drivers fed made-up bytes.
    """
    data = yield ReadLine(max_length)
    assert data is not None
    if not data:
        raise Refusal("the server closed the connection")
    if not data.endswith(b"\n"):
        raise Refusal("the server closed the connection in the middle of a reply line")
    line = data[:-1]
    if line.endswith(b"\r"):
        line = line[:-1]
    if len(line) > max_length:
        raise Refusal(f"a reply line longer than {max_length} bytes")
    return line.decode("utf-8", "replace")
