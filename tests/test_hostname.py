"""Host name normalization, IP literals, SNI names, sockaddrs and ports."""

from __future__ import annotations

import ipaddress
import pathlib
import re
import socket
import subprocess
import sys
import textwrap

import idna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inetkit._errors import ErrorCode, InvalidArgumentError
from inetkit._hostname import (
    MAX_LABEL_LENGTH,
    MAX_NAME_LENGTH,
    check_host,
    check_port,
    ip_literal,
    is_dotted_quad,
    literal_sockaddr,
    normalize_host_name,
    redact_userinfo,
    sni_name,
)
from inetkit._types import Protocol

# What every accepted result looks like: an IP literal, or lower-case ASCII labels.
NAME_GRAMMAR = re.compile(r"(?:[a-z0-9_-]{1,63}\.)*[a-z0-9_-]{1,63}\.?")


def fullwidth(text: str) -> str:
    """The fullwidth forms (U+FF01..U+FF5E) of printable ASCII text."""
    return "".join(chr(ord(char) + 0xFEE0) for char in text)


def refused(host: object) -> InvalidArgumentError:
    with pytest.raises(InvalidArgumentError) as info:
        normalize_host_name(host)  # type: ignore[arg-type]
    return info.value


# -- accepted names ----------------------------------------------------------

ASCII_NAMES = [
    ("example.com", "example.com"),
    ("Example.COM", "example.com"),
    ("WWW.EXAMPLE.ORG", "www.example.org"),
    ("localhost", "localhost"),
    ("LocalHost", "localhost"),
    ("example.com.", "example.com."),
    ("Example.Com.", "example.com."),
    ("_dmarc.example.com", "_dmarc.example.com"),
    ("_sip._tcp.Example.com", "_sip._tcp.example.com"),
    ("my-host-1.example", "my-host-1.example"),
    ("a", "a"),
    ("1host.example", "1host.example"),
    ("host.1example", "host.1example"),
    ("123.example.com", "123.example.com"),
    ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ("XN--BCHER-KVA.EXAMPLE", "xn--bcher-kva.example"),
    ("foo.0xg", "foo.0xg"),
]


@pytest.mark.parametrize(("host", "expected"), ASCII_NAMES)
def test_ascii_names_are_lower_cased_and_kept(host: str, expected: str) -> None:
    assert normalize_host_name(host) == expected
    assert check_host(host) == expected


UNICODE_NAMES = [
    # IDNA 2008, non-transitional: sharp s and final sigma are kept, not mapped to ss / sigma.
    ("faß.de", "xn--fa-hia.de"),
    ("straße.de", "xn--strae-oqa.de"),
    ("Bücher.Example", "xn--bcher-kva.example"),
    ("bücher.example", "xn--bcher-kva.example"),
    ("BÜCHER.example", "xn--bcher-kva.example"),
    ("ΣΑΣ.gr", "xn--mxa9ab.gr"),
    ("é.fr", "xn--9ca.fr"),
    ("e\u0301.fr", "xn--9ca.fr"),  # decomposed e + combining acute: NFC first
    ("münchen.de.", "xn--mnchen-3ya.de."),
    ("日本.jp", "xn--wgv71a.jp"),
    # UTS #46 mapping to ASCII: the result is the ASCII name.
    (fullwidth("example.com"), "example.com"),
    (fullwidth("EXAMPLE.COM"), "example.com"),
    ("Ⅸ.com", "ix.com"),
    ("ab\u00adc.de", "abc.de"),  # soft hyphen is ignored
    ("a\u3002b\uff0ec\uff61d", "a.b.c.d"),  # ideographic and fullwidth full stops
    ("example\u3002com\u3002", "example.com."),
    # Mixed: an ASCII A-label stays as written next to an encoded U-label.
    ("xn--bcher-kva.münchen", "xn--bcher-kva.xn--mnchen-3ya"),
    ("_tcp.bücher.example", "_tcp.xn--bcher-kva.example"),
]


