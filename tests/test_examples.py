"""Every script in examples/ runs as a user would run it and exits 0.

Most examples bring their own loopback server. The STARTTLS examples talk
to a server the user names, so the tests start real ones (aiosmtpd in this
process, dovecot through `peers`), run each example against the server
with TLS, and against the same server without TLS, where the example must
exit 1 naming ``STARTTLS_REFUSED`` and the secret must never have been sent.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import certs
import peers
import pytest
from conftest import free_port, require_module

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: Seconds one example may take (each needs well under one).
EXAMPLE_LIMIT = 60

#: What each example must print (one line each at least).
EXPECTED = {
    "echo_client.py": ["connected to", "echoed: héllo wörld", "echoed: bye"],
    "udp_client.py": ["sent b'one', received b'one'", "sent b'three', received b'three'"],
    "worker_thread.py": [
        "worker before attach_thread: NOT_HANDLE_OWNER",
        "worker attached; previous owner was thread",
        "worker echoed: from the worker",
        "main after the hand-over: NOT_HANDLE_OWNER",
    ],
    "free_threaded.py": ["owner: None (free-threaded)", "reader got 200 of 200 lines, in order: True"],
    "compat_port.py": [
        "InetConnect returned handle 1",
        "InetReadLine returned 'HELLO'",
        "refused connect: handle -1, last error 301 (CONNECTION_REFUSED)",
    ],
    "tls_client.py": ["TLSv1.3", "server certificate: CN=127.0.0.1", "echoed: hello over TLS"],
    "probe_report.py": [
        "resolved 1 address(es) from literal",
        "connected, ",
        "TLSv1.3, ",
        "ALPN: http/1.1",
        "session reused: no",
        "session reused: yes",
        "certificate: CN=127.0.0.1",
        "issued by: CN=probe example CA",
        "names: IP:127.0.0.1",
        "(29 days left)",
        "sha256: ",
    ],
    "aio_many.py": [
        "500 connections open in",
        "500 of 500 echoed their line",
        "refused as expected: CONNECTION_REFUSED (InetConnectionRefusedError), 1 attempt(s)",
    ],
    "aio_starttls.py": ["secure: TLSv1.3", "STARTTLS dialog ", "C: NOOP", "S: 250", "C: QUIT", "S: 221"],
    "through_a_proxy.py": [
        "echoed: hello through the proxy",
        "host_name, port: localhost",
        "(the proxy: the socket's real peer)",
        "  proxy: http://127.0.0.1:",
        "wrong password: PROXY_AUTH_REQUIRED",
        "denied port: PROXY_REFUSED",
        "'HTTP/1.1 403 Forbidden'",
        "async echoed: hello from asyncio",
        "async wrong password: PROXY_AUTH_REQUIRED",
    ],
    "client_certificate_p12.py": [
        "with the PKCS#12 certificate: the server said 'hello example client'",
        "without a client certificate: CLIENT_CERTIFICATE_REQUIRED",
        "with a wrong password: INVALID_CREDENTIALS",
    ],
}


#: Examples that need a server given on the command line; the tests below start one for each.
WITH_SERVER = ["imap_login.py", "smtp_submission.py"]


def test_every_example_is_checked() -> None:
    assert sorted(path.name for path in EXAMPLES.glob("*.py")) == sorted([*EXPECTED, *WITH_SERVER])


def run(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``examples/name`` with ``args`` as a user would, warnings as errors."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=EXAMPLE_LIMIT,
        env=dict(os.environ, PYTHONWARNINGS="error", PYTHONIOENCODING="utf-8", **(env or {})),
        cwd=EXAMPLES,
        check=False,
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str) -> None:
    result = run(name)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    assert result.stderr == ""
    for line in EXPECTED[name]:
        assert line in result.stdout, f"{name}: {line!r} not in\n{result.stdout}"


# -- smtp_submission.py against aiosmtpd ----------------------------------------------------

#: Seconds aiosmtpd may take to start (it starts in well under one).
SMTP_READY_TIMEOUT = 10.0
#: Tries to start aiosmtpd on a free port (another process may take the port meanwhile).
SMTP_START_TRIES = 3
SMTP_USER = "alice"
SMTP_PASSWORD = "submission secret"


@dataclass
class Mailbox:
    """An aiosmtpd handler and authenticator that keeps every message and every login attempt."""

    messages: list[tuple[str | None, list[str], bytes, Any]] = field(default_factory=list)
    logins: list[tuple[bytes, bool]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        cipher = (session.ssl or {}).get("cipher")
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content, cipher))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult

        good = data.login == SMTP_USER.encode() and data.password == SMTP_PASSWORD.encode()
        self.logins.append((data.login, session.ssl is not None))
        return AuthResult(success=good)


@pytest.fixture
def aiosmtpd_server() -> Iterator[Any]:
    """``start(tls)``: aiosmtpd on 127.0.0.1; with a ``tls`` context it requires STARTTLS and AUTH.

    With ``tls`` None it offers no STARTTLS (and, by aiosmtpd's default, no AUTH in plaintext).
    """
    require_module("aiosmtpd")
    from aiosmtpd.controller import Controller

    started: list[Any] = []

    def start(tls: Any) -> tuple[int, Mailbox]:
        mailbox = Mailbox()
        for attempt in range(SMTP_START_TRIES):
            controller = Controller(
                mailbox,
                hostname="127.0.0.1",
                port=free_port(),
                ready_timeout=SMTP_READY_TIMEOUT,
                tls_context=tls,
                require_starttls=tls is not None,
                authenticator=mailbox.authenticate,
                auth_required=tls is not None,
            )
            try:
                controller.start()
            except OSError:
                controller.stop(no_assert=True)
                if attempt == SMTP_START_TRIES - 1:
                    raise
                continue
            started.append(controller)
            return controller.port, mailbox
        raise AssertionError("unreachable")  # pragma: no cover

    yield start
    for controller in started:
        controller.stop()


def smtp_args(port: int, pki: certs.PKI) -> list[str]:
    return [
        "localhost",
        str(port),
        "--from",
        "alice@example.org",
        "--to",
        "bob@example.net",
        "--to",
        "carol@example.net",
        "--subject",
        "STARTTLS example",
        "--body",
        ".a line that starts with a dot\nthe end\n",
        "--ca-file",
        str(pki.ca_file),
        "--user",
        SMTP_USER,
    ]


def test_smtp_submission_example_over_starttls(pki: certs.PKI, aiosmtpd_server: Any) -> None:
    port, mailbox = aiosmtpd_server(pki.servers["valid"].context())
    result = run("smtp_submission.py", *smtp_args(port, pki), env={"SMTP_PASSWORD": SMTP_PASSWORD})
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert result.stderr == ""
    for line in [
        f"connected to localhost port {port} over TLSv1.3",
        "server certificate: CN=localhost",
        "C: AUTH PLAIN <credentials not shown>",
        "S: 235 ",
        "C: MAIL FROM:<alice@example.org>",
        "C: RCPT TO:<carol@example.net>",
        "S: 354 ",
        "S: 221 ",
        "message accepted",
    ]:
        assert line in result.stdout, f"{line!r} not in\n{result.stdout}"
    assert SMTP_PASSWORD not in result.stdout
    assert mailbox.logins == [(SMTP_USER.encode(), True)]  # one login, over TLS
    ((sender, recipients, content, cipher),) = mailbox.messages
    assert (sender, recipients) == ("alice@example.org", ["bob@example.net", "carol@example.net"])
    assert cipher is not None  # the server received the message over TLS
    text = content.replace(b"\r\n", b"\n")
    assert b"Subject: STARTTLS example\n" in text
    assert b"\n\n.a line that starts with a dot\nthe end\n" in text  # dot-stuffing undone by the server


def test_smtp_submission_example_without_auth_is_refused_and_quits(
    pki: certs.PKI, aiosmtpd_server: Any
) -> None:
    """This server takes mail only after AUTH: the refusal is printed, QUIT still sent, exit 1."""
    port, mailbox = aiosmtpd_server(pki.servers["valid"].context())
    args = smtp_args(port, pki)
    result = run("smtp_submission.py", *args[: args.index("--user")])
    assert result.returncode == 1, f"{result.stdout}\n{result.stderr}"
    assert "SMTP failure: MAIL answered 530" in result.stderr
    assert "C: QUIT\nS: 221 " in result.stdout
    assert mailbox.logins == [] and mailbox.messages == []


def test_smtp_submission_example_refused_without_tls(pki: certs.PKI, aiosmtpd_server: Any) -> None:
    port, mailbox = aiosmtpd_server(None)
    result = run("smtp_submission.py", *smtp_args(port, pki), env={"SMTP_PASSWORD": SMTP_PASSWORD})
    assert result.returncode == 1, f"{result.stdout}\n{result.stderr}"
    assert "STARTTLS_REFUSED: STARTTLS (smtp) with localhost" in result.stderr
    assert "does not offer STARTTLS" in result.stderr
    assert SMTP_PASSWORD not in result.stdout + result.stderr
    assert mailbox.logins == [] and mailbox.messages == []  # nothing went out in plaintext


def test_aio_starttls_example_against_aiosmtpd(pki: certs.PKI, aiosmtpd_server: Any) -> None:
    """With STARTTLS offered: secure, NOOP and QUIT answered; without it: refused, exit 1, nothing sent."""
    port, mailbox = aiosmtpd_server(pki.servers["valid"].context())
    result = run("aio_starttls.py", "localhost", str(port), "--ca-file", str(pki.ca_file))
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    for line in ["secure: TLSv1.3", "C: NOOP", "S: 250", "S: 221"]:
        assert line in result.stdout, f"{line!r} not in\n{result.stdout}"
    port, mailbox = aiosmtpd_server(None)
    result = run("aio_starttls.py", "localhost", str(port), "--ca-file", str(pki.ca_file))
    assert result.returncode == 1, f"{result.stdout}\n{result.stderr}"
    assert f"connect failed: STARTTLS_REFUSED: STARTTLS (smtp) with localhost port {port}" in result.stdout
    assert "NOOP" not in result.stdout
    assert mailbox.messages == []


# -- imap_login.py against dovecot ----------------------------------------------------------

#: Seconds dovecot may take to log the login after the client saw the answer.
DOVECOT_LOG_WAIT = 5.0
#: Pause between looks at dovecot's log.
DOVECOT_LOG_POLL = 0.05


@pytest.fixture(scope="module")
def dovecot(pki: certs.PKI) -> Iterator[tuple[peers.Peer, peers.Peer]]:
    """(dovecot with STARTTLS, the same without TLS)."""
    with_tls, plain = peers.start((peers.dovecot, (pki.servers["valid"],)), (peers.dovecot, (None,)))
    try:
        for peer in (with_tls, plain):
            peers.wait_for_imap_greeting(peer.ports["imap"])
        yield with_tls, plain
    finally:
        with_tls.stop()
        plain.stop()


def imap_args(port: int, pki: certs.PKI) -> list[str]:
    return ["localhost", str(port), "--user", peers.DOVECOT_USER, "--ca-file", str(pki.ca_file)]


def logged_in_over_tls(peer: peers.Peer) -> bool:
    """Whether dovecot logged a successful login of our user on a TLS connection (bounded wait)."""
    deadline = time.monotonic() + DOVECOT_LOG_WAIT
    while True:
        for line in peer.log().splitlines():
            if f"Login: user=<{peers.DOVECOT_USER}>" in line and ", TLS" in line:
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(DOVECOT_LOG_POLL)


def test_imap_login_example_over_starttls(pki: certs.PKI, dovecot: tuple[peers.Peer, peers.Peer]) -> None:
    port = dovecot[0].ports["imap"]
    result = run("imap_login.py", *imap_args(port, pki), env={"IMAP_PASSWORD": peers.DOVECOT_PASSWORD})
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert result.stderr == ""
    for line in [
        f"connected to localhost port {port} over TLSv1.3",
        "server certificate: CN=localhost",
        "S: E1 OK",
        f'C: E2 LOGIN "{peers.DOVECOT_USER}" <password not shown>',
        "S: E2 OK",
        'S: * LIST (\\HasNoChildren) "." INBOX',
        "S: E3 OK",
        "S: E4 OK [READ-WRITE]",
        "S: * BYE",
        "S: E5 OK",
        f"logged in as {peers.DOVECOT_USER} and selected INBOX",
    ]:
        assert line in result.stdout, f"{line!r} not in\n{result.stdout}"
    assert "STARTTLS" not in result.stdout.split("S: E1 OK")[0]  # not offered again over TLS
    assert peers.DOVECOT_PASSWORD not in result.stdout
    assert logged_in_over_tls(dovecot[0]), dovecot[0].log()


def test_imap_login_example_with_a_wrong_password(
    pki: certs.PKI, dovecot: tuple[peers.Peer, peers.Peer]
) -> None:
    result = run("imap_login.py", *imap_args(dovecot[0].ports["imap"], pki), env={"IMAP_PASSWORD": "guess"})
    assert result.returncode == 1, f"{result.stdout}\n{result.stderr}"
    assert "IMAP failure: LOGIN answered NO" in result.stderr
    assert "S: E9 OK" in result.stdout  # logged out politely
    assert "guess" not in result.stdout + result.stderr


def test_imap_login_example_refused_without_tls(
    pki: certs.PKI, dovecot: tuple[peers.Peer, peers.Peer]
) -> None:
    port = dovecot[1].ports["imap"]
    result = run("imap_login.py", *imap_args(port, pki), env={"IMAP_PASSWORD": peers.DOVECOT_PASSWORD})
    assert result.returncode == 1, f"{result.stdout}\n{result.stderr}"
    assert f"STARTTLS_REFUSED: STARTTLS (imap) with localhost port {port} refused" in result.stderr
    assert "does not list STARTTLS" in result.stderr
    assert "LOGIN" not in result.stdout  # the password never left the client
    assert peers.DOVECOT_PASSWORD not in result.stdout + result.stderr


def test_imap_login_example_needs_the_password_in_the_environment(pki: certs.PKI) -> None:
    """Without ``$IMAP_PASSWORD`` it stops before connecting (the port is one nothing listens on)."""
    result = run("imap_login.py", *imap_args(free_port(), pki), env={"IMAP_PASSWORD": ""})
    assert result.returncode == 2
    assert "$IMAP_PASSWORD must hold the password" in result.stderr
