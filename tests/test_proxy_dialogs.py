"""The proxy dialogs (``inetkit._core.proxy``) fed made-up bytes, no sockets.

`feed` plays the driver by the step contract (a line at a time, exact byte
counts, the driver's own limit on a line), so every test here runs the
dialog as the blocking driver does, minus the socket. Every answer is also
cut at every byte: a cut answer is refused, never taken for a tunnel.
"""

from __future__ import annotations

import base64
import itertools
import struct
from collections.abc import Iterator

import pytest

from inetkit import ErrorCode
from inetkit._core.dialogs._steps import Dialog, Done, ReadExactly, ReadLine, Refused, Send, Step
from inetkit._core.proxy import HTTPConnectDialog, SOCKS4aDialog, SOCKS5Dialog, new_proxy_dialog, parse_proxy
from inetkit._core.proxy.http_connect import MAX_HEADER_BYTES, MAX_HEADER_LINES, MAX_LINE

#: Steps a fed dialog may take (bounds the test driver itself).
MAX_STEPS = 1000


def feed(dialog: Dialog, answer: bytes | Iterator[bytes]) -> tuple[bytes, Step, bytes]:
    """Run ``dialog`` on ``answer`` (bytes, or endless lines): what it sent, its end, the rest."""
    source = None if isinstance(answer, bytes) else answer
    data = answer if isinstance(answer, bytes) else b""
    sent = b""
    step = dialog.start()
    for _ in range(MAX_STEPS):
        if isinstance(step, Done | Refused):
            return sent, step, data
        if isinstance(step, Send):
            sent += step.data
            step = dialog.proceed()
        elif isinstance(step, ReadLine):
            if source is not None and b"\n" not in data:
                data += next(source)
            end = data.find(b"\n")
            if (end == -1 and len(data) > step.max_length) or end > step.max_length + 1:
                # What the blocking driver does: LINE_TOO_LONG becomes the dialog's own refusal.
                return sent, Refused(dialog.oversize_code, "too long"), data
            cut = len(data) if end == -1 else end + 1
            line, data = data[:cut], data[cut:]
            step = dialog.receive(line)
        elif isinstance(step, ReadExactly):
            chunk, data = data[: step.count], data[step.count :]
            step = dialog.receive(chunk)
        else:  # pragma: no cover - proxy dialogs use no other step
            raise AssertionError(step)
    raise AssertionError("the dialog did not end")


def refused(step: Step, code: ErrorCode) -> str:
    assert isinstance(step, Refused), step
    assert step.code is code, (step.code, step.reason)
    return step.reason


def cut_everywhere(make: type[Dialog] | object, answer: bytes) -> None:
    """Every proper prefix of a good answer is refused, never a tunnel.

    Nothing at all, or nothing of the next message, is a proxy that closed
    instead of answering (PROXY_REFUSED); a message cut inside is PROXY_PROTOCOL.
    """
    for size in range(len(answer)):
        dialog = make() if callable(make) else make
        assert isinstance(dialog, Dialog)
        _, step, _ = feed(dialog, answer[:size])
        assert isinstance(step, Refused), (size, step)
        assert step.code in (ErrorCode.PROXY_REFUSED, ErrorCode.PROXY_PROTOCOL), (size, step)
        if size == 0:
            assert step.code is ErrorCode.PROXY_REFUSED


# -- HTTP CONNECT -------------------------------------------------------------------------------

OK = b"HTTP/1.1 200 Connection established\r\n\r\n"


def test_connect_request_names_the_target_unresolved() -> None:
    sent, step, rest = feed(HTTPConnectDialog("example.com", 443), OK + b"target bytes")
    assert sent == b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
    assert step == Done("HTTP/1.1 200 Connection established")
    assert rest == b"target bytes"  # what follows the answer is the target's, untouched


def test_connect_request_brackets_ipv6_and_sends_basic_credentials() -> None:
    sent, _, _ = feed(HTTPConnectDialog("::1", 8443, "al@ice", "pa:ss"), OK)
    token = base64.b64encode(b"al@ice:pa:ss").decode()
    assert sent == (
        b"CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n"
        + f"Proxy-Authorization: Basic {token}\r\n\r\n".encode()
    )


def test_connect_takes_headers_and_ignores_content_length_on_2xx() -> None:
    answer = b"HTTP/1.0 200 OK\r\nVia: 1.1 squid\nContent-Length: 99\r\n\r\nhello"
    _, step, rest = feed(HTTPConnectDialog("h", 1), answer)
    assert isinstance(step, Done) and rest == b"hello"