@pytest.mark.parametrize(("host", "expected"), UNICODE_NAMES)
def test_unicode_names_use_uts46_and_idna2008(host: str, expected: str) -> None:
    assert normalize_host_name(host) == expected


def test_idna2008_differs_from_the_idna2003_codec() -> None:
    # The standard library's codec (IDNA 2003) maps sharp s to "ss": another host.
    assert "straße.de".encode("idna") == b"strasse.de"
    assert normalize_host_name("straße.de") == "xn--strae-oqa.de"
    assert normalize_host_name("straße.de") != normalize_host_name("strasse.de")


LITERALS = [
    ("127.0.0.1", "127.0.0.1"),
    ("0.0.0.0", "0.0.0.0"),
    ("255.255.255.255", "255.255.255.255"),
    ("192.0.2.10", "192.0.2.10"),
    ("::1", "::1"),
    ("[::1]", "::1"),
    ("[0:0::1]", "::1"),
    ("0:0:0:0:0:0:0:1", "::1"),
    ("2001:DB8::1", "2001:db8::1"),
    ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
    ("fe80::1%eth0", "fe80::1%eth0"),
    ("[fe80::1%lo]", "fe80::1%lo"),
    ("FE80::1%2", "fe80::1%2"),
    ("::ffff:127.0.0.1", str(ipaddress.IPv6Address("::ffff:127.0.0.1"))),
    # UTS #46 maps these to an ASCII literal, which is then that literal.
    ("⑧.⑧.⑧.⑧", "8.8.8.8"),
    (fullwidth("127.0.0.1"), "127.0.0.1"),
    (fullwidth("[::1]"), "::1"),
    ("①②⑦\u30020\u30020\u30021", "127.0.0.1"),
]


@pytest.mark.parametrize(("host", "expected"), LITERALS)
def test_ip_literals_are_compressed_without_brackets(host: str, expected: str) -> None:
    result = normalize_host_name(host)
    assert result == expected
    assert ip_literal(result) == ipaddress.ip_address(expected)
    assert sni_name(result) is None


# -- refused names -----------------------------------------------------------

REFUSED = [
    ("", "empty"),
    (".", "root"),
    ("a..b", "empty label"),
    (".example.com", "empty label"),
    ("example.com..", "empty label"),
    (" example.com", "whitespace"),
    ("example.com ", "whitespace"),
    ("exa mple.com", "whitespace"),
    ("example.com\n", "whitespace"),
    ("example\t.com", "whitespace"),
    ("a\u3000b.com", "whitespace"),
    ("b\u00fc\u00a0cher.de", "whitespace"),
    ("exa\0mple.com", "NUL"),
    ("example\x7f.com", "control character"),
    ("ex\x01ample.com", "control character"),
    ("b\u00fccher\x85.de", "whitespace"),  # U+0085 NEL is both Cc and whitespace
    ("ex!ample.com", "'!'"),
    ("user@example.com", "'@'"),
    ("example.com/path", "'/'"),
    ("bücher.ex*ample", "'*'"),
    ("example.com:443", "host:port"),
    ("[::1]:443", "port"),
    ("[::1", "closing"),
    ("[::1]x", "after ']'"),
    ("[127.0.0.1]", "brackets"),
    ("[example.com]", "brackets"),
    ("1:2:3", "IPv6"),
    ("fe80::1%eth0]", "zone id"),
    ("fe80::1%et/h0", "zone id"),
    # All-numeric forms that are not IP literals are refused, not guessed at.
    ("127.1", "not an IP address"),
    ("0x7f.0.0.1", "not an IP address"),
    ("0x7F000001", "not an IP address"),
    ("010.0.0.1", "not an IP address"),
    ("127.000.000.001", "not an IP address"),
    ("1.2.3", "not an IP address"),
    ("4294967295", "not an IP address"),
    ("256.0.0.1", "not an IP address"),
    ("1.2.3.4.5", "not an IP address"),
    ("1.2.3.4.", "not an IP address"),
    ("example.123", "not an IP address"),
    ("foo.0x1f", "not an IP address"),
    ("bücher.123", "not an IP address"),
    (fullwidth("127.1"), "not an IP address"),
    ("⑧.⑧", "not an IP address"),
    # IDNA 2008 refusals name the label.
    ("i❤.ws", "'i❤'"),
    ("☕.us", "'☕'"),
    ("xn--ü.de", "'xn--ü'"),
    ("\u200d.com", repr("\u200d")),
    ("ü-.de", "'ü-'"),
    ("\u0301ü.de", "'\u0301ü'"),
    ("\u00ad", "empty"),
    ("a\ufffdb.com", "U+FFFD"),
]


