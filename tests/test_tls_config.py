"""The TLS context factory and its cache, the default policy, error mapping by real handshakes,
certificate facts, pins and the session cache."""

from __future__ import annotations

import base64
import datetime
import errno
import hashlib
import logging
import os
import ssl
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import certs
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from inetkit import CertificateError, ErrorCode, InvalidArgumentError, Option, SecurityError
from inetkit._credentials import SecurityCredentials
from inetkit._tls import (
    CONTEXT_CACHE_SIZE,
    DEFAULT_CIPHERS,
    SESSION_CACHE,
    CertificateInfo,
    SessionCache,
    check_pins,
    context_cache_size,
    get_context,
    map_ssl_error,
    public_key_pin,
    session_key,
)

TARGET = "localhost port 4433 (socket pair)"

pytestmark = pytest.mark.usefixtures("fresh_tls_caches")


def trust(pki: certs.PKI, **fields: object) -> SecurityCredentials:
    return SecurityCredentials(ca_file=pki.ca_file, **fields)  # type: ignore[arg-type]


# -- the default policy ------------------------------------------------------------------


def test_defaults_without_credentials() -> None:
    ctx = get_context(None, Option.SECURE)
    assert ctx.protocol is ssl.PROTOCOL_TLS_CLIENT
    assert ctx.security_level == 2
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2
    assert ctx.maximum_version is ssl.TLSVersion.MAXIMUM_SUPPORTED
    assert ctx.verify_mode is ssl.CERT_REQUIRED
    assert ctx.check_hostname is True
    assert ctx.options & ssl.OP_NO_COMPRESSION
    assert ctx.options & ssl.OP_NO_RENEGOTIATION
    # The certifi bundle: well over a hundred public roots.
    assert ctx.cert_store_stats()["x509_ca"] > 100
    # TLS 1.2 suites: forward secrecy and AEAD only.
    for cipher in ctx.get_ciphers():
        if cipher["protocol"] == "TLSv1.2":
            assert cipher["aead"], cipher["name"]
            assert cipher["kea"] in ("kx-ecdhe", "kx-dhe"), cipher["name"]


def test_ca_file_replaces_the_default_bundle(pki: certs.PKI) -> None:
    ctx = get_context(trust(pki), Option.SECURE)
    assert ctx.cert_store_stats()["x509_ca"] == 1
    assert ctx.get_ca_certs()[0]["subject"] == (
        (("organizationName", "inetkit tests"),),
        (("commonName", "inetkit Test Root CA"),),
    )


def test_security_levels() -> None:
    assert get_context(None, Option.SECURE).security_level == 2
    assert get_context(SecurityCredentials(ciphers="DEFAULT"), Option.SECURE).security_level == 2
    assert get_context(SecurityCredentials(ciphers="DEFAULT@SECLEVEL=1"), Option.SECURE).security_level == 1
    assert get_context(None, Option.SECURE_FALLBACK, warn=False).security_level == 0
    assert get_context(None, Option.TRUSTEDSITE, warn=False).security_level == 2


