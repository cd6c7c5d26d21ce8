"""The small public value classes: the trace, `KeepAlive`, and the enums built by `fast_enum`.

They are plain classes (``import inetkit`` does not load `dataclasses`) that
keep what their dataclass versions gave: construction by position and by
keyword with the same defaults, the ``Name(field=value, ...)`` repr,
equality by value, hashing (KeepAlive only), ``match`` patterns, pickling.
`ErrorCode`, `Option` and `Protocol` are built without the class
statement's checks, and must equal what the class statement builds.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import pickle
import socket
import types
from typing import Any

import pytest

from inetkit import (
    Attempt,
    ConnectTrace,
    ErrorCode,
    InetConnectionRefusedError,
    InetTimeoutError,
    InvalidArgumentError,
    KeepAlive,
    Option,
    Protocol,
    Resolution,
)
from inetkit._errors import enum_by_functional_api

REFUSED = InetConnectionRefusedError("connect ::1 port 1 failed", ErrorCode.CONNECTION_REFUSED, errno=111)


def sample_trace(refused: BaseException = REFUSED) -> ConnectTrace:
    return ConnectTrace(
        host="example.test",
        port=443,
        resolution=Resolution("hosts_file", ["::1", "127.0.0.1"], 0.0012),
        attempts=[
            Attempt("::1", 443, socket.AF_INET6, 0.0015, 0.0002, "failed", refused),
            Attempt(address="127.0.0.1", port=443, family=socket.AF_INET, start=0.0018),
        ],
        tls_handshake=0.004,
        total=0.006,
    )


def test_trace_defaults_and_keywords() -> None:
    attempt = Attempt("192.0.2.1", 80, socket.AF_INET, 0.5)
    assert (attempt.duration, attempt.outcome, attempt.error) == (None, "pending", None)
    trace = ConnectTrace("h.test", 80)
    assert (trace.resolution, trace.attempts, trace.tls_handshake, trace.starttls, trace.total) == (
        None,
        [],
        None,
        None,
        None,
    )
    # Each trace gets its own list (the dataclass's default_factory).
    other = ConnectTrace(host="h.test", port=80)
    trace.attempts.append(attempt)
    assert other.attempts == []
    # Fields are mutable: connect fills them in as it goes.
    trace.resolution = Resolution(source="dns", addresses=["192.0.2.1"], duration=0.25)
    assert trace.resolution.addresses == ["192.0.2.1"]
    with pytest.raises(TypeError):
        Attempt("192.0.2.1", 80)  # type: ignore[call-arg]
    with pytest.raises(AttributeError):
        attempt.when = 1.0  # type: ignore[attr-defined]  # __slots__: no stray attributes


def test_trace_repr_names_every_field() -> None:
    assert repr(Resolution("dns", ["192.0.2.1"], 0.5)) == (
        "Resolution(source='dns', addresses=['192.0.2.1'], duration=0.5)"
    )
    assert repr(Attempt("::1", 443, 10, 0.1)) == (
        "Attempt(address='::1', port=443, family=10, start=0.1, duration=None, outcome='pending', error=None)"
    )
    assert repr(ConnectTrace("h.test", 1)) == (
        "ConnectTrace(host='h.test', port=1, resolution=None, attempts=[], tls_handshake=None, "
        "starttls=None, total=None, proxy=None)"
    )


def test_trace_equality_by_value_and_unhashable() -> None:
    assert sample_trace() == sample_trace()
    changed = sample_trace()
    changed.attempts[1].outcome = "connected"
    assert changed != sample_trace()
    assert Resolution("dns", [], 0.0) != ("dns", [], 0.0)
    for value in (Resolution("dns", [], 0.0), Attempt("::1", 1, 10, 0.0), ConnectTrace("h", 1)):
        with pytest.raises(TypeError, match="unhashable"):
            hash(value)


def test_trace_pickles_and_copies() -> None:
    # Exceptions compare by identity, so a copy's attempt errors are
    # compared by what they say.
    trace = sample_trace()
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        restored = pickle.loads(pickle.dumps(trace, protocol))
        assert type(restored) is ConnectTrace
        assert repr(restored) == repr(trace)
    assert repr(copy.deepcopy(trace)) == repr(trace)
    error = InetTimeoutError("connect example.test port 443: timed out", trace=trace)
    copied = pickle.loads(pickle.dumps(error))
    assert repr(copied.trace) == repr(trace)
    assert copied.trace.attempts[0].error.code is ErrorCode.CONNECTION_REFUSED
    plain = ConnectTrace(
        "h.test", 80, Resolution("dns", ["192.0.2.1"], 0.1), [Attempt("192.0.2.1", 80, 2, 0.1)]
    )
    assert pickle.loads(pickle.dumps(plain)) == plain


def test_trace_match_patterns() -> None:
    match sample_trace():
        case ConnectTrace("example.test", 443, Resolution(source, addresses, _), [Attempt(first), *_]):
            assert (source, addresses, first) == ("hosts_file", ["::1", "127.0.0.1"], "::1")
        case _:
            pytest.fail("the trace did not match its own shape")


def test_trace_format() -> None:
    assert sample_trace().format().splitlines() == [
        "connect example.test port 443",
        "  resolve: 2 address(es) from hosts_file in 1.2 ms: ::1, 127.0.0.1",
        "  attempt [::1]:443 started at +1.5 ms, failed after 0.2 ms: connect ::1 port 1 failed",
        "  attempt 127.0.0.1:443 started at +1.8 ms, pending",
        "  tls handshake: 4.0 ms",
        "  total: 6.0 ms",
    ]


def test_keepalive_value() -> None:
    keep = KeepAlive(idle=30, interval=5, count=4)
    assert keep == KeepAlive(30, 5, 4)
    assert keep != KeepAlive(30)
    assert keep != (30, 5, 4)
    assert hash(keep) == hash(KeepAlive(30, 5, 4))
    assert {keep: "tuned"}[KeepAlive(30, 5, 4)] == "tuned"
    assert repr(keep) == "KeepAlive(idle=30, interval=5, count=4)"
    assert repr(KeepAlive()) == "KeepAlive(idle=None, interval=None, count=None)"
    match keep:
        case KeepAlive(idle, interval, count):
            assert (idle, interval, count) == (30, 5, 4)
        case _:
            pytest.fail("KeepAlive did not match its own shape")


def test_keepalive_is_immutable() -> None:
    keep = KeepAlive(idle=30)
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'idle'"):
        keep.idle = 10  # type: ignore[misc]
    with pytest.raises(AttributeError, match="cannot assign to field 'other'"):
        keep.other = 1  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field 'count'"):
        del keep.count  # type: ignore[misc]
    assert keep == KeepAlive(idle=30)


def test_keepalive_pickles_and_copies() -> None:
    keep = KeepAlive(idle=60, count=5)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert pickle.loads(pickle.dumps(keep, protocol)) == keep
    assert copy.copy(keep) == keep
    assert copy.deepcopy(keep) == keep


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"idle": 0}, InvalidArgumentError, "KeepAlive.idle must be between 1 and 32767, got 0"),
        ({"interval": 32768}, InvalidArgumentError, "KeepAlive.interval must be between 1 and 32767"),
        ({"count": 1.5}, TypeError, "KeepAlive.count must be an int or None, not float"),
        ({"idle": True}, TypeError, "KeepAlive.idle must be an int or None, not bool"),
        # Checked in field order, as before.
        ({"idle": "x", "count": 0}, TypeError, "KeepAlive.idle must be an int or None, not str"),
    ],
)
def test_keepalive_refuses_bad_values(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        KeepAlive(**kwargs)  # type: ignore[arg-type]


def built_normally(fast: type[enum.Enum], etype: type[enum.Enum]) -> type[enum.Enum]:
    """The enum a plain ``class Name(etype): ...`` statement makes from ``fast``'s members."""

    def body(namespace: dict[str, object]) -> None:
        namespace["__module__"] = fast.__module__
        namespace["__qualname__"] = fast.__qualname__
        namespace["__doc__"] = fast.__doc__
        for name, member in fast.__members__.items():
            namespace[name] = member.value

    return types.new_class(fast.__name__, (etype,), exec_body=body)  # type: ignore[return-value]