@pytest.mark.parametrize(("host", "fragment"), REFUSED)
def test_refused_names_say_which_host_and_why(host: str, fragment: str) -> None:
    exc = refused(host)
    assert exc.code is ErrorCode.INVALID_HOST_NAME
    assert isinstance(exc, ValueError)
    assert repr(host) in str(exc)
    assert fragment in str(exc)
    with pytest.raises(InvalidArgumentError):
        check_host(host)


@pytest.mark.parametrize(
    "host",
    [
        "http://example.com",
        "https://example.com/path",
        "HTTPS://EXAMPLE.COM",
        "http:/example.com",
        "ftp://bücher.example/",
        "smtp://[::1]:25",
    ],
)
def test_a_url_as_host_points_at_connect_url(host: str) -> None:
    exc = refused(host)
    assert exc.code is ErrorCode.INVALID_HOST_NAME
    assert "connect_url" in str(exc)


def test_a_url_as_host_never_shows_its_password() -> None:
    exc = refused("https://alice:s3cr3t@example.com/")
    assert "s3cr3t" not in str(exc)
    assert "alice" not in str(exc)
    assert "***@example.com" in str(exc)


@pytest.mark.parametrize("host", [None, b"example.com", bytearray(b"x"), 127, 1.5, ["a"], object()])
def test_non_str_hosts_are_type_errors(host: object) -> None:
    with pytest.raises(TypeError, match="host must be a str"):
        check_host(host)
    with pytest.raises(TypeError, match="host must be a str"):
        normalize_host_name(host)  # type: ignore[arg-type]


def test_bytes_host_says_to_decode() -> None:
    with pytest.raises(TypeError, match="decode"):
        check_host(b"example.com")


def test_str_subclass_gives_a_plain_str() -> None:
    class Name(str):
        pass

    for value in ("127.0.0.1", "Example.com", "::1", "bücher.de"):
        result = normalize_host_name(Name(value))
        assert type(result) is str


# -- lengths -----------------------------------------------------------------


def test_label_length_limit() -> None:
    ok = "a" * MAX_LABEL_LENGTH + ".example"
    assert normalize_host_name(ok) == ok
    exc = refused("a" * (MAX_LABEL_LENGTH + 1) + ".example")
    assert "64" in str(exc)
    assert "63" in str(exc)


def test_unicode_label_length_counts_the_encoded_form() -> None:
    # 57 ASCII letters and one 'ü' encode to "xn--" + 57 + "-" + 3 = 65 octets.
    label = "a" * 57 + "ü"
    assert len(label) <= MAX_LABEL_LENGTH
    exc = refused(label + ".de")
    assert "once encoded" in str(exc)
    short = "a" * 50 + "ü"
    assert normalize_host_name(short + ".de").startswith("xn--")


def test_name_length_limit_excludes_the_trailing_dot() -> None:
    # 4 labels of 62 + 3 dots = 251; add a 1-char label: 253 exactly.
    name = ".".join(["a" * 62] * 4) + ".b"
    assert len(name) == MAX_NAME_LENGTH
    assert normalize_host_name(name) == name
    assert normalize_host_name(name + ".") == name + "."
    exc = refused(name + "c")
    assert "254" in str(exc)
    assert "253" in str(exc)


