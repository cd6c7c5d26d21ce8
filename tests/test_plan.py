"""The connect plan: every argument checked before any I/O, and the request normalized once."""

from __future__ import annotations

import math
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from conftest import Server, open_fds

import inetkit
from inetkit import (
    ErrorCode,
    InvalidArgumentError,
    KeepAlive,
    Option,
    Protocol,
    _connect,
    _resolver,
    starttls,
)
from inetkit._core import plan as plan_module
from inetkit._core.plan import PLAN_CACHE_SIZE, Plan, deadline_of, dialog_names, make_plan
from inetkit._dialer import CONNECTION_ATTEMPT_DELAY

D = CONNECTION_ATTEMPT_DELAY


def plan(host: object = "127.0.0.1", port: object = 80, **kwargs: object) -> Plan:
    args: dict[str, object] = {
        "protocol": Protocol.TCP,
        "timeout": 10.0,
        "options": Option.NONE,
        "credentials": None,
        "local_address": None,
        "resolver": None,
        "starttls": None,
        "keepalive": None,
        "attempt_delay": D,
        "session_cache": True,
    }
    extra = {key: kwargs.pop(key) for key in ("normalized", "implicit_tls") if key in kwargs}
    args.update(kwargs)
    return make_plan(host, port, *args.values(), **extra)  # type: ignore[arg-type]


class Spy(inetkit.Resolver):
    """Records every name it is asked for; a connect refused by its plan never asks."""

    def __init__(self) -> None:
        super().__init__(system_hosts=False, dns=False, overrides={"spy.test": "127.0.0.1"})
        self.asked: list[str] = []

    def resolve(
        self, host: str, port: int, protocol: Protocol, deadline: float | None
    ) -> list[_resolver.AddressInfo]:
        self.asked.append(host)
        return super().resolve(host, port, protocol, deadline)


BAD: list[tuple[dict[str, object], type[Exception], ErrorCode | None, str]] = [
    ({"host": None}, TypeError, None, "host"),
    ({"host": b"example.com"}, TypeError, None, "host"),
    ({"host": ""}, InvalidArgumentError, ErrorCode.INVALID_HOST_NAME, "empty"),
    ({"host": "https://example.com/"}, InvalidArgumentError, ErrorCode.INVALID_HOST_NAME, "connect_url"),
    ({"host": "127.1"}, InvalidArgumentError, ErrorCode.INVALID_HOST_NAME, "127.1"),
    ({"port": 0}, InvalidArgumentError, ErrorCode.INVALID_PORT, "port"),
    ({"port": 65536}, InvalidArgumentError, ErrorCode.INVALID_PORT, "port"),
    ({"port": 1.5}, TypeError, None, "port"),
    ({"port": True}, TypeError, None, "port"),
    ({"port": "no-such-service"}, InvalidArgumentError, ErrorCode.INVALID_PORT, "no-such-service"),
    ({"protocol": "tcp"}, TypeError, None, "protocol"),
    ({"protocol": 99}, InvalidArgumentError, ErrorCode.INVALID_ARGUMENT, "protocol"),
    ({"timeout": 0}, InvalidArgumentError, ErrorCode.INVALID_ARGUMENT, "timeout"),
    ({"timeout": -1.0}, InvalidArgumentError, ErrorCode.INVALID_ARGUMENT, "timeout"),
    ({"timeout": math.nan}, InvalidArgumentError, ErrorCode.INVALID_ARGUMENT, "timeout"),
    ({"timeout": math.inf}, InvalidArgumentError, ErrorCode.INVALID_ARGUMENT, "timeout"),
    ({"timeout": "5"}, TypeError, None, "timeout"),
    ({"timeout": True}, TypeError, None, "timeout"),
    ({"options": "SECURE"}, TypeError, None, "options"),
    ({"options": 1 << 30}, InvalidArgumentError, ErrorCode.INVALID_ARGUMENT, "options"),
    ({"credentials": "cert.pem"}, TypeError, None, "credentials"),
    ({"local_address": "127.0.0.1"}, TypeError, None, "local_address"),
    ({"local_address": ("127.0.0.1", 70000)}, InvalidArgumentError, ErrorCode.INVALID_PORT, "local_address"),
    (
        {"local_address": ("example.com", 0)},
        InvalidArgumentError,
        ErrorCode.INVALID_HOST_NAME,
        "local_address",
    ),
    ({"resolver": object()}, TypeError, None, "resolver"),
    ({"starttls": 5}, TypeError, None, "starttls"),
    ({"starttls": "gopher"}, InvalidArgumentError, ErrorCode.INVALID_ARGUMENT, "starttls dialog 'gopher'"),
    ({"keepalive": 30}, TypeError, None, "keepalive"),
    ({"attempt_delay": 0.001}, InvalidArgumentError, ErrorCode.INVALID_ARGUMENT, "attempt_delay"),
    ({"attempt_delay": math.inf}, InvalidArgumentError, ErrorCode.INVALID_ARGUMENT, "attempt_delay"),
    ({"attempt_delay": "fast"}, TypeError, None, "attempt_delay"),
    ({"session_cache": "yes"}, TypeError, None, "session_cache"),
    ({"options": Option.BROADCAST}, InvalidArgumentError, ErrorCode.INVALID_ARGUMENT, "BROADCAST"),
    (
        {"protocol": Protocol.UDP, "options": Option.SECURE},
        InvalidArgumentError,
        ErrorCode.INVALID_ARGUMENT,
        "SECURE needs TCP",
    ),
    (
        {"protocol": Protocol.UDP, "starttls": "smtp"},
        InvalidArgumentError,
        ErrorCode.INVALID_ARGUMENT,
        "needs TCP",
    ),
    (
        {"options": Option.SECURE, "starttls": "smtp"},
        InvalidArgumentError,
        ErrorCode.INVALID_ARGUMENT,
        "exclude each other",
    ),
    (
        {"options": Option.RESERVEDPORT, "local_address": ("127.0.0.1", 5000)},
        InvalidArgumentError,
        ErrorCode.INVALID_ARGUMENT,
        "RESERVEDPORT",
    ),
]


