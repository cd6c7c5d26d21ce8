"""``proxy=``: the URL checks before any I/O, and the blocking driver against scripted proxies.

The scripted proxies (plain Python sockets, in threads) play only what a
real proxy will not: malformed and cut answers, answers trickled a byte at
a time or split at every byte, a proxy that accepts and never answers, and
bytes pushed behind the answer. The real proxies are in
``test_proxy_servers.py``; the dialogs alone, fed made-up bytes, in
``test_proxy_dialogs.py``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from conftest import Server, black_hole, open_fds, settled_fds, silent_listener

import inetkit
from inetkit import ErrorCode, InetTimeoutError, InvalidArgumentError, Option, Protocol, ProxyError
from inetkit._core.plan import make_plan
from inetkit._core.proxy import Proxy, parse_proxy

#: Connect timeout for connects that should end at once.
TIMEOUT = 5.0
#: The short deadline of the silent-proxy test.
SHORT_TIMEOUT = 0.5
#: What a deadline may overshoot by on a busy 2-core machine.
DEADLINE_SLACK = 1.0
#: Pause between the pieces of a split answer, so that they leave as separate segments.
PIECE_PAUSE = 0.002
SECRET = "hunter2-secret"


# -- the URL, before any I/O -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://proxy.example:3128", Proxy("http", "proxy.example", 3128)),
        ("HTTP://Proxy.Example:3128/", Proxy("http", "proxy.example", 3128)),
        ("https://u%40x:p%3Aw%25@[::1]:8443", Proxy("https", "::1", 8443, "u@x", "p:w%")),
        ("socks5://user:pa@ss@10.0.0.1:1080", Proxy("socks5", "10.0.0.1", 1080, "user", "pa@ss")),
        ("socks5h://bücher.example:1080", Proxy("socks5h", "xn--bcher-kva.example", 1080)),
        ("socks4a://someone@127.0.0.1:1080", Proxy("socks4a", "127.0.0.1", 1080, "someone")),
        ("http://user:@p:1", Proxy("http", "p", 1, "user", "")),
    ],
)
def test_proxy_urls_are_parsed_and_decoded(url: str, expected: Proxy) -> None:
    assert parse_proxy(url) == expected


@pytest.mark.parametrize(
    ("url", "code", "words"),
    [
        ("ftp://p:21", ErrorCode.INVALID_ARGUMENT, "unknown proxy scheme 'ftp'"),
        ("socks4://p:1080", ErrorCode.INVALID_ARGUMENT, "unknown proxy scheme 'socks4'"),
        ("http://proxy.example", ErrorCode.INVALID_PORT, "must name its port"),
        ("http://proxy.example:", ErrorCode.INVALID_PORT, "must name its port"),
        ("http://:3128", ErrorCode.INVALID_HOST_NAME, "no host"),
        ("http://p:0", ErrorCode.INVALID_PORT, "out of range"),
        ("http://p:99999", ErrorCode.INVALID_PORT, "out of range"),
        ("http://p:x", ErrorCode.INVALID_PORT, "not a number"),
        ("proxy.example:3128", ErrorCode.INVALID_ARGUMENT, "scheme://host:port"),
        ("", ErrorCode.INVALID_ARGUMENT, "empty"),
        ("http://p:1/path", ErrorCode.INVALID_ARGUMENT, "no path"),
        ("http://p:1?q", ErrorCode.INVALID_ARGUMENT, "no query"),
        ("http://p q:1", ErrorCode.INVALID_ARGUMENT, "whitespace"),
        ("http://127.1:1", ErrorCode.INVALID_HOST_NAME, "127.1"),
        ("http://a:b:c@p:1", ErrorCode.INVALID_ARGUMENT, ""),
        ("http://a%3Ab:c@p:1", ErrorCode.INVALID_ARGUMENT, "must not contain ':'"),
        ("socks4a://u:pw@p:1", ErrorCode.INVALID_ARGUMENT, "no password"),
        ("socks5://u@p:1", ErrorCode.INVALID_ARGUMENT, "needs a password"),
        ("socks5://" + "u" * 256 + ":p@p:1", ErrorCode.INVALID_ARGUMENT, "1 to 255 bytes"),
        ("http://@p:1", ErrorCode.INVALID_ARGUMENT, "empty user name"),
    ],
)
def test_bad_proxy_urls_are_refused_with_a_code(url: str, code: ErrorCode, words: str) -> None:
    if url == "http://a:b:c@p:1":  # a ':' in the password is fine: only the first one splits
        assert parse_proxy(url).password == "b:c"
        return
    with pytest.raises(InvalidArgumentError) as info:
        parse_proxy(url)
    assert info.value.code is code
    assert words in str(info.value)
    assert "invalid proxy URL" in str(info.value)


@pytest.mark.parametrize("value", [b"http://p:1", 3128, ("p", 1), ["http://p:1"]])
def test_a_proxy_that_is_not_a_string_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError, match="proxy must be a proxy URL"):
        inetkit.connect("example.com", 443, proxy=value)  # type: ignore[arg-type]


def test_passwords_never_appear_in_messages_of_refused_urls_or_in_repr() -> None:
    for url in (
        f"http://u:{SECRET}@p",
        f"ftp://u:{SECRET}@p:1",
        f"socks4a://u:{SECRET}@p:1",
        f"http://u:{SECRET}@p:1/x",
    ):
        with pytest.raises(InvalidArgumentError) as info:
            parse_proxy(url)
        assert SECRET not in str(info.value) and SECRET not in repr(info.value)
        assert "***" in str(info.value)
    proxy = parse_proxy(f"socks5://user:{SECRET}@p:1")
    assert SECRET not in repr(proxy) and SECRET not in proxy.endpoint
    assert repr(proxy) == "<inetkit proxy socks5://p:1 user='user' password=***>"


def test_the_plan_checks_the_proxy_and_udp_is_refused() -> None:
    def plan(proxy: object, protocol: Protocol = Protocol.TCP) -> object:
        return make_plan(
            "h.example",
            1,
            protocol,
            1.0,
            Option.NONE,
            None,
            None,
            None,
            None,
            None,
            0.25,
            True,
            proxy=proxy,
        )

    made = plan("http://p:3128")
    assert made.proxy == Proxy("http", "p", 3128)  # type: ignore[attr-defined]
    assert plan(None).proxy is None  # type: ignore[attr-defined]
    with pytest.raises(InvalidArgumentError, match="carries TCP only"):
        plan("socks5h://p:1", Protocol.UDP)


def test_a_bad_proxy_url_touches_no_socket(make_server: Callable[..., Server]) -> None:
    """The refusal comes before any I/O: the target's listener never sees a connection."""
    server = make_server()
    before = open_fds()
    with pytest.raises(InvalidArgumentError):
        inetkit.connect("127.0.0.1", server.port, proxy="http://127.0.0.1")
    assert open_fds() == before
    assert server.accepted == []