def test_credentials_set_versions_ciphers_and_alpn(pki: certs.PKI) -> None:
    creds = trust(
        pki,
        min_version=ssl.TLSVersion.TLSv1_3,
        max_version=ssl.TLSVersion.TLSv1_3,
        ciphers="ECDHE+AESGCM",
        alpn_protocols=["h2", "http/1.1"],
    )
    ctx = get_context(creds, Option.SECURE)
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_3
    assert ctx.maximum_version is ssl.TLSVersion.TLSv1_3
    tls12 = {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12
    assert all("ECDHE" in name and "GCM" in name for name in tls12)
    outcome = certs.exchange(pki.servers["valid"].context(alpn=["spdy/3", "h2"]), ctx)
    assert outcome.error is None, outcome.error
    assert outcome.alpn == "h2"
    assert outcome.version == "TLSv1.3"


def test_user_ciphers_get_security_level_2(pki: certs.PKI) -> None:
    # A user cipher string that allows the weak server's suites still runs at level 2.
    creds = trust(pki, ciphers="DEFAULT")
    outcome = certs.exchange(pki.servers["weak_rsa"].context(seclevel=0), get_context(creds, Option.SECURE))
    err = map_ssl_error(outcome.error or Exception(), target=TARGET, credentials_given=False)
    assert err.code is ErrorCode.CERTIFICATE_UNTRUSTED
    # ... unless the string says otherwise.
    creds = trust(pki, ciphers="DEFAULT@SECLEVEL=0")
    outcome = certs.exchange(pki.servers["weak_rsa"].context(seclevel=0), get_context(creds, Option.SECURE))
    assert outcome.error is None, outcome.error


@pytest.mark.parametrize(
    "ca",
    ["pem str", "pem bytes", "der bytes", "file and data"],
)
def test_trust_anchors_from_data(pki: certs.PKI, ca: str) -> None:
    pem = pki.root.cert_pem
    creds = {
        "pem str": SecurityCredentials(ca_data=pem.decode()),
        "pem bytes": SecurityCredentials(ca_data=pem),
        "der bytes": SecurityCredentials(ca_data=pki.root.cert.public_bytes(serialization.Encoding.DER)),
        "file and data": SecurityCredentials(ca_file=pki.foreign_ca_file, ca_data=pem),
    }[ca]
    ctx = get_context(creds, Option.SECURE)
    outcome = certs.exchange(pki.servers["valid"].context(), ctx)
    assert outcome.error is None, outcome.error
    if ca == "file and data":
        assert ctx.cert_store_stats()["x509_ca"] == 2


def test_missing_ca_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "missing-ca.pem"
    with pytest.raises(SecurityError) as info:
        get_context(SecurityCredentials(ca_file=path), Option.SECURE)
    assert info.value.code is ErrorCode.INVALID_CREDENTIALS
    assert str(path) in str(info.value)
    assert info.value.errno == errno.ENOENT


def test_ca_file_without_certificates(tmp_path: Path) -> None:
    path = tmp_path / "empty-ca.pem"
    path.write_text("no certificates here\n")
    with pytest.raises(SecurityError) as info:
        get_context(SecurityCredentials(ca_file=path), Option.SECURE)
    assert info.value.code is ErrorCode.INVALID_CREDENTIALS
    assert str(path) in str(info.value)
    assert context_cache_size() == 0  # failures are not cached


def test_bad_ca_data() -> None:
    with pytest.raises(SecurityError) as info:
        get_context(SecurityCredentials(ca_data="not PEM"), Option.SECURE)
    assert info.value.code is ErrorCode.INVALID_CREDENTIALS
    assert "ca_data" in str(info.value)


def test_argument_types() -> None:
    with pytest.raises(TypeError):
        get_context("creds", Option.SECURE)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        get_context(None, "SECURE")  # type: ignore[arg-type]


# -- the context cache -------------------------------------------------------------------------


def test_cache_returns_the_same_context(pki: certs.PKI) -> None:
    first = get_context(trust(pki), Option.SECURE)
    assert get_context(trust(pki), Option.SECURE) is first  # an equal value, another object
    assert get_context(trust(pki), Option.SECURE | Option.NODELAY | Option.KEEPALIVE) is first
    assert get_context(None, Option.SECURE) is get_context(None, Option.NONE)
    assert context_cache_size() == 2


def test_cache_separates_credentials_and_options(pki: certs.PKI) -> None:
    contexts = [
        get_context(trust(pki), Option.SECURE),
        get_context(trust(pki, alpn_protocols=["h2"]), Option.SECURE),
        get_context(trust(pki, min_version=ssl.TLSVersion.TLSv1_3), Option.SECURE),
        get_context(trust(pki), Option.SECURE | Option.TRUSTEDSITE, warn=False),
        get_context(trust(pki), Option.SECURE | Option.SECURE_FALLBACK, warn=False),
        get_context(trust(pki), Option.TRUSTEDSITE | Option.SECURE_FALLBACK, warn=False),
        get_context(SecurityCredentials(ca_file=str(pki.foreign_ca_file)), Option.SECURE),
        get_context(None, Option.SECURE),
        get_context(trust(pki, cert_store=pki.client.p12_modern, password=certs.PASSWORD), Option.SECURE),
        get_context(
            trust(pki, cert_store=pki.client.p12_modern, password=certs.PASSWORD, cert_name=certs.CLIENT_CN),
            Option.SECURE,
        ),
    ]
    assert len({id(ctx) for ctx in contexts}) == len(contexts)


@pytest.mark.parametrize("which", ["ca_file", "cert_store", "private_key"])
@pytest.mark.parametrize("change", ["mtime", "size"])
def test_cache_notices_changed_files(pki: certs.PKI, tmp_path: Path, which: str, change: str) -> None:
    ca = tmp_path / "ca.pem"
    store = tmp_path / "client.crt"
    key = tmp_path / "client.key"
    ca.write_bytes(pki.ca_file.read_bytes())
    store.write_bytes(pki.client.cert_file.read_bytes())
    key.write_bytes(pki.client.key_file.read_bytes())
    creds = SecurityCredentials(ca_file=ca, cert_store=store, private_key=key)
    first = get_context(creds, Option.SECURE)
    assert get_context(creds, Option.SECURE) is first
    path = {"ca_file": ca, "cert_store": store, "private_key": key}[which]
    if change == "mtime":
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    else:
        with path.open("ab") as handle:
            handle.write(b"\n")
    second = get_context(creds, Option.SECURE)
    assert second is not first
    assert get_context(creds, Option.SECURE) is second


def test_cache_is_bounded_and_least_recently_used(pki: certs.PKI) -> None:
    def creds(i: int) -> SecurityCredentials:
        return trust(pki, alpn_protocols=[f"p{i}"])

    first = get_context(creds(0), Option.SECURE)
    kept = get_context(creds(1), Option.SECURE)
    for i in range(2, CONTEXT_CACHE_SIZE + 1):
        get_context(creds(i), Option.SECURE)
        get_context(creds(1), Option.SECURE)  # keeps entry 1 fresh
    assert context_cache_size() == CONTEXT_CACHE_SIZE
    assert get_context(creds(1), Option.SECURE) is kept
    assert get_context(creds(0), Option.SECURE) is not first  # evicted, built again


def test_concurrent_first_use_builds_one_context(pki: certs.PKI) -> None:
    creds = trust(pki, alpn_protocols=["concurrent"])
    results: list[ssl.SSLContext] = []
    barrier = threading.Barrier(8)

    def use() -> None:
        barrier.wait(10)
        results.append(get_context(creds, Option.SECURE))

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 8
    assert len({id(ctx) for ctx in results}) == 1


# -- opt-ins and their warnings -------------------------------------------------------------------


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "inetkit" and r.levelno == logging.WARNING]


