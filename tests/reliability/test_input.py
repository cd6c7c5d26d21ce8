"""Extreme and malformed input: refused with the documented error, before any I/O.

"No I/O" is proved two ways for every refused call: a `Resolver` subclass
that counts its calls is passed (a refused argument must never reach it),
and the process's descriptor count is the same after the call (no socket
was opened). The property-based tests draw hosts, ports, options and
`SecurityCredentials` fields with ``hypothesis`` (bounded example counts and
deadlines) and hold every outcome to the documented set.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import open_fds
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import inetkit
from inetkit import (
    ErrorCode,
    InetError,
    InvalidArgumentError,
    Option,
    Protocol,
    Resolver,
    SecurityCredentials,
    SecurityError,
)

from .conftest import Measure

#: Examples per property (kept small: the suite must stay fast on 2 cores).
EXAMPLES = int(os.environ.get("INETKIT_PROPERTY_EXAMPLES", "150"))
#: Per-example deadline in milliseconds (a hang or a slow path fails the example).
DEADLINE_MS = 2000
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=DEADLINE_MS,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)


class RecordingResolver(Resolver):
    """Counts calls; answers 127.0.0.1 so that a call that gets through can be seen."""

    def __init__(self) -> None:
        super().__init__(system_hosts=False, dns=False)
        self.calls: list[str] = []

    def resolve(
        self, host: str, port: int, protocol: Protocol, deadline: float | None
    ) -> list[tuple[int, tuple[str, int]]]:
        self.calls.append(host)
        return [(socket.AF_INET, ("127.0.0.1", port))]


@pytest.fixture
def recording() -> Iterator[RecordingResolver]:
    yield RecordingResolver()


def refused_before_io(resolver: RecordingResolver, *args: Any, **kwargs: Any) -> BaseException:
    """Call connect, which must fail before resolving or opening anything; return its error."""
    before = open_fds()
    with pytest.raises((InvalidArgumentError, TypeError)) as info:
        inetkit.connect(*args, resolver=resolver, timeout=2, **kwargs)
    assert resolver.calls == [], f"{args}: resolved although refused"
    assert open_fds() == before, f"{args}: a descriptor was opened"
    return info.value


# -- absurd host names, ports and URLs ----------------------------------------------

ABSURD_HOSTS = {
    "10,000 characters": "a" * 10_000,
    "10,000 characters in 63-byte labels": ".".join(["a" * 63] * 159),
    "300 labels": ".".join(["a"] * 300),
    "label of 64": "a" * 64 + ".example",
    "NUL": "exa\0mple.com",
    "NUL at the end": "example.com\0",
    "empty label": "a..b",
    "leading dot": ".example.com",
    "two trailing dots": "example.com..",
    "only a dot": ".",
    "empty": "",
    "space": "exa mple.com",
    "newline": "example.com\r\nHost: evil",
    "URL": "https://example.com/",
    "user info": "user@example.com",
    "port inside": "example.com:443",
    "bad IPv6": "[::1",
    "octal IPv4": "010.0.0.1",
    "short IPv4": "127.1",
    "hex IPv4": "0x7f.0.0.1",
    "lone surrogate": "a\udcff.com",
    "bidi rule broken": "a\u05d0.com",
    "control character": "a\x07b.com",
}


@pytest.mark.parametrize("host", ABSURD_HOSTS.values(), ids=ABSURD_HOSTS.keys())
def test_absurd_host_names_are_refused_before_any_io(
    host: str, recording: RecordingResolver, measure: Measure
) -> None:
    name = next(k for k, v in ABSURD_HOSTS.items() if v == host)
    with measure(f"host: {name}", "connect(host)") as case:
        with case.timed():
            error = refused_before_io(recording, host, 80)
        assert isinstance(error, InvalidArgumentError)
        assert error.code in (ErrorCode.INVALID_HOST_NAME, ErrorCode.INVALID_ARGUMENT)
        assert len(str(error)) < 2000, "the message must not repeat a 10,000-character name in full"
        case.outcome = f"InvalidArgumentError/{error.code.name}"


BAD_PORTS: dict[str, object] = {
    "0": 0,
    "-1": -1,
    "65536": 65536,
    "2**64": 2**64,
    "unknown service": "no-such-service-xyz",
    "empty service": "",
    "service with NUL": "http\0",
    "digits as str above range": "99999",
}
WRONG_TYPE_PORTS: dict[str, object] = {"float": 80.0, "None": None, "bool": True, "bytes": b"80"}


@pytest.mark.parametrize("port", BAD_PORTS.values(), ids=BAD_PORTS.keys())
def test_bad_ports_are_refused_before_any_io(port: object, recording: RecordingResolver) -> None:
    error = refused_before_io(recording, "name.test", port)
    assert isinstance(error, InvalidArgumentError)
    assert error.code is ErrorCode.INVALID_PORT


@pytest.mark.parametrize("port", WRONG_TYPE_PORTS.values(), ids=WRONG_TYPE_PORTS.keys())
def test_ports_of_the_wrong_type_are_type_errors(port: object, recording: RecordingResolver) -> None:
    error = refused_before_io(recording, "name.test", port)
    assert type(error) is TypeError


BAD_URLS = {
    "no host": "https:///path",
    "unknown scheme without port": "gopherx://example.com/",
    "port 0": "http://example.com:0/",
    "port too large": "http://example.com:65536/",
    "port not digits": "http://example.com:8o/",
    "empty": "",
    "no scheme": "example.com",
    "NUL in host": "http://exa\0mple.com/",
    "10,000-character host": "http://" + "a" * 10_000 + "/",
    "bad IPv6": "http://[::1/",
}


@pytest.mark.parametrize("url", BAD_URLS.values(), ids=BAD_URLS.keys())
def test_bad_urls_are_refused_before_any_io(url: str, recording: RecordingResolver) -> None:
    before = open_fds()
    with pytest.raises(InvalidArgumentError):
        inetkit.connect_url(url, timeout=2, resolver=recording)
    assert recording.calls == []
    assert open_fds() == before


def test_bad_combinations_are_refused_before_any_io(recording: RecordingResolver) -> None:
    for kwargs in (
        {"options": Option.BROADCAST},
        {"protocol": Protocol.UDP, "options": Option.SECURE},
        {"options": Option.SECURE, "starttls": "smtp"},
        {"options": Option.RESERVEDPORT, "local_address": ("127.0.0.1", 5000)},
        {"options": 1 << 30},
        {"starttls": "no-such-dialog"},
        {"local_address": ("127.0.0.1", 70000)},
    ):
        error = refused_before_io(recording, "name.test", 80, **kwargs)
        assert isinstance(error, InvalidArgumentError), kwargs


# -- credentials fields that used to escape the error tree --------------------------

BAD_CREDENTIALS: dict[str, dict[str, Any]] = {
    "NUL in cert_store": {"cert_store": "client\0.pem"},
    "NUL in private_key": {"cert_store": b"x", "private_key": "key\0.pem"},
    "NUL in ca_file": {"ca_file": "ca\0.pem"},
    "surrogate in ca_file": {"ca_file": "ca\ud800.pem"},
    "NUL in ciphers": {"ciphers": "ECDHE\0"},
    "surrogate in ciphers": {"ciphers": "ECDHE\udcff"},
    "non-ASCII ciphers": {"ciphers": "ÉCDHE"},
    "damaged PEM in ca_data (non-ASCII)": {
        "ca_data": "-----BEGIN CERTIFICATE-----\nMIIé\n-----END CERTIFICATE-----\n"
    },
    "damaged PEM bytes in ca_data": {
        "ca_data": b"-----BEGIN CERTIFICATE-----\n\xff\xfe\n-----END CERTIFICATE-----\n"
    },
    "damaged base64 in ca_data": {
        "ca_data": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    },
    "garbage DER in ca_data": {"ca_data": b"\x30\x03\x02\x01"},
    "text that is not PEM in ca_data": {"ca_data": "hello"},
}


@pytest.mark.parametrize("fields", BAD_CREDENTIALS.values(), ids=BAD_CREDENTIALS.keys())
def test_bad_credential_fields_are_refused_when_made(fields: dict[str, Any], measure: Measure) -> None:
    field_name = next(name for name in fields if fields[name] not in (b"x",))
    label = next(k for k, v in BAD_CREDENTIALS.items() if v is fields)
    with measure(f"credentials: {label}", "SecurityCredentials(...)") as case:
        before = open_fds()
        with pytest.raises((InvalidArgumentError, SecurityError)) as info:
            SecurityCredentials(**fields)
        error = info.value
        assert isinstance(error, InetError)
        if isinstance(error, SecurityError):
            assert error.code is ErrorCode.INVALID_CREDENTIALS
        else:
            assert error.code is ErrorCode.INVALID_ARGUMENT
        assert field_name in str(error), f"the message must name {field_name}: {error}"
        assert open_fds() == before
        case.outcome = f"{type(error).__name__}/{error.code.name}"


def test_good_ca_data_in_every_form_is_accepted(pki: Any) -> None:
    pem = pki.root.cert_pem
    der = pki.root.cert.public_bytes(Encoding.DER)
    for value in (pem, pem.decode(), der, bytearray(pem)):
        assert SecurityCredentials(ca_data=value).ca_data


# -- properties: only the documented exceptions, never I/O for bad input -------------

#: Host text: anything printable and not, short and long, IDNA-ish and dotted.
host_text = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="ascii"), max_size=300),
    st.lists(st.text(alphabet="ab-_0.", max_size=70), max_size=130).map(".".join),
    st.from_regex(r"\A[a-z0-9.\-]{0,80}\Z"),
    # IP literals skip the resolver and are dialled as they are: loopback only.
    st.ip_addresses(network="127.0.0.0/8").map(str),
    st.just("::1"),
)
port_values = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=20),
    st.floats(),
    st.none(),
    st.booleans(),
)


def stays_on_loopback(host: str) -> bool:
    """False for text that connect would take as an IP literal outside 127.0.0.0/8 and ::1.

    Names go to the recording resolver (127.0.0.1); only literals are dialled
    as they are, so only they could send a packet off this machine.
    """
    try:
        name = inetkit.normalize_host_name(host)
    except (InvalidArgumentError, TypeError):
        return True  # refused before any I/O
    try:
        address = ipaddress.ip_address(name.partition("%")[0])
    except ValueError:
        return True  # a name
    return address.is_loopback and not (isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped)


def test_the_loopback_guard_recognises_literals() -> None:
    assert stays_on_loopback("127.0.0.1") and stays_on_loopback("[::1]") and stays_on_loopback("name.test")
    assert not stays_on_loopback("192.0.2.1")
    assert not stays_on_loopback("::ffff:192.0.2.1")
    assert not stays_on_loopback("\u2467.\u2467.\u2467.\u2467")  # becomes 8.8.8.8
    assert not stays_on_loopback("0.0.0.0")


@PROPERTY
@given(host=host_text, port=port_values)
def test_connect_arguments_raise_only_documented_errors(host: str, port: object) -> None:
    """connect refuses or connects; it never raises anything else, and a refusal opens nothing."""
    if not stays_on_loopback(host):
        return  # an IP literal elsewhere would be dialled: never leave this machine
    resolver = RecordingResolver()
    before = open_fds()
    try:
        # Names resolve to 127.0.0.1 (the recording resolver); a refused argument
        # never reaches the resolver.
        conn = inetkit.connect(host, port, timeout=1, resolver=resolver)  # type: ignore[arg-type]
    except (InvalidArgumentError, TypeError):
        assert resolver.calls == []
        assert open_fds() == before
        return
    except InetError as exc:
        assert exc.code in (
            ErrorCode.CONNECTION_REFUSED,
            ErrorCode.TIMED_OUT,
            ErrorCode.NETWORK_UNREACHABLE,
            ErrorCode.HOST_UNREACHABLE,
            ErrorCode.ADDRESS_NOT_AVAILABLE,
        ), exc
    else:
        conn.close()
    assert open_fds() == before


option_values = st.one_of(
    st.sampled_from(list(Option)).map(int),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.builds(
        lambda a, b: Option(a) | Option(b), st.sampled_from(list(Option)), st.sampled_from(list(Option))
    ),
    st.text(max_size=5),
    st.none(),
)


@PROPERTY
@given(options=option_values, protocol=st.sampled_from([Protocol.TCP, Protocol.UDP, 6, 17, 0, "tcp", None]))
def test_options_and_protocol_raise_only_documented_errors(options: object, protocol: object) -> None:
    resolver = RecordingResolver()
    before = open_fds()
    try:
        conn = inetkit.connect("name.test", 9, protocol, timeout=1, options=options, resolver=resolver)  # type: ignore[arg-type]
    except (InvalidArgumentError, TypeError):
        assert resolver.calls == []
        assert open_fds() == before
        return
    except InetError as exc:
        # Valid arguments: the connect itself was tried (refused on loopback; SECURE
        # may also fail at the certificate stage of a refused connect).
        assert exc.code in (ErrorCode.CONNECTION_REFUSED, ErrorCode.PERMISSION_DENIED, ErrorCode.TIMED_OUT), (
            exc
        )
    else:
        conn.close()  # UDP "connects" to port 9 without asking the peer
    assert open_fds() == before


path_or_bytes = st.one_of(st.none(), st.text(max_size=40), st.binary(max_size=40), st.integers())
credential_fields = st.fixed_dictionaries(
    {},
    optional={
        "cert_store": path_or_bytes,
        "cert_name": st.one_of(st.text(max_size=20), st.integers()),
        "password": st.one_of(st.text(max_size=20), st.binary(max_size=20), st.integers()),
        "private_key": path_or_bytes,
        "min_version": st.one_of(st.sampled_from(list(ssl.TLSVersion)), st.integers(0, 1000)),
        "max_version": st.sampled_from(list(ssl.TLSVersion)),
        "ciphers": st.one_of(
            st.text(max_size=30), st.sampled_from(["ECDHE+AESGCM", "HIGH", "DEFAULT@SECLEVEL=1"])
        ),
        "ca_file": st.one_of(st.text(max_size=30), st.binary(max_size=10)),
        "ca_data": st.one_of(st.text(max_size=60), st.binary(max_size=60)),
        "alpn_protocols": st.one_of(st.lists(st.text(max_size=10), max_size=3), st.text(max_size=5)),
        "pinned_public_keys": st.lists(st.text(max_size=60), max_size=2),
    },
)


@PROPERTY
@given(fields=credential_fields)
def test_credentials_fields_raise_only_documented_errors(fields: dict[str, Any]) -> None:
    """SecurityCredentials(...) does no I/O and raises only TypeError or the two documented errors."""
    before = open_fds()
    try:
        creds = SecurityCredentials(**fields)
    except TypeError:
        pass
    except InvalidArgumentError as exc:
        assert exc.code is ErrorCode.INVALID_ARGUMENT
    except SecurityError as exc:
        assert exc.code is ErrorCode.INVALID_CREDENTIALS
        assert "ca_data" in str(exc)
    else:
        hash(creds)
        assert "password" not in fields or "<hidden>" in repr(creds)
    assert open_fds() == before


@settings(max_examples=max(EXAMPLES // 3, 10), deadline=5000, database=None)
@given(fields=credential_fields)
def test_credentials_that_are_made_fail_at_connect_only_with_documented_errors(
    fields: dict[str, Any],
) -> None:
    """Credentials that pass construction fail (or not) before any network I/O, with a documented error."""
    try:
        creds = SecurityCredentials(**fields)
    except (TypeError, InvalidArgumentError, SecurityError):
        return
    resolver = RecordingResolver()
    before = open_fds()
    try:
        inetkit.connect(
            "name.test", 9, timeout=1, options=Option.SECURE, credentials=creds, resolver=resolver
        )
    except (SecurityError, InvalidArgumentError) as exc:
        # Loading the credentials failed: nothing was resolved or connected.
        assert resolver.calls == [], exc
    except InetError as exc:
        assert exc.code is ErrorCode.CONNECTION_REFUSED, exc
    assert open_fds() == before
