"""Fuzzing entry points for inetkit's parsers, with ``hypothesis``.

By default each target runs a small number of examples, so the normal test
run stays fast. Set ``INETKIT_FUZZ_EXAMPLES=N`` to run N examples per target
(the loopback targets run a tenth of that, at least 10), for example::

    INETKIT_FUZZ_EXAMPLES=20000 python3 -m pytest -q tests/reliability/test_fuzz.py

Targets and what each must hold to:

* `inetkit.normalize_host_name`: a `str` (ASCII, idempotent, at most 253
  octets plus a trailing dot, or an IP literal) or `InvalidArgumentError`
  (``INVALID_HOST_NAME``); never another exception.
* ``inetkit._url.parse_url``: a `ParsedUrl` whose host is normalized and
  whose port is 1..65535, or `InvalidArgumentError`.
* ``inetkit._resolver.parse_hosts`` (the hosts-file parser): never raises; every
  key is a normalized name, every entry an IPv4/IPv6 address.
* The SMTP reply parser of the sans-I/O dialog (``smtp_reply``), fed lines
  directly, and the whole SMTP dialog against a loopback server that speaks
  random bytes: a reply or a refusal (``STARTTLS_REFUSED``) /
  an `InetError`; never anything else.
* TLS input: random bytes from a "server" on loopback, then its close: a
  `SecurityError` or a `ConnectionError` (inetkit's), never a hang or
  anything else.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
from collections.abc import Iterator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import inetkit
from inetkit import ErrorCode, InetError, InvalidArgumentError, Option, SecurityError

#: Examples per parser target (INETKIT_FUZZ_EXAMPLES raises it for long runs).
EXAMPLES = int(os.environ.get("INETKIT_FUZZ_EXAMPLES", "200"))
#: Examples per loopback target (each opens real connections).
LOOPBACK_EXAMPLES = max(EXAMPLES // 10, 10)
#: Longest DNS name in octets (RFC 1035), without the trailing dot.
MAX_NAME = 253
#: Per-example deadline in milliseconds: a slow path or a hang fails the example.
DEADLINE_MS = 3000
#: Connect timeout of the loopback targets: the peer closes long before it.
LOOPBACK_TIMEOUT = 5.0

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=DEADLINE_MS,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
LOOPBACK = settings(
    max_examples=LOOPBACK_EXAMPLES,
    deadline=None,  # connect timing varies on a loaded machine; the connect timeout bounds it
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

#: Label-ish pieces that reach deep into the name checks (IDNA, numerics, dots).
_PIECES = st.sampled_from(
    [
        *("a", "xn--", "xn--bcher-kva", "\u00df", "\u00dc", "\u0661", "\u0627", "-", "_", "0x7f", "010"),
        *("1", "255", ".", "..", ":", "[", "]", "%", "\u200d", "\u0301", "\uff45\uff58\uff41\uff4d"),
        *("\u2467", "\u3002", "\x00", " ", "/", "@", "a" * 63, "a" * 64),
    ]
)
host_like = st.one_of(
    st.text(max_size=80),
    st.lists(_PIECES, max_size=12).map("".join),
    st.ip_addresses().map(str),
    st.ip_addresses(v=6).map(lambda ip: f"[{ip}]"),
)


@FUZZ
@given(host=host_like)
def test_fuzz_normalize_host_name(host: str) -> None:
    try:
        name = inetkit.normalize_host_name(host)
    except InvalidArgumentError as exc:
        assert exc.code in (ErrorCode.INVALID_HOST_NAME, ErrorCode.INVALID_ARGUMENT)
        return
    assert isinstance(name, str) and name
    assert inetkit.normalize_host_name(name) == name  # idempotent
    try:
        ipaddress.ip_address(name.partition("%")[0])
    except ValueError:
        assert name.isascii()
        assert len(name.rstrip(".")) <= MAX_NAME
        assert name == name.lower()


url_like = st.one_of(
    st.text(max_size=120),
    st.builds(
        lambda scheme, user, host, port, path: f"{scheme}://{user}{host}{port}{path}",
        st.sampled_from(["http", "https", "ftp", "smtp", "imaps", "HTTPS", "x-unknown", "", "h ttp"]),
        st.sampled_from(["", "user@", "user:pa%20ss@", "@", ":@", "a@b@"]),
        host_like,
        st.one_of(
            st.just(""),
            st.integers(-5, 70000).map(lambda p: f":{p}"),
            st.text(max_size=6).map(lambda t: ":" + t),
        ),
        st.sampled_from(["", "/", "/a?b=c", "#frag", "?q", "/\x00"]),
    ),
)


@FUZZ
@given(url=url_like)
def test_fuzz_parse_url(url: str) -> None:
    from inetkit._url import parse_url

    try:
        parsed = parse_url(url)
    except InvalidArgumentError:
        return
    assert 1 <= parsed.port <= 65535
    assert inetkit.normalize_host_name(parsed.host) == parsed.host
    assert parsed.scheme == parsed.scheme.lower()


hosts_lines = st.lists(
    st.one_of(
        st.text(max_size=60),
        st.builds(
            lambda ip, names, comment: f"{ip} {' '.join(names)}{comment}",
            st.one_of(st.ip_addresses().map(str), st.text(max_size=15)),
            st.lists(host_like, max_size=4),
            st.sampled_from(["", " # c", "#", "\t#x"]),
        ),
    ),
    max_size=20,
).map("\n".join)


@FUZZ
@given(text=hosts_lines)
def test_fuzz_hosts_file_parser(text: str) -> None:
    from inetkit._resolver import parse_hosts

    table = parse_hosts(text, "fuzzed hosts file")
    for name, entries in table.items():
        assert inetkit.normalize_host_name(name) == name
        assert not name.endswith(".")
        for family, ip, scope in entries:
            assert family in (socket.AF_INET, socket.AF_INET6)
            assert ipaddress.ip_address(ip).version == (4 if family == socket.AF_INET else 6)
            assert isinstance(scope, int)


smtp_lines = st.lists(
    st.one_of(
        st.text(max_size=40),
        st.builds(
            lambda code, sep, text: f"{code}{sep}{text}",
            st.one_of(st.integers(0, 999).map(str), st.text(alphabet="0123456789x", max_size=4)),
            st.sampled_from([" ", "-", "", "x", "\t"]),
            st.text(max_size=30),
        ),
    ),
    max_size=300,
)


@FUZZ
@given(lines=smtp_lines)
def test_fuzz_smtp_reply_parser(lines: list[str]) -> None:
    from inetkit._core.dialogs._steps import ReadLine, Refusal
    from inetkit._core.dialogs.smtp import SMTP_MAX_REPLY_LINES, smtp_reply

    script = smtp_reply()
    step = next(script)
    fed = iter(lines)
    try:
        for _ in range(len(lines) + 1):  # bounded: each pass feeds one line
            assert isinstance(step, ReadLine)
            line = next(fed, None)
            # The end of the made-up lines is the server closing the connection.
            step = script.send(b"" if line is None else line.encode("utf-8", "surrogatepass") + b"\r\n")
        raise AssertionError("the reply parser asked for more lines than it was given")
    except Refusal:
        return
    except StopIteration as done:
        code, texts = done.value
    assert 0 <= code <= 999
    assert 1 <= len(texts) <= SMTP_MAX_REPLY_LINES


# -- loopback targets: random bytes from a real peer --------------------------------


class BytesPeer:
    """A loopback listener that answers each connection with given bytes, then closes."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]

    def serve(self, payload: bytes, *, read_first: bool) -> threading.Thread:
        def run() -> None:
            self.listener.settimeout(LOOPBACK_TIMEOUT)
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with sock:
                sock.settimeout(LOOPBACK_TIMEOUT)
                try:
                    if read_first:
                        sock.recv(65536)  # the ClientHello
                    sock.sendall(payload)
                    sock.shutdown(socket.SHUT_WR)
                    while sock.recv(65536):  # until the client gives up
                        pass
                except OSError:
                    pass

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self.listener.close()