def test_trustedsite_logs_a_warning_every_time(pki: certs.PKI, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="inetkit")
    first = get_context(trust(pki), Option.SECURE | Option.TRUSTEDSITE, target="example.test port 443")
    second = get_context(trust(pki), Option.SECURE | Option.TRUSTEDSITE, target="example.test port 443")
    assert first is second  # a cache hit still warns
    messages = _warnings(caplog)
    assert len(messages) == 2
    assert all("TRUSTEDSITE" in m and "NOT verified" in m and "example.test port 443" in m for m in messages)


def test_secure_fallback_logs_a_warning_every_time(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="inetkit")
    for _ in range(3):
        get_context(None, Option.SECURE_FALLBACK)
    messages = _warnings(caplog)
    assert len(messages) == 3
    assert all("SECURE_FALLBACK" in m and "TLS 1.0" in m and "the server" in m for m in messages)


def test_both_opt_ins_log_two_warnings_and_plain_logs_none(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="inetkit")
    get_context(None, Option.SECURE)
    assert _warnings(caplog) == []
    get_context(None, Option.TRUSTEDSITE | Option.SECURE_FALLBACK)
    assert len(_warnings(caplog)) == 2
    get_context(None, Option.TRUSTEDSITE | Option.SECURE_FALLBACK, warn=False)
    assert len(_warnings(caplog)) == 2


def test_trustedsite_skips_certificate_and_name_checks(pki: certs.PKI) -> None:
    ctx = get_context(trust(pki), Option.TRUSTEDSITE, warn=False)
    assert ctx.check_hostname is False
    assert ctx.verify_mode is ssl.CERT_NONE
    for row, host in [("self_signed", "localhost"), ("wrong_host", "localhost"), ("expired", "127.0.0.2")]:
        outcome = certs.exchange(pki.servers[row].context(), ctx, host)
        assert outcome.error is None, (row, outcome.error)
        # The certificate is still there to look at (and to check pins against).
        assert outcome.info is not None
        assert outcome.info.peer_certificate is not None
        assert outcome.peer_der == pki.servers[row].leaf.cert.public_bytes(serialization.Encoding.DER)