@pytest.mark.parametrize(
    ("status", "code", "words"),
    [
        (b"HTTP/1.1 407 Proxy Authentication Required", ErrorCode.PROXY_AUTH_REQUIRED, "wants credentials"),
        (b"HTTP/1.1 403 Forbidden", ErrorCode.PROXY_REFUSED, "'HTTP/1.1 403 Forbidden'"),
        (b"HTTP/1.1 503 Service Unavailable", ErrorCode.PROXY_REFUSED, "503"),
        (b"HTTP/1.1 101 Switching Protocols", ErrorCode.PROXY_REFUSED, "101"),
        (b"HTTP/1.1 301 Moved", ErrorCode.PROXY_REFUSED, "301"),
    ],
)
def test_connect_refusals_quote_the_status_line(status: bytes, code: ErrorCode, words: str) -> None:
    _, step, _ = feed(HTTPConnectDialog("h", 1), status + b"\r\nProxy-Authenticate: Basic\r\n\r\n")
    assert words in refused(step, code)


def test_a_407_with_credentials_says_they_were_refused() -> None:
    _, step, _ = feed(HTTPConnectDialog("h", 1, "u", "secret"), b"HTTP/1.1 407 No\r\n\r\n")
    reason = refused(step, ErrorCode.PROXY_AUTH_REQUIRED)
    assert "refused the credentials" in reason and "secret" not in reason


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/2 200\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.2\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 200OK\r\n\r\n",
        b"\x05\x00",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X: " + b"y" * MAX_LINE + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * (MAX_HEADER_LINES + 1) + b"\r\n",
        b"HTTP/1.1 200 OK\r\n" + (b"X: " + b"y" * 1000 + b"\r\n") * (MAX_HEADER_BYTES // 1000),
    ],
    ids=[
        "http2",
        "ssh",
        "short-code",
        "no-space",
        "socks",
        "no-colon",
        "folded",
        "long-line",
        "many-lines",
        "big",
    ],
)
def test_malformed_or_oversize_answers_are_protocol_errors(answer: bytes) -> None:
    _, step, _ = feed(HTTPConnectDialog("h", 1), answer)
    refused(step, ErrorCode.PROXY_PROTOCOL)


def test_endless_header_lines_end_after_the_bound() -> None:
    served = 0

    def endless() -> Iterator[bytes]:
        nonlocal served
        yield b"HTTP/1.1 200 OK\r\n"
        for _ in itertools.count():
            served += 1
            yield b"X-Again: yes\r\n"

    _, step, _ = feed(HTTPConnectDialog("h", 1), endless())
    refused(step, ErrorCode.PROXY_PROTOCOL)
    assert served <= MAX_HEADER_LINES + 1


def test_connect_answers_cut_at_every_byte_are_refused() -> None:
    cut_everywhere(lambda: HTTPConnectDialog("h", 1), b"HTTP/1.1 200 OK\r\nVia: 1.1 proxy\r\n\r\n")


# -- SOCKS5 ---------------------------------------------------------------------------------------

CHOICE_NONE = b"\x05\x00"
SUCCESS_V4 = b"\x05\x00\x00\x01" + bytes([10, 0, 0, 1]) + struct.pack("!H", 4000)


def test_socks5_without_auth_sends_a_name_for_the_proxy_to_resolve() -> None:
    sent, step, rest = feed(SOCKS5Dialog("example.com", 443), CHOICE_NONE + SUCCESS_V4 + b"after")
    assert sent == b"\x05\x01\x00" + b"\x05\x01\x00\x03\x0bexample.com" + struct.pack("!H", 443)
    assert step == Done(("10.0.0.1", 4000)) and rest == b"after"


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("192.0.2.7", b"\x01\xc0\x00\x02\x07"),
        ("2001:db8::1", b"\x04" + bytes.fromhex("20010db8" + "0" * 23 + "1")),
    ],
)
def test_socks5_sends_ip_literals_as_addresses(host: str, address: bytes) -> None:
    sent, _, _ = feed(SOCKS5Dialog(host, 80), CHOICE_NONE + SUCCESS_V4)
    assert sent[3:] == b"\x05\x01\x00" + address + struct.pack("!H", 80)


def test_socks5_user_password_auth_rfc1929() -> None:
    answer = b"\x05\x02" + b"\x01\x00" + b"\x05\x00\x00\x03\x04host" + struct.pack("!H", 1)
    sent, step, _ = feed(SOCKS5Dialog("h", 9, "üser", "pw"), answer)
    assert sent.startswith(b"\x05\x02\x00\x02" + b"\x01\x05" + "üser".encode() + b"\x02pw")
    assert step == Done(("host", 1))


