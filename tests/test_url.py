"""URL parsing for connect_url: scheme table, hosts, ports, user information."""

from __future__ import annotations

import dataclasses
import traceback

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inetkit._errors import ErrorCode, InvalidArgumentError
from inetkit._url import SCHEMES, ParsedUrl, parse_url

# The scheme table as documented: scheme -> (usual port, implicit TLS).
EXPECTED_SCHEMES = {
    "http": (80, False),
    "https": (443, True),
    "ftp": (21, False),
    "ftps": (990, True),
    "smtp": (25, False),
    "submission": (587, False),
    "smtps": (465, True),
    "imap": (143, False),
    "imaps": (993, True),
    "pop3": (110, False),
    "pop3s": (995, True),
    "ldap": (389, False),
    "ldaps": (636, True),
    "nntp": (119, False),
    "nntps": (563, True),
    "telnet": (23, False),
    "ws": (80, False),
    "wss": (443, True),
    "xmpp": (5222, False),
    "postgres": (5432, False),
    "postgresql": (5432, False),
}


def test_the_scheme_table_is_the_documented_one() -> None:
    assert {name: (info.default_port, info.secure) for name, info in SCHEMES.items()} == EXPECTED_SCHEMES


@pytest.mark.parametrize(("scheme", "expected"), sorted(EXPECTED_SCHEMES.items()))
def test_default_ports_and_security_per_scheme(scheme: str, expected: tuple[int, bool]) -> None:
    parsed = parse_url(f"{scheme}://example.com/")
    assert (parsed.port, parsed.secure) == expected
    assert parsed.scheme == scheme
    assert parsed.host == "example.com"
    upper = parse_url(f"{scheme.upper()}://Example.COM")
    assert (upper.scheme, upper.host, upper.port, upper.secure) == (scheme, "example.com", *expected)


PARSED = [
    ("https://example.com", ParsedUrl("https", "example.com", 443, True, "")),
    ("https://example.com/", ParsedUrl("https", "example.com", 443, True, "/")),
    ("https://example.com:8443/path", ParsedUrl("https", "example.com", 8443, True, "/path")),
    ("http://example.com:/x", ParsedUrl("http", "example.com", 80, False, "/x")),
    ("http://example.com:0080/", ParsedUrl("http", "example.com", 80, False, "/")),
    ("http://example.com.:81/", ParsedUrl("http", "example.com.", 81, False, "/")),
    ("http://h/a/b?x=1&y=2#frag", ParsedUrl("http", "h", 80, False, "/a/b?x=1&y=2")),
    ("http://h?x=1", ParsedUrl("http", "h", 80, False, "?x=1")),
    ("http://h#top", ParsedUrl("http", "h", 80, False, "")),
    ("http://[::1]:8080/", ParsedUrl("http", "::1", 8080, False, "/")),
    ("http://[::1]/", ParsedUrl("http", "::1", 80, False, "/")),
    ("https://[2001:DB8:0::1]", ParsedUrl("https", "2001:db8::1", 443, True, "")),
    ("http://[fe80::1%25eth0]:8080/", ParsedUrl("http", "fe80::1%eth0", 8080, False, "/")),
    ("http://[fe80::1%eth0]/", ParsedUrl("http", "fe80::1%eth0", 80, False, "/")),
    ("http://127.0.0.1:8000/", ParsedUrl("http", "127.0.0.1", 8000, False, "/")),
    ("https://bücher.example:8443/path", ParsedUrl("https", "xn--bcher-kva.example", 8443, True, "/path")),
    ("https://Bücher.Example", ParsedUrl("https", "xn--bcher-kva.example", 443, True, "")),
    ("https://b%C3%BCcher.example/", ParsedUrl("https", "xn--bcher-kva.example", 443, True, "/")),
    ("https://faß.de/", ParsedUrl("https", "xn--fa-hia.de", 443, True, "/")),
    ("http://⑧.⑧.⑧.⑧/", ParsedUrl("http", "8.8.8.8", 80, False, "/")),
    ("postgresql://db.internal/app", ParsedUrl("postgresql", "db.internal", 5432, False, "/app")),
    ("foo://host:1234", ParsedUrl("foo", "host", 1234, False, "")),
    ("git+ssh://host:22/repo", ParsedUrl("git+ssh", "host", 22, False, "/repo")),
    ("https://user:secret@example.com/", ParsedUrl("https", "example.com", 443, True, "/")),
    ("https://user@example.com:444", ParsedUrl("https", "example.com", 444, True, "")),
    ("https://us@er:p@ss@example.com/", ParsedUrl("https", "example.com", 443, True, "/")),
    ("https://:@example.com/", ParsedUrl("https", "example.com", 443, True, "/")),
    ("imaps://u:p@[::1]:1993/INBOX", ParsedUrl("imaps", "::1", 1993, True, "/INBOX")),
]


