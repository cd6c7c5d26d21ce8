"""`ReceiveBuffer` driven with made-up bytes only: lines, limits, EOF, mixed reads, memory.

The property tests compare the buffer with `Model`, a plain ``bytes`` that
answers every request by the rules in their simplest form.
"""

from __future__ import annotations

import gc
import itertools
import sys
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inetkit._core.buffer import NEED_MORE, TOO_LONG, ReceiveBuffer

#: A long line for the limit tests (content only, no terminator).
LONG = 70_000


def lines_of(buffer: ReceiveBuffer, max_length: int = 1 << 30) -> list[object]:
    """Every answer of next_line until it needs more, or until b"" after EOF."""
    answers: list[object] = []
    for _ in range(100_000):  # bounded: far more than any test feeds
        answer = buffer.next_line(max_length)
        answers.append(answer)
        if answer is NEED_MORE or answer is TOO_LONG or answer == b"":
            return answers
    raise AssertionError("next_line never stopped")


def fed(*pieces: bytes, eof: bool = False) -> ReceiveBuffer:
    buffer = ReceiveBuffer()
    for piece in pieces:
        buffer.feed(piece)
    if eof:
        buffer.feed_eof()
    return buffer


# -- lines ---------------------------------------------------------------


def test_lines_end_at_newline_and_keep_their_terminator() -> None:
    buffer = fed(b"one\r\ntwo\n\nthree")
    assert lines_of(buffer) == [b"one\r\n", b"two\n", b"\n", NEED_MORE]
    assert len(buffer) == 5
    buffer.feed_eof()
    assert lines_of(buffer) == [b"three", b""]
    assert buffer.next_line(10) == b""  # and it stays at the end


def test_line_split_across_feeds() -> None:
    buffer = fed(b"hel")
    assert buffer.next_line(100) is NEED_MORE
    buffer.feed(b"lo wor")
    assert buffer.next_line(100) is NEED_MORE
    buffer.feed(b"ld\nnext")
    assert buffer.next_line(100) == b"hello world\n"
    assert buffer.next_line(100) is NEED_MORE


def test_crlf_split_across_feeds_is_one_terminator() -> None:
    buffer = fed(b"line\r")
    assert buffer.next_line(100) is NEED_MORE
    buffer.feed(b"\nrest\n")
    assert lines_of(buffer) == [b"line\r\n", b"rest\n", NEED_MORE]


def test_lone_carriage_return_is_not_a_terminator() -> None:
    buffer = fed(b"a\rb\r\rc\n\r\n\rx", eof=True)
    assert lines_of(buffer) == [b"a\rb\r\rc\n", b"\r\n", b"\rx", b""]


def test_many_lines_in_one_feed_use_the_read_ahead_region() -> None:
    data = b"".join(b"line %d\r\n" % number for number in range(1000))
    buffer = fed(data + b"partial")
    first = buffer.next_line(100)
    assert first == b"line 0\r\n"
    # The region's C-level readline gives the same lines as next_line.
    assert buffer.region.readline() == b"line 1\r\n"
    assert lines_of(buffer)[:-1] == [b"line %d\r\n" % number for number in range(2, 1000)]
    assert buffer.take_all() == b"partial"


def test_iterating_the_region_yields_complete_lines_only() -> None:
    buffer = fed(b"a\nb\nc\nd\npart")
    assert buffer.next_line(10) == b"a\n"
    assert list(buffer.region) == [b"b\n", b"c\n"]  # never the last line or the partial one
    assert lines_of(buffer, 10) == [b"d\n", NEED_MORE]


def test_eof_with_partial_last_line() -> None:
    buffer = fed(b"done\npartial", eof=True)
    assert lines_of(buffer) == [b"done\n", b"partial", b""]
    assert len(buffer) == 0


def test_eof_after_a_lone_cr() -> None:
    buffer = fed(b"x\r", eof=True)
    assert lines_of(buffer) == [b"x\r", b""]


def test_feed_after_eof_is_refused() -> None:
    buffer = fed(b"", eof=True)
    with pytest.raises(ValueError, match="feed_eof"):
        buffer.feed(b"late")


def test_feed_copies_mutable_buffers() -> None:
    data = bytearray(b"abc\n")
    buffer = fed(data)  # type: ignore[arg-type]
    data[:] = b"xyz\n"
    assert buffer.next_line(10) == b"abc\n"


