"""A test-time PKI: CAs, a server certificate for every verification outcome, client identities.

Everything is made with ``cryptography`` when the tests run; nothing is
checked in. Keys are cached per label for the whole session (RSA key
generation is the slow part), and EC P-256 is used wherever a row does not
need RSA. The files live under a pytest temporary directory: tests may write
keys to disk, the library never does.

Layout::

    root CA ── intermediate CA ─┬─ server leaves (valid, expired, not yet valid,
                                │  wrong host, weak RSA-1024, wrong purpose,
                                │  missing intermediate)
                                └─ client identities (client, second client)
    foreign root ─┬─ untrusted server leaf
                  └─ foreign client identity
    self-signed server leaf

Client identities: ``client`` (EC, from the intermediate), ``second``
(RSA-2048, from the intermediate), ``foreign`` (from the foreign root) and
``expired``; each as PEM (one file, two files, encrypted key) and PKCS#12
(AES, 3DES, no password).
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import shutil
import ssl
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from inetkit._tls import SecurityInfo

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

#: The password of every encrypted client key and PKCS#12 store.
PASSWORD = "correct horse battery"

#: Validity of the ordinary certificates, around "now" (tolerates clock skew).
VALID_BEFORE = datetime.timedelta(days=1)
VALID_FOR = datetime.timedelta(days=30)

#: PBKDF rounds for the legacy PKCS#12 store (as old Windows exports use).
LEGACY_KDF_ROUNDS = 2048

CLIENT_CN = "inetkit test client"
SECOND_CLIENT_CN = "second test client"
FOREIGN_CLIENT_CN = "foreign test client"


@functools.cache
def ec_key(label: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 key, one per label for the session (fast to make)."""
    del label  # the label only selects the cache slot
    return ec.generate_private_key(ec.SECP256R1())


@functools.cache
def rsa_key(label: str, bits: int = 2048) -> rsa.RSAPrivateKey:
    """An RSA key, one per label and size for the session (slow to make)."""
    del label
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _name(common_name: str, org: str = "inetkit tests") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@dataclass(frozen=True)
class CertKey:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, password: str | None = None, *, traditional: bool = False) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.NoEncryption()
            if password is None
            else serialization.BestAvailableEncryption(password.encode())
        )
        fmt = (
            serialization.PrivateFormat.TraditionalOpenSSL
            if traditional
            else serialization.PrivateFormat.PKCS8
        )
        return self.key.private_bytes(serialization.Encoding.PEM, fmt, encryption)


def issue(
    common_name: str,
    key: PrivateKey,
    issuer: CertKey | None,
    *,
    ca: bool = False,
    sans: tuple[x509.GeneralName, ...] = (),
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    usages: tuple[x509.ObjectIdentifier, ...] = (ExtendedKeyUsageOID.SERVER_AUTH,),
    org: str = "inetkit tests",
) -> CertKey:
    """Make one certificate; ``issuer=None`` makes it self-signed."""
    now = _now()
    subject = _name(common_name, org)
    signer_key = key if issuer is None else issuer.key
    issuer_name = subject if issuer is None else issuer.cert.subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - VALID_BEFORE)
        .not_valid_after(not_after or now + VALID_FOR)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()), critical=False
        )
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    cert = builder.sign(signer_key, hashes.SHA256())
    return CertKey(cert, key)


LOCAL_SANS: tuple[x509.GeneralName, ...] = (
    x509.DNSName("localhost"),
    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    x509.IPAddress(ipaddress.ip_address("::1")),
)


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