@pytest.mark.parametrize(("kwargs", "error", "code", "named"), BAD)
def test_bad_input_is_refused_by_the_plan(
    kwargs: dict[str, object], error: type[Exception], code: ErrorCode | None, named: str
) -> None:
    with pytest.raises(error) as info:
        plan(**kwargs)
    assert named in str(info.value)
    if code is not None:
        assert isinstance(info.value, InvalidArgumentError)
        assert info.value.code is code


@pytest.mark.parametrize(("kwargs", "error", "code", "named"), BAD)
def test_connect_refuses_bad_input_before_any_io(
    kwargs: dict[str, object], error: type[Exception], code: ErrorCode | None, named: str
) -> None:
    args = {"host": "spy.test", "port": 80, "timeout": 5.0, **kwargs}
    spy = Spy()
    args.setdefault("resolver", spy)
    before = open_fds()
    with pytest.raises(error) as info:
        inetkit.connect(**args)  # type: ignore[arg-type]
    assert open_fds() == before
    assert spy.asked == []  # nothing was resolved, so nothing was dialled
    assert named in str(info.value)
    if code is not None:
        assert isinstance(info.value, InvalidArgumentError) and info.value.code is code


def test_connect_url_refuses_bad_input_before_any_io() -> None:
    spy = Spy()
    with pytest.raises(TypeError, match="session_cache"):
        inetkit.connect_url("http://spy.test/", resolver=spy, session_cache=None)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="exclude each other"):
        inetkit.connect_url("https://spy.test/", resolver=spy, starttls="smtp", options=Option.SECURE)
    assert spy.asked == []


def test_the_plan_is_the_normalized_request() -> None:
    one = plan("[::1]", "https", timeout=5)
    assert (one.host, one.port, one.protocol, one.timeout) == ("::1", 443, Protocol.TCP, 5.0)
    assert type(one.timeout) is float
    assert (deadline_of(one, 100.0), not hasattr(one, "started")) == (105.0, True)  # the plan has no clock
    assert one.literal == (socket.AF_INET6, ("::1", 443, 0, 0))
    assert one.attempt_delay == D and one.bits == 0 and not one.prepare
    two = plan("Example.COM.", 25, timeout=None)
    assert (two.host, two.literal, deadline_of(two, 100.0)) == ("example.com.", None, None)
    three = plan("127.0.0.1", 53, protocol=Protocol.UDP)
    assert three.literal == (socket.AF_INET, ("127.0.0.1", 53))
    assert three.attempt_delay == math.inf  # UDP: the next address only after a local failure
    four = plan(keepalive=KeepAlive(idle=30), local_address=("::1", 0))
    assert four.options == Option.KEEPALIVE and four.bits == int(Option.KEEPALIVE)
    assert four.local == ("::1", 0) and four.prepare
    assert plan(options=Option.NODELAY).prepare
    assert plan(attempt_delay=1).attempt_delay == 1.0


def _outcome(call: Callable[[], Plan]) -> object:
    """What a plan call gives: the plan's fields, or the error's class and message."""
    try:
        made = call()
    except (TypeError, InvalidArgumentError) as exc:
        return type(exc), str(exc)
    return tuple(getattr(made, name) for name in Plan.__slots__)


def test_the_same_arguments_give_the_same_plan() -> None:
    one = plan("cache.example", 8080, timeout=7)
    assert plan("cache.example", 8080, timeout=7) is one  # remembered: no check runs again
    assert _outcome(lambda: plan("cache.example", 8080, timeout=7.0)) == _outcome(lambda: one)
    assert plan("cache.example", 8081, timeout=7) is not one
    # A local address or a resolver: checked on every call.
    assert plan(local_address=("127.0.0.1", 0)) is not plan(local_address=("127.0.0.1", 0))
    spy = inetkit.Resolver(dns=False)
    assert plan(resolver=spy) is not plan(resolver=spy)


