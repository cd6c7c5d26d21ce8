"""inetkit.compat: SocketWrench-style handles, failure values and per-thread last errors."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from conftest import Server, free_port, silent_listener

from inetkit import ErrorCode, Option, Protocol, SecurityCredentials, compat
from inetkit._demo_server import DemoServer
from inetkit.compat import (
    INVALID_SOCKET,
    InetAttachThread,
    InetConnect,
    InetConnectUrl,
    InetDisconnect,
    InetEnableSecurity,
    InetGetErrorString,
    InetGetLastError,
    InetGetLastErrorMessage,
    InetNormalizeHostName,
    InetRead,
    InetReadLine,
    InetWrite,
    InetWriteLine,
)

TIMEOUT = 5.0


@pytest.fixture
def handles() -> Iterator[list[int]]:
    """Handles a test opened; any still open at the end are disconnected."""
    opened: list[int] = []
    yield opened
    for handle in opened:
        InetDisconnect(handle)


def connect_ok(handles: list[int], host: str, port: int, *args: object) -> int:
    handle = InetConnect(host, port, *args)  # type: ignore[arg-type]
    assert handle > 0, InetGetLastErrorMessage()
    assert InetGetLastError() == 0
    handles.append(handle)
    return handle


def sending(payload: bytes) -> Callable[[socket.socket], None]:
    """A server handler that sends ``payload`` and closes."""

    def handler(sock: socket.socket) -> None:
        sock.sendall(payload)

    return handler


def run_in_thread(function: Callable[[], object]) -> object:
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(function()))
    thread.start()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    return result[0]


@pytest.fixture(scope="module")
def tls_server() -> Iterator[DemoServer]:
    with DemoServer(tls=True) as server:
        yield server


# -- constants ----------------------------------------------------------------------


def test_option_constants_equal_option_values() -> None:
    expected = {
        "NONE": 0,
        "BROADCAST": 0x1,
        "DONTROUTE": 0x2,
        "KEEPALIVE": 0x4,
        "NODELAY": 0x10,
        "RESERVEDPORT": 0x40,
        "NOINHERIT": 0x80,
        "TRUSTEDSITE": 0x800,
        "SECURE": 0x1000,
        "SECURE_FALLBACK": 0x2000,
        "PREFER_IPV6": 0x4000,
        "FREETHREAD": 0x8000,
    }
    for name, value in expected.items():
        assert getattr(compat, f"INET_OPTION_{name}") == value == Option[name]
    # Every Option flag has its constant, and there are no others.
    declared = {name.removeprefix("INET_OPTION_") for name in dir(compat) if name.startswith("INET_OPTION_")}
    assert declared == set(Option.__members__) == set(expected)


def test_protocol_constants_and_invalid_socket() -> None:
    assert compat.INET_PROTOCOL_TCP == 6 == int(Protocol.TCP)
    assert compat.INET_PROTOCOL_UDP == 17 == int(Protocol.UDP)
    assert INVALID_SOCKET == -1


def test_all_lists_the_public_names() -> None:
    for name in compat.__all__:
        assert hasattr(compat, name)
    assert "InetConnect" in compat.__all__ and "INVALID_SOCKET" in compat.__all__


# -- connect, read, write, disconnect -------------------------------------------


def test_line_round_trip_and_disconnect(echo_server: Server, handles: list[int]) -> None:
    handle = connect_ok(handles, "127.0.0.1", echo_server.port, compat.INET_PROTOCOL_TCP, TIMEOUT)
    assert InetWriteLine(handle, "héllo") is True
    assert InetGetLastError() == 0
    assert InetReadLine(handle) == "héllo"
    assert InetWrite(handle, b"raw\n") == 4
    assert InetRead(handle, 4) == b"raw\n"
    assert InetWriteLine(handle, b"bytes too") is True
    assert InetReadLine(handle) == "bytes too"
    assert InetDisconnect(handle) is True
    assert InetGetLastError() == 0


def test_disconnected_handle_is_closed_and_never_reused(echo_server: Server, handles: list[int]) -> None:
    first = connect_ok(handles, "127.0.0.1", echo_server.port)
    assert InetDisconnect(first)
    second = connect_ok(handles, "127.0.0.1", echo_server.port)
    assert second > first
    assert InetRead(first) is None
    assert InetGetLastError() == ErrorCode.HANDLE_CLOSED
    assert str(first) in InetGetLastErrorMessage()
    assert InetDisconnect(first) is False
    assert InetGetLastError() == ErrorCode.HANDLE_CLOSED
    assert InetWriteLine(second, "still open")
    assert InetReadLine(second) == "still open"


@pytest.mark.parametrize("bad", [0, -1, 10**9, 2**70])
def test_unknown_handle_numbers_are_invalid_arguments(bad: int) -> None:
    assert InetRead(bad) is None
    assert InetGetLastError() == ErrorCode.INVALID_ARGUMENT
    assert InetWrite(bad, b"x") == -1
    assert InetGetLastError() == ErrorCode.INVALID_ARGUMENT
    assert InetDisconnect(bad) is False
    assert InetGetLastError() == ErrorCode.INVALID_ARGUMENT


@pytest.mark.parametrize("bad", ["1", None, 1.0, True])
def test_handles_of_the_wrong_type_are_invalid_arguments(bad: object) -> None:
    assert InetReadLine(bad) is None  # type: ignore[arg-type]
    assert InetGetLastError() == ErrorCode.INVALID_ARGUMENT
    assert InetAttachThread(bad) == 0  # type: ignore[arg-type]
    assert InetGetLastError() == ErrorCode.INVALID_ARGUMENT


def test_refused_connect_returns_invalid_socket() -> None:
    port = free_port()
    assert InetConnect("127.0.0.1", port, timeout=TIMEOUT) == INVALID_SOCKET
    assert InetGetLastError() == ErrorCode.CONNECTION_REFUSED
    assert str(port) in InetGetLastErrorMessage()


@pytest.mark.parametrize(
    ("args", "kwargs", "code"),
    [
        ((None, 80), {}, ErrorCode.INVALID_ARGUMENT),  # TypeError
        (("127.0.0.1", 1.5), {}, ErrorCode.INVALID_ARGUMENT),  # TypeError
        (("127.0.0.1", 70000), {}, ErrorCode.INVALID_PORT),
        (("127.1", 80), {}, ErrorCode.INVALID_HOST_NAME),
        (("127.0.0.1", 80), {"options": "x"}, ErrorCode.INVALID_ARGUMENT),
        (("127.0.0.1", 80), {"options": 0x100000}, ErrorCode.INVALID_ARGUMENT),
        (("127.0.0.1", 80), {"protocol": 99}, ErrorCode.INVALID_ARGUMENT),
        (("127.0.0.1", 80), {"options": compat.INET_OPTION_BROADCAST}, ErrorCode.INVALID_ARGUMENT),
        (("127.0.0.1", 80), {"timeout": 0}, ErrorCode.INVALID_ARGUMENT),
        (("http://127.0.0.1/", 80), {}, ErrorCode.INVALID_HOST_NAME),
    ],
)
def test_connect_argument_errors(
    args: tuple[object, ...], kwargs: dict[str, object], code: ErrorCode
) -> None:
    assert InetConnect(*args, **kwargs) == INVALID_SOCKET  # type: ignore[arg-type]
    assert InetGetLastError() == code
    assert InetGetLastErrorMessage()


def test_success_resets_the_last_error(echo_server: Server, handles: list[int]) -> None:
    assert InetRead(0) is None
    assert InetGetLastError() != 0
    connect_ok(handles, "127.0.0.1", echo_server.port)
    assert InetGetLastError() == 0
    assert InetGetLastErrorMessage() == ""


def test_read_at_eof_is_empty_and_succeeds(make_server: Callable[..., Server], handles: list[int]) -> None:
    server = make_server(sending(b"xyz"))
    handle = connect_ok(handles, "127.0.0.1", server.port)
    assert InetRead(handle, 10) == b"xyz"
    assert InetRead(handle, 10) == b""
    assert InetGetLastError() == 0


def test_read_line_strips_terminators_and_replaces_bad_utf8(
    make_server: Callable[..., Server], handles: list[int]
) -> None:
    server = make_server(sending(b"crlf\r\nlf\n\xff\xfebad\r\n\r\nlast"))
    handle = connect_ok(handles, "127.0.0.1", server.port)
    assert InetReadLine(handle) == "crlf"
    assert InetReadLine(handle) == "lf"
    assert InetReadLine(handle) == "\ufffd\ufffdbad"
    assert InetReadLine(handle) == ""  # an empty line is not the end
    assert InetGetLastError() == 0
    assert InetReadLine(handle) == "last"  # unterminated last line
    assert InetReadLine(handle) is None  # EOF ...
    assert InetGetLastError() == 0  # ... is not an error


def test_read_line_too_long(make_server: Callable[..., Server], handles: list[int]) -> None:
    server = make_server(sending(b"0123456789abcdef\n"))
    handle = connect_ok(handles, "127.0.0.1", server.port)
    assert InetReadLine(handle, 8) is None
    assert InetGetLastError() == ErrorCode.LINE_TOO_LONG
    # The bytes stay buffered for InetRead.
    assert InetRead(handle, 100) == b"0123456789abcdef\n"


def test_read_timeout(make_server: Callable[..., Server], handles: list[int]) -> None:
    stop = threading.Event()
    server = make_server(lambda sock: stop.wait(TIMEOUT))
    try:
        handle = connect_ok(handles, "127.0.0.1", server.port, compat.INET_PROTOCOL_TCP, 0.2)
        assert InetRead(handle) is None
        assert InetGetLastError() == ErrorCode.TIMED_OUT
        assert InetReadLine(handle) is None
        assert InetGetLastError() == ErrorCode.TIMED_OUT
    finally:
        stop.set()


def test_wrong_data_types(echo_server: Server, handles: list[int]) -> None:
    handle = connect_ok(handles, "127.0.0.1", echo_server.port)
    assert InetWrite(handle, "text is not bytes") == -1  # type: ignore[arg-type]
    assert InetGetLastError() == ErrorCode.INVALID_ARGUMENT
    assert InetWriteLine(handle, 42) is False  # type: ignore[arg-type]
    assert InetGetLastError() == ErrorCode.INVALID_ARGUMENT
    assert InetRead(handle, 0) is None
    assert InetGetLastError() == ErrorCode.INVALID_ARGUMENT
    assert InetRead(handle, "10") is None  # type: ignore[arg-type]
    assert InetGetLastError() == ErrorCode.INVALID_ARGUMENT
    # The handle still works after misuse.
    assert InetWriteLine(handle, "fine")
    assert InetReadLine(handle) == "fine"


def test_udp(udp_echo: tuple[str, int], handles: list[int]) -> None:
    host, port = udp_echo
    handle = connect_ok(handles, host, port, compat.INET_PROTOCOL_UDP, TIMEOUT)
    assert InetWrite(handle, b"datagram") == 8
    assert InetRead(handle) == b"datagram"
    assert InetReadLine(handle) is None  # a stream operation
    assert InetGetLastError() == ErrorCode.INVALID_ARGUMENT


# -- last error per thread ---------------------------------------------------------


def test_each_thread_sees_its_own_last_error() -> None:
    failed = threading.Event()
    succeeded = threading.Event()
    seen: dict[str, int] = {}

    def failing() -> None:
        InetConnect("127.0.0.1", free_port(), timeout=TIMEOUT)
        failed.set()
        succeeded.wait(TIMEOUT)  # the other thread has succeeded meanwhile
        seen["failing"] = InetGetLastError()

    def succeeding() -> None:
        failed.wait(TIMEOUT)
        assert InetNormalizeHostName("Example.COM") == "example.com"
        seen["succeeding"] = InetGetLastError()
        succeeded.set()

    threads = [threading.Thread(target=failing), threading.Thread(target=succeeding)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert seen == {"failing": ErrorCode.CONNECTION_REFUSED, "succeeding": 0}


def test_a_new_thread_starts_with_no_error() -> None:
    assert InetRead(0) is None
    assert run_in_thread(InetGetLastError) == 0
    assert run_in_thread(InetGetLastErrorMessage) == ""
    assert InetGetLastError() == ErrorCode.INVALID_ARGUMENT


def test_concurrent_connects_get_distinct_handles(echo_server: Server) -> None:
    per_thread = 5
    results: list[list[int]] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = [InetConnect("127.0.0.1", echo_server.port, timeout=TIMEOUT) for _ in range(per_thread)]
        for handle in mine:
            assert InetWriteLine(handle, str(handle))
            assert InetReadLine(handle) == str(handle)
        with lock:
            results.append(mine)
        for handle in mine:
            assert InetDisconnect(handle)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 2)
    everything = [handle for mine in results for handle in mine]
    assert len(results) == len(threads)
    assert all(handle > 0 for handle in everything)
    assert len(set(everything)) == len(everything)


# -- threads and ownership -------------------------------------------------------


def test_other_thread_is_not_the_owner(echo_server: Server, handles: list[int]) -> None:
    handle = connect_ok(handles, "127.0.0.1", echo_server.port)

    def other() -> tuple[object, int, object, int]:
        read = InetRead(handle)
        read_error = InetGetLastError()
        closed = InetDisconnect(handle)
        return read, read_error, closed, InetGetLastError()

    assert run_in_thread(other) == (None, ErrorCode.NOT_HANDLE_OWNER, False, ErrorCode.NOT_HANDLE_OWNER)
    assert InetGetLastError() == 0  # the main thread's own last call succeeded
    # Still open and usable by its owner.
    assert InetWriteLine(handle, "mine")
    assert InetReadLine(handle) == "mine"


def test_attach_thread_hands_the_handle_over(echo_server: Server, handles: list[int]) -> None:
    handle = connect_ok(handles, "127.0.0.1", echo_server.port)
    main_thread = threading.get_ident()

    def worker() -> tuple[int, int, str | None, bool]:
        previous = InetAttachThread(handle)
        error = InetGetLastError()
        InetWriteLine(handle, "worker")
        return previous, error, InetReadLine(handle), InetDisconnect(handle)

    assert run_in_thread(worker) == (main_thread, 0, "worker", True)
    assert InetRead(handle) is None
    assert InetGetLastError() == ErrorCode.HANDLE_CLOSED


def test_attach_thread_and_the_main_thread_loses_ownership(echo_server: Server, handles: list[int]) -> None:
    handle = connect_ok(handles, "127.0.0.1", echo_server.port)
    worker_ident = run_in_thread(lambda: (InetAttachThread(handle), threading.get_ident())[1])
    assert InetWriteLine(handle, "x") is False
    assert InetGetLastError() == ErrorCode.NOT_HANDLE_OWNER
    assert InetAttachThread(handle) == worker_ident
    assert InetGetLastError() == 0


def test_attach_thread_on_a_free_threaded_handle(echo_server: Server, handles: list[int]) -> None:
    handle = connect_ok(
        handles,
        "127.0.0.1",
        echo_server.port,
        compat.INET_PROTOCOL_TCP,
        TIMEOUT,
        compat.INET_OPTION_FREETHREAD,
    )
    assert InetRead(0) is None  # leave an error behind ...
    assert InetAttachThread(handle) == 0
    assert InetGetLastError() == 0  # ... which the no-op attach clears
    # Any thread may use the handle without attaching.
    assert run_in_thread(lambda: InetWriteLine(handle, "free")) is True
    assert InetReadLine(handle) == "free"


# -- URLs, names, TLS ----------------------------------------------------------------


def test_connect_url(echo_server: Server, handles: list[int]) -> None:
    handle = InetConnectUrl(f"http://127.0.0.1:{echo_server.port}/index.html", TIMEOUT)
    assert handle > 0, InetGetLastErrorMessage()
    handles.append(handle)
    assert InetGetLastError() == 0
    assert InetWriteLine(handle, "url")
    assert InetReadLine(handle) == "url"


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://", None),
        ("nosuchscheme://127.0.0.1/", ErrorCode.INVALID_ARGUMENT),
        ("http://127.0.0.1:99999/", ErrorCode.INVALID_PORT),
    ],
)
def test_connect_url_errors(url: str, code: ErrorCode | None) -> None:
    assert InetConnectUrl(url, TIMEOUT) == INVALID_SOCKET
    error = InetGetLastError()
    if code is None:
        assert error in {ErrorCode.INVALID_ARGUMENT, ErrorCode.INVALID_HOST_NAME}
    else:
        assert error == code


def test_connect_url_refused() -> None:
    assert InetConnectUrl(f"http://127.0.0.1:{free_port()}/", TIMEOUT) == INVALID_SOCKET
    assert InetGetLastError() == ErrorCode.CONNECTION_REFUSED


def test_normalize_host_name() -> None:
    assert InetNormalizeHostName("Bücher.Example") == "xn--bcher-kva.example"
    assert InetNormalizeHostName("[::1]") == "::1"
    assert InetGetLastError() == 0
    assert InetNormalizeHostName("127.1") is None
    assert InetGetLastError() == ErrorCode.INVALID_HOST_NAME
    assert InetNormalizeHostName(None) is None  # type: ignore[arg-type]
    assert InetGetLastError() == ErrorCode.INVALID_ARGUMENT


def test_secure_connect(tls_server: DemoServer, handles: list[int]) -> None:
    assert tls_server.certificates is not None and tls_server.tls_port is not None
    trust = SecurityCredentials(ca_data=tls_server.certificates.ca_pem)
    handle = InetConnect(
        "localhost", tls_server.tls_port, compat.INET_PROTOCOL_TCP, TIMEOUT, compat.INET_OPTION_SECURE, trust
    )
    assert handle > 0, InetGetLastErrorMessage()
    handles.append(handle)
    assert InetWriteLine(handle, "secure")
    assert InetReadLine(handle) == "secure"


def test_secure_connect_untrusted(tls_server: DemoServer) -> None:
    assert tls_server.tls_port is not None
    handle = InetConnect(
        "localhost", tls_server.tls_port, compat.INET_PROTOCOL_TCP, TIMEOUT, compat.INET_OPTION_SECURE
    )
    assert handle == INVALID_SOCKET
    assert InetGetLastError() == ErrorCode.CERTIFICATE_UNTRUSTED


def test_enable_security(tls_server: DemoServer, handles: list[int]) -> None:
    assert tls_server.certificates is not None and tls_server.tls_port is not None
    handle = connect_ok(handles, "127.0.0.1", tls_server.tls_port)
    trust = SecurityCredentials(ca_data=tls_server.certificates.ca_pem)
    assert InetEnableSecurity(handle, trust) is True, InetGetLastErrorMessage()
    assert InetGetLastError() == 0
    assert InetWriteLine(handle, "upgraded")
    assert InetReadLine(handle) == "upgraded"
    assert InetEnableSecurity(handle, trust) is False
    assert InetGetLastError() == ErrorCode.ALREADY_SECURE


def test_enable_security_untrusted(tls_server: DemoServer, handles: list[int]) -> None:
    assert tls_server.tls_port is not None
    handle = connect_ok(handles, "127.0.0.1", tls_server.tls_port)
    assert InetEnableSecurity(handle) is False
    assert InetGetLastError() == ErrorCode.CERTIFICATE_UNTRUSTED
    assert InetDisconnect(handle) is True


def test_enable_security_on_udp(udp_echo: tuple[str, int], handles: list[int]) -> None:
    handle = connect_ok(handles, udp_echo[0], udp_echo[1], compat.INET_PROTOCOL_UDP)
    assert InetEnableSecurity(handle) is False
    assert InetGetLastError() == ErrorCode.INVALID_ARGUMENT


# -- error strings and the failure net ---------------------------------------------


def test_error_strings() -> None:
    assert InetGetErrorString(0) == "SUCCESS"
    assert InetGetErrorString(int(ErrorCode.CONNECTION_REFUSED)) == "CONNECTION_REFUSED"
    assert InetGetErrorString(ErrorCode.TIMED_OUT) == "TIMED_OUT"
    assert InetGetErrorString(123456) == "UNKNOWN_ERROR"


def test_unexpected_exceptions_become_errors_and_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> int:
        raise RuntimeError("a bug")

    with caplog.at_level(logging.WARNING, logger="inetkit"):
        assert compat._call("InetSomething", -1, broken) == -1
    assert InetGetLastError() == ErrorCode.INVALID_ARGUMENT
    assert "a bug" in InetGetLastErrorMessage()
    assert any("RuntimeError" in record.getMessage() for record in caplog.records)


def test_os_errors_are_translated() -> None:
    def refused() -> int:
        raise ConnectionRefusedError(111, "Connection refused")

    assert compat._call("InetSomething", -1, refused) == -1
    assert InetGetLastError() == ErrorCode.CONNECTION_REFUSED


def test_keyboard_interrupt_is_not_swallowed() -> None:
    def interrupted() -> int:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        compat._call("InetSomething", -1, interrupted)


# -- the rest of a port's surface -----------------------------------------------------

PORT_SURFACE = [
    "InetConnectEx",
    "InetInitialize",
    "InetUninitialize",
    "InetCancel",
    "InetShutdown",
    "InetIsReadable",
    "InetIsWritable",
    "InetIsConnected",
    "InetGetTimeout",
    "InetSetTimeout",
    "InetSetLastError",
    "InetGetLocalAddress",
    "InetGetPeerAddress",
    "InetGetSecurityInformation",
]


def test_the_port_surface_is_public() -> None:
    assert set(PORT_SURFACE) <= set(compat.__all__)


def test_connect_ex_binds_the_local_port(echo_server: Server, handles: list[int]) -> None:
    local_port = free_port()
    handle = compat.InetConnectEx(
        "127.0.0.1", echo_server.port, compat.INET_PROTOCOL_TCP, TIMEOUT, 0, "127.0.0.1", local_port, None
    )
    assert handle > 0, InetGetLastErrorMessage()
    handles.append(handle)
    assert compat.InetGetLocalAddress(handle) == ("127.0.0.1", local_port)
    assert compat.InetGetPeerAddress(handle) == ("127.0.0.1", echo_server.port)
    assert InetGetLastError() == 0


def test_connect_ex_without_a_local_end_is_connect(echo_server: Server, handles: list[int]) -> None:
    tcp = compat.INET_PROTOCOL_TCP
    handle = compat.InetConnectEx("127.0.0.1", echo_server.port, tcp, TIMEOUT, 0, None, 0)
    assert handle > 0, InetGetLastErrorMessage()
    handles.append(handle)
    assert InetWriteLine(handle, "ex") and InetReadLine(handle) == "ex"


@pytest.mark.parametrize(
    ("local", "port", "code"),
    [
        ("::1", 0, ErrorCode.INVALID_ARGUMENT),  # no IPv6 remote address to go with it
        ("127.0.0.1", 70000, ErrorCode.INVALID_PORT),
        ("127.1", 0, ErrorCode.INVALID_HOST_NAME),
        (5, 0, ErrorCode.INVALID_ARGUMENT),  # a wrong type: TypeError, recorded as INVALID_ARGUMENT
    ],
)
def test_connect_ex_bad_local_end(echo_server: Server, local: object, port: int, code: ErrorCode) -> None:
    handle = compat.InetConnectEx(
        "127.0.0.1",
        echo_server.port,
        compat.INET_PROTOCOL_TCP,
        TIMEOUT,
        0,
        local,  # type: ignore[arg-type]
        port,
    )
    assert handle == INVALID_SOCKET
    assert InetGetLastError() == code


def test_connect_ex_local_port_in_use(echo_server: Server) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        handle = compat.InetConnectEx(
            "127.0.0.1", echo_server.port, compat.INET_PROTOCOL_TCP, TIMEOUT, 0, "127.0.0.1", port
        )
    assert handle == INVALID_SOCKET
    assert InetGetLastError() == ErrorCode.ADDRESS_IN_USE


def test_initialize_accepts_a_key_and_does_nothing() -> None:
    assert compat.InetInitialize() is True
    assert compat.InetInitialize("ABCD-1234") is True
    assert InetGetLastError() == 0
    assert compat.InetInitialize(1234) is False  # type: ignore[arg-type]
    assert InetGetLastError() == ErrorCode.INVALID_ARGUMENT


def test_readable_and_writable_take_milliseconds(echo_server: Server, handles: list[int]) -> None:
    handle = connect_ok(handles, "127.0.0.1", echo_server.port)
    assert compat.InetIsWritable(handle, 0) is True
    assert compat.InetIsReadable(handle, 0) is False  # nothing sent yet: a poll says "not yet"
    assert InetGetLastError() == 0
    assert compat.InetIsReadable(handle, 20) is False
    assert InetGetLastError() == 0
    assert InetWriteLine(handle, "ping")
    assert compat.InetIsReadable(handle, int(TIMEOUT * 1000)) is True
    assert InetReadLine(handle) == "ping"
    for function in (compat.InetIsReadable, compat.InetIsWritable):
        assert function(handle, -1) is False
        assert InetGetLastError() == ErrorCode.INVALID_ARGUMENT
        assert function(handle, 0.5) is False  # type: ignore[arg-type]
        assert InetGetLastError() == ErrorCode.INVALID_ARGUMENT
        assert function(INVALID_SOCKET, 0) is False
        assert InetGetLastError() == ErrorCode.INVALID_ARGUMENT


def test_is_connected(echo_server: Server, handles: list[int]) -> None:
    handle = connect_ok(handles, "127.0.0.1", echo_server.port)
    assert compat.InetIsConnected(handle) is True
    assert InetGetLastError() == 0
    assert InetDisconnect(handle)
    assert compat.InetIsConnected(handle) is False
    assert InetGetLastError() == ErrorCode.HANDLE_CLOSED
    assert compat.InetIsConnected(0) is False
    assert InetGetLastError() == ErrorCode.INVALID_ARGUMENT


def test_get_and_set_timeout(echo_server: Server, handles: list[int]) -> None:
    handle = connect_ok(handles, "127.0.0.1", echo_server.port, compat.INET_PROTOCOL_TCP, 7)
    assert compat.InetGetTimeout(handle) == 7  # starts as the connect timeout
    assert compat.InetSetTimeout(handle, 0.25) is True
    assert compat.InetGetTimeout(handle) == 1  # whole seconds, rounded up
    assert compat.InetSetTimeout(handle, None) is True
    assert compat.InetGetTimeout(handle) == 0  # no timeout
    for bad in (0, -1, float("nan")):
        assert compat.InetSetTimeout(handle, bad) is False
        assert InetGetLastError() == ErrorCode.INVALID_ARGUMENT
    assert compat.InetSetTimeout(handle, "soon") is False  # type: ignore[arg-type]
    assert InetGetLastError() == ErrorCode.INVALID_ARGUMENT
    assert InetDisconnect(handle)
    assert compat.InetGetTimeout(handle) == -1
    assert InetGetLastError() == ErrorCode.HANDLE_CLOSED


def test_set_timeout_bounds_reads(handles: list[int]) -> None:
    with silent_listener(1) as port:
        handle = connect_ok(handles, "127.0.0.1", port)
        assert compat.InetSetTimeout(handle, 0.05)
        assert InetRead(handle) is None
        assert InetGetLastError() == ErrorCode.TIMED_OUT


def test_set_last_error_is_per_thread() -> None:
    compat.InetSetLastError(ErrorCode.CONNECTION_REFUSED)
    assert InetGetLastError() == 301
    assert InetGetLastErrorMessage() == "CONNECTION_REFUSED"
    assert run_in_thread(InetGetLastError) == 0
    compat.InetSetLastError(0)
    assert InetGetLastError() == 0 and InetGetLastErrorMessage() == ""
    with pytest.raises(TypeError):
        compat.InetSetLastError("301")  # type: ignore[arg-type]


def test_addresses_of_closed_and_unknown_handles(echo_server: Server, handles: list[int]) -> None:
    handle = connect_ok(handles, "127.0.0.1", echo_server.port)
    local = compat.InetGetLocalAddress(handle)
    assert local is not None and local[0] == "127.0.0.1" and local[1] > 0
    assert InetDisconnect(handle)
    for function in (compat.InetGetLocalAddress, compat.InetGetPeerAddress):
        assert function(handle) is None
        assert InetGetLastError() == ErrorCode.HANDLE_CLOSED
        assert function(12345678) is None
        assert InetGetLastError() == ErrorCode.INVALID_ARGUMENT


def test_security_information(tls_server: DemoServer, echo_server: Server, handles: list[int]) -> None:
    assert tls_server.certificates is not None and tls_server.tls_port is not None
    trust = SecurityCredentials(ca_data=tls_server.certificates.ca_pem)
    secure = InetConnect(
        "localhost", tls_server.tls_port, compat.INET_PROTOCOL_TCP, TIMEOUT, compat.INET_OPTION_SECURE, trust
    )
    assert secure > 0, InetGetLastErrorMessage()
    handles.append(secure)
    info = compat.InetGetSecurityInformation(secure)
    assert info is not None and InetGetLastError() == 0
    assert info.protocol == "TLSv1.3"
    assert info.peer_certificate is not None and info.peer_certificate.common_name == "localhost"
    plain = connect_ok(handles, "127.0.0.1", echo_server.port)
    assert compat.InetGetSecurityInformation(plain) is None
    assert InetGetLastError() == 0  # no TLS is no failure
    assert InetDisconnect(secure)
    assert compat.InetGetSecurityInformation(secure) is None
    assert InetGetLastError() == ErrorCode.HANDLE_CLOSED


def test_shutdown_half_closes(make_server: Callable[..., Server], handles: list[int]) -> None:
    def answer_after_eof(sock: socket.socket) -> None:
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        sock.sendall(b"got " + data)

    server = make_server(answer_after_eof)
    handle = connect_ok(handles, "127.0.0.1", server.port)
    assert InetWrite(handle, b"request") == 7
    assert compat.InetShutdown(handle) is True
    assert InetGetLastError() == 0
    assert InetReadLine(handle) == "got request"
    assert InetRead(handle) == b""
    assert InetWrite(handle, b"more") == -1  # the sending side is shut
    assert InetGetLastError() != 0
    assert compat.InetShutdown(0) is False
    assert InetGetLastError() == ErrorCode.INVALID_ARGUMENT


def test_cancel_wakes_a_blocked_read(handles: list[int]) -> None:
    with silent_listener(1) as port:
        handle = connect_ok(handles, "127.0.0.1", port, compat.INET_PROTOCOL_TCP, 30)
        assert compat.InetCancel(handle) is True  # nothing blocked: nothing to do, nothing kept
        assert InetGetLastError() == 0
        outcome = cancel_until_woken(handle, lambda: (InetRead(handle), InetGetLastError()))
        assert outcome == (None, ErrorCode.CANCELLED)
        assert compat.InetIsConnected(handle) is True  # a cancelled call leaves the handle open
    assert compat.InetCancel(-5) is False
    assert InetGetLastError() == ErrorCode.INVALID_ARGUMENT


def cancel_until_woken(handle: int, blocked: Callable[[], object]) -> object:
    """Run ``blocked`` in a worker that takes the handle over; InetCancel it from this thread.

    ``InetCancel`` affects a call in progress only, so the "UI" thread
    repeats it until the worker's call has returned (bounded).
    """
    result: list[object] = []

    def worker() -> None:
        assert InetAttachThread(handle) != 0
        result.append(blocked())

    thread = threading.Thread(target=worker)
    thread.start()
    deadline = time.monotonic() + TIMEOUT
    while thread.is_alive() and time.monotonic() < deadline:
        assert compat.InetCancel(handle) is True
        thread.join(0.01)
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert InetAttachThread(handle) != 0  # back to this thread, so the fixture can disconnect
    return result[0]


def test_uninitialize_closes_every_open_handle(echo_server: Server) -> None:
    first = connect_ok([], "127.0.0.1", echo_server.port)
    second = connect_ok([], "127.0.0.1", echo_server.port, compat.INET_PROTOCOL_TCP, TIMEOUT, 0)
    with silent_listener(1) as port:
        # One handle owned by a worker that is blocked reading it when the program ends.
        owned = connect_ok([], "127.0.0.1", port, compat.INET_PROTOCOL_TCP, 30)
        started = threading.Event()
        outcome: list[object] = []

        def worker() -> None:
            InetAttachThread(owned)
            started.set()
            outcome.append((InetRead(owned), InetGetLastError()))

        thread = threading.Thread(target=worker)
        thread.start()
        assert started.wait(TIMEOUT)
        assert compat.InetUninitialize() is True, InetGetLastErrorMessage()
        thread.join(TIMEOUT)
        assert not thread.is_alive()
    assert outcome and outcome[0][0] is None
    assert outcome[0][1] in (ErrorCode.CANCELLED, ErrorCode.HANDLE_CLOSED)
    for handle in (first, second, owned):
        assert compat.InetIsConnected(handle) is False
        assert InetGetLastError() == ErrorCode.HANDLE_CLOSED
    assert compat.InetUninitialize() is True  # nothing left: still fine
    assert compat.InetInitialize() is True
    again = connect_ok([], "127.0.0.1", echo_server.port)
    assert again > owned  # numbers are never reused, not even after InetUninitialize
    assert InetDisconnect(again)


# -- a SocketWrench client ported line by line ------------------------------------------


class Session:
    """What one worker thread of the ported client did."""

    def __init__(self) -> None:
        self.previous_owner = 0
        self.replies: list[str] = []
        self.error = 0
        self.peer: tuple[str, int] | None = None


def session_worker(handle: int, lines: list[str], session: Session) -> None:
    """The worker thread of the original C client, one call per line of it.

    // C: DWORD WINAPI SessionThread(LPVOID lpParam)
    //    { HSOCKET hSocket = (HSOCKET)lpParam;
    //      InetAttachThread(hSocket);
    //      for (...) { InetWriteLine(hSocket, szLine); InetReadLine(hSocket, szReply, &n); }
    //      InetShutdown(hSocket); while (InetRead(hSocket, buf, sizeof buf) > 0) ;
    //      InetDisconnect(hSocket); }
    """
    session.previous_owner = InetAttachThread(handle)
    if session.previous_owner == 0:
        session.error = InetGetLastError()
        return
    session.peer = compat.InetGetPeerAddress(handle)
    for line in lines:
        if not InetWriteLine(handle, line):
            session.error = InetGetLastError()
            break
        if not compat.InetIsReadable(handle, int(TIMEOUT * 1000)):
            session.error = InetGetLastError() or int(ErrorCode.TIMED_OUT)
            break
        reply = InetReadLine(handle)
        if reply is None:
            session.error = InetGetLastError()
            break
        session.replies.append(reply)
    compat.InetShutdown(handle)
    while (data := InetRead(handle)) is not None and data:
        pass
    if not InetDisconnect(handle):
        session.error = InetGetLastError()


def test_ported_multithreaded_client(echo_server: Server) -> None:
    assert compat.InetInitialize("SOCKETTOOLS-LICENSE-KEY")
    main_thread = threading.get_ident()
    sessions: list[Session] = []
    threads: list[threading.Thread] = []
    handles: list[int] = []
    for number in range(4):
        handle = compat.InetConnectEx(
            "localhost",
            echo_server.port,
            compat.INET_PROTOCOL_TCP,
            TIMEOUT,
            compat.INET_OPTION_NODELAY,
            "",
            0,
            None,
        )
        assert handle != INVALID_SOCKET, InetGetLastErrorMessage()
        assert compat.InetGetTimeout(handle) == int(TIMEOUT)
        handles.append(handle)
        session = Session()
        sessions.append(session)
        lines = [f"session {number} line {index}" for index in range(5)]
        thread = threading.Thread(target=session_worker, args=(handle, lines, session))
        threads.append(thread)
        thread.start()
    # The "UI" thread meanwhile owns one more session that blocks in InetRead
    # on a server that never answers, and the user presses Cancel.
    with silent_listener(1) as port:
        stuck = InetConnect("127.0.0.1", port, compat.INET_PROTOCOL_TCP, 30)
        assert stuck != INVALID_SOCKET
        outcome = cancel_until_woken(stuck, lambda: (InetRead(stuck), InetGetLastError()))
        assert outcome == (None, ErrorCode.CANCELLED)
        assert InetDisconnect(stuck)
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive()
    for number, session in enumerate(sessions):
        assert session.error == 0, InetGetErrorString(session.error)
        assert session.previous_owner == main_thread
        assert session.peer == ("127.0.0.1", echo_server.port)
        assert session.replies == [f"session {number} line {index}" for index in range(5)]
    for handle in handles:
        assert compat.InetIsConnected(handle) is False  # each worker disconnected its own
    assert compat.InetUninitialize()
