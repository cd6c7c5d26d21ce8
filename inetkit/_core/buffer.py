"""The receive buffer: bytes in, lines and byte counts out, no I/O.

Theory of operation
-------------------
A driver feeds what the transport received (`ReceiveBuffer.feed`, and
`feed_eof` at the end of the stream) and asks for what its caller wants: up
to ``n`` bytes (`take`, `take_into`), exactly ``n`` (`take_exactly`), or the
next line (`next_line`). When the buffer cannot answer yet it says so
(`NEED_MORE`), and the driver receives more; it never waits or reads a clock.
The shape is h11's ``ReceiveBuffer``.

Lines end at ``\\n``; a ``\\r\\n`` pair is one terminator, a lone ``\\r`` is
not a terminator. A line whose content (without the terminator) is longer
than ``max_length`` gets the verdict `TOO_LONG` and stays buffered.

The buffered bytes live in up to three places, always consumed in this
order, so mixing the operations never loses or reorders a byte:

1. ``region``: complete lines read ahead, in an ``io.BytesIO``. Its
   ``readline`` and its iterator are C-level readers that split at ``\\n``
   only (``memchr``): exactly this module's line rule, one allocation per
   line (the line itself) and no Python code per line. Drivers call
   ``region.readline()`` directly on their hot path and iterate it (with
   ``for`` or ``itertools.chain``; never ``yield from``, which closes the
   region when the caller's loop ends early). The region is at most
   ``line_limit + 1`` bytes long, so no line in it has more content than
   ``line_limit``. It never holds the last complete line received: that
   line is served by `next_line`, which first releases the drained region,
   so a buffer that has handed out all its lines holds no large allocation.
2. ``_head[_hpos:]``: unsplit bytes (the last line, a partial line, or data
   not yet asked for as lines); ``_scanned`` of them are known to hold no
   ``\\n``, so a long line arriving in many pieces is searched once.
3. ``_parts``: chunks fed while a partial line waits for its end. They are
   appended (no copying per feed) and joined once, when the line ends, so a
   line of ``L`` bytes costs O(L) however it is cut.

Rejected: one ``bytearray`` with find/slice per line (what inetkit had); every
line costs several Python-level operations, about a tenth of the speed of
``BufferedReader.readline``. ``bytes.splitlines`` also splits at a lone
``\\r`` and, in CPython 3.11, scans byte by byte; ``BytesIO`` is both right
and about twice as fast.
"""

from __future__ import annotations

import io
from typing import Final, final

__all__ = ["DEFAULT_LINE_LIMIT", "EMPTY", "NEED_MORE", "TOO_LONG", "ReceiveBuffer"]


