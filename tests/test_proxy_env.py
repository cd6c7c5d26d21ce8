"""`inetkit.proxy_from_environment`, rule by rule against curl's documented behaviour.

The rules are those of curl's ``lib/proxy.c`` (``proxy_detect_proxy``,
``proxy_check_noproxy``, curl 8.9 and later), its ``CURLOPT_NOPROXY`` and
``--noproxy`` documentation and its unit test 1614, whose table the
no_proxy cases below include. ``test_proxy_env_curl.py`` checks a table of
cases against the curl program itself.
"""

from __future__ import annotations

import pytest

import inetkit
from inetkit import ErrorCode, InvalidArgumentError, proxy_from_environment
from inetkit._proxy_env import entries

ALL_VARIABLES = (
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
)

HTTPS = "http://https-lower.example:3128"
HTTPS_UPPER = "http://https-upper.example:3128"
HTTP = "http://http-lower.example:3128"
HTTP_UPPER = "http://http-upper.example:3128"
ALL = "socks5h://all-lower.example:1080"
ALL_UPPER = "socks5h://all-upper.example:1080"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Every test starts without any proxy variable (whatever the machine running it has)."""
    for name in ALL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def set_all(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (
        ("https_proxy", HTTPS),
        ("HTTPS_PROXY", HTTPS_UPPER),
        ("http_proxy", HTTP),
        ("HTTP_PROXY", HTTP_UPPER),
        ("all_proxy", ALL),
        ("ALL_PROXY", ALL_UPPER),
    ):
        monkeypatch.setenv(name, value)


def secure_proxy(host: str = "www.example.com") -> str | None:
    return proxy_from_environment(host, 443, secure=True)


def plain_proxy(host: str = "www.example.com") -> str | None:
    return proxy_from_environment(host, 80, secure=False)


# -- which variable -----------------------------------------------------------------


def test_nothing_set_means_direct() -> None:
    """curl uses no proxy when none of the variables is set."""
    assert secure_proxy() is None
    assert plain_proxy() is None


def test_secure_target_reads_https_proxy_lower_case_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """curl: an https transfer reads https_proxy, and HTTPS_PROXY only if the lower-case one is not set."""
    set_all(monkeypatch)
    assert secure_proxy() == HTTPS
    monkeypatch.delenv("https_proxy")
    assert secure_proxy() == HTTPS_UPPER


def test_plain_target_reads_http_proxy_lower_case_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """curl: an http transfer reads http_proxy; HTTP_PROXY never (a CGI program's HTTP_PROXY comes
    from the client's ``Proxy:`` header, "httpoxy"), so then all_proxy applies."""
    set_all(monkeypatch)
    assert plain_proxy() == HTTP
    monkeypatch.delenv("http_proxy")
    assert plain_proxy() == ALL
    monkeypatch.delenv("all_proxy")
    monkeypatch.delenv("ALL_PROXY")
    assert plain_proxy() is None  # HTTP_PROXY alone is still set


def test_all_proxy_is_the_last_resort_lower_case_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """curl: when the scheme's variable is not set, all_proxy, then ALL_PROXY."""
    monkeypatch.setenv("all_proxy", ALL)
    monkeypatch.setenv("ALL_PROXY", ALL_UPPER)
    assert secure_proxy() == ALL
    assert plain_proxy() == ALL
    monkeypatch.delenv("all_proxy")
    assert secure_proxy() == ALL_UPPER
    assert plain_proxy() == ALL_UPPER


def test_secure_and_plain_variables_do_not_cross(monkeypatch: pytest.MonkeyPatch) -> None:
    """curl: http_proxy serves http only, https_proxy https only."""
    monkeypatch.setenv("http_proxy", HTTP)
    assert secure_proxy() is None
    monkeypatch.delenv("http_proxy")
    monkeypatch.setenv("https_proxy", HTTPS)
    assert plain_proxy() is None


@pytest.mark.parametrize("empty", ["https_proxy", "HTTPS_PROXY", "all_proxy"])
def test_an_empty_variable_counts_as_not_set(monkeypatch: pytest.MonkeyPatch, empty: str) -> None:
    """curl_getenv returns NULL for a variable set to the empty string, so the next one is read."""
    chain = ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
    values = {"https_proxy": HTTPS, "HTTPS_PROXY": HTTPS_UPPER, "all_proxy": ALL, "ALL_PROXY": ALL_UPPER}
    for name in chain[: chain.index(empty)]:
        monkeypatch.setenv(name, "")
    monkeypatch.setenv(empty, "")
    following = chain[chain.index(empty) + 1]
    monkeypatch.setenv(following, values[following])
    assert secure_proxy() == values[following]


@pytest.mark.parametrize(
    "value",
    [
        "proxy.example:3128",  # no scheme: curl guesses http; the caller's proxy= decides
        "http://user:p%40ss@proxy.example:3128/",
        " http://proxy.example:3128",
        "not a url at all",
    ],
)
def test_the_value_comes_back_as_written(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """API.md: the value is returned as written (no parsing, no percent-decoding, no trimming)."""
    monkeypatch.setenv("https_proxy", value)
    assert secure_proxy() == value


# -- no_proxy: which variable, and "*" ------------------------------------------------


def test_no_proxy_wins_over_every_proxy_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """curl checks no_proxy first: a matching host gets no proxy at all."""
    set_all(monkeypatch)
    monkeypatch.setenv("no_proxy", "example.com")
    assert secure_proxy() is None
    assert plain_proxy() is None
    assert secure_proxy("other.test") == HTTPS


def test_no_proxy_lower_case_wins_over_upper_case(monkeypatch: pytest.MonkeyPatch) -> None:
    """curl reads no_proxy, and NO_PROXY only when no_proxy is not set (or empty)."""
    monkeypatch.setenv("https_proxy", HTTPS)
    monkeypatch.setenv("no_proxy", "other.test")
    monkeypatch.setenv("NO_PROXY", "example.com")
    assert secure_proxy() == HTTPS  # NO_PROXY is not read
    monkeypatch.setenv("no_proxy", "")
    assert secure_proxy() is None  # an empty no_proxy counts as not set: NO_PROXY applies
    monkeypatch.delenv("no_proxy")
    assert secure_proxy() is None


@pytest.mark.parametrize(
    ("no_proxy", "bypassed"),
    [
        ("*", True),
        ("*,example.org", False),  # "*" is a wildcard only as the whole value
        (" *", False),
        ("example.org,*", False),
        ("*.example.com", False),  # no other wildcard: compared as a name, matches nothing
    ],
)
def test_a_lone_asterisk_turns_every_proxy_off(
    monkeypatch: pytest.MonkeyPatch, no_proxy: str, bypassed: bool
) -> None:
    """CURLOPT_NOPROXY: "The only wildcard available is a single * character, which matches all
    hosts"; curl tests the whole value with strcmp("*", no_proxy)."""
    monkeypatch.setenv("https_proxy", HTTPS)
    monkeypatch.setenv("no_proxy", no_proxy)
    assert (secure_proxy() is None) is bypassed
    assert (secure_proxy("10.1.2.3") is None) is bypassed


# -- no_proxy: host names -------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "no_proxy", "bypassed"),
    [
        # curl's unit test 1614, host-name rows
        ("www.example.com", "localhost,.example.com,.example.de", True),
        ("www.example.com.", "localhost,.example.com,.example.de", True),
        ("example.com", "localhost,.example.com,.example.de", True),
        ("example.com.", "localhost,.example.com,.example.de", True),
        ("www.example.com", "localhost,.example.com.,.example.de", True),
        ("www.example.com", "localhost,www.example.com.,.example.de", True),
        ("example.com", "localhost,example.com,.example.de", True),
        ("example.com.", "localhost,example.com,.example.de", True),
        ("nexample.com", "localhost,example.com,.example.de", False),
        ("www.example.com", "localhost,example.com,.example.de", True),
        ("localhost", "localhost,127.0.0.1", True),
        ("localhost", "127.0.0.1,localhost", True),
        ("foobar", "barfoo", False),
        ("foobar", "foobar", True),
        ("www.example.com", "foo, .example.com", True),
        ("www.example.com", "www2.example.com, .example.net", False),
        ("example.com", ".example.com, .example.net", True),
        ("nonexample.com", ".example.com, .example.net", False),
        # the CURLOPT_NOPROXY page's example: "ample.com" matches ample.com and www.ample.com,
        # not www.example.com or ample.com.org
        ("ample.com", "ample.com", True),
        ("www.ample.com", "ample.com", True),
        ("www.example.com", "ample.com", False),
        ("ample.com.org", "ample.com", False),
        # a longer entry never matches a shorter name
        ("example.com", "www.example.com", False),
        # "." alone (a trailing dot, then nothing) matches nothing
        ("example.com", ".", False),
    ],
)
def test_names_match_themselves_and_their_sub_domains(
    monkeypatch: pytest.MonkeyPatch, host: str, no_proxy: str, bypassed: bool
) -> None:
    """CURLOPT_NOPROXY: "Each name in this list is matched as either a domain which contains the
    hostname, or the hostname itself"; one leading and one trailing dot of an entry, and one trailing
    dot of the host, are ignored (proxy.c match_host)."""
    monkeypatch.setenv("https_proxy", HTTPS)
    monkeypatch.setenv("no_proxy", no_proxy)
    assert (secure_proxy(host) is None) is bypassed


@pytest.mark.parametrize(
    ("host", "no_proxy"),
    [("BAr", "foo, bar, ::1/64"), ("bar", "foo, BAR"), ("WWW.Example.COM", ".EXAMPLE.com")],
)
def test_case_is_ignored(monkeypatch: pytest.MonkeyPatch, host: str, no_proxy: str) -> None:
    """curl compares names with curl_strnequal (ASCII case-insensitive); unit test 1614 row "BAr"."""
    monkeypatch.setenv("https_proxy", HTTPS)
    monkeypatch.setenv("no_proxy", no_proxy)
    assert secure_proxy(host) is None


def test_international_names_compare_as_a_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    """curl --noproxy: "To use international hostnames in this list, add the punycode version of
    the hostname": the target is compared in its IDNA (A-label) form, the list as written."""
    monkeypatch.setenv("https_proxy", HTTPS)
    monkeypatch.setenv("no_proxy", "xn--bcher-kva.example")
    assert secure_proxy("bücher.example") is None
    assert secure_proxy("www.BÜCHER.example") is None
    monkeypatch.setenv("no_proxy", "bücher.example")
    assert secure_proxy("bücher.example") == HTTPS  # a U-label entry never matches, as in curl


@pytest.mark.parametrize("entry", ["example.com:443", "example.com:8080", "127.0.0.1:443", "[::1]:443"])
def test_an_entry_with_a_port_matches_nothing(monkeypatch: pytest.MonkeyPatch, entry: str) -> None:
    """curl compares names and addresses, not ports: "example.com:443" is neither the name nor a
    domain above it, and "127.0.0.1:443" is no IP address (inet_pton fails); the proxy is used."""
    monkeypatch.setenv("https_proxy", HTTPS)
    monkeypatch.setenv("no_proxy", entry)
    assert secure_proxy("example.com") == HTTPS
    assert secure_proxy("127.0.0.1") == HTTPS
    assert secure_proxy("::1") == HTTPS


def test_names_are_not_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    """curl matches the host as written against the list: localhost is not 127.0.0.1."""
    monkeypatch.setenv("https_proxy", HTTPS)
    monkeypatch.setenv("no_proxy", "127.0.0.1,::1")
    assert secure_proxy("localhost") == HTTPS
    monkeypatch.setenv("no_proxy", "localhost")
    assert secure_proxy("127.0.0.1") == HTTPS
    assert secure_proxy("::1") == HTTPS


# -- no_proxy: IP literals and CIDR ---------------------------------------------------


@pytest.mark.parametrize(
    ("host", "no_proxy", "bypassed"),
    [
        # curl's unit test 1614, IPv4 rows
        ("127.0.0.1", "127.0.0.1,localhost", True),
        ("127.0.0.1", "127.0.0.1,localhost,", True),
        ("127.0.0.1", "127.0.0.1/8,localhost,", True),
        ("127.0.0.1", "127.0.0.1/28,localhost,", True),
        ("127.0.0.1", "127.0.0.1/31,localhost,", True),
        ("127.0.0.1", "localhost,127.0.0.1", True),
        ("192.168.0.1", "foobar", False),
        ("192.168.0.1", "192.168.0.0/16", True),
        ("192.168.0.1", "192.168.0.0/16a", False),
        ("192.168.0.1", "192.168.0.0/16 ", True),
        ("192.168.0.1", "192.168.0.0/a16", False),
        ("192.168.0.1", "192.168.0.0/ 16", False),
        ("192.168.0.1", "192.168.0.0/24", True),
        ("192.168.0.1", "192.168.0.0/32", False),
        ("192.168.0.1", "192.168.0.1/32", True),
        ("192.168.0.1", "192.168.0.1/33", False),
        ("192.168.0.1", "192.168.0.0", False),
        ("192.168.1.1", "192.168.0.0/24", False),
        ("192.168.1.1", "192.168.0.0/33", False),
        ("192.168.1.1", "foo, bar, 192.168.0.0/24", False),
        ("192.168.1.1", "foo, bar, 192.168.0.0/16", True),
        # cidr4_match: bits 0 compares the whole address
        ("10.0.0.1", "0.0.0.0/0", False),
        ("0.0.0.0", "0.0.0.0/0", True),
        # inet_pton takes four decimal numbers only; "/" needs digits
        ("10.0.0.1", "10.0.0.1/", False),
        ("10.0.0.1", "10.0.0.1/8/8", False),
        ("10.0.0.1", "10.1/8", False),
        # an IPv6 entry never covers an IPv4 target
        ("127.0.0.1", "::ffff:127.0.0.1,::/0", False),
    ],
)
def test_ipv4_targets_match_addresses_and_cidr_ranges(
    monkeypatch: pytest.MonkeyPatch, host: str, no_proxy: str, bypassed: bool
) -> None:
    """CURLOPT_NOPROXY: "IP addresses specified to this option can be provided using CIDR notation"
    (curl 7.86.0); proxy.c cidr4_match: prefix lengths above 32 match nothing, 0 means exact."""
    monkeypatch.setenv("https_proxy", HTTPS)
    monkeypatch.setenv("no_proxy", no_proxy)
    assert (secure_proxy(host) is None) is bypassed


@pytest.mark.parametrize(
    ("host", "no_proxy", "bypassed"),
    [
        # curl's unit test 1614, IPv6 rows
        ("::1", "foo, bar, 192.168.0.0/16", False),
        ("::1", "foo, bar, ::1/64", True),
        ("::1", "::1/64", True),
        ("::1", "::1/96", True),
        ("::1", "::1/129", False),
        ("::1", "::1/128", True),
        ("::1", "::1/127", True),
        ("::1", "::1/a127", False),
        ("::1", "::1/127a", False),
        ("::1", "::1/ 127", False),
        ("::1", "::1/127 ", True),
        ("::1", "::1/122", True),
        ("2001:db8:8000::1", "2001:db8::/65", False),
        ("2001:db8:8000::1", "2001:db8::/72", False),
        ("2001:db8::1", "2001:db8::/65", True),
        ("2001:db8::1", "2001:db8::/67", True),
        ("2001:db8::1", "2001:db8::/72", True),
        # written without brackets (CURLOPT_NOPROXY: "Enter IPv6 numerical addresses in the list
        # of hostnames without enclosing brackets"); any spelling of the address
        ("::1", "0:0::1", True),
        ("::1", "[::1]", False),
        ("fe80::ab47:4396:55c9:8474", "fe80::ab47:4396:55c9:8474/64", True),
        ("fe80::ab47:4396:55c9:8474", "fe80::/10", True),
        # cidr6_match: bits 0 compares the whole address
        ("2001:db8::1", "::/0", False),
        # an IPv4 entry never covers an IPv6 target
        ("::ffff:127.0.0.1", "127.0.0.1", False),
    ],
)
def test_ipv6_targets_match_addresses_and_cidr_ranges(
    monkeypatch: pytest.MonkeyPatch, host: str, no_proxy: str, bypassed: bool
) -> None:
    """proxy.c cidr6_match (curl 8.17 fixed prefix lengths that are not a multiple of 8): an IPv6
    target is compared with IPv6 entries, with an optional /N up to 128."""
    monkeypatch.setenv("https_proxy", HTTPS)
    monkeypatch.setenv("no_proxy", no_proxy)
    assert (secure_proxy(host) is None) is bypassed


@pytest.mark.parametrize("host", ["::1", "[::1]", "0:0::1", "[0::1]"])
def test_bracketed_and_long_ipv6_targets_are_one_address(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    """curl takes the address out of a URL's brackets before the no_proxy check; inetkit
    normalizes the host as connect does, so every spelling of ::1 is the one address."""
    monkeypatch.setenv("https_proxy", HTTPS)
    monkeypatch.setenv("no_proxy", "::1")
    assert secure_proxy(host) is None


def test_an_ipv6_zone_id_is_left_out_of_the_comparison(monkeypatch: pytest.MonkeyPatch) -> None:
    """curl keeps a URL's zone id apart from its host (CURLUPART_ZONEID), so the check sees the
    address alone."""
    monkeypatch.setenv("https_proxy", HTTPS)
    monkeypatch.setenv("no_proxy", "fe80::1")
    assert secure_proxy("fe80::1%1") is None
    assert secure_proxy("[fe80::1%1]") is None


# -- no_proxy: separators -------------------------------------------------------------


@pytest.mark.parametrize(
    ("no_proxy", "expected"),
    [
        ("a,b,c", ["a", "b", "c"]),
        (" a , b ,\tc\t", ["a", "b", "c"]),
        ("foo,,,,,              bar, ::1/64", ["foo", "bar", "::1/64"]),
        (",,a,", ["a"]),
        ("a b,c", ["a"]),  # curl 8.9+: a blank then no comma ends the list
        ("localhost .example.com .example.de", ["localhost"]),
        ("", []),
        (" , ", []),
    ],
)
def test_entries_are_comma_separated(no_proxy: str, expected: list[str]) -> None:
    """curl 8.9 ("noproxy: patterns need to be comma separated"): blanks around entries are
    skipped, runs of commas are one, and a blank followed by anything but a comma ends the list."""
    assert entries(no_proxy) == expected


def test_a_space_separated_list_exempts_only_its_first_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """curl's unit test 1614: www.example.com is not exempted by "localhost .example.com
    .example.de" (space-separated), but is by the same list with commas."""
    monkeypatch.setenv("https_proxy", HTTPS)
    monkeypatch.setenv("no_proxy", "localhost .example.com .example.de")
    assert secure_proxy("www.example.com") == HTTPS
    assert secure_proxy("localhost") is None
    monkeypatch.setenv("no_proxy", "localhost,.example.com,.example.de")
    assert secure_proxy("www.example.com") is None


def test_long_ip_entries_match_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """curl's unit test 1614: an IP entry of 127 or 128 characters (too long for an address) does
    not match, and does not stop the others."""
    long_entry = ".".join(["127.0.0.1"] * 13)[:127]
    monkeypatch.setenv("https_proxy", HTTPS)
    monkeypatch.setenv("no_proxy", f"localhost,{long_entry}")
    assert secure_proxy("127.0.0.1") == HTTPS
    monkeypatch.setenv("no_proxy", f"{long_entry},127.0.0.1")
    assert secure_proxy("127.0.0.1") is None


# -- arguments ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "secure", "problem"),
    [
        (None, 443, True, "host must be a str"),
        (b"example.com", 443, True, "host must be a str"),
        ("example.com", None, True, "port must be an int"),
        ("example.com", 443.0, True, "port must be an int"),
        ("example.com", True, True, "port must be an int"),
        ("example.com", 443, 1, "secure must be a bool"),
        ("example.com", 443, None, "secure must be a bool"),
    ],
)
def test_wrong_types_raise_type_error(
    monkeypatch: pytest.MonkeyPatch, host: object, port: object, secure: object, problem: str
) -> None:
    """Misuse of the API is a TypeError before the environment is read (brief: bad input)."""
    monkeypatch.setenv("https_proxy", HTTPS)
    with pytest.raises(TypeError, match=problem):
        proxy_from_environment(host, port, secure=secure)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "port", "code"),
    [
        ("example.com", 0, ErrorCode.INVALID_PORT),
        ("example.com", 65536, ErrorCode.INVALID_PORT),
        ("example.com", "no-such-service", ErrorCode.INVALID_PORT),
        ("", 443, ErrorCode.INVALID_HOST_NAME),
        ("exa mple.com", 443, ErrorCode.INVALID_HOST_NAME),
        ("https://example.com", 443, ErrorCode.INVALID_HOST_NAME),
        ("127.1", 443, ErrorCode.INVALID_HOST_NAME),
    ],
)
def test_bad_values_raise_invalid_argument(
    monkeypatch: pytest.MonkeyPatch, host: str, port: int | str, code: ErrorCode
) -> None:
    """A host or port connect would refuse is refused here too, naming it, whatever no_proxy says."""
    monkeypatch.setenv("https_proxy", HTTPS)
    monkeypatch.setenv("no_proxy", "*")
    with pytest.raises(InvalidArgumentError) as info:
        proxy_from_environment(host, port, secure=True)
    assert info.value.code is code


def test_service_names_are_ports() -> None:
    """The port is checked as connect checks it: a service name is a port."""
    assert proxy_from_environment("example.com", "https", secure=True) is None


def test_secure_is_keyword_only() -> None:
    """API.md: proxy_from_environment(host, port, *, secure)."""
    with pytest.raises(TypeError):
        proxy_from_environment("example.com", 443, True)  # type: ignore[misc]


def test_exported_from_the_package() -> None:
    assert "proxy_from_environment" in inetkit.__all__
    assert inetkit.proxy_from_environment is proxy_from_environment