# -- scripted proxies --------------------------------------------------------------------------------


@contextlib.contextmanager
def scripted(answer: Callable[[socket.socket], None]) -> Iterator[int]:
    """A one-thread proxy that reads the client's request and answers with ``answer`` (per connection)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with sock:
                sock.settimeout(TIMEOUT)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                try:
                    answer(sock)
                except OSError:
                    pass

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(TIMEOUT)
        listener.close()


def read_request(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def http_answering(
    *pieces: bytes, then: Callable[[socket.socket], None] | None = None
) -> Callable[[socket.socket], None]:
    def answer(sock: socket.socket) -> None:
        read_request(sock)
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(PIECE_PAUSE)
        if then is not None:
            then(sock)

    return answer


def echo_after(sock: socket.socket) -> None:
    while data := sock.recv(65536):
        sock.sendall(data)


OK = b"HTTP/1.1 200 Connection established\r\nVia: 1.1 scripted\r\n\r\n"


@pytest.mark.parametrize("split", range(1, len(OK)))
def test_an_answer_split_at_every_byte_opens_the_tunnel(split: int) -> None:
    with scripted(http_answering(OK[:split], OK[split:], then=echo_after)) as port:
        with inetkit.connect("target.example", 7, timeout=TIMEOUT, proxy=f"http://127.0.0.1:{port}") as conn:
            conn.write(b"ping\n")
            assert conn.read_line() == b"ping\n"


def test_an_answer_trickled_a_byte_at_a_time_opens_the_tunnel() -> None:
    pieces = [OK[i : i + 1] for i in range(len(OK))]
    with scripted(http_answering(*pieces, then=echo_after)) as port:
        with inetkit.connect("target.example", 7, timeout=TIMEOUT, proxy=f"http://127.0.0.1:{port}") as conn:
            conn.write(b"x\n")
            assert conn.read_line() == b"x\n"


def test_the_target_greeting_behind_the_answer_is_kept_for_the_caller() -> None:
    """A server that speaks first (SMTP): its banner may arrive in the proxy's last segment."""
    with scripted(http_answering(OK + b"220 smtp.example ESMTP\r\n", then=echo_after)) as port:
        with inetkit.connect("smtp.example", 25, timeout=TIMEOUT, proxy=f"http://127.0.0.1:{port}") as conn:
            assert conn.read_line() == b"220 smtp.example ESMTP\r\n"