@dataclass(frozen=True)
class ServerCert:
    """A server identity: the chain it sends (leaf first) and its key, as files."""

    name: str
    leaf: CertKey
    chain_file: Path
    key_file: Path

    def context(
        self,
        *,
        client_ca: Path | None = None,
        min_version: ssl.TLSVersion | None = None,
        max_version: ssl.TLSVersion | None = None,
        seclevel: int | None = None,
        alpn: list[str] | None = None,
    ) -> ssl.SSLContext:
        """A server context; ``client_ca`` makes a client certificate mandatory."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if seclevel is not None:
            ctx.set_ciphers(f"DEFAULT@SECLEVEL={seclevel}")
        with warnings.catch_warnings():
            # Python deprecates TLS 1.0/1.1; the legacy-server rows need them.
            warnings.simplefilter("ignore", DeprecationWarning)
            if min_version is not None:
                ctx.minimum_version = min_version
            if max_version is not None:
                ctx.maximum_version = max_version
        ctx.load_cert_chain(self.chain_file, self.key_file)
        if client_ca is not None:
            ctx.load_verify_locations(cafile=client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        if alpn is not None:
            ctx.set_alpn_protocols(alpn)
        return ctx


@dataclass(frozen=True)
class ClientCert:
    """A client identity in every form the credential loader reads."""

    identity: CertKey
    chain: tuple[x509.Certificate, ...]
    combined_pem: Path  # certificate, chain, unencrypted PKCS#8 key
    cert_file: Path  # certificate and chain only
    key_file: Path  # unencrypted PKCS#8 key
    traditional_key_file: Path  # unencrypted "BEGIN EC/RSA PRIVATE KEY"
    encrypted_key_file: Path  # PKCS#8, encrypted under PASSWORD
    combined_encrypted_pem: Path  # certificate, chain, encrypted key
    p12_modern: Path  # PKCS#12, AES-256 / SHA-256
    p12_legacy: Path  # PKCS#12, 3DES / SHA-1
    p12_no_password: Path  # PKCS#12 without encryption

    @property
    def cert(self) -> x509.Certificate:
        return self.identity.cert

    @property
    def subject(self) -> str:
        return self.identity.cert.subject.rfc4514_string()


@dataclass
class PKI:
    """All certificates and files of the test PKI."""

    directory: Path
    root: CertKey
    intermediate: CertKey
    foreign_root: CertKey
    ca_file: Path  # our root only: what clients trust
    foreign_ca_file: Path
    servers: dict[str, ServerCert] = field(default_factory=dict)
    clients: dict[str, ClientCert] = field(default_factory=dict)
    two_identities_pem: Path | None = None  # client and second client, each with its key

    def write(self, name: str, data: bytes) -> Path:
        path = self.directory / name
        path.write_bytes(data)
        return path

    @property
    def client(self) -> ClientCert:
        return self.clients["client"]

    @property
    def second_client(self) -> ClientCert:
        return self.clients["second"]

    @property
    def foreign_client(self) -> ClientCert:
        return self.clients["foreign"]

    @property
    def expired_client(self) -> ClientCert:
        return self.clients["expired"]

    def _add_server(self, name: str, leaf: CertKey, *sent: x509.Certificate) -> None:
        self.servers[name] = ServerCert(
            name,
            leaf,
            self.write(f"server-{name}.pem", pem(leaf.cert, *sent)),
            self.write(f"server-{name}.key", leaf.key_pem()),
        )

    def _add_client(self, name: str, identity: CertKey, *chain: x509.Certificate) -> None:
        key_pem = identity.key_pem()
        encrypted = identity.key_pem(PASSWORD)
        cert_pem = pem(identity.cert, *chain)
        modern = serialization.BestAvailableEncryption(PASSWORD.encode())
        legacy = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(LEGACY_KDF_ROUNDS)
            .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
            .hmac_hash(hashes.SHA1())
            .build(PASSWORD.encode())
        )
        label = name.encode()
        self.clients[name] = ClientCert(
            identity=identity,
            chain=chain,
            combined_pem=self.write(f"client-{name}-combined.pem", cert_pem + key_pem),
            cert_file=self.write(f"client-{name}.crt", cert_pem),
            key_file=self.write(f"client-{name}.key", key_pem),
            traditional_key_file=self.write(
                f"client-{name}-traditional.key", identity.key_pem(traditional=True)
            ),
            encrypted_key_file=self.write(f"client-{name}-encrypted.key", encrypted),
            combined_encrypted_pem=self.write(f"client-{name}-encrypted.pem", cert_pem + encrypted),
            p12_modern=self.write(
                f"client-{name}.p12",
                pkcs12.serialize_key_and_certificates(
                    label, identity.key, identity.cert, list(chain), modern
                ),
            ),
            p12_legacy=self.write(
                f"client-{name}-legacy.pfx",
                pkcs12.serialize_key_and_certificates(
                    label, identity.key, identity.cert, list(chain), legacy
                ),
            ),
            p12_no_password=self.write(
                f"client-{name}-nopass.p12",
                pkcs12.serialize_key_and_certificates(
                    label, identity.key, identity.cert, list(chain), serialization.NoEncryption()
                ),
            ),
        )

    def openssl_rc2_p12(self, client: ClientCert) -> Path | None:
        """A PKCS#12 store with RC2-40 encryption, as ``openssl pkcs12 -legacy`` writes it.

        ``cryptography`` cannot write RC2; the openssl program can, when its
        legacy provider is installed. None when it cannot.
        """
        program = shutil.which("openssl")
        if program is None:
            return None
        out = self.directory / f"rc2-{client.cert_file.stem}.p12"
        if out.exists():
            return out
        result = subprocess.run(
            [
                program,
                "pkcs12",
                "-export",
                "-legacy",
                "-in",
                str(client.cert_file),
                "-inkey",
                str(client.key_file),
                "-passout",
                f"pass:{PASSWORD}",
                "-out",
                str(out),
            ],
            capture_output=True,
            timeout=30,
            check=False,
        )
        return out if result.returncode == 0 and out.exists() else None


def build_pki(directory: Path) -> PKI:
    """Make the whole PKI under ``directory``."""
    now = _now()
    root = issue("inetkit Test Root CA", ec_key("root"), None, ca=True)
    intermediate = issue("inetkit Test Intermediate CA", ec_key("intermediate"), root, ca=True)
    foreign_root = issue("Foreign Test Root CA", ec_key("foreign-root"), None, ca=True, org="elsewhere")
    pki = PKI(
        directory=directory,
        root=root,
        intermediate=intermediate,
        foreign_root=foreign_root,
        ca_file=directory / "ca.pem",
        foreign_ca_file=directory / "foreign-ca.pem",
    )
    pki.write("ca.pem", root.cert_pem)
    pki.write("foreign-ca.pem", foreign_root.cert_pem)

    inter = intermediate.cert
    leaf_key = ec_key("server")
    pki._add_server("valid", issue("localhost", leaf_key, intermediate, sans=LOCAL_SANS), inter)
    pki._add_server(
        "expired",
        issue(
            "localhost",
            leaf_key,
            intermediate,
            sans=LOCAL_SANS,
            not_before=now - datetime.timedelta(days=60),
            not_after=now - datetime.timedelta(days=1),
        ),
        inter,
    )
    pki._add_server(
        "not_yet_valid",
        issue(
            "localhost",
            leaf_key,
            intermediate,
            sans=LOCAL_SANS,
            not_before=now + datetime.timedelta(days=1),
            not_after=now + datetime.timedelta(days=60),
        ),
        inter,
    )
    pki._add_server(
        "wrong_host",
        issue("wrong.example", leaf_key, intermediate, sans=(x509.DNSName("wrong.example"),)),
        inter,
    )
    pki._add_server("self_signed", issue("localhost", ec_key("self-signed"), None, sans=LOCAL_SANS))
    pki._add_server(
        "untrusted_root",
        issue("localhost", ec_key("untrusted"), foreign_root, sans=LOCAL_SANS),
        foreign_root.cert,
    )
    pki._add_server("missing_intermediate", issue("localhost", leaf_key, intermediate, sans=LOCAL_SANS))
    pki._add_server(
        "weak_rsa", issue("localhost", rsa_key("weak", 1024), intermediate, sans=LOCAL_SANS), inter
    )
    pki._add_server(
        "wrong_purpose",
        issue(
            "localhost", leaf_key, intermediate, sans=LOCAL_SANS, usages=(ExtendedKeyUsageOID.CLIENT_AUTH,)
        ),
        inter,
    )

    client_usage = (ExtendedKeyUsageOID.CLIENT_AUTH,)
    pki._add_client("client", issue(CLIENT_CN, ec_key("client"), intermediate, usages=client_usage), inter)
    pki._add_client(
        "second",
        issue(SECOND_CLIENT_CN, rsa_key("second"), intermediate, usages=client_usage),
        inter,
    )
    pki._add_client(
        "foreign",
        issue(
            FOREIGN_CLIENT_CN, ec_key("foreign-client"), foreign_root, usages=client_usage, org="elsewhere"
        ),
    )
    pki._add_client(
        "expired",
        issue(
            CLIENT_CN,
            ec_key("client"),
            intermediate,
            usages=client_usage,
            not_before=now - datetime.timedelta(days=60),
            not_after=now - datetime.timedelta(days=1),
        ),
        inter,
    )
    first, second = pki.client.identity, pki.second_client.identity
    pki.two_identities_pem = pki.write(
        "two-identities.pem",
        pem(first.cert) + first.key_pem() + pem(second.cert, inter) + second.key_pem(traditional=True),
    )
    return pki


_PKI: list[PKI] = []


def get_pki(factory: pytest.TempPathFactory) -> PKI:
    """The session's PKI, made on first use."""
    if not _PKI:
        _PKI.append(build_pki(factory.mktemp("pki")))
    return _PKI[0]


