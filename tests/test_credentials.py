"""`SecurityCredentials` checks, client identity loading (PEM, PKCS#12), selection, and no key on disk."""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import ssl
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import certs
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from inetkit import ErrorCode, InvalidArgumentError, Option, SecurityError, _credentials
from inetkit._credentials import SecurityCredentials, apply_identity, load_identity
from inetkit._tls import clear_context_cache, get_context

PLAINTEXT_KEY_MARKERS = (
    b"BEGIN PRIVATE KEY",
    b"BEGIN RSA PRIVATE KEY",
    b"BEGIN EC PRIVATE KEY",
    b"BEGIN DSA PRIVATE KEY",
)


@pytest.fixture(autouse=True)
def _fresh_contexts() -> Iterator[None]:
    clear_context_cache()
    yield
    clear_context_cache()


def spki(key: object) -> bytes:
    return key.public_key().public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# -- construction ----------------------------------------------------------------------


def test_defaults_are_all_none_but_trust_and_hashable() -> None:
    creds = SecurityCredentials()
    assert creds.trust == "certifi"
    assert all(getattr(creds, name) is None for name in creds.__dataclass_fields__ if name != "trust")
    assert creds == SecurityCredentials()
    assert hash(creds) == hash(SecurityCredentials())


def test_list_fields_become_tuples_so_the_value_is_hashable() -> None:
    pin = "sha256//" + "A" * 43 + "="
    creds = SecurityCredentials(alpn_protocols=["h2", "http/1.1"], pinned_public_keys=[pin])
    assert creds.alpn_protocols == ("h2", "http/1.1")
    assert creds.pinned_public_keys == (pin,)
    assert hash(creds) == hash(
        SecurityCredentials(alpn_protocols=("h2", "http/1.1"), pinned_public_keys=(pin,))
    )
    assert {creds: 1}[SecurityCredentials(alpn_protocols=["h2", "http/1.1"], pinned_public_keys=[pin])] == 1


def test_bytes_like_values_are_stored_as_bytes(pki: certs.PKI) -> None:
    ca = pki.root.cert_pem
    creds = SecurityCredentials(
        cert_store=bytearray(b"xyz"),  # type: ignore[arg-type]
        password=bytearray(b"pw"),  # type: ignore[arg-type]
        ca_data=memoryview(ca),  # type: ignore[arg-type]
    )
    assert creds.cert_store == b"xyz"
    assert creds.password == b"pw"
    assert creds.ca_data == ca
    hash(creds)


def test_frozen() -> None:
    creds = SecurityCredentials()
    with pytest.raises(AttributeError):
        creds.ciphers = "x"  # type: ignore[misc]


def test_pickles() -> None:
    creds = SecurityCredentials(cert_store="/x.p12", password="pw", alpn_protocols=["h2"])
    assert pickle.loads(pickle.dumps(creds)) == creds