@pytest.mark.parametrize(("url", "expected"), PARSED)
def test_parse_url(url: str, expected: ParsedUrl) -> None:
    assert parse_url(url) == expected


def test_parsed_url_is_frozen() -> None:
    parsed = parse_url("https://example.com/")
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.port = 1  # type: ignore[misc]


def test_user_information_is_not_kept() -> None:
    parsed = parse_url("https://alice:s3cr3t@example.com:8443/x")
    for text in (repr(parsed), str(parsed), *map(str, dataclasses.astuple(parsed))):
        assert "s3cr3t" not in text
        assert "alice" not in text


REFUSED = [
    # (url, code, fragment of the message)
    ("", ErrorCode.INVALID_ARGUMENT, "empty"),
    ("example.com", ErrorCode.INVALID_ARGUMENT, "no scheme"),
    ("//example.com/", ErrorCode.INVALID_ARGUMENT, "no scheme"),
    ("example.com:443", ErrorCode.INVALID_ARGUMENT, "no scheme"),
    ("localhost:8080/path", ErrorCode.INVALID_ARGUMENT, "no scheme"),
    ("1http://example.com", ErrorCode.INVALID_ARGUMENT, "no scheme"),
    ("mailto:joe@example.com", ErrorCode.INVALID_HOST_NAME, "no host"),
    ("https:example.com", ErrorCode.INVALID_HOST_NAME, "'https:'"),
    ("http://", ErrorCode.INVALID_HOST_NAME, "no host"),
    ("http:///path", ErrorCode.INVALID_HOST_NAME, "no host"),
    ("http://:80/", ErrorCode.INVALID_HOST_NAME, "no host"),
    ("http://user@/", ErrorCode.INVALID_HOST_NAME, "no host"),
    ("file:///etc/passwd", ErrorCode.INVALID_HOST_NAME, "no host"),
    ("http://::1/", ErrorCode.INVALID_HOST_NAME, "brackets"),
    ("http://[::1/", ErrorCode.INVALID_HOST_NAME, "closing"),
    ("http://[::1]x/", ErrorCode.INVALID_HOST_NAME, "after ']'"),
    ("http://[example.com]/", ErrorCode.INVALID_HOST_NAME, "IPv6"),
    ("http://[127.0.0.1]/", ErrorCode.INVALID_HOST_NAME, "IPv6"),
    ("http://127.1/", ErrorCode.INVALID_HOST_NAME, "'127.1'"),
    ("http://0x7f.0.0.1/", ErrorCode.INVALID_HOST_NAME, "not an IP address"),
    ("http://a..b/", ErrorCode.INVALID_HOST_NAME, "empty label"),
    ("http://☕.us/", ErrorCode.INVALID_HOST_NAME, "'☕'"),
    ("http://ex!ample.com/", ErrorCode.INVALID_HOST_NAME, "'!'"),
    ("http://b%FFcher.de/", ErrorCode.INVALID_HOST_NAME, "UTF-8"),
    ("https://good.example\\@evil.example/", ErrorCode.INVALID_HOST_NAME, "backslash"),
    ("foo://host", ErrorCode.INVALID_ARGUMENT, "unknown scheme 'foo'"),
    ("foo://host:/", ErrorCode.INVALID_ARGUMENT, "unknown scheme 'foo'"),
    ("http://h:0/", ErrorCode.INVALID_PORT, "port '0'"),
    ("http://h:65536/", ErrorCode.INVALID_PORT, "port '65536'"),
    ("http://h:99999999999999999999999/", ErrorCode.INVALID_PORT, "out of range"),
    ("http://h:" + "9" * 5000 + "/", ErrorCode.INVALID_PORT, "out of range"),
    ("http://h:000/", ErrorCode.INVALID_PORT, "out of range"),
    ("http://h:abc/", ErrorCode.INVALID_PORT, "'abc'"),
    ("http://h:-1/", ErrorCode.INVALID_PORT, "'-1'"),
    ("http://h:+80/", ErrorCode.INVALID_PORT, "'+80'"),
    ("http://h:\uff18\uff10/", ErrorCode.INVALID_PORT, "'\uff18\uff10'"),
    ("http://[::1]:https/", ErrorCode.INVALID_PORT, "'https'"),
    ("http://exa mple.com/", ErrorCode.INVALID_ARGUMENT, "whitespace"),
    (" http://example.com/", ErrorCode.INVALID_ARGUMENT, "whitespace"),
    ("http://example.com/\n", ErrorCode.INVALID_ARGUMENT, "whitespace"),
    ("http://example.com/\0", ErrorCode.INVALID_ARGUMENT, "NUL"),
    ("http://exa\x7fmple.com/", ErrorCode.INVALID_ARGUMENT, "control character"),
]