# -- a real handshake between two standard-library ends -------------------------------

#: Seconds either end waits for the other before giving up (a hang fails fast).
EXCHANGE_TIMEOUT = 10.0


@dataclass
class Outcome:
    """What a TLS exchange over a socket pair produced, on both ends."""

    error: BaseException | None = None  # the client's, from the handshake or the first read
    version: str | None = None
    cipher: tuple[str, str, int] | None = None
    alpn: str | None = None
    reused: bool = False
    peer_der: bytes | None = None
    info: SecurityInfo | None = None
    session: ssl.SSLSession | None = None
    data: bytes = b""
    server_error: BaseException | None = None
    server_saw_client: dict[str, object] | None = None


def exchange(
    server: ssl.SSLContext | bytes | None,
    client: ssl.SSLContext,
    host: str | None = "localhost",
    *,
    session: ssl.SSLSession | None = None,
    read: bool = True,
) -> Outcome:
    """One TLS connection over a socket pair: a server thread and a client here.

    ``server`` is a server context, or bytes that a plaintext server sends
    instead of speaking TLS, or None for a server that closes at once. The
    server sends ``b"ok"`` after its handshake; with ``read`` the client reads
    it, which also takes in TLS 1.3 session tickets and a server's verdict on
    the client certificate.
    """
    import socket
    import threading

    outcome = Outcome()
    client_sock, server_sock = socket.socketpair()
    client_sock.settimeout(EXCHANGE_TIMEOUT)
    server_sock.settimeout(EXCHANGE_TIMEOUT)

    def serve() -> None:
        try:
            if server is None:
                server_sock.recv(4096)  # the client hello, then close without a word
                return
            if isinstance(server, bytes):
                server_sock.sendall(server)
                server_sock.recv(4096)
                return
            with server.wrap_socket(server_sock, server_side=True) as tls:
                cert = tls.getpeercert()
                outcome.server_saw_client = dict(cert) if cert else None
                tls.sendall(b"ok")
                while tls.recv(4096):  # until the client closes
                    pass
        except (OSError, ValueError) as exc:
            outcome.server_error = exc
        finally:
            server_sock.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        tls_client = client.wrap_socket(client_sock, server_hostname=host, session=session)
    except (OSError, ValueError) as exc:
        outcome.error = exc
        client_sock.close()
    else:
        with tls_client:
            try:
                if read:
                    outcome.data = tls_client.recv(2)
                outcome.version = tls_client.version()
                outcome.cipher = tls_client.cipher()
                outcome.alpn = tls_client.selected_alpn_protocol()
                outcome.reused = bool(tls_client.session_reused)
                outcome.peer_der = tls_client.getpeercert(binary_form=True)
                name, _, bits = outcome.cipher or ("", "", 0)
                outcome.info = SecurityInfo(
                    outcome.version or "",
                    name,
                    int(bits or 0),
                    outcome.alpn,
                    outcome.reused,
                    outcome.peer_der,
                )
                outcome.session = tls_client.session
            except OSError as exc:
                outcome.error = exc
    thread.join(EXCHANGE_TIMEOUT)
    return outcome
