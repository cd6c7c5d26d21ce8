"""Every STARTTLS dialog against a real server on loopback, then one real exchange over TLS.

The servers are other people's: Exim (SMTP, with GnuTLS), dovecot (IMAP,
POP3), pyftpdlib (FTP), PostgreSQL, slapd (LDAP), Prosody (XMPP); SMTP
against aiosmtpd is in test_starttls.py. Each runs twice, from the same configuration with and
without TLS: the upgrade must work against the first and be refused
(``STARTTLS_REFUSED``, the handle closed, nothing sent in plaintext after it)
against the second. See tests/peers.py for how each is started and stopped.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import certs
import peers
import pytest
from tls_servers import open_sockets, sockets_left_open

import inetkit
import inetkit.starttls
from inetkit import Connection, ErrorCode, SecurityCredentials, SecurityError

#: Connect timeout: dialog and handshake take milliseconds on loopback; the margin is for a busy machine.
TIMEOUT = 10.0
#: Most lines the helpers read for one reply (real replies have a few).
MAX_LINES = 64
#: Most bytes the XMPP helper reads for one stream header and features (Prosody's are under 1 KiB).
MAX_XMPP_BYTES = 65536

pytestmark = pytest.mark.usefixtures("fresh_tls_caches")


def trust(pki: certs.PKI) -> SecurityCredentials:
    return SecurityCredentials(ca_data=pki.root.cert_pem)


def is_secure(conn: Connection) -> bool:
    """``conn.is_secure`` read through a call, so type checkers do not pin it across the upgrade."""
    return conn.is_secure


def line(conn: Connection) -> str:
    raw = conn.read_line()
    assert raw, "the server closed the connection"
    return raw.decode("utf-8", "replace").rstrip("\r\n")


def refused(name: str, port: int, pki: certs.PKI) -> SecurityError:
    """Connect with ``starttls=name`` and return the error; no socket may stay open."""
    before = open_sockets()
    with pytest.raises(SecurityError) as info:
        inetkit.connect("localhost", port, starttls=name, credentials=trust(pki), timeout=TIMEOUT)
    assert sockets_left_open(before) == set()
    assert info.value.code is ErrorCode.STARTTLS_REFUSED
    assert f"STARTTLS ({name})" in str(info.value)
    assert f"port {port}" in str(info.value)
    assert "was not upgraded and is closed" in str(info.value)
    assert info.value.trace is not None and info.value.trace.tls_handshake is None
    return info.value


def check_tls(conn: Connection) -> None:
    assert conn.is_secure
    info = conn.security_info
    assert info is not None and info.peer_certificate is not None
    assert info.peer_certificate.common_name == "localhost"
    assert conn.trace.starttls is not None and conn.trace.tls_handshake is not None


# -- SMTP: Exim -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exim_servers(pki: certs.PKI) -> Iterator[tuple[peers.Peer, peers.Peer]]:
    """(Exim offering STARTTLS, Exim without TLS); Exim's TLS is GnuTLS."""
    with_tls, plain = peers.start((peers.exim, (pki.servers["valid"],)), (peers.exim, (None,)))
    try:
        yield with_tls, plain
    finally:
        with_tls.stop()
        plain.stop()


def smtp_reply(conn: Connection) -> str:
    """The last line of one SMTP reply."""
    for _ in range(MAX_LINES):
        reply = line(conn)
        if reply[3:4] != "-":
            return reply
    raise AssertionError("an SMTP reply without end")


def test_smtp_starttls_with_exim(pki: certs.PKI, exim_servers: tuple[peers.Peer, peers.Peer]) -> None:
    port = exim_servers[0].port
    with inetkit.connect("localhost", port, timeout=TIMEOUT) as conn:
        keywords = inetkit.starttls.smtp(conn, trust(pki), client_name="client.example")
        assert conn.is_secure
        info = conn.security_info
        assert info is not None and info.peer_certificate is not None
        assert info.peer_certificate.common_name == "localhost"
        assert "STARTTLS" not in keywords and "8BITMIME" in keywords
        extensions = conn.starttls_extensions
        assert extensions is not None and "8BITMIME" in extensions
        assert any(line.startswith("SIZE ") for line in extensions)  # Exim's message_size_limit
        conn.write_line("MAIL FROM:<alice@example.org>")
        assert smtp_reply(conn).startswith("250")
        conn.write_line("RCPT TO:<bob@example.net>")
        assert smtp_reply(conn).startswith("550")  # this Exim takes no mail: its ACL denies every recipient
        conn.write_line("QUIT")
        assert smtp_reply(conn).startswith("221")