def test_final() -> None:
    # typing.final: type checkers refuse subclasses.
    assert getattr(SecurityCredentials, "__final__", False) is True


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cert_store": 123}, "cert_store"),
        ({"cert_store": "/x", "cert_name": 5}, "cert_name"),
        ({"cert_store": "/x", "password": 1}, "password"),
        ({"cert_store": "/x", "private_key": 1.5}, "private_key"),
        ({"min_version": "TLSv1_2"}, "min_version"),
        ({"max_version": 771}, "max_version"),
        ({"ciphers": b"DEFAULT"}, "ciphers"),
        ({"ca_file": b"/etc/ca.pem"}, "ca_file"),
        ({"ca_data": 7}, "ca_data"),
        ({"alpn_protocols": "h2"}, "alpn_protocols"),
        ({"alpn_protocols": [b"h2"]}, "alpn_protocols"),
        ({"pinned_public_keys": "sha256//x"}, "pinned_public_keys"),
        ({"pinned_public_keys": [None]}, "pinned_public_keys"),
    ],
)
def test_wrong_types_raise_type_error(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(TypeError, match=field):
        SecurityCredentials(**kwargs)  # type: ignore[arg-type]


GOOD_PIN = "sha256//" + "A" * 43 + "="


@pytest.mark.parametrize(
    ("kwargs", "field", "fragment"),
    [
        (
            {"min_version": ssl.TLSVersion.TLSv1_3, "max_version": ssl.TLSVersion.TLSv1_2},
            "min_version",
            "above",
        ),
        ({"min_version": ssl.TLSVersion.SSLv3}, "min_version", "SSL 3.0"),
        ({"pinned_public_keys": ["md5//AAAA"]}, "pinned_public_keys", "sha256//"),
        ({"pinned_public_keys": ["sha256//not base64!"]}, "pinned_public_keys", "base64"),
        ({"pinned_public_keys": ["sha256//AAAA"]}, "pinned_public_keys", "3 bytes"),
        ({"pinned_public_keys": [GOOD_PIN, "sha256//"]}, "pinned_public_keys", "0 bytes"),
        ({"alpn_protocols": ["h2", ""]}, "alpn_protocols", "''"),
        ({"alpn_protocols": ["hé"]}, "alpn_protocols", "ASCII"),
        ({"alpn_protocols": ["x" * 256]}, "alpn_protocols", "255"),
        ({"ciphers": "NO-SUCH-CIPHER"}, "ciphers", "NO-SUCH-CIPHER"),
        ({"ciphers": "TLS_AES_128_GCM_SHA256"}, "ciphers", "TLS 1.3"),
        ({"cert_store": ""}, "cert_store", "empty"),
        ({"cert_store": b""}, "cert_store", "empty"),
        ({"cert_store": "-----BEGIN CERTIFICATE-----\nMII..."}, "cert_store", "bytes"),
        ({"cert_name": "client"}, "cert_name", "cert_store"),
        ({"private_key": "/k.pem"}, "private_key", "cert_store"),
        ({"password": "pw"}, "password", "cert_store"),
        ({"cert_store": "/x", "cert_name": "  "}, "cert_name", "empty"),
        ({"ca_file": ""}, "ca_file", "empty"),
        ({"ca_data": ""}, "ca_data", "empty"),
    ],
)
def test_bad_values_raise_invalid_argument(kwargs: dict[str, object], field: str, fragment: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        SecurityCredentials(**kwargs)  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    assert isinstance(info.value, ValueError)
    assert field in str(info.value)
    assert fragment in str(info.value)


def test_version_bounds_accept_the_special_values() -> None:
    SecurityCredentials(min_version=ssl.TLSVersion.MINIMUM_SUPPORTED, max_version=ssl.TLSVersion.TLSv1_2)
    SecurityCredentials(min_version=ssl.TLSVersion.TLSv1_3, max_version=ssl.TLSVersion.MAXIMUM_SUPPORTED)
    SecurityCredentials(min_version=ssl.TLSVersion.TLSv1_2, max_version=ssl.TLSVersion.TLSv1_2)
    with pytest.raises(InvalidArgumentError):
        SecurityCredentials(min_version=ssl.TLSVersion.MAXIMUM_SUPPORTED, max_version=ssl.TLSVersion.TLSv1_3)


def test_repr_never_shows_secrets(pki: certs.PKI) -> None:
    key = b"-----BEGIN PRIVATE KEY-----\nSECRETKEYBYTES\n-----END PRIVATE KEY-----\n"
    ca = pki.root.cert_pem.decode()
    creds = SecurityCredentials(
        cert_store=b"STOREBYTES" * 10,
        password="hunter2-password",
        private_key=key,
        ca_data=ca,
        min_version=ssl.TLSVersion.TLSv1_2,
        alpn_protocols=["h2"],
    )
    text = repr(creds)
    for secret in ("hunter2", "SECRETKEYBYTES", "STOREBYTES", ca.splitlines()[1]):
        assert secret not in text
    assert "password=<hidden>" in text
    assert "cert_store=<100 bytes>" in text
    assert f"private_key=<hidden, {len(key)} bytes>" in text
    assert "ssl.TLSVersion.TLSv1_2" in text
    assert "alpn_protocols=('h2',)" in text
    # Paths are not secret and help debugging.
    assert "'/etc/client.p12'" in repr(SecurityCredentials(cert_store="/etc/client.p12", password=b"x"))
    assert repr(SecurityCredentials()) == "SecurityCredentials()"


# -- loading identities -----------------------------------------------------------------

IdentityForm = Callable[[certs.ClientCert], SecurityCredentials]

FORMS: dict[str, IdentityForm] = {
    "pem one file": lambda c: SecurityCredentials(cert_store=c.combined_pem),
    "pem one file as str path": lambda c: SecurityCredentials(cert_store=str(c.combined_pem)),
    "pem two files": lambda c: SecurityCredentials(cert_store=c.cert_file, private_key=c.key_file),
    "pem traditional key": lambda c: SecurityCredentials(
        cert_store=c.cert_file, private_key=c.traditional_key_file
    ),
    "pem encrypted key in one file": lambda c: SecurityCredentials(
        cert_store=c.combined_encrypted_pem, password=certs.PASSWORD
    ),
    "pem encrypted key file": lambda c: SecurityCredentials(
        cert_store=c.cert_file, private_key=c.encrypted_key_file, password=certs.PASSWORD.encode()
    ),
    "pem password for a plain key": lambda c: SecurityCredentials(
        cert_store=c.combined_pem, password="unused"
    ),
    "pkcs12 modern": lambda c: SecurityCredentials(cert_store=c.p12_modern, password=certs.PASSWORD),
    "pkcs12 legacy 3des": lambda c: SecurityCredentials(cert_store=c.p12_legacy, password=certs.PASSWORD),
    "pkcs12 without password": lambda c: SecurityCredentials(cert_store=c.p12_no_password),
    "pem bytes": lambda c: SecurityCredentials(cert_store=c.combined_pem.read_bytes()),
    "pem bytes, key bytes": lambda c: SecurityCredentials(
        cert_store=c.cert_file.read_bytes(),
        private_key=c.encrypted_key_file.read_bytes(),
        password=certs.PASSWORD,
    ),
    "pkcs12 modern bytes": lambda c: SecurityCredentials(
        cert_store=c.p12_modern.read_bytes(), password=certs.PASSWORD
    ),
    "pkcs12 legacy bytes": lambda c: SecurityCredentials(
        cert_store=c.p12_legacy.read_bytes(), password=certs.PASSWORD
    ),
}


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("who", ["client", "second"])
def test_identity_loads_in_every_form(pki: certs.PKI, form: str, who: str) -> None:
    client = pki.clients[who]
    identity = load_identity(FORMS[form](client))
    assert identity is not None
    assert identity.certificate == client.cert
    assert identity.chain == (pki.intermediate.cert,)
    assert spki(identity.private_key) == spki(client.identity.key)
    assert identity.subject == client.subject
    assert "PRIVATE" not in repr(identity)


def test_pkcs12_rc2_legacy_store(pki: certs.PKI) -> None:
    path = pki.openssl_rc2_p12(pki.client)
    if path is None:
        pytest.skip("the openssl program cannot write RC2 PKCS#12 stores here")
    for store in (path, path.read_bytes()):
        identity = load_identity(SecurityCredentials(cert_store=store, password=certs.PASSWORD))
        assert identity is not None
        assert identity.certificate == pki.client.cert
        assert identity.chain == (pki.intermediate.cert,)


def test_der_certificate_with_separate_key(pki: certs.PKI) -> None:
    der = pki.client.cert.public_bytes(serialization.Encoding.DER)
    key_der = pki.client.identity.key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    identity = load_identity(SecurityCredentials(cert_store=der, private_key=key_der))
    assert identity is not None
    assert identity.certificate == pki.client.cert
    assert identity.chain == ()


def test_no_identity_without_cert_store(pki: certs.PKI) -> None:
    assert load_identity(None) is None
    assert load_identity(SecurityCredentials(ca_data=pki.root.cert_pem)) is None


def _fails(creds: SecurityCredentials, code: ErrorCode = ErrorCode.INVALID_CREDENTIALS) -> SecurityError:
    with pytest.raises(SecurityError) as info:
        load_identity(creds)
    assert info.value.code is code, info.value
    assert isinstance(info.value, ssl.SSLError)
    return info.value


def test_missing_store_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "client.p12"
    err = _fails(SecurityCredentials(cert_store=path, password="x"))
    assert str(path) in str(err)
    assert err.errno == errno.ENOENT


def test_unreadable_store_names_the_path(tmp_path: Path) -> None:
    err = _fails(SecurityCredentials(cert_store=tmp_path))  # a directory cannot be read as a file
    assert str(tmp_path) in str(err)


def test_missing_key_file_names_the_path(pki: certs.PKI, tmp_path: Path) -> None:
    key = tmp_path / "missing.key"
    err = _fails(SecurityCredentials(cert_store=pki.client.cert_file, private_key=key))
    assert str(key) in str(err)


def test_encrypted_key_without_password(pki: certs.PKI) -> None:
    err = _fails(SecurityCredentials(cert_store=pki.client.combined_encrypted_pem))
    assert "encrypted" in str(err)
    assert "password" in str(err)
    assert str(pki.client.combined_encrypted_pem) in str(err)


@pytest.mark.parametrize("attr", ["combined_encrypted_pem", "p12_modern", "p12_legacy"])
def test_wrong_password_names_the_file(pki: certs.PKI, attr: str) -> None:
    path: Path = getattr(pki.client, attr)
    err = _fails(SecurityCredentials(cert_store=path, password="wrong password"))
    assert "wrong password" in str(err)
    assert str(path) in str(err)


def test_wrong_password_for_separate_key_file(pki: certs.PKI) -> None:
    creds = SecurityCredentials(
        cert_store=pki.client.cert_file, private_key=pki.client.encrypted_key_file, password="nope"
    )
    err = _fails(creds)
    assert "wrong password" in str(err)
    assert str(pki.client.encrypted_key_file) in str(err)


def test_every_wrong_password_is_named_as_such() -> None:
    # About one wrong password in 256 decrypts to bytes with valid padding,
    # so the failure is a parse error instead of "bad decrypt"; it must read
    # the same to the user.
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"right"),
    )
    for i in range(1500):
        with pytest.raises(SecurityError) as caught:
            _credentials._load_key(pem, f"wrong-{i}".encode(), "key.pem")
        assert caught.value.code == ErrorCode.INVALID_CREDENTIALS
        assert str(caught.value).startswith("wrong password for the private key in key.pem"), str(
            caught.value
        )