def test_unicode_name_length_counts_the_encoded_form() -> None:
    name = ".".join(["ü" * 20] * 10)
    exc = refused(name)
    assert "once encoded" in str(exc)


def test_huge_input_is_refused_quickly_with_a_short_message() -> None:
    exc = refused("a." * 100_000 + "com")
    assert len(str(exc)) < 400


# -- the ASCII path does not use the IDNA codec --------------------------------


def test_ascii_names_never_touch_the_idna_package(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("the idna package was used for an ASCII name")

    for attribute in ("uts46_remap", "check_label", "encode", "alabel"):
        monkeypatch.setattr(idna, attribute, boom)
    for host, expected in ASCII_NAMES:
        assert normalize_host_name(host) == expected
    assert normalize_host_name("[::1]") == "::1"
    assert normalize_host_name("127.0.0.1") == "127.0.0.1"
    with pytest.raises(InvalidArgumentError):
        normalize_host_name("127.1")


# -- idempotency ---------------------------------------------------------------

ALPHABET = list("abcXYZ09-_.") + list("ßüéΣς。①Ⅸ\u00ad\u200d\uff0e\uff21:[]%") + ["xn--"]


def check_idempotent(host: str) -> None:
    try:
        first = normalize_host_name(host)
    except InvalidArgumentError as exc:
        assert exc.code is ErrorCode.INVALID_HOST_NAME
        return
    assert type(first) is str
    assert first.isascii()
    assert normalize_host_name(first) == first
    if ip_literal(first) is None:
        assert NAME_GRAMMAR.fullmatch(first), first
        assert len(first.rstrip(".")) <= MAX_NAME_LENGTH
    else:
        assert str(ipaddress.ip_address(first)) == first


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(ALPHABET), max_size=24).map("".join))
def test_normalize_is_idempotent_on_mixed_alphabets(host: str) -> None:
    check_idempotent(host)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20))
def test_normalize_is_idempotent_on_any_text(host: str) -> None:
    check_idempotent(host)


LABEL_CHARS = st.sampled_from(list("abcdefghijklmnopqrstuvwxyz0123456789-_ßüéçñøåæœ日本語Σςπ"))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(LABEL_CHARS, min_size=1, max_size=12).map("".join), min_size=1, max_size=5),
    st.booleans(),
)
def test_normalize_is_idempotent_on_label_lists(labels: list[str], trailing_dot: bool) -> None:
    host = ".".join(labels) + ("." if trailing_dot else "")
    check_idempotent(host)


@settings(max_examples=200, deadline=None)
@given(st.ip_addresses())
def test_every_ip_address_is_its_own_literal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    text = str(address)
    result = normalize_host_name(text)
    assert ip_literal(result) == address
    assert normalize_host_name(result) == result
    if address.version == 6:
        assert normalize_host_name(f"[{address.exploded}]") == result


# -- the dotted quad, without ipaddress or a pattern ---------------------------------