def test_trustedsite_without_ca_does_not_load_the_default_bundle() -> None:
    ctx = get_context(None, Option.TRUSTEDSITE, warn=False)
    assert ctx.cert_store_stats()["x509_ca"] == 0


def test_secure_fallback_lowers_the_floor(pki: certs.PKI) -> None:
    ctx = get_context(trust(pki), Option.SECURE_FALLBACK, warn=False)
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1
    assert ctx.verify_mode is ssl.CERT_REQUIRED  # still verifies
    assert ctx.check_hostname is True
    old = pki.servers["valid"].context(
        seclevel=0, min_version=ssl.TLSVersion.TLSv1, max_version=ssl.TLSVersion.TLSv1_1
    )
    outcome = certs.exchange(old, ctx)
    assert outcome.error is None, outcome.error
    assert outcome.version == "TLSv1.1"
    assert outcome.info is not None
    assert outcome.info.protocol == "TLSv1.1"


def test_secure_fallback_respects_an_explicit_minimum(pki: certs.PKI) -> None:
    ctx = get_context(trust(pki, min_version=ssl.TLSVersion.TLSv1_2), Option.SECURE_FALLBACK, warn=False)
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize("options", [Option.SECURE_FALLBACK, Option.TRUSTEDSITE])
def test_weak_key_is_accepted_only_by_the_opt_ins(pki: certs.PKI, options: Option) -> None:
    ctx = get_context(trust(pki), options, warn=False)
    outcome = certs.exchange(pki.servers["weak_rsa"].context(seclevel=0), ctx)
    assert outcome.error is None, outcome.error


# -- map_ssl_error through real handshakes ------------------------------------------------------


@dataclass
class Row:
    server: str | None  # a server certificate row, or None for the special servers below
    code: ErrorCode
    host: str = "localhost"
    options: Option = Option.SECURE
    client: str | None = None  # a client identity
    server_kwargs: dict[str, object] = field(default_factory=dict)
    client_fields: dict[str, object] = field(default_factory=dict)
    plaintext: bytes | None = None
    fragments: tuple[str, ...] = ()
    verify_code: int | None = None


TLS10 = ssl.TLSVersion.TLSv1
TLS11 = ssl.TLSVersion.TLSv1_1
TLS12 = ssl.TLSVersion.TLSv1_2
TLS13 = ssl.TLSVersion.TLSv1_3