def test_protected_pkcs12_without_password(pki: certs.PKI) -> None:
    err = _fails(SecurityCredentials(cert_store=pki.client.p12_modern))
    assert "password" in str(err)
    assert str(pki.client.p12_modern) in str(err)


def test_certificates_without_a_key(pki: certs.PKI) -> None:
    err = _fails(SecurityCredentials(cert_store=pki.client.cert_file))
    assert "no private key" in str(err)


def test_key_that_matches_no_certificate(pki: certs.PKI) -> None:
    err = _fails(SecurityCredentials(cert_store=pki.client.cert_file, private_key=pki.second_client.key_file))
    assert "matches the private key" in str(err)
    assert pki.client.subject in str(err)


@pytest.mark.parametrize(
    "data",
    [
        b"this is not a certificate store",
        b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    ],
)
def test_damaged_stores(data: bytes) -> None:
    _fails(SecurityCredentials(cert_store=data, password="x"))


def test_key_file_without_a_key(pki: certs.PKI) -> None:
    err = _fails(SecurityCredentials(cert_store=pki.client.cert_file, private_key=pki.client.cert_file))
    assert "no private key" in str(err)


# -- cert_name ---------------------------------------------------------------------------


def _sha1(cert: x509.Certificate) -> str:
    return hashlib.sha1(cert.public_bytes(serialization.Encoding.DER), usedforsecurity=False).hexdigest()