def _ipaddress_accepts(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


# Octet-like pieces that sit on every edge of the rule: leading zeros, 255/256, three digits
# and four, empty, non-ASCII digits (which int() would read), signs and spaces.
OCTET_LIKE = st.sampled_from(
    ["0", "00", "01", "1", "9", "10", "99", "100", "199", "249", "250", "255", "256", "260", "300", "999",
     "0255", "1000", "", " 1", "+1", "-1", "1_0", "\u0661", "\uff11", "a", "0x1"]
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(OCTET_LIKE, min_size=1, max_size=6).map(".".join))
def test_dotted_quad_is_exactly_what_ipaddress_accepts(text: str) -> None:
    assert is_dotted_quad(text) == _ipaddress_accepts(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789.\n\u0663", max_size=17))
def test_dotted_quad_agrees_with_ipaddress_on_digit_soup(text: str) -> None:
    assert is_dotted_quad(text) == _ipaddress_accepts(text)


@settings(max_examples=200, deadline=None)
@given(st.ip_addresses(v=4))
def test_every_ipv4_address_is_a_dotted_quad(address: ipaddress.IPv4Address) -> None:
    assert is_dotted_quad(str(address))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abz09-_.", max_size=70) | st.builds(lambda n: "a" * n, st.integers(60, 66)))
def test_ascii_names_are_checked_by_the_grammar(name: str) -> None:
    # The grammar every accepted name has (NAME_GRAMMAR), checked without it.
    try:
        result = normalize_host_name(name)
    except InvalidArgumentError:
        accepted = False
    else:
        accepted = True
        assert result == name
    # Accepted exactly when it is an IPv4 address, or the grammar matches and the name is
    # neither all-numeric (``127.1``) nor too long.
    grammar = NAME_GRAMMAR.fullmatch(name) is not None
    stem = name[:-1] if name.endswith(".") else name
    numeric = stem.rpartition(".")[2].isdigit()
    name_ok = grammar and not numeric and len(stem) <= MAX_NAME_LENGTH
    assert accepted == (_ipaddress_accepts(name) or name_ok)


def test_the_first_connects_compile_no_regular_expression(tmp_path: pathlib.Path) -> None:
    # Compiling the address and name patterns cost about 0.9 ms, paid by the first connect
    # of every program; the checks those connects make are string operations now.
    code = textwrap.dedent(
        """
        import re, socket
        compiled = []
        original = re.compile
        re.compile = lambda pattern, flags=0: compiled.append(pattern) or original(pattern, flags)
        import inetkit
        with socket.create_server(("127.0.0.1", 0)) as server:
            port = server.getsockname()[1]
            inetkit.connect("127.0.0.1", port, timeout=5).close()
            inetkit.connect("localhost", port, timeout=5).close()
            inetkit.connect("Localhost.", port, timeout=5).close()
        print(compiled)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# -- ip_literal, sni_name --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("127.0.0.1", ipaddress.IPv4Address("127.0.0.1")),
        ("::1", ipaddress.IPv6Address("::1")),
        ("fe80::1%eth0", ipaddress.IPv6Address("fe80::1%eth0")),
        ("example.com", None),
        ("host1", None),
        ("example.com.", None),
        ("xn--bcher-kva.example", None),
    ],
)
def test_ip_literal(name: str, expected: object) -> None:
    assert ip_literal(name) == expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("example.com", "example.com"),
        ("Example.com.", "example.com"),
        ("bücher.example.", "xn--bcher-kva.example"),
        ("_srv.example", "_srv.example"),
        ("127.0.0.1", None),
        ("[::1]", None),
        ("fe80::1%lo", None),
    ],
)
def test_sni_name_drops_the_trailing_dot_and_literals(host: str, expected: str | None) -> None:
    assert sni_name(normalize_host_name(host)) == expected


# -- literal_sockaddr --------------------------------------------------------------


def test_literal_sockaddr_shapes() -> None:
    assert literal_sockaddr("127.0.0.1", 80) == (socket.AF_INET, ("127.0.0.1", 80))
    assert literal_sockaddr("::1", 443) == (socket.AF_INET6, ("::1", 443, 0, 0))
    assert literal_sockaddr("example.com", 80) is None
    assert literal_sockaddr("example.com.", 80) is None


def test_literal_sockaddr_resolves_zones() -> None:
    loopback = socket.if_nameindex()[0]
    index, name = loopback
    assert literal_sockaddr(f"fe80::1%{name}", 22) == (socket.AF_INET6, ("fe80::1", 22, 0, index))
    assert literal_sockaddr("fe80::1%7", 22) == (socket.AF_INET6, ("fe80::1", 22, 0, 7))


def test_literal_sockaddr_unknown_zone() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        literal_sockaddr("fe80::1%nosuchif0", 22)
    assert info.value.code is ErrorCode.INVALID_HOST_NAME
    assert "nosuchif0" in str(info.value)
    assert "interface" in str(info.value)
    with pytest.raises(InvalidArgumentError, match="out of range"):
        literal_sockaddr("fe80::1%99999999999", 22)


def _ipv6_loopback_works() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        pytest.param(
            "[::1]", marks=pytest.mark.skipif(not _ipv6_loopback_works(), reason="no IPv6 loopback")
        ),
        pytest.param(
            "::1%lo", marks=pytest.mark.skipif(not _ipv6_loopback_works(), reason="no IPv6 loopback")
        ),
    ],
)
def test_literal_sockaddr_connects_for_real(host: str) -> None:
    name = normalize_host_name(host)
    family = socket.AF_INET6 if ":" in name else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as server:
        server.bind((name.partition("%")[0], 0))
        server.listen(1)
        port = server.getsockname()[1]
        found = literal_sockaddr(name, port)
        assert found is not None
        with socket.socket(found[0], socket.SOCK_STREAM) as client:
            client.settimeout(5)
            client.connect(found[1])
            peer, _ = server.accept()
            with peer:
                assert peer.getpeername()[1] == client.getsockname()[1]


# -- ports ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        (1, 1),
        (80, 80),
        (65535, 65535),
        ("443", 443),
        ("0080", 80),
        ("https", 443),
        ("http", 80),
        ("ftp", 21),
        ("HTTPS", 443),
        ("ssh", 22),
        ("smtp", 25),
        ("submission", 587),
        ("imap", 143),
        ("imaps", 993),
        ("pop3s", 995),
        ("ldaps", 636),
        ("postgresql", 5432),
        ("postgres", 5432),
        ("xmpp-client", 5222),
        ("domain", 53),
    ],
)
def test_check_port_accepts_numbers_and_service_names(port: object, expected: int) -> None:
    assert check_port(port) == expected
    assert type(check_port(port)) is int


def test_check_port_udp_names() -> None:
    assert check_port("domain", Protocol.UDP) == 53
    # Not in the services database for UDP on every system: the built-in table answers.
    assert check_port("ftp", Protocol.UDP) == 21
    assert check_port(53, Protocol.UDP) == 53


def test_check_port_keeps_int_subclasses_as_plain_int() -> None:
    assert type(check_port(Protocol.TCP)) is int
    assert check_port(Protocol.TCP) == 6


@pytest.mark.parametrize(
    ("port", "fragment"),
    [
        (0, "got 0"),
        (-1, "got -1"),
        (65536, "got 65536"),
        (10**30, "between 1 and 65535"),
        ("0", "'0'"),
        ("65536", "'65536'"),
        ("", "empty"),
        ("no-such-service-x", "'no-such-service-x'"),
        (" 80", "' 80'"),
        ("80 ", "'80 '"),
        ("-1", "'-1'"),
        ("٨٠", "'٨٠'"),
        ("http s", "'http s'"),
        ("a" * 100, "neither a number nor a service name"),
    ],
)
def test_check_port_refuses_bad_values(port: object, fragment: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        check_port(port)
    assert info.value.code is ErrorCode.INVALID_PORT
    assert fragment in str(info.value)


@pytest.mark.parametrize("port", [True, False, 80.0, None, b"80", [80], (80,)])
def test_check_port_type_errors(port: object) -> None:
    with pytest.raises(TypeError, match="port must be"):
        check_port(port)


# -- redact_userinfo ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/", "https://example.com/"),
        ("https://alice:pw@example.com/", "https://***@example.com/"),
        ("https://alice@example.com", "https://***@example.com"),
        ("https://a@b:pw@example.com:8443/x", "https://***@example.com:8443/x"),
        # Errs on the side of hiding: a password may hold '/', '?' or '#'.
        ("https://alice:pa/ss@example.com/", "https://***@example.com/"),
        ("https://example.com/?to=a@b", "https://***@b"),
        ("alice:s3cr3t@//", "***@//"),
        ("alice:pw@example.com", "***@example.com"),
        ("mailto:joe@example.com", "***@example.com"),
        ("", ""),
    ],
)
def test_redact_userinfo(url: str, expected: str) -> None:
    assert redact_userinfo(url) == expected