MATRIX: dict[str, Row] = {
    "expired": Row("expired", ErrorCode.CERTIFICATE_EXPIRED, verify_code=10, fragments=("expired", "clock")),
    "not yet valid": Row("not_yet_valid", ErrorCode.CERTIFICATE_NOT_YET_VALID, verify_code=9),
    "wrong host": Row(
        "wrong_host", ErrorCode.CERTIFICATE_NAME_MISMATCH, verify_code=62, fragments=("localhost",)
    ),
    "wrong ip": Row("valid", ErrorCode.CERTIFICATE_NAME_MISMATCH, host="127.0.0.2", verify_code=64),
    "wrong ipv6": Row("valid", ErrorCode.CERTIFICATE_NAME_MISMATCH, host="::2", verify_code=64),
    "self-signed": Row(
        "self_signed", ErrorCode.CERTIFICATE_UNTRUSTED, verify_code=18, fragments=("ca_file",)
    ),
    "untrusted root": Row("untrusted_root", ErrorCode.CERTIFICATE_UNTRUSTED, verify_code=19),
    "missing intermediate": Row(
        "missing_intermediate", ErrorCode.CERTIFICATE_UNTRUSTED, verify_code=20, fragments=("intermediate",)
    ),
    "weak key": Row(
        "weak_rsa",
        ErrorCode.CERTIFICATE_UNTRUSTED,
        server_kwargs={"seclevel": 0},
        verify_code=66,
        fragments=("SECURE_FALLBACK",),
    ),
    "wrong purpose": Row("wrong_purpose", ErrorCode.CERTIFICATE_UNTRUSTED, verify_code=26),
    "client certificate required (TLS 1.3)": Row(
        "valid", ErrorCode.CLIENT_CERTIFICATE_REQUIRED, server_kwargs={"client_ca": True}, fragments=("116",)
    ),
    "client certificate required (TLS 1.2)": Row(
        "valid",
        ErrorCode.HANDSHAKE_FAILED,
        server_kwargs={"client_ca": True, "max_version": TLS12},
        fragments=("handshake_failure", "client certificate", "none was given"),
    ),
    "foreign client certificate (TLS 1.3)": Row(
        "valid",
        ErrorCode.CLIENT_CERTIFICATE_REJECTED,
        client="foreign",
        server_kwargs={"client_ca": True},
        fragments=("unknown_ca (48)",),
    ),
    "foreign client certificate (TLS 1.2)": Row(
        "valid",
        ErrorCode.CLIENT_CERTIFICATE_REJECTED,
        client="foreign",
        server_kwargs={"client_ca": True, "max_version": TLS12},
        fragments=("unknown_ca (48)",),
    ),
    "expired client certificate": Row(
        "valid",
        ErrorCode.CLIENT_CERTIFICATE_REJECTED,
        client="expired",
        server_kwargs={"client_ca": True},
        fragments=("certificate_expired (45)",),
    ),
    "server only speaks TLS 1.0/1.1": Row(
        "valid",
        ErrorCode.PROTOCOL_VERSION,
        server_kwargs={
            "seclevel": 0,
            "min_version": ssl.TLSVersion.TLSv1,
            "max_version": ssl.TLSVersion.TLSv1_1,
        },
        fragments=("SECURE_FALLBACK",),
    ),
    "server only speaks TLS 1.3": Row(
        "valid",
        ErrorCode.PROTOCOL_VERSION,
        server_kwargs={"min_version": TLS13},
        client_fields={"max_version": TLS12},
    ),
    "plaintext server": Row(
        None,
        ErrorCode.HANDSHAKE_FAILED,
        plaintext=b"220 mail.example ESMTP ready\r\n",
        fragments=("plaintext first", "starttls="),
    ),
    "server closes at once": Row(None, ErrorCode.HANDSHAKE_FAILED, fragments=("closed the connection",)),
}


@pytest.mark.parametrize("name", list(MATRIX))
def test_handshake_failures_map_to_exact_codes(pki: certs.PKI, name: str) -> None:
    row = MATRIX[name]
    fields = dict(row.client_fields)
    if row.client is not None:
        fields.update(cert_store=pki.clients[row.client].combined_pem)
    ctx = get_context(trust(pki, **fields), row.options)
    server: ssl.SSLContext | bytes | None
    if row.server is None:
        server = row.plaintext
    else:
        kwargs = dict(row.server_kwargs)
        if kwargs.pop("client_ca", False):
            kwargs["client_ca"] = pki.ca_file
        server = pki.servers[row.server].context(**kwargs)  # type: ignore[arg-type]
    outcome = certs.exchange(server, ctx, row.host)
    assert outcome.error is not None, f"{name}: the exchange succeeded"
    err = map_ssl_error(outcome.error, target=TARGET, credentials_given=row.client is not None)
    assert err.code is row.code, f"{name}: {err!r} from {outcome.error!r}"
    assert isinstance(err, SecurityError)
    assert isinstance(err, ssl.SSLError)
    assert TARGET in str(err)
    for fragment in row.fragments:
        assert fragment in str(err), (fragment, str(err))
    if row.verify_code is not None:
        assert isinstance(err, CertificateError)
        assert isinstance(err, ssl.SSLCertVerificationError)
        assert err.verify_code == row.verify_code
        assert err.verify_message in str(err)
    else:
        assert not isinstance(err, CertificateError)
    assert err.reason == getattr(outcome.error, "reason", None)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1"])
@pytest.mark.parametrize("version", [TLS12, TLS13])
def test_valid_chain_passes(pki: certs.PKI, host: str, version: ssl.TLSVersion) -> None:
    ctx = get_context(trust(pki, max_version=version), Option.SECURE)
    outcome = certs.exchange(pki.servers["valid"].context(), ctx, host)
    assert outcome.error is None, outcome.error
    assert outcome.data == b"ok"