ENUMS = [(ErrorCode, enum.IntEnum), (Option, enum.IntFlag), (Protocol, enum.IntEnum)]


@pytest.mark.parametrize(("fast", "etype"), ENUMS)
def test_fast_enums_equal_the_class_statement(fast: type[enum.Enum], etype: type[enum.Enum]) -> None:
    reference = built_normally(fast, etype)
    assert isinstance(fast, enum.EnumType)
    assert issubclass(fast, etype)
    assert fast.__doc__ == reference.__doc__
    assert [(m.name, m.value) for m in fast] == [(m.name, m.value) for m in reference]
    assert list(fast.__members__) == list(reference.__members__)
    for name, member in fast.__members__.items():
        twin = reference[name]
        assert (repr(member), str(member), format(member), f"{member:>6}") == (
            repr(twin),
            str(twin),
            format(twin),
            f"{twin:>6}",
        )
        assert fast(member.value) is member
        assert pickle.loads(pickle.dumps(member)) is member
        # Where a class statement puts it: the member itself, no property in front
        # (whose Python-level __get__ made each ``Option.SECURE`` cost five times more).
        assert vars(fast)[name] is member and type(vars(reference)[name]) is reference
    if etype is enum.IntEnum:
        with pytest.raises(ValueError, match="is not a valid"):
            fast(0x7FFF0000)
    simple_test = getattr(enum, "_test_simple_enum", None)
    if simple_test is not None:
        simple_test(reference, fast)  # the standard library's own check of such enums


def test_fast_option_flags_combine_like_the_class_statement() -> None:
    reference = built_normally(Option, enum.IntFlag)

    def spellings(flags: Any) -> list[str]:
        both = flags.NODELAY | flags.KEEPALIVE
        return [
            repr(both),
            repr(both & flags.NODELAY),
            repr(both ^ flags.NODELAY),
            repr(~flags.NODELAY),
            repr(5 | flags.NODELAY),
            repr(flags.NODELAY | 0x100000),
            repr(flags(0x100000)),
            repr(flags(0)),
            repr(list(both)),
            str(flags.KEEPALIVE in both),
        ]

    assert spellings(Option) == spellings(reference)
    assert [f.name for f in Option] == [f.name for f in reference]


@pytest.mark.parametrize(("fast", "etype"), ENUMS)
def test_enum_fallback_builds_the_same_enum(fast: type[enum.Enum], etype: type[enum.Enum]) -> None:
    # The path taken on a Python without enum._simple_enum.
    plain = type(fast.__name__, (), {name: m.value for name, m in fast.__members__.items()})
    plain.__doc__ = fast.__doc__
    plain.__module__ = fast.__module__
    plain.__qualname__ = fast.__qualname__
    built = enum_by_functional_api(etype, plain)
    assert [(m.name, m.value, repr(m)) for m in built] == [(m.name, m.value, repr(m)) for m in fast]  # type: ignore[attr-defined]
    assert built.__doc__ == fast.__doc__