def test_bytes_behind_the_answer_before_a_tls_handshake_are_refused() -> None:
    with scripted(http_answering(OK + b"injected")) as port:
        with pytest.raises(ProxyError) as info:
            inetkit.connect(
                "tls.example", 443, options=Option.SECURE, timeout=TIMEOUT, proxy=f"http://127.0.0.1:{port}"
            )
    assert info.value.code is ErrorCode.PROXY_PROTOCOL
    assert "8 byte(s) before the TLS handshake" in str(info.value)


@pytest.mark.parametrize(
    ("pieces", "code"),
    [
        ((b"HTTP/1.1 200 OK\r\nVia: x\r\n",), ErrorCode.PROXY_PROTOCOL),  # closes before the empty line
        ((b"HTTP/1.1 2",), ErrorCode.PROXY_PROTOCOL),
        ((), ErrorCode.PROXY_REFUSED),  # closes without a word
        ((b"SSH-2.0-OpenSSH_9.2\r\n",), ErrorCode.PROXY_PROTOCOL),
        ((b"HTTP/1.1 200 OK\r\n" + b"X: " + b"y" * 10_000 + b"\r\n\r\n",), ErrorCode.PROXY_PROTOCOL),
        ((b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 200 + b"\r\n",), ErrorCode.PROXY_PROTOCOL),
        ((b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",), ErrorCode.PROXY_AUTH_REQUIRED),
        ((b"HTTP/1.1 502 Bad Gateway\r\n\r\n",), ErrorCode.PROXY_REFUSED),
    ],
    ids=["cut-headers", "cut-status", "silent-close", "not-http", "long-line", "many-lines", "407", "502"],
)
def test_malformed_answers_raise_proxy_errors_and_close_the_handle(
    pieces: tuple[bytes, ...], code: ErrorCode
) -> None:
    before = open_fds()
    with scripted(http_answering(*pieces)) as port:
        with pytest.raises(ProxyError) as info:
            inetkit.connect("target.example", 443, timeout=TIMEOUT, proxy=f"http://127.0.0.1:{port}")
    assert info.value.code is code
    assert "for target.example port 443" in str(info.value)
    trace = info.value.trace
    assert trace is not None and trace.proxy is not None and trace.proxy.dialog is None
    assert trace.attempts[-1].outcome == "failed"
    assert settled_fds(before) == before


SOCKS5_OK = b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x07"


@pytest.mark.parametrize("split", range(1, len(SOCKS5_OK)))
def test_a_socks5_reply_split_at_every_byte_opens_the_tunnel(split: int) -> None:
    def answer(sock: socket.socket) -> None:
        sock.recv(3)
        sock.sendall(b"\x05\x00")
        sock.recv(4096)
        sock.sendall(SOCKS5_OK[:split])
        time.sleep(PIECE_PAUSE)
        sock.sendall(SOCKS5_OK[split:] + b"banner\n")

    with scripted(answer) as port:
        with inetkit.connect("t.example", 7, timeout=TIMEOUT, proxy=f"socks5h://127.0.0.1:{port}") as conn:
            assert conn.read_line() == b"banner\n"


def test_a_proxy_that_never_answers_costs_the_deadline_and_names_the_proxy() -> None:
    with silent_listener(4) as port:
        started = time.monotonic()
        with pytest.raises(InetTimeoutError) as info:
            inetkit.connect("t.example", 443, timeout=SHORT_TIMEOUT, proxy=f"socks5h://127.0.0.1:{port}")
        took = time.monotonic() - started
    assert info.value.code is ErrorCode.TIMED_OUT
    assert f"t.example port 443 through proxy 127.0.0.1 port {port}" in str(info.value)
    assert took < SHORT_TIMEOUT + DEADLINE_SLACK


def test_an_unknown_proxy_host_keeps_host_not_found_and_names_the_proxy() -> None:
    resolver = inetkit.Resolver(system_hosts=False, dns=False)
    with pytest.raises(inetkit.HostNotFoundError) as info:
        inetkit.connect("t.example", 1, timeout=TIMEOUT, resolver=resolver, proxy="http://proxy.invalid:3128")
    assert "the proxy http://proxy.invalid:3128 for t.example port 1 was the peer" in str(info.value)
    assert info.value.trace.proxy.endpoint == "http://proxy.invalid:3128"


def test_the_resolver_resolves_the_proxy_host_and_the_name_travels_unresolved() -> None:
    seen: list[bytes] = []

    def answer(sock: socket.socket) -> None:
        seen.append(read_request(sock))
        sock.sendall(OK)
        echo_after(sock)

    with scripted(answer) as port:
        resolver = inetkit.Resolver(overrides={"proxy.test": ["127.0.0.1"]}, system_hosts=False, dns=False)
        with inetkit.connect(
            "only-the-proxy-knows.example",
            80,
            timeout=TIMEOUT,
            resolver=resolver,
            proxy=f"http://proxy.test:{port}",
        ) as conn:
            assert conn.trace.resolution is not None and conn.trace.resolution.source == "overrides"
    assert seen[0].startswith(b"CONNECT only-the-proxy-knows.example:80 HTTP/1.1\r\n")


def test_socks5_resolves_the_target_with_the_resolver() -> None:
    requests: list[bytes] = []

    def answer(sock: socket.socket) -> None:
        sock.recv(3)
        sock.sendall(b"\x05\x00")
        requests.append(sock.recv(4096))
        sock.sendall(SOCKS5_OK)

    with scripted(answer) as port:
        resolver = inetkit.Resolver(overrides={"target.test": ["192.0.2.33"]}, system_hosts=False, dns=False)
        with inetkit.connect(
            "target.test", 80, timeout=TIMEOUT, resolver=resolver, proxy=f"socks5://127.0.0.1:{port}"
        ) as conn:
            assert conn.trace.proxy is not None and conn.trace.proxy.target_address == "192.0.2.33"
    assert requests == [b"\x05\x01\x00\x01\xc0\x00\x02\x21\x00\x50"]


def test_the_password_is_in_no_repr_log_trace_or_message(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="inetkit")
    texts: list[str] = []
    with scripted(http_answering(OK, then=echo_after)) as port:
        with inetkit.connect(
            "t.example", 1, timeout=TIMEOUT, proxy=f"http://u:{SECRET}@127.0.0.1:{port}"
        ) as conn:
            texts += [repr(conn), repr(conn.trace), conn.trace.format()]
    with scripted(http_answering(b"HTTP/1.1 407 No\r\n\r\n")) as port:
        with pytest.raises(ProxyError) as info:
            inetkit.connect("t.example", 1, timeout=TIMEOUT, proxy=f"http://u:{SECRET}@127.0.0.1:{port}")
        texts += [str(info.value), repr(info.value), repr(info.value.trace)]
    texts.append(caplog.text)
    assert all(SECRET not in text for text in texts)


def test_a_proxy_that_drops_syns_times_out_naming_the_proxy() -> None:
    with black_hole("127.0.0.1") as port:
        with pytest.raises(InetTimeoutError) as info:
            inetkit.connect("t.example", 443, timeout=SHORT_TIMEOUT, proxy=f"http://127.0.0.1:{port}")
    assert info.value.code is ErrorCode.TIMED_OUT
    assert f"(the proxy http://127.0.0.1:{port} for t.example port 443 was the peer)" in str(info.value)


def test_an_ipv6_proxy_literal() -> None:
    listener = socket.create_server(("::1", 0), family=socket.AF_INET6)
    port = listener.getsockname()[1]

    def serve() -> None:
        sock, _ = listener.accept()
        with sock:
            read_request(sock)
            sock.sendall(OK + b"hi\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with inetkit.connect("t.example", 1, timeout=TIMEOUT, proxy=f"http://[::1]:{port}") as conn:
            assert conn.read_line() == b"hi\n"
            assert conn.remote_address == ("::1", port)
            assert conn.trace.proxy is not None and conn.trace.proxy.endpoint == f"http://[::1]:{port}"
    finally:
        thread.join(TIMEOUT)
        listener.close()