# -- line limits ---------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "max_length", "expected"),
    [
        (b"12345\n", 5, b"12345\n"),  # content == max_length
        (b"12345\r\n", 5, b"12345\r\n"),  # the terminator does not count
        (b"123456\n", 5, TOO_LONG),  # max_length + 1
        (b"123456\r\n", 5, TOO_LONG),
        (b"1234\r5\n", 5, TOO_LONG),  # a lone \r is content
        (b"12345\r", 5, NEED_MORE),  # a \n may still follow the \r
        (b"123456", 5, TOO_LONG),  # max_length + 1 without \r: too long already
        (b"12345", 5, NEED_MORE),
        (b"1234567", 5, TOO_LONG),
        (b"\n", 1, b"\n"),
        (b"\r\n", 1, b"\r\n"),
        (b"a\r\n", 1, b"a\r\n"),
        (b"ab\n", 1, TOO_LONG),
    ],
)
def test_line_limit_boundaries(data: bytes, max_length: int, expected: object) -> None:
    # Whole, and fed byte by byte (the verdict must not depend on the cuts).
    assert fed(data).next_line(max_length) == expected
    pieces = [data[i : i + 1] for i in range(len(data))]
    buffer = fed(*pieces)
    assert buffer.next_line(max_length) == expected


@pytest.mark.parametrize(
    ("data", "max_length", "expected"),
    [
        (b"12345", 5, b"12345"),  # at EOF the last line's content is all of it
        (b"123456", 5, TOO_LONG),
        (b"12345\r", 5, TOO_LONG),  # at EOF a trailing \r is content
        (b"1234\r", 5, b"1234\r"),
    ],
)
def test_line_limit_at_eof(data: bytes, max_length: int, expected: object) -> None:
    assert fed(data, eof=True).next_line(max_length) == expected


def test_too_long_line_stays_buffered() -> None:
    buffer = fed(b"x" * 20 + b"\nshort\n")
    assert buffer.next_line(10) is TOO_LONG
    assert buffer.next_line(10) is TOO_LONG  # asking again changes nothing
    assert len(buffer) == 27
    assert buffer.take_exactly(21) == b"x" * 20 + b"\n"
    assert buffer.next_line(10) == b"short\n"


def test_too_long_line_in_the_region_stays_buffered() -> None:
    buffer = fed(b"a\n" + b"y" * 50 + b"\nb\nc\n")
    assert buffer.next_line(100) == b"a\n"
    assert buffer.next_line(10) is TOO_LONG  # the region's line is pushed back
    assert buffer.next_line(100) == b"y" * 50 + b"\n"
    assert lines_of(buffer, 1) == [b"b\n", b"c\n", NEED_MORE]


def test_too_long_line_across_parts_stays_buffered() -> None:
    buffer = fed(b"ab")
    assert buffer.next_line(100) is NEED_MORE
    buffer.feed(b"cd")
    buffer.feed(b"ef\ngh\n")
    assert buffer.next_line(3) is TOO_LONG
    assert buffer.next_line(3) is TOO_LONG
    assert buffer.next_line(6) == b"abcdef\n"
    assert buffer.next_line(6) == b"gh\n"


def test_region_lines_never_exceed_the_line_limit() -> None:
    buffer = ReceiveBuffer(line_limit=10)
    buffer.feed(b"a\n" + b"b" * 9 + b"\n" + b"c" * 30 + b"\nd\ne\n")
    assert buffer.next_line(1000) == b"a\n"
    region_lines = list(buffer.region)
    assert all(len(line) <= 11 for line in region_lines)
    rest = lines_of(buffer, 1000)
    assert region_lines + rest == [b"b" * 9 + b"\n", b"c" * 30 + b"\n", b"d\n", b"e\n", NEED_MORE]


def test_long_line_in_many_small_feeds() -> None:
    buffer = ReceiveBuffer()
    for _ in range(LONG):
        buffer.feed(b"z")
        assert buffer.next_line(LONG) is NEED_MORE
    buffer.feed(b"\n")
    assert buffer.next_line(LONG) == b"z" * LONG + b"\n"
    assert len(buffer) == 0


def test_long_line_over_the_default_limit() -> None:
    buffer = fed(b"z" * LONG + b"\nnext\n")
    assert buffer.next_line(65536) is TOO_LONG
    assert buffer.next_line(LONG) == b"z" * LONG + b"\n"
    assert buffer.next_line(65536) == b"next\n"