def _sha256(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _colons(hexdigits: str) -> str:
    return ":".join(hexdigits[i : i + 2] for i in range(0, len(hexdigits), 2)).upper()


def _cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


@pytest.mark.parametrize(
    "name_of",
    [
        pytest.param(_cn, id="cn"),
        pytest.param(lambda c: f"  {_cn(c).upper()} ", id="cn-any-case"),
        pytest.param(lambda c: c.subject.rfc4514_string().upper(), id="subject-any-case"),
        pytest.param(lambda c: c.subject.rfc4514_string().replace(",", ", "), id="subject-with-spaces"),
        pytest.param(
            lambda c: ",".join(reversed(c.subject.rfc4514_string().split(","))), id="subject-other-order"
        ),
        pytest.param(
            lambda c: "/" + "/".join(reversed(c.subject.rfc4514_string().split(","))),
            id="subject-openssl-form",
        ),
        pytest.param(_sha1, id="sha1"),
        pytest.param(lambda c: _colons(_sha1(c)), id="sha1-colons"),
        pytest.param(_sha256, id="sha256"),
        pytest.param(lambda c: " ".join(_colons(_sha256(c)).split(":")), id="sha256-spaces"),
    ],
)
@pytest.mark.parametrize("who", ["client", "second"])
def test_cert_name_selects_among_several_identities(
    pki: certs.PKI, who: str, name_of: Callable[[x509.Certificate], str]
) -> None:
    wanted = pki.clients[who]
    assert pki.two_identities_pem is not None
    creds = SecurityCredentials(cert_store=pki.two_identities_pem, cert_name=name_of(wanted.cert))
    identity = load_identity(creds)
    assert identity is not None
    assert identity.certificate == wanted.cert
    assert spki(identity.private_key) == spki(wanted.identity.key)
    # The chain is found by issuer among the store's certificates.
    assert identity.chain == (pki.intermediate.cert,)


def test_without_cert_name_the_first_certificate_with_a_key_is_used(pki: certs.PKI) -> None:
    assert pki.two_identities_pem is not None
    identity = load_identity(SecurityCredentials(cert_store=pki.two_identities_pem))
    assert identity is not None
    assert identity.certificate == pki.client.cert


def test_cert_name_that_matches_nothing(pki: certs.PKI) -> None:
    assert pki.two_identities_pem is not None
    err = _fails(
        SecurityCredentials(cert_store=pki.two_identities_pem, cert_name="nobody"),
        ErrorCode.CERTIFICATE_NOT_FOUND,
    )
    text = str(err)
    assert "'nobody'" in text
    assert pki.client.subject in text
    assert pki.second_client.subject in text
    assert pki.intermediate.cert.subject.rfc4514_string() in text
    assert str(pki.two_identities_pem) in text


def test_cert_name_wrong_thumbprint(pki: certs.PKI) -> None:
    _fails(
        SecurityCredentials(cert_store=pki.client.p12_modern, password=certs.PASSWORD, cert_name="ab" * 20),
        ErrorCode.CERTIFICATE_NOT_FOUND,
    )


def test_cert_name_in_pkcs12_store(pki: certs.PKI) -> None:
    creds = SecurityCredentials(
        cert_store=pki.client.p12_modern, password=certs.PASSWORD, cert_name=certs.CLIENT_CN.upper()
    )
    identity = load_identity(creds)
    assert identity is not None
    assert identity.certificate == pki.client.cert


def test_cert_name_of_a_certificate_without_key(pki: certs.PKI) -> None:
    # The PKCS#12 store's additional certificates are searched too, but the
    # leaf must match the private key.
    creds = SecurityCredentials(
        cert_store=pki.client.p12_legacy, password=certs.PASSWORD, cert_name="inetkit Test Intermediate CA"
    )
    err = _fails(creds)
    assert "no private key" in str(err)
    assert "Intermediate" in str(err)


# -- handing the identity to OpenSSL ---------------------------------------------------------


def _client_context(creds: SecurityCredentials) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    apply_identity(ctx, creds)
    return ctx


@pytest.mark.parametrize("form", ["pem encrypted key file", "pkcs12 legacy 3des", "pem bytes"])
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_identity_is_presented_in_a_real_handshake(
    pki: certs.PKI, form: str, version: ssl.TLSVersion
) -> None:
    base = FORMS[form](pki.client)
    creds = SecurityCredentials(
        cert_store=base.cert_store,
        private_key=base.private_key,
        password=base.password,
        ca_file=pki.ca_file,
        max_version=version,
    )
    server = pki.servers["valid"].context(client_ca=pki.ca_file)
    outcome = certs.exchange(server, get_context(creds, Option.SECURE))
    assert outcome.error is None, outcome.error
    assert outcome.server_error is None, outcome.server_error
    assert outcome.version == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
    assert outcome.server_saw_client is not None
    assert ((("commonName", certs.CLIENT_CN),)) in outcome.server_saw_client["subject"]  # type: ignore[operator]


class FileWatch:
    """Records every file that Python code opens for writing, and every removal (audit hooks)."""

    active = False
    installed = False
    opened: list[str] = []
    removed: dict[str, bytes] = {}

    @classmethod
    def hook(cls, event: str, args: tuple[object, ...]) -> None:
        if not cls.active:
            return
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            )
            if writing and isinstance(path, str | bytes):
                cls.opened.append(os.fsdecode(path))
        elif event == "os.remove":
            path = args[0]
            if isinstance(path, str | bytes):
                cls.active = False  # reading the file must not record itself
                try:
                    with open(path, "rb") as handle:
                        cls.removed[os.fsdecode(path)] = handle.read()
                finally:
                    cls.active = True

    @classmethod
    def install(cls) -> None:
        # Audit hooks cannot be removed; install one, once, and gate it by ``active``.
        if not cls.installed:
            sys.addaudithook(cls.hook)
            cls.installed = True


