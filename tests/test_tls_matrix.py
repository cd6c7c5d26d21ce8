"""The bad-certificate matrix: one table, measured against two real servers, documented from the run.

Each row of `ROWS` says what the server presents, what a default client
(`Option.SECURE`, trusting the test root) gets, and what the matching opt-in
(`Option.TRUSTEDSITE`, `Option.SECURE_FALLBACK`, a client certificate, or a
stricter setting as the failure twin of a success) gets instead. Every row
runs against a threaded Python ``ssl`` server and against ``openssl
s_server``, both built from the same `Setup`. An outcome is written as

* ``OK (TLSv1.3)``: connected, one line went through, this protocol;
* ``<class> <code>``: `connect` raised this exception class with this code
  (and left no descriptor open);
* ``<class> <code> on first read``: the handshake completed and the first
  read reported it (TLS 1.3 servers judge client certificates after the
  handshake).

``docs/tls-matrix.md`` is generated from the measured outcomes: the last test
renders it and fails with a diff when the committed file differs;
``INETKIT_UPDATE_DOCS=1`` rewrites the file instead.
"""

from __future__ import annotations

import difflib
import os
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

import certs
import pytest
from conftest import open_fds, require_program
from tls_servers import OpenSSLServer, PythonTLSServer, Servers, openssl_identity_args

import inetkit
from inetkit import InetError, Option, SecurityCredentials

#: Connect timeout per attempt; a loopback handshake takes milliseconds.
TIMEOUT = 5.0
#: The generated documentation page.
DOCS_FILE = Path(__file__).resolve().parent.parent / "docs" / "tls-matrix.md"
#: Set to 1 to rewrite DOCS_FILE from the measured outcomes instead of comparing.
UPDATE_ENV = "INETKIT_UPDATE_DOCS"

PEERS = ("python", "openssl")
PEER_NAMES = {"python": "Python ssl", "openssl": "openssl s_server"}

_OPENSSL_ONLY = {
    ssl.TLSVersion.TLSv1: "-tls1",
    ssl.TLSVersion.TLSv1_2: "-tls1_2",
    ssl.TLSVersion.TLSv1_3: "-tls1_3",
}

pytestmark = pytest.mark.usefixtures("fresh_tls_caches")


@dataclass(frozen=True)
class Setup:
    """A server configuration, turned into a Python server context or ``s_server`` flags."""

    identity: str  # key of certs.PKI.servers
    only: ssl.TLSVersion | None = None  # the one protocol version the server speaks
    seclevel: int | None = None  # OpenSSL security level (weak keys, TLS 1.0 need lower ones)
    client_auth: bool = False  # a client certificate from the test root is mandatory

    def context(self, pki: certs.PKI) -> ssl.SSLContext:
        return pki.servers[self.identity].context(
            client_ca=pki.ca_file if self.client_auth else None,
            min_version=self.only,
            max_version=self.only,
            seclevel=self.seclevel,
        )

    def flags(self, pki: certs.PKI | None = None) -> list[str]:
        """The ``s_server`` flags beyond the identity (``pki`` None: for display)."""
        flags: list[str] = []
        if self.only is not None:
            flags.append(_OPENSSL_ONLY[self.only])
        if self.seclevel is not None:
            flags += ["-cipher", f"DEFAULT@SECLEVEL={self.seclevel}"]
        if self.client_auth:
            ca = "ca.pem" if pki is None else str(pki.ca_file)
            flags += ["-Verify", "1", "-verify_return_error", "-CAfile", ca]
        return flags


@dataclass(frozen=True)
class Client:
    """How the client connects: always `Option.SECURE` and trusting the test root, plus this."""

    label: str
    options: Option = Option.NONE
    identity: str | None = None  # key of certs.PKI.clients: the client certificate offered
    max_version: ssl.TLSVersion | None = None

    def credentials(self, pki: certs.PKI) -> SecurityCredentials:
        store = pki.clients[self.identity].combined_pem if self.identity is not None else None
        return SecurityCredentials(ca_file=pki.ca_file, cert_store=store, max_version=self.max_version)


DEFAULT = Client("default")
TRUSTEDSITE = Client("Option.TRUSTEDSITE", options=Option.TRUSTEDSITE)
SECURE_FALLBACK = Client("Option.SECURE_FALLBACK", options=Option.SECURE_FALLBACK)
MAX_TLS12 = Client("max_version=TLSv1_2 (failure twin)", max_version=ssl.TLSVersion.TLSv1_2)
CLIENT_CERT = Client("client certificate from the test CA", identity="client")
FOREIGN_CERT = Client("client certificate from a foreign CA", identity="foreign")

OK13 = "OK (TLSv1.3)"
OK12 = "OK (TLSv1.2)"
OK10 = "OK (TLSv1)"
NONE = "—"


@dataclass(frozen=True)
class Row:
    """One row of the matrix: the server, the default client and outcome, the opt-in and its outcome."""

    name: str
    presents: str
    setup: Setup
    default: Client
    default_outcome: str
    opt_in: Client | None
    opt_in_outcome: str