def test_smtp_refused_by_exim_without_tls(
    pki: certs.PKI, exim_servers: tuple[peers.Peer, peers.Peer]
) -> None:
    error = refused("smtp", exim_servers[1].port, pki)
    assert "does not offer STARTTLS" in str(error)


# -- IMAP and POP3: dovecot ------------------------------------------------------------------


@pytest.fixture(scope="module")
def dovecot(pki: certs.PKI) -> Iterator[tuple[peers.Peer, peers.Peer]]:
    """(dovecot with STARTTLS, the same without TLS), each with IMAP and POP3."""
    with_tls, plain = peers.start((peers.dovecot, (pki.servers["valid"],)), (peers.dovecot, (None,)))
    try:
        for peer in (with_tls, plain):
            peers.wait_for_imap_greeting(peer.ports["imap"])
        yield with_tls, plain
    finally:
        with_tls.stop()
        plain.stop()


def imap_command(conn: Connection, tag: str, command: str) -> tuple[str, list[str]]:
    conn.write_line(f"{tag} {command}")
    untagged = []
    for _ in range(MAX_LINES):
        reply = line(conn)
        if reply.startswith(f"{tag} "):
            return reply[len(tag) + 1 :], untagged
        untagged.append(reply)
    raise AssertionError(f"no tagged reply to {command!r}")


def test_imap_starttls_then_login(pki: certs.PKI, dovecot: tuple[peers.Peer, peers.Peer]) -> None:
    port = dovecot[0].ports["imap"]
    with inetkit.connect("localhost", port, starttls="imap", credentials=trust(pki), timeout=TIMEOUT) as conn:
        check_tls(conn)
        status, untagged = imap_command(conn, "b1", "CAPABILITY")
        assert status.startswith("OK")
        assert "STARTTLS" not in " ".join(untagged)  # not offered again over TLS
        status, _ = imap_command(conn, "b2", f"LOGIN {peers.DOVECOT_USER} {peers.DOVECOT_PASSWORD}")
        assert status.startswith("OK"), status
        assert imap_command(conn, "b3", "SELECT INBOX")[0].startswith("OK")  # a mail process runs
        assert imap_command(conn, "b4", "LOGOUT")[0].startswith("OK")


def test_imap_function_on_a_plain_handle(pki: certs.PKI, dovecot: tuple[peers.Peer, peers.Peer]) -> None:
    with inetkit.connect("127.0.0.1", dovecot[0].ports["imap"], timeout=TIMEOUT) as conn:
        assert not is_secure(conn)
        inetkit.starttls.imap(conn, trust(pki))  # 127.0.0.1 is checked against the IP SAN
        assert conn.is_secure
        assert imap_command(conn, "b1", "NOOP")[0].startswith("OK")


def test_imap_refused_without_tls(pki: certs.PKI, dovecot: tuple[peers.Peer, peers.Peer]) -> None:
    error = refused("imap", dovecot[1].ports["imap"], pki)
    assert "does not list STARTTLS" in str(error)


def test_pop3_starttls_then_login(pki: certs.PKI, dovecot: tuple[peers.Peer, peers.Peer]) -> None:
    port = dovecot[0].ports["pop3"]
    with inetkit.connect("localhost", port, starttls="pop3", credentials=trust(pki), timeout=TIMEOUT) as conn:
        check_tls(conn)
        conn.write_line(f"USER {peers.DOVECOT_USER}")
        assert line(conn).startswith("+OK")
        conn.write_line(f"PASS {peers.DOVECOT_PASSWORD}")
        assert line(conn).startswith("+OK")
        conn.write_line("STAT")
        assert line(conn) == "+OK 0 0"
        conn.write_line("QUIT")
        assert line(conn).startswith("+OK")


def test_pop3_refused_without_tls(pki: certs.PKI, dovecot: tuple[peers.Peer, peers.Peer]) -> None:
    error = refused("pop3", dovecot[1].ports["pop3"], pki)
    assert "does not list STLS" in str(error)


# -- FTP: pyftpdlib -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ftp_servers(pki: certs.PKI) -> Iterator[tuple[peers.Peer, peers.Peer]]:
    """(pyftpdlib with AUTH TLS, the same without TLS)."""
    with_tls, plain = peers.start((peers.pyftpdlib, (pki.servers["valid"],)), (peers.pyftpdlib, (None,)))
    try:
        yield with_tls, plain
    finally:
        with_tls.stop()
        plain.stop()


def ftp_reply(conn: Connection) -> str:
    first = line(conn)
    if first[3:4] == "-":
        for _ in range(MAX_LINES):
            if line(conn).startswith(first[:3] + " "):
                break
    return first