@pytest.fixture
def watch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    """Empty TMPDIR and working directory, and a record of files written while active."""
    tmp_dir = tmp_path / "tmp"
    cwd = tmp_path / "cwd"
    tmp_dir.mkdir()
    cwd.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_dir))
    monkeypatch.setenv("TMPDIR", str(tmp_dir))
    monkeypatch.chdir(cwd)
    FileWatch.install()
    FileWatch.opened = []
    FileWatch.removed = {}
    yield tmp_dir, cwd
    FileWatch.active = False


def _assert_only_encrypted_key(content: bytes, client: certs.ClientCert) -> None:
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in content
    assert b"BEGIN CERTIFICATE" in content
    for marker in PLAINTEXT_KEY_MARKERS:
        assert marker not in content
    # Not even the base64 body of the plain key appears.
    plain_body = b"".join(client.identity.key_pem().splitlines()[1:-1])
    assert plain_body not in content.replace(b"\n", b"")


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="needs memfd_create (Linux)")
@pytest.mark.parametrize("form", ["pkcs12 modern", "pem one file", "pem encrypted key file"])
def test_decrypted_key_never_touches_a_file(
    pki: certs.PKI, watch: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    tmp_dir, cwd = watch
    made: list[int] = []
    seen: dict[int, bytes] = {}
    real_memfd_create, real_close = os.memfd_create, os.close

    def spy_memfd_create(name: str, flags: int = os.MFD_CLOEXEC) -> int:
        fd = real_memfd_create(name, flags)
        made.append(fd)
        return fd

    def spy_close(fd: int) -> None:
        if fd in made:
            # What OpenSSL was given, read just before the descriptor goes away.
            size = os.fstat(fd).st_size
            seen[fd] = os.pread(fd, size, 0)
            assert os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:inetkit-identity")
        real_close(fd)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    creds = FORMS[form](pki.client)
    with monkeypatch.context() as m:
        m.setattr(os, "memfd_create", spy_memfd_create)
        m.setattr(os, "close", spy_close)
        FileWatch.active = True
        try:
            apply_identity(ctx, creds)
        finally:
            FileWatch.active = False
    assert len(made) == 1
    (fd,) = made
    _assert_only_encrypted_key(seen[fd], pki.client)
    # The descriptor is closed again (or reused for something else).
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except FileNotFoundError:
        target = ""
    assert not target.startswith("/memfd:inetkit-identity")
    assert FileWatch.opened == []
    assert FileWatch.removed == {}
    assert list(tmp_dir.iterdir()) == []
    assert list(cwd.iterdir()) == []
    # And the context really holds the identity.
    assert ctx.get_ca_certs() == []
    server = pki.servers["valid"].context(client_ca=pki.ca_file)
    ctx.load_verify_locations(pki.ca_file)
    outcome = certs.exchange(server, ctx)
    assert outcome.error is None, outcome.error
    assert outcome.server_saw_client is not None


@pytest.mark.parametrize("how", ["no memfd_create", "memfd_create fails"])
def test_fallback_writes_only_the_reencrypted_key_and_removes_it(
    pki: certs.PKI, watch: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    tmp_dir, cwd = watch
    if how == "no memfd_create":
        monkeypatch.setattr(_credentials, "_USE_MEMFD", False)
    else:

        def no_memfd(name: str, flags: int = 0) -> int:
            raise OSError(errno.ENOSYS, "memfd_create is not implemented")

        monkeypatch.setattr(_credentials, "_USE_MEMFD", True)
        monkeypatch.setattr(os, "memfd_create", no_memfd, raising=False)
    modes: list[int] = []
    real_unlink = os.unlink

    def spy_unlink(path: str, *args: object, **kwargs: object) -> None:
        modes.append(stat.S_IMODE(os.stat(path).st_mode))
        real_unlink(path)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with monkeypatch.context() as m:
        m.setattr(os, "unlink", spy_unlink)
        FileWatch.active = True
        try:
            apply_identity(ctx, FORMS["pkcs12 legacy 3des"](pki.client))
        finally:
            FileWatch.active = False
    assert len(FileWatch.removed) == 1
    ((path, content),) = FileWatch.removed.items()
    assert Path(path).parent == tmp_dir
    assert FileWatch.opened == [path]
    assert modes == [0o600]
    _assert_only_encrypted_key(content, pki.client)
    assert list(tmp_dir.iterdir()) == []
    assert list(cwd.iterdir()) == []
    ctx.load_verify_locations(pki.ca_file)
    outcome = certs.exchange(pki.servers["valid"].context(client_ca=pki.ca_file), ctx)
    assert outcome.error is None, outcome.error
    assert outcome.server_saw_client is not None


def test_fallback_removes_the_file_when_openssl_refuses(
    pki: certs.PKI, watch: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp_dir, _ = watch
    monkeypatch.setattr(_credentials, "_USE_MEMFD", False)
    weak = certs.issue("weak client", certs.rsa_key("weak", 1024), pki.intermediate)
    store = weak.cert_pem + weak.key_pem()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_ciphers("DEFAULT@SECLEVEL=2")
    with pytest.raises(SecurityError) as info:
        apply_identity(ctx, SecurityCredentials(cert_store=store))
    assert info.value.code is ErrorCode.INVALID_CREDENTIALS
    assert list(tmp_dir.iterdir()) == []


def test_weak_client_key_is_refused_at_security_level_2(pki: certs.PKI) -> None:
    weak = certs.issue("weak client", certs.rsa_key("weak", 1024), pki.intermediate)
    creds = SecurityCredentials(cert_store=weak.cert_pem + weak.key_pem(), ca_file=pki.ca_file)
    with pytest.raises(SecurityError) as info:
        get_context(creds, Option.SECURE)
    assert info.value.code is ErrorCode.INVALID_CREDENTIALS
    assert "weak client" in str(info.value)
    # Security level 0 (SECURE_FALLBACK) accepts it.
    get_context(creds, Option.SECURE | Option.SECURE_FALLBACK, warn=False)


def test_get_context_checks_credentials_before_any_io(pki: certs.PKI, tmp_path: Path) -> None:
    with pytest.raises(SecurityError) as info:
        get_context(SecurityCredentials(cert_store=tmp_path / "gone.pem"), Option.SECURE)
    assert info.value.code is ErrorCode.INVALID_CREDENTIALS
    with pytest.raises(SecurityError) as info:
        get_context(
            SecurityCredentials(cert_store=pki.client.p12_modern, password=certs.PASSWORD, cert_name="x"),
            Option.SECURE,
        )
    assert info.value.code is ErrorCode.CERTIFICATE_NOT_FOUND


def test_import_inetkit_does_not_import_cryptography() -> None:
    import subprocess

    code = "import sys, inetkit; sys.exit('cryptography' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