CHAIN = "leaf for localhost, 127.0.0.1, ::1 with its intermediate"
ROWS: tuple[Row, ...] = (
    Row("valid chain", f"{CHAIN}", Setup("valid"), DEFAULT, OK13, None, NONE),
    Row(
        "expired",
        "the leaf expired yesterday",
        Setup("expired"),
        DEFAULT,
        "CertificateError CERTIFICATE_EXPIRED",
        TRUSTEDSITE,
        OK13,
    ),
    Row(
        "not yet valid",
        "the leaf is valid from tomorrow",
        Setup("not_yet_valid"),
        DEFAULT,
        "CertificateError CERTIFICATE_NOT_YET_VALID",
        TRUSTEDSITE,
        OK13,
    ),
    Row(
        "wrong host",
        "a leaf for wrong.example only",
        Setup("wrong_host"),
        DEFAULT,
        "CertificateError CERTIFICATE_NAME_MISMATCH",
        TRUSTEDSITE,
        OK13,
    ),
    Row(
        "self-signed",
        "a self-signed leaf for localhost",
        Setup("self_signed"),
        DEFAULT,
        "CertificateError CERTIFICATE_UNTRUSTED",
        TRUSTEDSITE,
        OK13,
    ),
    Row(
        "untrusted root",
        "a chain up to a root the client does not trust",
        Setup("untrusted_root"),
        DEFAULT,
        "CertificateError CERTIFICATE_UNTRUSTED",
        TRUSTEDSITE,
        OK13,
    ),
    Row(
        "missing intermediate",
        "the leaf without its intermediate",
        Setup("missing_intermediate"),
        DEFAULT,
        "CertificateError CERTIFICATE_UNTRUSTED",
        TRUSTEDSITE,
        OK13,
    ),
    Row(
        "weak key",
        "an RSA-1024 leaf",
        Setup("weak_rsa", seclevel=1),
        DEFAULT,
        "CertificateError CERTIFICATE_UNTRUSTED",
        SECURE_FALLBACK,
        OK13,
    ),
    Row(
        "wrong purpose",
        "a leaf for TLS clients only (extended key usage clientAuth)",
        Setup("wrong_purpose"),
        DEFAULT,
        "CertificateError CERTIFICATE_UNTRUSTED",
        TRUSTEDSITE,
        OK13,
    ),
    Row(
        "TLS 1.0 only",
        f"{CHAIN}; TLS 1.0 only",
        Setup("valid", only=ssl.TLSVersion.TLSv1, seclevel=0),
        DEFAULT,
        "SecurityError PROTOCOL_VERSION",
        SECURE_FALLBACK,
        OK10,
    ),
    Row(
        "TLS 1.3 only",
        f"{CHAIN}; TLS 1.3 only",
        Setup("valid", only=ssl.TLSVersion.TLSv1_3),
        DEFAULT,
        OK13,
        MAX_TLS12,
        "SecurityError PROTOCOL_VERSION",
    ),
    Row(
        "client certificate required, TLS 1.2",
        f"{CHAIN}; TLS 1.2; requires a client certificate from the test CA",
        Setup("valid", only=ssl.TLSVersion.TLSv1_2, client_auth=True),
        DEFAULT,
        "SecurityError HANDSHAKE_FAILED",
        CLIENT_CERT,
        OK12,
    ),
    Row(
        "client certificate required, TLS 1.3",
        f"{CHAIN}; TLS 1.3; requires a client certificate from the test CA",
        Setup("valid", only=ssl.TLSVersion.TLSv1_3, client_auth=True),
        DEFAULT,
        "SecurityError CLIENT_CERTIFICATE_REQUIRED on first read",
        CLIENT_CERT,
        OK13,
    ),
    Row(
        "foreign client certificate, TLS 1.2",
        f"{CHAIN}; TLS 1.2; requires a client certificate from the test CA",
        Setup("valid", only=ssl.TLSVersion.TLSv1_2, client_auth=True),
        FOREIGN_CERT,
        "SecurityError CLIENT_CERTIFICATE_REJECTED",
        CLIENT_CERT,
        OK12,
    ),
    Row(
        "foreign client certificate, TLS 1.3",
        f"{CHAIN}; TLS 1.3; requires a client certificate from the test CA",
        Setup("valid", only=ssl.TLSVersion.TLSv1_3, client_auth=True),
        FOREIGN_CERT,
        "SecurityError CLIENT_CERTIFICATE_REJECTED on first read",
        CLIENT_CERT,
        OK13,
    ),
)

#: Outcomes measured in this run: (row name, peer) -> (default outcome, opt-in outcome).
MEASURED: dict[tuple[str, str], tuple[str, str]] = {}


def start(peer: str, setup: Setup, pki: certs.PKI, servers: Servers) -> PythonTLSServer | OpenSSLServer:
    if peer == "python":
        return servers.python(setup.context(pki))
    program = require_program("openssl")
    identity = openssl_identity_args(pki.servers[setup.identity], pki)
    return servers.openssl(program, [*identity, *setup.flags(pki)])