def test_line_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="line_limit"):
        ReceiveBuffer(0)


# -- bytes ---------------------------------------------------------------


def test_take_serves_read_ahead_first() -> None:
    buffer = fed(b"one\ntwo\nthree\nfour")
    assert buffer.next_line(100) == b"one\n"
    assert buffer.take(2) == b"tw"
    assert buffer.next_line(100) == b"o\n"
    assert buffer.take(100) == b"three\nfour"
    assert buffer.take(100) == b""


def test_take_exactly_needs_all_or_takes_nothing() -> None:
    buffer = fed(b"abc")
    assert buffer.take_exactly(5) is NEED_MORE
    assert len(buffer) == 3
    buffer.feed(b"de")
    buffer.feed(b"fg")
    assert buffer.take_exactly(5) == b"abcde"
    assert buffer.take_exactly(0) == b""
    assert buffer.take_exactly(2) == b"fg"


def test_take_into_copies_into_the_view() -> None:
    buffer = fed(b"line\nmore\nrest\nend")
    assert buffer.next_line(100) == b"line\n"
    target = bytearray(8)
    with memoryview(target) as view:
        count = buffer.take_into(view)
    assert target[:count] == b"more\nres"[:count]
    assert buffer.take_all() == b"more\nrest\nend"[count:]


def test_take_exactly_across_region_head_and_parts() -> None:
    buffer = fed(b"a\nb\nc\nd\ne")
    assert buffer.next_line(100) == b"a\n"
    buffer.feed(b"fgh")
    buffer.feed(b"ij")
    assert buffer.take_exactly(12) == b"b\nc\nd\nefghij"
    assert len(buffer) == 0


def test_recall_region_keeps_every_byte_in_order() -> None:
    buffer = fed(b"1\n2\n3\n4\n5")
    assert buffer.next_line(10) == b"1\n"
    region = buffer.region
    assert region.readline() == b"2\n"
    buffer.recall_region()
    assert region.readline() == b""  # a reader of the old region sees its end
    assert lines_of(buffer, 10) == [b"3\n", b"4\n", NEED_MORE]
    assert buffer.take_all() == b"5"


def test_clear_drops_everything() -> None:
    buffer = fed(b"1\n2\n3\n")
    assert buffer.next_line(10) == b"1\n"
    region = buffer.region
    buffer.clear()
    assert len(buffer) == 0
    assert region.readline() == b""
    assert buffer.next_line(10) is NEED_MORE


# -- memory --------------------------------------------------------------


def held_bytes(buffer: ReceiveBuffer) -> int:
    """Memory the buffer keeps alive through its attributes (the region's buffer included)."""
    return sum(sys.getsizeof(item) for item in gc.get_referents(buffer) if not isinstance(item, type))


def test_new_buffer_holds_nothing_large() -> None:
    assert held_bytes(ReceiveBuffer()) < 1024


def test_drained_buffer_holds_nothing_large() -> None:
    chunk = b"x" * 78 + b"\r\n"
    buffer = fed(chunk * 819 + b"tail")  # about 64 KiB, as one receive brings
    assert held_bytes(buffer) > 60_000
    got = lines_of(buffer, 100)
    assert got[-1] is NEED_MORE and len(got) == 820
    # Every complete line was handed out: only the partial line is left.
    assert len(buffer) == 4
    assert held_bytes(buffer) < 1024


def test_buffer_drained_by_take_holds_nothing_large() -> None:
    buffer = fed(b"ab\n" * 30_000)
    assert buffer.next_line(10) == b"ab\n"
    while buffer.take(65536):  # bounded: every turn takes bytes
        pass
    assert held_bytes(buffer) < 1024


# -- properties ----------------------------------------------------------


def reference_lines(data: bytes) -> list[bytes]:
    """Lines ending at b"\\n", then a last partial line: what the buffer must give."""
    lines = []
    start = 0
    while (index := data.find(b"\n", start)) >= 0:
        lines.append(data[start : index + 1])
        start = index + 1
    if start < len(data):
        lines.append(data[start:])
    return lines