def test_accepted_client_certificate_passes(pki: certs.PKI) -> None:
    ctx = get_context(trust(pki, cert_store=pki.client.combined_pem), Option.SECURE)
    outcome = certs.exchange(pki.servers["valid"].context(client_ca=pki.ca_file), ctx)
    assert outcome.error is None, outcome.error
    assert outcome.server_saw_client is not None


def test_map_handshake_failure_with_credentials_given(pki: certs.PKI) -> None:
    # The same alert 40, but a client certificate was configured: no "none was given".
    server = pki.servers["valid"].context(client_ca=pki.ca_file, max_version=TLS12)
    outcome = certs.exchange(server, get_context(trust(pki), Option.SECURE))
    assert outcome.error is not None
    err = map_ssl_error(outcome.error, target=TARGET, credentials_given=True)
    assert err.code is ErrorCode.HANDSHAKE_FAILED
    assert "none was given" not in str(err)
    assert "client certificate" in str(err)


def test_map_other_errors() -> None:
    reset = ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
    err = map_ssl_error(reset, target=TARGET, credentials_given=False)
    assert err.code is ErrorCode.HANDSHAKE_FAILED
    assert err.errno == errno.ECONNRESET
    assert TARGET in str(err)
    assert "closed the connection" in str(err)
    already = SecurityError("x", ErrorCode.PIN_MISMATCH)
    assert map_ssl_error(already, target=TARGET, credentials_given=False) is already
    odd = ssl.SSLError(1, "[SSL: SOMETHING_NEW] something new (_ssl.c:1)")
    err = map_ssl_error(odd, target=TARGET, credentials_given=False)
    assert err.code is ErrorCode.HANDSHAKE_FAILED
    assert str(err) == f"TLS with {TARGET}: something new"


# -- SecurityInfo and CertificateInfo ---------------------------------------------------------------


@pytest.mark.parametrize(("version", "name"), [(TLS12, "TLSv1.2"), (TLS13, "TLSv1.3")])
def test_security_info_from_a_real_handshake(pki: certs.PKI, version: ssl.TLSVersion, name: str) -> None:
    ctx = get_context(trust(pki, max_version=version, alpn_protocols=["h2"]), Option.SECURE)
    outcome = certs.exchange(pki.servers["valid"].context(alpn=["h2"]), ctx)
    assert outcome.error is None, outcome.error
    info = outcome.info
    assert info is not None
    assert outcome.cipher is not None
    assert info.protocol == name
    assert info.cipher == outcome.cipher[0]
    assert info.cipher_bits == outcome.cipher[2]
    assert info.cipher_bits in (128, 256)
    assert info.alpn_protocol == "h2"
    assert info.session_reused is False
    assert info.peer_certificate is not None
    assert info.peer_certificate.common_name == "localhost"
    hash(info)


def test_certificate_info_fields(pki: certs.PKI) -> None:
    cert = pki.servers["valid"].leaf.cert
    der = cert.public_bytes(serialization.Encoding.DER)
    info = CertificateInfo.from_der(der)
    assert info.subject == "CN=localhost,O=inetkit tests"
    assert info.issuer == "CN=inetkit Test Intermediate CA,O=inetkit tests"
    assert info.common_name == "localhost"
    assert info.subject_alt_names == ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]
    assert info.not_before == cert.not_valid_before_utc
    assert info.not_after == cert.not_valid_after_utc
    assert info.not_before.tzinfo is not None
    assert info.not_before.utcoffset() == datetime.timedelta(0)
    assert info.not_before < info.not_after
    assert info.serial_number == cert.serial_number
    assert info.fingerprint_sha256 == hashlib.sha256(der).hexdigest()
    assert info.fingerprint_sha256 == info.fingerprint_sha256.lower()
    assert ":" not in info.fingerprint_sha256
    assert hash(info) == hash(CertificateInfo.from_der(der))
    assert info == CertificateInfo.from_der(bytearray(der))  # type: ignore[arg-type]


def test_certificate_info_without_names() -> None:
    key = certs.ec_key("bare")
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.ORGANIZATION_NAME, "no common name")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier("https://x.example/"), x509.RFC822Name("a@x.example")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    info = CertificateInfo.from_der(cert.public_bytes(serialization.Encoding.DER))
    assert info.common_name is None
    assert info.subject_alt_names == ["URI:https://x.example/", "email:a@x.example"]
    assert info.serial_number == 7
    self_signed = CertificateInfo.from_der(
        certs.issue("plain", key, None).cert.public_bytes(serialization.Encoding.DER)
    )
    assert self_signed.subject_alt_names == []