def test_ftp_auth_tls_then_login(pki: certs.PKI, ftp_servers: tuple[peers.Peer, peers.Peer]) -> None:
    port = ftp_servers[0].port
    with inetkit.connect("localhost", port, starttls="ftp", credentials=trust(pki), timeout=TIMEOUT) as conn:
        check_tls(conn)
        # The dialog has sent PBSZ 0 and PROT P; the server now takes a login over TLS.
        conn.write_line(f"USER {peers.FTP_USER}")
        assert ftp_reply(conn).startswith("331")
        conn.write_line(f"PASS {peers.FTP_PASSWORD}")
        assert ftp_reply(conn).startswith("230")
        conn.write_line("PWD")
        assert ftp_reply(conn).startswith('257 "/"')
        conn.write_line("QUIT")
        assert ftp_reply(conn).startswith("221")


def test_ftp_refused_without_tls(pki: certs.PKI, ftp_servers: tuple[peers.Peer, peers.Peer]) -> None:
    error = refused("ftp", ftp_servers[1].port, pki)
    assert "AUTH TLS answered 500" in str(error)


# -- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_servers(pki: certs.PKI) -> Iterator[tuple[peers.Peer, peers.Peer]]:
    """(PostgreSQL with ssl=on, the same cluster with ssl=off)."""
    folder = peers.owned_folder("pgtemplate", "postgres")
    try:
        template = peers.postgres_template(folder)
        with_tls, plain = peers.start(
            (peers.postgres, (template, pki.servers["valid"])), (peers.postgres, (template, None))
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # the servers run on their own copies
    try:
        yield with_tls, plain
    finally:
        with_tls.stop()
        plain.stop()


def pg_message(conn: Connection) -> tuple[bytes, bytes]:
    """One backend message: (type byte, body)."""
    kind = conn.read_exactly(1)
    (length,) = struct.unpack("!I", conn.read_exactly(4))
    return kind, conn.read_exactly(length - 4)


def test_postgres_sslrequest_then_startup_and_query(
    pki: certs.PKI, postgres_servers: tuple[peers.Peer, peers.Peer]
) -> None:
    port = postgres_servers[0].port
    with inetkit.connect(
        "localhost", port, starttls="postgres", credentials=trust(pki), timeout=TIMEOUT
    ) as conn:
        check_tls(conn)
        conn.write(peers.startup_message("postgres", "postgres"))
        kind, body = pg_message(conn)
        assert kind == b"R"  # an authentication request (trust: AuthenticationOk)
        assert body == struct.pack("!I", 0)
        for _ in range(MAX_LINES):
            kind, body = pg_message(conn)
            if kind == b"Z":  # ReadyForQuery
                break
        else:
            raise AssertionError("no ReadyForQuery")
        query = b"SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()\0"
        conn.write(b"Q" + struct.pack("!I", len(query) + 4) + query)
        rows = []
        for _ in range(MAX_LINES):
            kind, body = pg_message(conn)
            if kind == b"D":
                rows.append(body)
            if kind == b"Z":
                break
        # One row, one column of 1 byte: "t", the server saw this session encrypted.
        assert rows == [struct.pack("!HI", 1, 1) + b"t"]
        conn.write(b"X" + struct.pack("!I", 4))


def test_postgres_refused_without_ssl(
    pki: certs.PKI, postgres_servers: tuple[peers.Peer, peers.Peer]
) -> None:
    error = refused("postgres", postgres_servers[1].port, pki)
    assert "answered 'N'" in str(error)


# -- LDAP: slapd --------------------------------------------------------------------------------

#: An anonymous simple bind: LDAPMessage { messageID 2, bindRequest { version 3, name "", simple "" } }.
ANONYMOUS_BIND = bytes.fromhex("300c020102600702010304008000")


@pytest.fixture(scope="module")
def slapd_servers(pki: certs.PKI) -> Iterator[tuple[peers.Peer, peers.Peer]]:
    """(slapd with a TLS certificate, slapd without)."""
    with_tls, plain = peers.start((peers.slapd, (pki.servers["valid"],)), (peers.slapd, (None,)))
    try:
        yield with_tls, plain
    finally:
        with_tls.stop()
        plain.stop()


def test_ldap_starttls_then_anonymous_bind(
    pki: certs.PKI, slapd_servers: tuple[peers.Peer, peers.Peer]
) -> None:
    port = slapd_servers[0].port
    with inetkit.connect("localhost", port, starttls="ldap", credentials=trust(pki), timeout=TIMEOUT) as conn:
        check_tls(conn)
        conn.write(ANONYMOUS_BIND)
        header = conn.read_exactly(2)
        assert header[0] == 0x30 and header[1] < 0x80
        body = conn.read_exactly(header[1])
        # messageID 2, bindResponse [APPLICATION 1], resultCode 0 (success)
        assert body[:3] == b"\x02\x01\x02"
        assert body[3] == 0x61
        assert body[5:8] == b"\x0a\x01\x00"


def test_ldap_refused_without_tls(pki: certs.PKI, slapd_servers: tuple[peers.Peer, peers.Peer]) -> None:
    error = refused("ldap", slapd_servers[1].port, pki)
    assert "resultCode 2 (protocolError)" in str(error)
    assert "unsupported extended operation" in str(error)


# -- XMPP: Prosody ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prosody_servers(pki: certs.PKI) -> Iterator[tuple[peers.Peer, peers.Peer]]:
    """(Prosody requiring STARTTLS, Prosody without mod_tls)."""
    with_tls, plain = peers.start((peers.prosody, (pki.servers["valid"],)), (peers.prosody, (None,)))
    try:
        yield with_tls, plain
    finally:
        with_tls.stop()
        plain.stop()


def read_features(conn: Connection) -> bytes:
    """Read until the end of ``<stream:features>`` (bounded)."""
    data = b""
    while b"</stream:features>" not in data:
        chunk = conn.read(4096)
        assert chunk, f"the stream ended: {data!r}"
        data += chunk
        assert len(data) < MAX_XMPP_BYTES
    return data


def test_xmpp_starttls_then_new_stream(
    pki: certs.PKI, prosody_servers: tuple[peers.Peer, peers.Peer]
) -> None:
    from inetkit._core.dialogs.xmpp import stream_header

    port = prosody_servers[0].port
    with inetkit.connect("localhost", port, starttls="xmpp", credentials=trust(pki), timeout=TIMEOUT) as conn:
        check_tls(conn)
        conn.write(stream_header("localhost"))
        features = read_features(conn)
        assert b"from='localhost'" in features
        assert b"urn:ietf:params:xml:ns:xmpp-sasl" in features  # SASL is offered over TLS
        assert b"PLAIN" in features
        assert b"xmpp-tls" not in features  # and STARTTLS no more


def test_xmpp_refused_without_tls(pki: certs.PKI, prosody_servers: tuple[peers.Peer, peers.Peer]) -> None:
    error = refused("xmpp", prosody_servers[1].port, pki)
    assert "does not offer starttls" in str(error)
    assert "mechanisms" in str(error)


@pytest.mark.parametrize(
    ("name", "found"),
    [
        ("Dovecot", peers.dovecot_version),
        ("PostgreSQL", peers.postgres_version),
        ("slapd", peers.slapd_version),
        ("Prosody", peers.prosody_version),
        ("pyftpdlib", peers.pyftpdlib_version),
        ("Exim", peers.exim_version),
    ],
)
def test_docs_name_the_versions_tested_here(name: str, found: Callable[[], str]) -> None:
    """docs/starttls.md names each server's version; a new major or minor release shows up here."""
    match = re.search(r"(\d+)\.(\d+)", found().split(")", 1)[-1] if name == "PostgreSQL" else found())
    assert match is not None, found()
    docs = (Path(__file__).resolve().parent.parent / "docs" / "starttls.md").read_text()
    assert f"{name} {match[1]}.{match[2]}" in docs


#: Seconds the command-line probe may take (a cold interpreter start included).
CLI_LIMIT = 60


@pytest.mark.parametrize("with_tls", [True, False])
def test_cli_probe_with_starttls_ldap(
    pki: certs.PKI, slapd_servers: tuple[peers.Peer, peers.Peer], with_tls: bool
) -> None:
    """``inetkit probe --starttls ldap`` as a user runs it: the TLS details, or the refusal and exit 1."""
    port = (slapd_servers[0] if with_tls else slapd_servers[1]).port
    command = [sys.executable, "-m", "inetkit", "probe", "localhost", str(port), "--starttls", "ldap"]
    out = subprocess.run(
        [*command, "--ca-file", str(pki.ca_file)],
        capture_output=True,
        text=True,
        timeout=CLI_LIMIT,
        env=dict(os.environ, PYTHONWARNINGS="error"),
        check=False,
    )
    if with_tls:
        assert out.returncode == 0, out.stderr
        assert "starttls dialog:" in out.stdout
        assert "TLSv1.3" in out.stdout
        assert "server certificate: CN=localhost" in out.stdout
    else:
        assert out.returncode == 1
        assert "STARTTLS (ldap)" in out.stderr
        assert "resultCode 2 (protocolError): 'unsupported extended operation'" in out.stderr