def attempt(server: PythonTLSServer | OpenSSLServer, client: Client, pki: certs.PKI) -> str:
    """Connect as ``client``, send one line, and say what happened (see the module docstring)."""
    credentials = client.credentials(pki)
    if isinstance(server, PythonTLSServer):
        server.wait_idle()  # the previous connection's server end may still be closing
    before = open_fds()
    try:
        conn = inetkit.connect(
            "localhost",
            server.port,
            options=Option.SECURE | client.options,
            credentials=credentials,
            timeout=TIMEOUT,
        )
    except InetError as exc:
        if isinstance(server, PythonTLSServer):
            server.wait_idle()  # its end of the connection lives in this process too
        assert open_fds() == before, f"a failed connect left descriptors open: {exc}"
        return f"{type(exc).__name__} {exc.code.name}"
    with conn:
        try:
            conn.write(b"ping\n")
            reply = conn.read_line()
        except InetError as exc:
            return f"{type(exc).__name__} {exc.code.name} on first read"
        assert reply == b"gnip\n"
        info = conn.security_info
        assert info is not None
        return f"OK ({info.protocol})"


def measure(row: Row, peer: str, pki: certs.PKI, servers: Servers) -> tuple[str, str]:
    server = start(peer, row.setup, pki, servers)
    default = attempt(server, row.default, pki)
    opt_in = NONE if row.opt_in is None else attempt(server, row.opt_in, pki)
    MEASURED[row.name, peer] = (default, opt_in)
    return default, opt_in


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("row", ROWS, ids=[re.sub(r"[^a-z0-9]+", "_", row.name.lower()) for row in ROWS])
def test_matrix(row: Row, peer: str, pki: certs.PKI, servers: Servers) -> None:
    default, opt_in = measure(row, peer, pki, servers)
    assert (default, opt_in) == (row.default_outcome, row.opt_in_outcome)


# -- the generated documentation -------------------------------------------------------------

INTRO = """\
# TLS outcome matrix

<!-- Generated by tests/test_tls_matrix.py from a test run; do not edit by hand. -->

What `inetkit.connect(..., options=Option.SECURE)` does when the server
presents a bad certificate or a legacy setup, and which opt-in changes the
outcome. Every row was measured on loopback against two real servers, a
threaded Python `ssl` server and `openssl s_server`, with certificates made at
test time (a root CA and an intermediate; the client trusts the root through
`SecurityCredentials(ca_file=...)`). Both servers gave the outcomes below.

This file is generated: `tests/test_tls_matrix.py` measures every row and
fails when this page differs from what it measured. After a deliberate
change, regenerate it with

```sh
INETKIT_UPDATE_DOCS=1 python -m pytest tests/test_tls_matrix.py
```

Outcomes: `OK (TLSv1.3)` means the connection was made and a line went
through with that protocol version; otherwise the exception class and its
`ErrorCode`, raised by `connect` (which then leaves no socket open), or by the
first read when the server's verdict arrives after the handshake (TLS 1.3
servers judge client certificates after it). `CertificateError` is a
`SecurityError` and an `ssl.SSLCertVerificationError`; `SecurityError` is an
`ssl.SSLError`. A TLS 1.2 server that requires a client certificate aborts
with a bare `handshake_failure` alert, hence `HANDSHAKE_FAILED`; its message
says that a client certificate may be missing.

The default client uses `Option.SECURE` and trusts the test root; the opt-in
column lists what is added to it.

"""


def _cell(row: Row, index: int) -> str:
    values = {peer: MEASURED[row.name, peer][index] for peer in PEERS}
    if len(set(values.values())) == 1:
        return next(iter(values.values()))
    return "; ".join(f"{PEER_NAMES[peer]}: {value}" for peer, value in values.items())


def render() -> str:
    lines = [
        "| row | server presents | `s_server` flags | client | default outcome | opt-in | opt-in outcome |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        flags = " ".join(row.setup.flags())
        lines.append(
            f"| {row.name} | {row.presents} | {f'`{flags}`' if flags else NONE} | {row.default.label} "
            f"| {_cell(row, 0)} | {row.opt_in.label if row.opt_in else NONE} | {_cell(row, 1)} |"
        )
    return INTRO + "\n".join(lines) + "\n"


def test_docs_match_the_measured_matrix(pki: certs.PKI, servers: Servers) -> None:
    """Runs last in this module; measures whatever rows were not run (``-k``, a single test)."""
    require_program("openssl")
    for row in ROWS:
        for peer in PEERS:
            if (row.name, peer) not in MEASURED:
                measure(row, peer, pki, servers)
                servers.close()  # one server at a time, as in the row tests
    text = render()
    if os.environ.get(UPDATE_ENV) == "1":
        DOCS_FILE.write_text(text, encoding="utf-8")
        return
    committed = DOCS_FILE.read_text(encoding="utf-8") if DOCS_FILE.exists() else ""
    if committed != text:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=str(DOCS_FILE),
                tofile="measured",
            )
        )
        pytest.fail(
            f"{DOCS_FILE.name} differs from the measured outcomes; rerun with {UPDATE_ENV}=1 "
            f"to rewrite it after a deliberate change:\n{diff}"
        )