#: Byte strings rich in the bytes that matter: \n, \r, and others.
line_bytes = st.lists(st.sampled_from([b"\n", b"\r", b"\r\n", b"a", b"bc", b"x" * 40]), max_size=60).map(
    b"".join
) | st.binary(max_size=300)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@given(data=line_bytes, points=st.lists(st.integers(min_value=0, max_value=400), max_size=20))
@settings(max_examples=300, deadline=None)
def test_any_feeding_gives_the_reference_lines(data: bytes, points: list[int]) -> None:
    buffer = ReceiveBuffer(line_limit=8)  # small, so the region's limit is exercised too
    got: list[bytes] = []
    for piece in cut(data, points):
        buffer.feed(piece)
        for answer in lines_of(buffer):
            if isinstance(answer, bytes) and answer:
                got.append(answer)
    buffer.feed_eof()
    for answer in lines_of(buffer):
        assert isinstance(answer, bytes)
        if answer:
            got.append(answer)
    assert got == reference_lines(data)
    assert len(buffer) == 0


@dataclass
class Model:
    """The buffer's rules in their simplest form, over one ``bytes``."""

    data: bytes = b""
    eof: bool = False

    def next_line(self, max_length: int) -> object:
        index = self.data.find(b"\n")
        if index >= 0:
            line = self.data[: index + 1]
            content = len(line) - 1 - (line.endswith(b"\r\n"))
            if content > max_length:
                return TOO_LONG
            self.data = self.data[index + 1 :]
            return line
        size = len(self.data)
        if self.eof:
            if size > max_length:
                return TOO_LONG
            line, self.data = self.data, b""
            return line
        if size > max_length + 1 or (size == max_length + 1 and not self.data.endswith(b"\r")):
            return TOO_LONG
        return NEED_MORE

    def take(self, n: int) -> bytes:
        out, self.data = self.data[:n], self.data[n:]
        return out

    def take_exactly(self, n: int) -> object:
        if len(self.data) < n:
            return NEED_MORE
        return self.take(n)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("feed"), line_bytes),
        st.tuples(st.just("line"), st.integers(min_value=1, max_value=50)),
        st.tuples(st.just("region"), st.integers(min_value=1, max_value=5)),
        st.tuples(st.just("take"), st.integers(min_value=1, max_value=80)),
        st.tuples(st.just("into"), st.integers(min_value=1, max_value=80)),
        st.tuples(st.just("exactly"), st.integers(min_value=0, max_value=120)),
        st.tuples(st.just("recall"), st.just(0)),
    ),
    max_size=60,
)


@given(ops=operations, eof=st.booleans())
@settings(max_examples=400, deadline=None)
def test_mixed_operations_match_the_model_and_reassemble_the_input(
    ops: list[tuple[str, object]], eof: bool
) -> None:
    buffer = ReceiveBuffer(line_limit=16)
    model = Model()
    fed_bytes: list[bytes] = []
    out: list[bytes] = []
    ended = False
    for index, (name, arg) in enumerate(ops):
        if eof and not ended and index == len(ops) // 2:
            buffer.feed_eof()
            model.eof = ended = True
        if name == "feed":
            assert isinstance(arg, bytes)
            if ended:
                continue
            buffer.feed(arg)
            model.data += arg
            fed_bytes.append(arg)
        elif name == "line":
            assert isinstance(arg, int)
            got = buffer.next_line(arg)
            assert got == model.next_line(arg)
            if isinstance(got, bytes):
                out.append(got)
        elif name == "region":
            # What a driver's fast path does: read the region directly.
            assert isinstance(arg, int)
            for _ in range(arg):
                line = buffer.region.readline()
                if not line:
                    break
                assert line == model.next_line(1 << 30)
                assert len(line) <= 17  # within line_limit + 1
                out.append(line)
        elif name == "take":
            assert isinstance(arg, int)
            data = buffer.take(arg)
            assert len(data) >= min(1, len(model.data))
            assert data == model.take(len(data))
            out.append(data)
        elif name == "into":
            assert isinstance(arg, int)
            target = bytearray(arg)
            with memoryview(target) as view:
                count = buffer.take_into(view)
            assert bytes(target[:count]) == model.take(count)
            out.append(bytes(target[:count]))
        elif name == "exactly":
            assert isinstance(arg, int)
            got = buffer.take_exactly(arg)
            assert got == model.take_exactly(arg)
            if isinstance(got, bytes):
                out.append(got)
        else:
            buffer.recall_region()
        assert len(buffer) == len(model.data)
    out.append(buffer.take_all())
    assert b"".join(out) == b"".join(fed_bytes)
    assert len(buffer) == 0