@pytest.mark.parametrize(
    ("answer", "code", "words"),
    [
        (b"\x05\xff", ErrorCode.PROXY_AUTH_REQUIRED, "refuses connecting without authentication"),
        (b"\x05\x02", ErrorCode.PROXY_PROTOCOL, "was not offered"),
        (b"\x04\x00", ErrorCode.PROXY_PROTOCOL, "not SOCKS5"),
        (
            CHOICE_NONE + b"\x05\x02\x00\x01",
            ErrorCode.PROXY_REFUSED,
            "SOCKS5 reply 2 (connection not allowed by ruleset)",
        ),
        (CHOICE_NONE + b"\x05\x05\x00\x01", ErrorCode.PROXY_REFUSED, "reply 5 (connection refused)"),
        (CHOICE_NONE + b"\x05\x09\x00\x01", ErrorCode.PROXY_REFUSED, "reply 9 (unassigned reply code)"),
        (CHOICE_NONE + b"\x05\x00\x01\x01", ErrorCode.PROXY_PROTOCOL, "not SOCKS5"),
        (CHOICE_NONE + b"\x05\x00\x00\x07", ErrorCode.PROXY_PROTOCOL, "unknown address type 7"),
    ],
)
def test_socks5_refusals_and_malformed_answers(answer: bytes, code: ErrorCode, words: str) -> None:
    _, step, _ = feed(SOCKS5Dialog("h", 1), answer)
    assert words in refused(step, code)


@pytest.mark.parametrize(
    ("status", "code"),
    [(b"\x01\x01", ErrorCode.PROXY_AUTH_REQUIRED), (b"\x05\x00", ErrorCode.PROXY_PROTOCOL)],
)
def test_socks5_auth_status(status: bytes, code: ErrorCode) -> None:
    _, step, _ = feed(SOCKS5Dialog("h", 1, "u", "hunter2"), b"\x05\x02" + status + SUCCESS_V4)
    assert "hunter2" not in refused(step, code)


def test_socks5_a_name_too_long_is_refused_before_any_byte_is_sent() -> None:
    sent, step, _ = feed(SOCKS5Dialog("a" * 256, 1), CHOICE_NONE)
    refused(step, ErrorCode.PROXY_PROTOCOL)
    assert sent == b""


@pytest.mark.parametrize(
    "reply",
    [
        SUCCESS_V4,
        b"\x05\x00\x00\x04" + bytes(16) + b"\x00\x01",
        b"\x05\x00\x00\x03\x09proxy.lan\x00\x01",
    ],
)
def test_socks5_answers_cut_at_every_byte_are_refused(reply: bytes) -> None:
    cut_everywhere(lambda: SOCKS5Dialog("h", 1), CHOICE_NONE + reply)
    cut_everywhere(lambda: SOCKS5Dialog("h", 1, "u", "p"), b"\x05\x02\x01\x00" + reply)


# -- SOCKS4a --------------------------------------------------------------------------------------

GRANTED = b"\x00\x5a" + struct.pack("!H", 0) + bytes(4)


def test_socks4a_sends_the_name_after_the_user_id() -> None:
    sent, step, rest = feed(SOCKS4aDialog("example.com.", 443, "me"), GRANTED + b"x")
    assert sent == b"\x04\x01" + struct.pack("!H", 443) + b"\x00\x00\x00\x01" + b"me\x00example.com\x00"
    assert step == Done(("0.0.0.0", 0)) and rest == b"x"


def test_socks4a_sends_an_ipv4_literal_as_plain_socks4() -> None:
    sent, _, _ = feed(SOCKS4aDialog("192.0.2.9", 80), GRANTED)
    assert sent == b"\x04\x01\x00\x50\xc0\x00\x02\x09\x00"


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (b"\x00\x5b", ErrorCode.PROXY_REFUSED),
        (b"\x00\x5c", ErrorCode.PROXY_AUTH_REQUIRED),
        (b"\x00\x5d", ErrorCode.PROXY_AUTH_REQUIRED),
        (b"\x00\x5e", ErrorCode.PROXY_PROTOCOL),
        (b"\x04\x5a", ErrorCode.PROXY_PROTOCOL),
    ],
)
def test_socks4a_replies(reply: bytes, code: ErrorCode) -> None:
    _, step, _ = feed(SOCKS4aDialog("h", 1), reply + bytes(6))
    reason = refused(step, code)
    if code is not ErrorCode.PROXY_PROTOCOL:
        assert f"SOCKS4 reply {reply[1]}" in reason


def test_socks4a_answers_cut_at_every_byte_are_refused() -> None:
    cut_everywhere(lambda: SOCKS4aDialog("h", 1), GRANTED)


# -- choosing the dialog ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://p:1", HTTPConnectDialog),
        ("https://p:1", HTTPConnectDialog),
        ("socks5://p:1", SOCKS5Dialog),
        ("socks5h://p:1", SOCKS5Dialog),
        ("socks4a://p:1", SOCKS4aDialog),
    ],
)
def test_each_scheme_gets_its_dialog(url: str, kind: type[Dialog]) -> None:
    assert type(new_proxy_dialog(parse_proxy(url), "t", 1)) is kind