@final
class _Verdict:
    """A `next_line`/`take_exactly` answer that is not data."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: More bytes are needed before the request can be answered.
NEED_MORE: Final = _Verdict("NEED_MORE")
#: The next line is longer than ``max_length``; its bytes stay buffered.
TOO_LONG: Final = _Verdict("TOO_LONG")

#: Line content limit of the read-ahead region (the default `read_line` limit).
DEFAULT_LINE_LIMIT = 65536

_BytesIO = io.BytesIO
#: The region of every buffer that has no lines read ahead. Nothing ever
#: writes to it or moves its position, so one object serves every buffer.
_EMPTY_REGION: Final = _BytesIO()
_NL = b"\n"
_CR = 0x0D


def _content_length(line: bytes) -> int:
    """Length of a complete line without its terminator (``\\n`` or ``\\r\\n``)."""
    size = len(line) - 1
    if size and line[size - 1] == _CR:
        size -= 1
    return size


class ReceiveBuffer:
    """Received bytes waiting to be read, as lines or as byte counts.

    ``line_limit`` bounds the lines kept in the read-ahead region (see the
    module notes); a driver that iterates the region relies on it. Nothing
    large is allocated until bytes are fed, and nothing large stays once
    they are taken.
    """

    __slots__ = (
        "_eof",
        "_head",
        "_hpos",
        "_parts",
        "_parts_len",
        "_parts_scanned",
        "_rend",
        "_scanned",
        "line_limit",
        "region",
    )

    def __init__(self, line_limit: int = DEFAULT_LINE_LIMIT) -> None:
        if line_limit < 1:
            raise ValueError(f"line_limit must be at least 1, got {line_limit}")
        self.line_limit = line_limit
        #: Complete lines read ahead (see the module notes); drivers read it
        #: directly, and must call `next_line` once it gives ``b""``.
        self.region: io.BytesIO = _EMPTY_REGION
        self._rend = 0  # size of the region
        self._head = b""
        self._hpos = 0
        self._scanned = 0  # bytes of _head after _hpos known to hold no "\n"
        self._parts: list[bytes] = []
        self._parts_len = 0  # bytes in _parts
        self._parts_scanned = 0  # leading parts known to hold no "\n"
        self._eof = False

    # -- state ---------------------------------------------------------

    def __len__(self) -> int:
        """How many bytes are buffered (received and not yet taken)."""
        region = self.region
        waiting = self._rend - region.tell() if region is not _EMPTY_REGION else 0
        return waiting + len(self._head) - self._hpos + self._parts_len

    @property
    def eof(self) -> bool:
        """True once `feed_eof` was called: the stream ends after the buffered bytes."""
        return self._eof

    def __repr__(self) -> str:
        return f"<ReceiveBuffer {len(self)} bytes{' eof' if self._eof else ''}>"

    # -- input ---------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Append received bytes (``bytes`` are kept by reference, others copied)."""
        if self._eof:
            raise ValueError("feed() after feed_eof(): the stream has ended")
        if not data:
            return
        if type(data) is not bytes:
            data = bytes(data)
        if self._hpos == len(self._head) and not self._parts:
            self._head = data
            self._hpos = self._scanned = 0
        else:
            self._parts.append(data)
            self._parts_len += len(data)

    def feed_eof(self) -> None:
        """The stream has ended: a last line without terminator becomes complete."""
        self._eof = True

    # -- lines ---------------------------------------------------------

    def next_line(self, max_length: int) -> bytes | _Verdict:
        """The next line with its terminator, `NEED_MORE`, or `TOO_LONG`.

        ``max_length`` bounds the content (without the terminator). At the
        end of the stream a last line without terminator is returned as it
        is (if it is not too long), then ``b""``.
        """
        region = self.region
        if region is not _EMPTY_REGION:
            line = region.readline()
            if line:
                if len(line) - 1 > max_length and _content_length(line) > max_length:
                    region.seek(-len(line), 1)
                    return TOO_LONG
                return line
            self._release_region()
        head = self._head
        hpos = self._hpos
        index = head.find(_NL, hpos + self._scanned)
        if index < 0:
            self._scanned = len(head) - hpos
            if self._parts:
                return self._line_from_parts(max_length)
            return self._partial_line(max_length)
        end = index + 1
        if end - hpos - 1 > max_length and _content_length(head[hpos:end]) > max_length:
            return TOO_LONG
        line = head if hpos == 0 and end == len(head) else head[hpos:end]
        self._hpos = end
        self._scanned = 0
        self._split()
        return line

    def _line_from_parts(self, max_length: int) -> bytes | _Verdict:
        """Find the line end in the fed parts (the head holds none); join once."""
        parts = self._parts
        for count in range(self._parts_scanned, len(parts)):
            part = parts[count]
            index = part.find(_NL)
            if index < 0:
                continue
            line = b"".join([self._head[self._hpos :], *parts[:count], part[: index + 1]])
            if _content_length(line) > max_length:
                self._parts_scanned = count  # searched up to here, the end is in this one
                return TOO_LONG
            self._parts_len -= sum(map(len, parts[: count + 1]))
            del parts[: count + 1]
            self._parts_scanned = 0
            self._head = part
            self._hpos = index + 1
            self._scanned = 0
            self._split()
            return line
        self._parts_scanned = len(parts)
        return self._partial_line(max_length)

    def _partial_line(self, max_length: int) -> bytes | _Verdict:
        """No ``\\n`` is buffered: the last line at EOF, too long already, or need more."""
        size = len(self)
        if self._eof:
            if size > max_length:
                return TOO_LONG
            return self.take_all()
        # The content so far is ``size`` bytes, or ``size - 1`` when the last
        # byte is a "\r" that a "\n" may still follow.
        if size > max_length + 1:
            return TOO_LONG
        if size == max_length + 1:
            last = self._parts[-1] if self._parts else self._head
            if last[-1] != _CR:
                return TOO_LONG
        return NEED_MORE

    def _split(self) -> None:
        """Read ahead: the head's complete lines, but the last, become the region."""
        if self.region is not _EMPTY_REGION:
            return  # called only once the region is drained; kept safe anyway
        head = self._head
        hpos = self._hpos
        last = head.rfind(_NL, hpos)
        cut = head.rfind(_NL, hpos, last) + 1 if last > hpos else 0  # after the second-to-last line
        if cut - hpos > self.line_limit + 1:
            # Keep the region within the limit, so that no line in it exceeds it.
            cut = head.rfind(_NL, hpos, hpos + self.line_limit + 1) + 1
        if cut <= hpos:
            # At most one complete line (next_line serves it from the head).
            self._compact()
            return
        region = _BytesIO(head)
        region.seek(hpos)
        region.truncate(cut)  # the region gets its own copy; ``head`` is let go below
        self.region = region
        self._rend = cut
        self._head = head[cut:]
        self._hpos = self._scanned = 0

    def _compact(self) -> None:
        """Drop the taken front of the head once it is the larger half (amortized O(1) per byte)."""
        hpos = self._hpos
        if hpos and hpos >= len(self._head) - hpos:
            self._head = self._head[hpos:]
            self._hpos = 0

    def _release_region(self) -> None:
        region = self.region
        if region is not _EMPTY_REGION:
            # truncate(0) frees the region's memory even while a suspended
            # generator still refers to it (that generator then sees its end).
            region.truncate(0)
            self.region = _EMPTY_REGION
            self._rend = 0

    def recall_region(self) -> None:
        """Put the read-ahead lines back among the unsplit bytes.

        Anything still reading the old region (an iterator of a thread that
        no longer owns the handle) sees its end at once; `next_line` splits
        the bytes again.
        """
        region = self.region
        if region is _EMPTY_REGION:
            return
        rest = region.read()
        self._release_region()
        if rest:
            self._head = rest + self._head[self._hpos :]
            self._hpos = self._scanned = 0

    # -- bytes -----------------------------------------------------------

    def take(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` (at least 1) of what is buffered; ``b""`` when nothing is."""
        region = self.region
        if region is not _EMPTY_REGION:
            data = region.read(max_bytes)
            if region.tell() >= self._rend:
                self._release_region()  # drained: let its memory go now
            if data:
                return data
        head = self._head
        hpos = self._hpos
        if hpos == len(head):
            if not self._parts:
                return b""
            self._fold_parts()
            head = self._head
            hpos = 0
        end = min(len(head), hpos + max_bytes)
        if end == len(head):
            data = head[hpos:] if hpos else head
            self._head = b""
            self._hpos = self._scanned = 0
            return data
        self._hpos = end
        self._scanned = max(0, self._scanned - (end - hpos))
        self._compact()
        return head[hpos:end]

    def _fold_parts(self) -> None:
        """The head is used up: the fed parts become the head (one join, not one per part)."""
        parts = self._parts
        scanned = sum(map(len, parts[: self._parts_scanned]))
        self._head = parts[0] if len(parts) == 1 else b"".join(parts)
        self._hpos = 0
        self._scanned = scanned
        parts.clear()
        self._parts_len = self._parts_scanned = 0

    def take_into(self, view: memoryview) -> int:
        """Copy up to ``len(view)`` buffered bytes into ``view``; return the count."""
        data = self.take(len(view))
        count = len(data)
        view[:count] = data
        return count

    def take_exactly(self, n: int) -> bytes | _Verdict:
        """Exactly ``n`` bytes, or `NEED_MORE` (and nothing is taken)."""
        if len(self) < n:
            return NEED_MORE
        if n == 0:
            return b""
        data = self.take(n)
        if len(data) == n:
            return data
        pieces = [data]
        got = len(data)
        # Bounded: each take gives at least one byte, as len(self) >= n - got;
        # at most three turns (region, head, folded parts).
        while got < n:
            data = self.take(n - got)
            pieces.append(data)
            got += len(data)
        return b"".join(pieces)

    def take_all(self) -> bytes:
        """Everything buffered, in order; the buffer is left empty (the EOF mark stays)."""
        data = self.take_exactly(len(self))
        assert isinstance(data, bytes)
        return data

    def clear(self) -> None:
        """Drop everything (the handle closed): the memory is released at once."""
        self._release_region()
        self._head = b""
        self._hpos = self._scanned = 0
        self._parts.clear()
        self._parts_len = self._parts_scanned = 0


#: The buffer of every handle that has not received anything yet: a handle
#: makes its own on its first receive, so a connect+close never builds one.
#: Reading from it changes nothing (it answers ``b""`` and `NEED_MORE`);
#: nothing may feed it.
class _SharedEmpty(ReceiveBuffer):
    """`EMPTY`'s class: reading works (nothing is there), feeding is a bug and says so."""

    __slots__ = ()

    def feed(self, data: bytes) -> None:
        raise RuntimeError("the shared EMPTY buffer must not be fed: make the handle's own buffer first")

    def feed_eof(self) -> None:
        raise RuntimeError("the shared EMPTY buffer must not be fed: make the handle's own buffer first")


EMPTY: Final[ReceiveBuffer] = _SharedEmpty()