def test_certificate_info_refuses_garbage() -> None:
    with pytest.raises(InvalidArgumentError):
        CertificateInfo.from_der(b"\x30\x03garbage")
    with pytest.raises(TypeError):
        CertificateInfo.from_der("text")  # type: ignore[arg-type]


# -- pins ---------------------------------------------------------------------------------------------


def _pin_of(cert: x509.Certificate) -> str:
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256//" + base64.b64encode(hashlib.sha256(spki).digest()).decode()


def test_pins_match_the_leaf_public_key(pki: certs.PKI) -> None:
    # The pin is taken from what a real handshake delivered, under TRUSTEDSITE too.
    ctx = get_context(trust(pki), Option.TRUSTEDSITE, warn=False)
    outcome = certs.exchange(pki.servers["self_signed"].context(), ctx)
    assert outcome.error is None and outcome.peer_der is not None
    leaf = pki.servers["self_signed"].leaf.cert
    good = _pin_of(leaf)
    assert public_key_pin(outcome.peer_der) == good
    check_pins(outcome.peer_der, (good,), target=TARGET)
    check_pins(outcome.peer_der, (_pin_of(pki.root.cert), good), target=TARGET)
    check_pins(outcome.peer_der, (), target=TARGET)  # no pins: nothing to check
    # The pin is valid input for SecurityCredentials.
    SecurityCredentials(pinned_public_keys=[good])


def test_pin_mismatch_names_the_target_and_the_actual_pin(pki: certs.PKI) -> None:
    der = pki.servers["valid"].leaf.cert.public_bytes(serialization.Encoding.DER)
    wrong = _pin_of(pki.root.cert)
    with pytest.raises(SecurityError) as info:
        check_pins(der, (wrong,), target=TARGET)
    err = info.value
    assert err.code is ErrorCode.PIN_MISMATCH
    assert TARGET in str(err)
    assert _pin_of(pki.servers["valid"].leaf.cert) in str(err)
    assert wrong in str(err)
    # The intermediate's key is not the leaf's: pins match the leaf only.
    with pytest.raises(SecurityError):
        check_pins(der, (_pin_of(pki.intermediate.cert),), target=TARGET)


def test_pins_without_a_certificate() -> None:
    with pytest.raises(SecurityError) as info:
        check_pins(b"", ("sha256//" + "A" * 43 + "=",), target=TARGET)
    assert info.value.code is ErrorCode.PIN_MISMATCH


# -- the session cache --------------------------------------------------------------------------------


def test_session_key_normalizes_the_name(pki: certs.PKI) -> None:
    ctx = get_context(trust(pki), Option.SECURE)
    assert session_key("LocalHost.", 443, ctx) == session_key("localhost", 443, ctx)
    assert session_key("localhost", 443, ctx) != session_key("localhost", 8443, ctx)
    trusted = get_context(trust(pki), Option.TRUSTEDSITE, warn=False)
    assert session_key("localhost", 443, ctx) != session_key("localhost", 443, trusted)


@pytest.mark.parametrize("version", [TLS12, TLS13])
def test_sessions_are_resumed(pki: certs.PKI, version: ssl.TLSVersion) -> None:
    ctx = get_context(trust(pki, max_version=version), Option.SECURE)
    server = pki.servers["valid"].context()
    key = session_key("localhost", 4433, ctx)
    first = certs.exchange(server, ctx, session=SESSION_CACHE.get(key))
    assert first.error is None, first.error
    assert first.reused is False
    SESSION_CACHE.put(key, first.session)
    assert SESSION_CACHE.get(key) is first.session
    second = certs.exchange(server, ctx, session=SESSION_CACHE.get(key))
    assert second.error is None, second.error
    assert second.reused is True
    assert second.info is not None
    assert second.info.session_reused is True