@pytest.mark.parametrize(("url", "code", "fragment"), REFUSED)
def test_bad_urls_say_what_is_wrong(url: str, code: ErrorCode, fragment: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        parse_url(url)
    exc = info.value
    assert exc.code is code
    assert isinstance(exc, ValueError)
    assert "URL" in str(exc)
    assert fragment in str(exc)
    assert len(str(exc)) < 600


@pytest.mark.parametrize("url", [None, b"https://example.com/", 443, ["https://example.com/"]])
def test_non_str_urls_are_type_errors(url: object) -> None:
    with pytest.raises(TypeError, match="url must be a str"):
        parse_url(url)  # type: ignore[arg-type]


SECRET_URLS = [
    "https://alice:s3cr3t@example.com:0/",
    "https://alice:s3cr3t@example.com:abc/",
    "https://alice:s3cr3t@127.1/",
    "https://alice:s3cr3t@/",
    "foo://alice:s3cr3t@example.com/",
    "https://alice:s3cr3t@[::1/",
    "https://alice:s3cr3t@::1/",
    "https://alice:s3cr3t@exa mple.com/",
    "https://alice:s3 cr3t@example.com/",
    "https://alice:s3\tcr3t@example.com/",
    "https://alice:s3cr3t@good\\@evil/",
    "alice:s3cr3t@example.com",
    "alice:s3cr3t@example.com:443",
    "https:alice:s3cr3t@example.com",
    "https://alice:s3cr3t@☕.us/",
    "https://alice:s3cr3t/x@example.com/",
    "https://alice:x/s3cr3t@example.com:0/",
    "https://alice:s3cr3t?x@example.com/",
    "https://alice:s3cr3t#x@example.com/",
    "https://alice:s3cr3t@x:0/y@example.com/",
    "https://[alice:s3cr3t]x/@example.com/",
    "alice:s3cr3t@//",
    "alice:s3cr3t/x@example.com",
]


def _everything_shown(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + repr(exc.args)


@pytest.mark.parametrize("url", SECRET_URLS)
def test_user_information_never_appears_in_errors(url: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        parse_url(url)
    shown = _everything_shown(info.value)
    assert "s3cr3t" not in shown
    assert "s3 cr3t" not in shown
    assert "s3\tcr3t" not in shown
    assert "alice" not in shown
    assert "***" in str(info.value)


@settings(max_examples=300, deadline=None)
@given(
    scheme=st.sampled_from(["https", "http", "foo", "imaps", ""]),
    host=st.text(alphabet=st.sampled_from(list("ab1.:[]%@/?#\\ ü-")), max_size=10),
    port=st.sampled_from(["", ":", ":0", ":443", ":x", ":99999"]),
    tail=st.sampled_from(["", "/", "/p@x", "?q", "#f"]),
)
def test_user_information_never_leaks_for_any_shape(scheme: str, host: str, port: str, tail: str) -> None:
    url = f"{scheme}://alice:s3cr3t@{host}{port}{tail}" if scheme else f"alice:s3cr3t@{host}{port}{tail}"
    try:
        parsed = parse_url(url)
    except InvalidArgumentError as exc:
        shown = _everything_shown(exc)
    else:
        shown = repr(parsed)
        assert 1 <= parsed.port <= 65535
    assert "s3cr3t" not in shown
    assert "alice" not in shown


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_parse_url_raises_only_invalid_argument(url: str) -> None:
    try:
        parsed = parse_url(url)
    except InvalidArgumentError as exc:
        assert exc.code in {ErrorCode.INVALID_ARGUMENT, ErrorCode.INVALID_HOST_NAME, ErrorCode.INVALID_PORT}
    else:
        assert 1 <= parsed.port <= 65535
        assert parsed.host