@pytest.mark.parametrize(
    ("field", "accepted", "other"),
    [
        ("port", 1, True),
        ("port", 80, 80.0),
        ("timeout", 1, True),
        ("session_cache", True, 1),
        ("session_cache", False, 0),
        ("attempt_delay", 1.0, True),
        ("options", Option.NONE, 0),
        ("options", Option.NONE, False),
        ("protocol", Protocol.TCP, 6.0),
        ("protocol", Protocol.TCP, 6),
    ],
)
def test_equal_values_of_other_types_are_checked_as_if_first(
    field: str, accepted: object, other: object
) -> None:
    """``True == 1`` and ``80.0 == 80``: a remembered plan never answers for a value of another type."""
    args: dict[str, object] = {"host": "types.example", "port": 443, field: other}
    plan_module._PLANS.clear()
    fresh = _outcome(lambda: plan(**args))
    plan(**{**args, field: accepted})  # now remembered
    assert _outcome(lambda: plan(**args)) == fresh


def test_unhashable_arguments_are_checked_not_remembered() -> None:
    with pytest.raises(TypeError, match="options"):
        plan(options=[Option.NODELAY])
    with pytest.raises(TypeError, match="starttls"):
        plan(starttls=["smtp"])


def test_the_plan_cache_is_bounded() -> None:
    plan_module._PLANS.clear()
    for port in range(1, PLAN_CACHE_SIZE + 50):
        plan("bounded.example", port)
        assert len(plan_module._PLANS) <= PLAN_CACHE_SIZE


def test_a_remembered_plan_counts_each_connect_deadline_from_its_own_start(echo_server: Server) -> None:
    """The plan holds no clock: a later connect with the same arguments has its whole timeout."""
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=0.3):
        pass
    time.sleep(0.4)  # longer than the timeout: a deadline kept in the plan would have passed
    with inetkit.connect("127.0.0.1", echo_server.port, timeout=0.3) as conn:
        conn.write(b"ping\n")
        assert conn.read_line() == b"ping\n"


def test_implicit_tls_from_a_url_scheme() -> None:
    assert plan(implicit_tls=True).options == Option.SECURE
    # What follows the race: TLS, a STARTTLS dialog, or nothing.
    assert (plan(implicit_tls=True).tls_follows, plan(starttls="smtp").tls_follows) == (True, True)
    assert (plan(options=Option.SECURE).tls_follows, plan().tls_follows) == (True, False)
    # A STARTTLS dialog wins over the scheme's implicit TLS.
    assert plan(implicit_tls=True, starttls="smtp").options == Option.NONE
    assert plan("example.com", normalized=True).host == "example.com"


def test_starttls_names_come_from_the_dialog_registry() -> None:
    from inetkit._core.dialogs import NAMES

    # One list of names: the plan, connect and the public functions all read it.
    assert tuple(dialog_names()) == NAMES == tuple(starttls.DIALOGS) == _connect.STARTTLS_DIALOGS
    assert all(starttls.DIALOGS[name] is getattr(starttls, name) for name in NAMES)
    with pytest.raises(InvalidArgumentError, match="unknown starttls dialog 'gopher'; known: smtp, imap"):
        plan(starttls="gopher")
    assert plan(starttls="xmpp").starttls == "xmpp"


def test_import_inetkit_does_not_load_the_dialogs() -> None:
    code = "import sys, inetkit; print('inetkit.starttls' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_the_resolver_gets_the_normalized_name_and_does_not_normalize_again(
    echo_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver = inetkit.Resolver(overrides={"xn--bcher-kva.test": "127.0.0.1"}, dns=False)

    def refuse(host: str) -> str:
        raise AssertionError(f"the resolver normalized {host!r} again")

    monkeypatch.setattr(_resolver, "normalize_host_name", refuse)
    with inetkit.connect("BÜCHER.test", echo_server.port, timeout=5, resolver=resolver) as conn:
        assert conn.host_name == "xn--bcher-kva.test"
        assert conn.trace.resolution is not None and conn.trace.resolution.source == "overrides"


def test_a_custom_resolver_receives_the_normalized_name(echo_server: Server) -> None:
    class Custom(inetkit.Resolver):
        asked: list[str] = []

        def resolve(
            self, host: str, port: int, protocol: Protocol, deadline: float | None
        ) -> list[_resolver.AddressInfo]:
            self.asked.append(host)
            return [(socket.AF_INET, ("127.0.0.1", port))]

    resolver = Custom()
    with inetkit.connect("Custom.TEST.", echo_server.port, timeout=5, resolver=resolver):
        pass
    assert resolver.asked == ["custom.test."]