def test_a_trustedsite_session_is_never_offered_to_a_verifying_connect(pki: certs.PKI) -> None:
    server = pki.servers["valid"].context()
    trusted = get_context(trust(pki), Option.TRUSTEDSITE, warn=False)
    verifying = get_context(trust(pki), Option.SECURE)
    outcome = certs.exchange(server, trusted)
    assert outcome.session is not None
    SESSION_CACHE.put(session_key("localhost", 4433, trusted), outcome.session)
    assert SESSION_CACHE.get(session_key("localhost", 4433, verifying)) is None
    # OpenSSL would not even take it: a session belongs to its context.
    with pytest.raises(ValueError, match="different SSLContext"):
        certs_exchange_error(server, verifying, outcome.session)


def certs_exchange_error(server: ssl.SSLContext, ctx: ssl.SSLContext, session: ssl.SSLSession) -> None:
    outcome = certs.exchange(server, ctx, session=session)
    if outcome.error is not None:
        raise outcome.error


def test_session_cache_is_bounded_lru(pki: certs.PKI) -> None:
    ctx = get_context(trust(pki, max_version=TLS12), Option.SECURE)
    server = pki.servers["valid"].context()
    sessions = []
    for _ in range(4):
        outcome = certs.exchange(server, ctx)
        assert outcome.session is not None
        sessions.append(outcome.session)
    cache = SessionCache(maxsize=3)
    assert cache.maxsize == 3
    for i, session in enumerate(sessions[:3]):
        cache.put(("host", i), session)
    assert cache.get(("host", 0)) is sessions[0]  # 0 is now the most recently used
    cache.put(("host", 3), sessions[3])
    assert len(cache) == 3
    assert cache.get(("host", 1)) is None  # the least recently used went
    assert cache.get(("host", 0)) is sessions[0]
    assert cache.get(("host", 3)) is sessions[3]
    cache.put(("host", 4), None)
    assert len(cache) == 3
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(InvalidArgumentError):
        SessionCache(maxsize=0)


def test_session_cache_is_thread_safe(pki: certs.PKI) -> None:
    ctx = get_context(trust(pki, max_version=TLS12), Option.SECURE)
    outcome = certs.exchange(pki.servers["valid"].context(), ctx)
    session = outcome.session
    assert session is not None
    cache = SessionCache(maxsize=16)
    errors: list[BaseException] = []

    def churn(n: int) -> None:
        try:
            for i in range(500):
                cache.put((n, i % 40), session)
                cache.get((n, (i * 7) % 40))
        except BaseException as exc:  # pragma: no cover - a failure is reported below
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(cache) == 16


def test_default_cipher_string_is_strong() -> None:
    assert "!aNULL" in DEFAULT_CIPHERS
    assert "!MD5" in DEFAULT_CIPHERS
    assert "CBC" not in DEFAULT_CIPHERS


def test_a_tls13_session_without_ticket_is_not_kept(pki: certs.PKI) -> None:
    ctx = get_context(trust(pki), Option.SECURE)
    # Without a read, the ticket the server sent after the handshake was never taken in.
    outcome = certs.exchange(pki.servers["valid"].context(), ctx, read=False)
    assert outcome.version == "TLSv1.3"
    assert outcome.session is not None
    assert not outcome.session.has_ticket
    cache = SessionCache()
    cache.put(("localhost", 1), outcome.session)
    assert len(cache) == 0


def test_rejection_alert_without_credentials_means_required(pki: certs.PKI) -> None:
    creds = trust(pki, cert_store=pki.foreign_client.combined_pem, max_version=TLS12)
    outcome = certs.exchange(
        pki.servers["valid"].context(client_ca=pki.ca_file), get_context(creds, Option.SECURE)
    )
    assert outcome.error is not None
    err = map_ssl_error(outcome.error, target=TARGET, credentials_given=False)
    assert err.code is ErrorCode.CLIENT_CERTIFICATE_REQUIRED
    assert "unknown_ca (48)" in str(err)


# -- the documentation's samples run -----------------------------------------------------------------


def test_security_doc_samples_run() -> None:
    """Every ``>>>`` sample in docs/security.md runs as a doctest."""
    import inetkit

    if not hasattr(inetkit, "SecurityCredentials"):
        pytest.skip("inetkit does not re-export SecurityCredentials yet")
    doc = Path(__file__).parent.parent / "docs" / "security.md"
    command = [sys.executable, "-m", "doctest", "-o", "ELLIPSIS", str(doc)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, cwd=doc.parent)
    assert result.returncode == 0, result.stdout + result.stderr