def with_peer() -> Iterator[BytesPeer]:
    server = BytesPeer()
    try:
        yield server
    finally:
        server.close()


tls_garbage = st.one_of(
    st.binary(max_size=2000),
    # Plausible record headers (handshake, alert, change cipher spec) with random bodies.
    st.builds(
        lambda kind, version, body: bytes([kind]) + version + len(body).to_bytes(2, "big") + body,
        st.sampled_from([20, 21, 22, 23, 24, 0, 255]),
        st.sampled_from([b"\x03\x01", b"\x03\x03", b"\x03\x04", b"\x02\x00", b"\xff\xff"]),
        st.binary(max_size=600),
    ),
    st.builds(
        lambda head, tail: head + tail,
        st.sampled_from([b"\x16\x03\x03\x00\x40\x02", b"\x15\x03\x03\x00\x02"]),
        st.binary(max_size=100),
    ),
)


@LOOPBACK
@given(payload=tls_garbage)
def test_fuzz_tls_input_from_a_server(payload: bytes) -> None:
    for server in with_peer():
        thread = server.serve(payload, read_first=True)
        try:
            inetkit.connect(
                "127.0.0.1", server.port, timeout=LOOPBACK_TIMEOUT, options=Option.SECURE | Option.TRUSTEDSITE
            ).close()
            raise AssertionError("a TLS connect to random bytes succeeded")
        except (SecurityError, ConnectionError) as exc:
            assert isinstance(exc, InetError)
        finally:
            thread.join(LOOPBACK_TIMEOUT * 2)
        assert not thread.is_alive()


smtp_garbage = st.one_of(
    st.binary(max_size=600),
    st.lists(st.text(max_size=40), max_size=8).map(
        lambda lines: "\r\n".join(lines).encode("utf-8", "replace")
    ),
    st.builds(
        lambda greeting, ehlo: (greeting + ehlo).encode(),
        st.sampled_from(["220 ok\r\n", "220-a\r\n220 b\r\n", "554 no\r\n", "2200\r\n"]),
        st.sampled_from(
            ["250 ok\r\n", "250-STARTTLS\r\n250 X\r\n", "250 STARTTLS\r\n220 go\r\n", "", "999\r\n"]
        ),
    ),
)


@LOOPBACK
@given(payload=smtp_garbage)
def test_fuzz_smtp_dialog_against_random_replies(payload: bytes) -> None:
    for server in with_peer():
        thread = server.serve(payload, read_first=False)
        try:
            inetkit.connect(
                "127.0.0.1",
                server.port,
                timeout=LOOPBACK_TIMEOUT,
                starttls="smtp",
                options=Option.TRUSTEDSITE,
            ).close()
            raise AssertionError("a STARTTLS dialog with random replies succeeded")
        except InetError as exc:
            assert isinstance(exc, SecurityError | ConnectionError), repr(exc)
        finally:
            thread.join(LOOPBACK_TIMEOUT * 2)
        assert not thread.is_alive()
