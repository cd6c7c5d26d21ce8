"""The ``inetkit`` command: demo, probe, --version, -v; in-process and as a user runs it."""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import math
import os
import re
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
from conftest import Server, free_port, require_module
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import inetkit
from inetkit import cli
from inetkit._demo_server import DemoServer
from inetkit.cli import attempt_outcome, days_left, main

if TYPE_CHECKING:
    from certs import PKI
    from tls_servers import Servers

#: Seconds a command may take before the test gives up (the demo needs about one).
COMMAND_LIMIT = 60

DEMO_LINES = [
    "inetkit",
    "1. Implicit TLS: connect, round trip, resumption",
    "resolve: 2 address(es) from overrides",
    "server certificate: CN=localhost",
    "issued by: CN=inetkit demo CA",
    "UTC (0 days left)",
    "line round trip: 'hello over TLS' came back",
    "reconnect: session reused: yes",
    "2. Explicit TLS: an SMTP STARTTLS dialog",
    "starttls dialog:",
    "QUIT over TLS: 221",
    "3. UDP datagram round trip",
    "the same 14 came back",
    "4. attach_thread(): handing a connection to a worker thread",
    "worker before attach_thread(): NOT_HANDLE_OWNER",
    "attached; previous owner: ",
    "worker line round trip: 'hello from the worker' came back",
    "main after the hand-off: NOT_HANDLE_OWNER",
    "5. Free-threaded: one thread writes while another reads",
    "Option.FREETHREAD over TLSv1.3",
    "all 2000 in order",
    "all checks passed",
]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONWARNINGS="error")
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_LIMIT,
        env=env,
        check=False,
    )


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def tls_server() -> Iterator[DemoServer]:
    with DemoServer(tls=True) as server:
        yield server


# -- basics ---------------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"inetkit {inetkit.__version__}"


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "probe" in capsys.readouterr().err


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["probe", "127.0.0.1", "80", "--timeout", "soon"], ["nope"], ["connect"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["probe", "127.0.0.1"], "'127.0.0.1' needs a PORT"),
        (["connect", "localhost"], "'localhost' needs a PORT"),
        (["probe", "https://localhost/", "443"], "give a URL or HOST PORT, not both"),
        (["connect", "localhost", "1", "--proxy", "http://127.0.0.1"], "must name its port"),
        (["probe", "localhost", "1", "--proxy", "gopher://127.0.0.1:70"], "unknown proxy scheme"),
        (["probe", "localhost", "1", "--cert-name", "me"], "--cert-name and --password-env need --cert"),
        (["probe", "localhost", "1", "--alpn", ","], "--alpn needs at least one protocol"),
        (["probe", "https://localhost/", "--udp"], "--udp takes HOST PORT, not a URL"),
    ],
)
def test_usage_problems_exit_2_before_any_io(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_password_env_must_be_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("INETKIT_TEST_NO_SUCH_VAR", raising=False)
    store = tmp_path / "client.p12"
    store.write_bytes(b"")
    argv = ["probe", "localhost", "1", "--cert", str(store), "--password-env", "INETKIT_TEST_NO_SUCH_VAR"]
    assert main(argv) == 2
    assert "INETKIT_TEST_NO_SUCH_VAR is not set" in capsys.readouterr().err


# -- demo -------------------------------------------------------------------------------


def test_demo_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    captured = capsys.readouterr()
    for line in DEMO_LINES:
        assert line in captured.out, line
    assert "skipped" not in captured.out
    assert captured.err == ""


def test_demo_as_module() -> None:
    result = run("-m", "inetkit", "demo")
    assert result.returncode == 0, result.stderr
    for line in DEMO_LINES:
        assert line in result.stdout, line


def test_demo_verbose_logs_to_stderr() -> None:
    result = run("-m", "inetkit.cli", "-v", "demo")
    assert result.returncode == 0, result.stderr
    assert "inetkit DEBUG: " in result.stderr
    assert "all checks passed" in result.stdout


# -- probe ------------------------------------------------------------------------------


def test_probe_live_listener(echo_server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "127.0.0.1", str(echo_server.port), "--timeout", "5"]) == 0
    out = capsys.readouterr().out
    assert f"connect 127.0.0.1 port {echo_server.port}" in out
    assert f"attempt 127.0.0.1:{echo_server.port} started at" in out
    assert "connected" in out
    assert "total:" in out
    assert f"-> 127.0.0.1:{echo_server.port}" in out


def test_probe_ipv6_literal(make_server: Callable[..., Server], capsys: pytest.CaptureFixture[str]) -> None:
    if not ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback address")
    server = make_server(host="::1")
    assert main(["probe", "::1", str(server.port)]) == 0
    assert f"-> [::1]:{server.port}" in capsys.readouterr().out


def test_probe_refused_port(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    assert main(["probe", "127.0.0.1", str(port), "--timeout", "5"]) == 1
    captured = capsys.readouterr()
    assert "refused" in captured.err.lower()
    assert f"connect 127.0.0.1 port {port}" in captured.out
    assert "failed" in captured.out


def test_probe_refused_port_in_a_subprocess() -> None:
    port = free_port()
    result = run("-m", "inetkit", "probe", "127.0.0.1", str(port))
    assert result.returncode == 1
    assert "refused" in result.stderr.lower()
    assert f"attempt 127.0.0.1:{port}" in result.stdout


def test_probe_invalid_host_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "127.1", "80"]) == 2
    err = capsys.readouterr().err
    assert "127.1" in err
    assert "INVALID_HOST_NAME" in err


def test_probe_udp(udp_echo: tuple[str, int], capsys: pytest.CaptureFixture[str]) -> None:
    host, port = udp_echo
    assert main(["probe", host, str(port), "--udp"]) == 0
    assert f"UDP {host}:" in capsys.readouterr().out


def test_probe_secure_with_ca_file(
    tls_server: DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tls_server.certificates is not None
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(tls_server.certificates.ca_pem)
    argv = ["probe", "localhost", str(tls_server.tls_port), "--secure", "--ca-file", str(ca_file)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "tls handshake:" in out
    assert "TLSv1.3" in out
    assert "server certificate: " in out and "CN=localhost" in out
    assert "names: DNS:localhost, IP:127.0.0.1, IP:::1" in out
    assert "sha256: " in out


def test_probe_secure_untrusted(tls_server: DemoServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "127.0.0.1", str(tls_server.tls_port), "--secure"]) == 1
    captured = capsys.readouterr()
    assert "certificate" in captured.err.lower()
    assert "connect 127.0.0.1" in captured.out


def test_probe_trust_system_reads_ssl_cert_file(
    tls_server: DemoServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert tls_server.certificates is not None
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(tls_server.certificates.ca_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    argv = ["probe", "localhost", str(tls_server.tls_port), "--secure"]
    for trust, status in (("system", 0), ("both", 0), ("certifi", 1)):
        assert main([*argv, "--trust", trust]) == status, trust
    assert main(argv) == 1  # certifi by default
    assert "CERTIFICATE_UNTRUSTED" in capsys.readouterr().out


def test_trust_takes_three_names(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["probe", "localhost", "1", "--trust", "truststore"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'truststore'" in capsys.readouterr().err


def test_probe_trusted_site(tls_server: DemoServer, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["probe", "127.0.0.1", str(tls_server.tls_port), "--secure", "--trusted-site"]
    assert main(argv) == 0
    assert "CN=inetkit demo CA" in capsys.readouterr().out


def test_probe_prefer_ipv6_and_verbose(tls_server: DemoServer) -> None:
    # The demo server listens on 127.0.0.1 and on ::1 where it can, so "localhost" reaches it.
    result = run("-m", "inetkit", "-v", "probe", "localhost", str(tls_server.tls_port), "--prefer-ipv6")
    assert result.returncode == 0, result.stderr
    assert "inetkit DEBUG: " in result.stderr


@pytest.fixture
def smtp_server(tls_server: DemoServer) -> Iterator[Callable[[bool], int]]:
    """Start aiosmtpd on loopback, with or without STARTTLS; return its port."""
    require_module("aiosmtpd")
    from aiosmtpd.controller import Controller

    from inetkit._demo_server import server_context

    controllers: list[Controller] = []

    def start(with_tls: bool) -> int:
        port = free_port()
        certificates = tls_server.certificates
        assert certificates is not None
        context = server_context(certificates) if with_tls else None
        controller = Controller(object(), hostname="127.0.0.1", port=port, tls_context=context)
        controller.start()
        controllers.append(controller)
        return port

    yield start
    for controller in controllers:
        controller.stop()


def test_probe_starttls_smtp(
    tls_server: DemoServer,
    smtp_server: Callable[[bool], int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert tls_server.certificates is not None
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(tls_server.certificates.ca_pem)
    port = smtp_server(True)
    assert main(["probe", "127.0.0.1", str(port), "--starttls", "smtp", "--ca-file", str(ca_file)]) == 0
    out = capsys.readouterr().out
    assert "starttls dialog:" in out
    assert "tls handshake:" in out
    assert "CN=localhost" in out


def test_probe_starttls_refused(
    smtp_server: Callable[[bool], int], capsys: pytest.CaptureFixture[str]
) -> None:
    port = smtp_server(False)
    assert main(["probe", "127.0.0.1", str(port), "--starttls", "smtp"]) == 1
    captured = capsys.readouterr()
    assert "does not offer STARTTLS" in captured.err
    assert f"connect 127.0.0.1 port {port}" in captured.out


# -- probe --json ----------------------------------------------------------------------

TOP_KEYS = ["host", "port", "ok", "addresses", "attempts", "tls", "proxy", "error"]
PROXY_KEYS = ["endpoint", "tls_handshake_ms", "dialog_ms", "target_address"]
ATTEMPT_KEYS = ["address", "start_ms", "duration_ms", "outcome"]
TLS_KEYS = ["protocol", "cipher", "alpn", "session_reused", "certificates"]
CERT_KEYS = ["subject", "issuer", "names", "not_after", "days_left", "sha256"]


def probe_json(capsys: pytest.CaptureFixture[str], *argv: str, status: int = 0) -> dict[str, Any]:
    assert main(["probe", *argv, "--json"]) == status
    out = capsys.readouterr().out
    assert "\x1b[" not in out
    report = json.loads(out)
    assert list(report) == TOP_KEYS
    for attempt in report["attempts"]:
        assert list(attempt) == ATTEMPT_KEYS
    return cast(dict[str, Any], report)


def test_probe_json_plain(echo_server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    report = probe_json(capsys, "127.0.0.1", str(echo_server.port))
    assert report["host"] == "127.0.0.1"
    assert report["port"] == echo_server.port
    assert report["ok"] is True
    assert report["addresses"] == ["127.0.0.1"]
    (attempt,) = report["attempts"]
    assert attempt["address"] == "127.0.0.1"
    assert attempt["outcome"] == "connected"
    assert attempt["start_ms"] >= 0 and attempt["duration_ms"] >= 0
    assert report["tls"] is None
    assert report["error"] is None


def test_probe_json_tls_reports_the_certificate(
    tls_server: DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tls_server.certificates is not None
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(tls_server.certificates.ca_pem)
    report = probe_json(capsys, f"https://localhost:{tls_server.tls_port}/", "--ca-file", str(ca_file))
    assert report["ok"] is True and report["host"] == "localhost"
    tls = report["tls"]
    assert list(tls) == TLS_KEYS
    assert tls["protocol"] == "TLSv1.3"
    assert tls["cipher"]
    assert tls["alpn"] is None
    assert tls["session_reused"] in (True, False)
    (cert,) = tls["certificates"]
    assert list(cert) == CERT_KEYS
    leaf = x509.load_pem_x509_certificate(tls_server.certificates.cert_pem)
    assert cert["subject"] == leaf.subject.rfc4514_string()
    assert cert["issuer"] == "CN=inetkit demo CA,O=inetkit demo"
    assert cert["names"] == ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]
    assert cert["sha256"] == hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert datetime.datetime.fromisoformat(cert["not_after"]) == leaf.not_valid_after_utc
    left = (leaf.not_valid_after_utc - datetime.datetime.now(datetime.UTC)).total_seconds() / 86400
    assert cert["days_left"] == math.floor(left)  # the demo certificate lives one day: 0


def test_probe_json_alpn_is_reported(pki: PKI, servers: Servers, capsys: pytest.CaptureFixture[str]) -> None:
    server = servers.python(pki.servers["valid"].context(alpn=["http/1.1"]))
    report = probe_json(
        capsys,
        "127.0.0.1",
        str(server.port),
        "--secure",
        "--ca-file",
        str(pki.ca_file),
        "--alpn",
        "h2,http/1.1",
    )
    assert report["tls"]["alpn"] == "http/1.1"


def test_probe_json_refused(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    report = probe_json(capsys, "127.0.0.1", str(port), status=1)
    assert report["ok"] is False and report["port"] == port
    assert report["attempts"][0]["outcome"] == "CONNECTION_REFUSED"
    assert report["error"]["code"] == "CONNECTION_REFUSED"
    assert f"127.0.0.1 port {port}" in report["error"]["message"]
    assert report["tls"] is None


def test_probe_json_untrusted_certificate(tls_server: DemoServer, capsys: pytest.CaptureFixture[str]) -> None:
    report = probe_json(capsys, "localhost", str(tls_server.tls_port), "--secure", status=1)
    assert report["error"]["code"] == "CERTIFICATE_UNTRUSTED"
    assert report["attempts"][-1]["outcome"] == "CERTIFICATE_UNTRUSTED"
    assert report["tls"] is None


def test_probe_json_bad_host_is_usage(capsys: pytest.CaptureFixture[str]) -> None:
    report = probe_json(capsys, "127.1", "80", status=2)
    assert report["ok"] is False and report["attempts"] == []
    assert report["error"]["code"] == "INVALID_HOST_NAME"


def test_probe_json_missing_client_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.p12"
    report = probe_json(capsys, "127.0.0.1", "1", "--secure", "--cert", str(missing), status=1)
    assert report["error"]["code"] == "INVALID_CREDENTIALS"
    assert "nowhere.p12" in report["error"]["message"]


def test_probe_client_certificate_from_p12(
    pki: PKI, servers: Servers, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from certs import PASSWORD

    server = servers.python(pki.servers["valid"].context(client_ca=pki.ca_file))
    monkeypatch.setenv("INETKIT_TEST_P12_PASSWORD", PASSWORD)
    argv = ["127.0.0.1", str(server.port), "--secure", "--ca-file", str(pki.ca_file)]
    argv += ["--cert", str(pki.client.p12_modern), "--password-env", "INETKIT_TEST_P12_PASSWORD"]
    report = probe_json(capsys, *argv)
    assert report["ok"] is True
    monkeypatch.setenv("INETKIT_TEST_P12_PASSWORD", "wrong")
    report = probe_json(capsys, *argv, status=1)
    assert report["error"]["code"] == "INVALID_CREDENTIALS"


def test_attempt_outcome_words() -> None:
    refused = inetkit.InetConnectionRefusedError("refused", inetkit.ErrorCode.CONNECTION_REFUSED)
    attempts = [
        inetkit.Attempt("::1", 1, socket.AF_INET6, 0.0, 0.3, "abandoned"),
        inetkit.Attempt("127.0.0.1", 1, socket.AF_INET, 0.0, 0.1, "connected"),
        inetkit.Attempt("127.0.0.2", 1, socket.AF_INET, 0.0, 0.1, "failed", refused),
        inetkit.Attempt("127.0.0.3", 1, socket.AF_INET, 0.0, 5.0, "timed out"),
    ]
    assert [attempt_outcome(attempt) for attempt in attempts] == [
        "lost",
        "connected",
        "CONNECTION_REFUSED",
        "TIMED_OUT",
    ]


def test_days_left_rounds_down() -> None:
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    day = datetime.timedelta(days=1)
    assert days_left(now + 2 * day - datetime.timedelta(seconds=1), now) == 1
    assert days_left(now + 2 * day, now) == 2
    assert days_left(now - datetime.timedelta(seconds=1), now) == -1


# -- colours -----------------------------------------------------------------------------


def run_on_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``python -m inetkit ARGV`` with stdout on a pseudo-terminal; return status and output."""
    controller, terminal = os.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "inetkit", *argv],
            stdin=subprocess.DEVNULL,
            stdout=terminal,
            stderr=subprocess.PIPE,
            env=env,
        )
        os.close(terminal)
        terminal = -1
        output = b""
        deadline = time.monotonic() + COMMAND_LIMIT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.1)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the terminal's last writer has gone
                break
            if not chunk:
                break
            output += chunk
        status = process.wait(COMMAND_LIMIT)
        assert process.stderr is not None
        process.stderr.close()
        return status, output.decode("utf-8", errors="replace")
    finally:
        os.close(controller)
        if terminal >= 0:
            os.close(terminal)


def test_probe_colours_only_on_a_terminal(echo_server: Server) -> None:
    argv = ["probe", "127.0.0.1", str(echo_server.port)]
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    status, output = run_on_terminal(argv, env)
    assert status == 0
    assert "\x1b[32mconnected\x1b[0m" in output
    status, output = run_on_terminal(argv, dict(env, NO_COLOR="1"))
    assert status == 0 and "connected" in output and "\x1b[" not in output
    status, output = run_on_terminal([*argv, "--json"], env)
    assert status == 0 and "\x1b[" not in output
    assert json.loads(output)["ok"] is True
    piped = run("-m", "inetkit", *argv)
    assert piped.returncode == 0 and "connected" in piped.stdout and "\x1b[" not in piped.stdout


# -- connect ------------------------------------------------------------------------------


class Recorder:
    """A server handler: read until the client half-closes, then answer and close."""

    def __init__(self, answer: bytes = b"bye\r\n") -> None:
        self.answer = answer
        self.received: list[bytes] = []
        self.done = threading.Event()

    def __call__(self, sock: socket.socket) -> None:
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
            sock.sendall(self.answer)
        finally:
            self.received.append(data)
            self.done.set()


def connect_command(*argv: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, PYTHONWARNINGS="error")
    return subprocess.run(
        [sys.executable, "-m", "inetkit", "connect", *argv],
        input=stdin,
        capture_output=True,
        timeout=COMMAND_LIMIT,
        env=env,
        check=False,
    )


def test_connect_sends_lines_with_crlf_and_half_closes(make_server: Callable[..., Server]) -> None:
    recorder = Recorder()
    server = make_server(recorder)
    result = connect_command("127.0.0.1", str(server.port), stdin=b"one\ntwo\r\nthree")
    assert result.returncode == 0, result.stderr
    assert recorder.done.wait(5)
    assert recorder.received == [b"one\r\ntwo\r\nthree"]
    assert result.stdout == b"bye\r\n"
    summary = result.stderr.decode()
    assert f"-> 127.0.0.1:{server.port}" in summary and "no TLS" in summary


def test_connect_raw_sends_bytes_as_they_are(make_server: Callable[..., Server]) -> None:
    recorder = Recorder(answer=b"\x00\xff")
    server = make_server(recorder)
    result = connect_command("127.0.0.1", str(server.port), "--raw", stdin=b"one\ntwo\x00")
    assert result.returncode == 0, result.stderr
    assert recorder.done.wait(5)
    assert recorder.received == [b"one\ntwo\x00"]
    assert result.stdout == b"\x00\xff"


def test_connect_ends_when_the_peer_closes_first(make_server: Callable[..., Server]) -> None:
    def greet_and_close(sock: socket.socket) -> None:
        sock.sendall(b"220 hello\r\n")

    server = make_server(greet_and_close)
    process = subprocess.Popen(
        [sys.executable, "-m", "inetkit", "connect", "127.0.0.1", str(server.port)],
        stdin=subprocess.PIPE,  # left open: the user has typed nothing
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = process.communicate(timeout=COMMAND_LIMIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert out == b"220 hello\r\n"


def test_connect_tls_with_a_ca_made_at_test_time(tls_server: DemoServer, tmp_path: Path) -> None:
    assert tls_server.certificates is not None
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(tls_server.certificates.ca_pem)
    result = connect_command(
        "localhost", str(tls_server.tls_port), "--secure", "--ca-file", str(ca_file), stdin=b"hello\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"hello\r\n"
    assert "TLSv1.3" in result.stderr.decode()


def test_connect_tls_with_the_system_store(
    tls_server: DemoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tls_server.certificates is not None
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(tls_server.certificates.ca_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # the child process inherits it
    argv = ("localhost", str(tls_server.tls_port), "--secure")
    result = connect_command(*argv, "--trust", "system", stdin=b"hello\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"hello\r\n"
    result = connect_command(*argv, stdin=b"hello\n")
    assert result.returncode == 1
    assert b"CERTIFICATE_UNTRUSTED" in result.stderr


def test_connect_tls_untrusted_exits_1(tls_server: DemoServer) -> None:
    result = connect_command("localhost", str(tls_server.tls_port), "--secure", stdin=b"hello\n")
    assert result.returncode == 1
    assert b"CERTIFICATE_UNTRUSTED" in result.stderr
    assert result.stdout == b""


def test_connect_udp(udp_echo: tuple[str, int]) -> None:
    host, port = udp_echo
    result = connect_command(host, str(port), "--udp", stdin=b"ping\npong\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"ping\r\npong\r\n"
    assert b"UDP " in result.stderr


def test_connect_refused_exits_1() -> None:
    result = connect_command("127.0.0.1", str(free_port()), stdin=b"x\n")
    assert result.returncode == 1
    assert b"CONNECTION_REFUSED" in result.stderr


def test_connect_reset_by_peer_exits_1(make_server: Callable[..., Server]) -> None:
    def reset(sock: socket.socket) -> None:
        sock.recv(1)
        # Linger 0: close sends RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    server = make_server(reset)
    process = subprocess.Popen(
        [sys.executable, "-m", "inetkit", "connect", "127.0.0.1", str(server.port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdin is not None
        process.stdin.write(b"x\n")
        process.stdin.flush()
        _, err = process.communicate(timeout=COMMAND_LIMIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1, err
    assert b"CONNECTION_RESET" in err


def test_connect_reports_the_reset_when_the_half_close_comes_after_it(
    make_server: Callable[..., Server],
) -> None:
    # The peer resets the connection before the input ends: the half-close then
    # fails with NOT_CONNECTED, but what happened is the reset, which the reader sees.
    def reset(sock: socket.socket) -> None:
        sock.recv(1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    server = make_server(reset)
    conn = inetkit.connect("127.0.0.1", server.port, options=inetkit.Option.FREETHREAD, timeout=COMMAND_LIMIT)
    session = cli._Session(conn, io.BytesIO(), False)
    read_end, write_end = os.pipe()
    try:
        # The writer alone first (the reader is late, as when the GIL keeps it
        # waiting): its line goes out and the reset comes back before the input
        # ends, so its half-close fails.
        writer = threading.Thread(target=session.send, args=(read_end,))
        writer.start()
        os.write(write_end, b"x\n")
        time.sleep(0.3)
        os.close(write_end)
        write_end = -1
        time.sleep(0.3)
        assert not session.done.is_set()  # the failed half-close waits for the reader
        reader = threading.Thread(target=session.receive)
        reader.start()
        reader.join(COMMAND_LIMIT)
        writer.join(COMMAND_LIMIT)
        assert not reader.is_alive() and not writer.is_alive()
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
        conn.close()
    assert isinstance(session.error, inetkit.InetError)
    assert session.error.code is inetkit.ErrorCode.CONNECTION_RESET, session.error


def test_connect_on_a_terminal_sends_each_typed_line(make_server: Callable[..., Server]) -> None:
    recorder = Recorder()
    server = make_server(recorder)
    controller, terminal = os.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "inetkit", "connect", "127.0.0.1", str(server.port)],
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        os.write(controller, b"hello\n")
        os.write(controller, b"second line\n")
        os.write(controller, b"\x04")  # Ctrl-D at the start of a line: end of input
        out, err = process.communicate(timeout=COMMAND_LIMIT)
    finally:
        os.close(controller)
        os.close(terminal)
    assert process.returncode == 0, err
    assert recorder.done.wait(5)
    assert recorder.received == [b"hello\r\nsecond line\r\n"]
    assert out == b"bye\r\n"


def test_probe_expired_certificate(pki: PKI, servers: Servers, capsys: pytest.CaptureFixture[str]) -> None:
    server = servers.python(pki.servers["expired"].context())
    argv = ["localhost", str(server.port), "--secure", "--ca-file", str(pki.ca_file)]
    report = probe_json(capsys, *argv, status=1)
    assert report["error"]["code"] == "CERTIFICATE_EXPIRED"
    report = probe_json(capsys, *argv, "--trusted-site")
    (cert,) = report["tls"]["certificates"]
    assert cert["days_left"] < 0
    assert main(["probe", *argv, "--trusted-site"]) == 0
    assert "(EXPIRED)" in capsys.readouterr().out


def test_connect_stops_quietly_when_its_reader_goes(echo_server: Server) -> None:
    # `inetkit connect ... | head -1`: the output pipe closes while data still arrives.
    process = subprocess.Popen(
        [sys.executable, "-m", "inetkit", "connect", "127.0.0.1", str(echo_server.port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(b"first\n")
        process.stdin.flush()
        assert process.stdout.readline() == b"first\r\n"
        process.stdout.close()
        try:
            process.stdin.write(b"".join(b"line %d\n" % number for number in range(20000)))
            process.stdin.close()
        except BrokenPipeError:
            pass  # it ended before taking all of it: what this test expects it may do
        _, err = process.communicate(timeout=COMMAND_LIMIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert b"Traceback" not in err and b"Exception ignored" not in err


# -- the demo's SMTP responder ------------------------------------------------------------


def test_demo_smtp_server_speaks_enough_rfc_5321(tls_server: DemoServer) -> None:
    assert tls_server.smtp_port is not None
    with socket.create_connection(("127.0.0.1", tls_server.smtp_port), timeout=5) as sock:
        replies = sock.makefile("rb")

        def say(line: bytes) -> list[bytes]:
            sock.sendall(line + b"\r\n")
            lines = [replies.readline()]
            while lines[-1][3:4] == b"-":
                lines.append(replies.readline())
            return lines

        assert replies.readline().startswith(b"220 localhost ESMTP")
        assert say(b"STARTTLS")[0].startswith(b"503 ")  # EHLO first
        ehlo = say(b"EHLO client.example")
        assert ehlo[0].startswith(b"250-") and b"250 STARTTLS\r\n" in ehlo
        assert say(b"NOOP") == [b"250 2.0.0 OK\r\n"]
        assert say(b"MAIL FROM:<a@example.com>")[0].startswith(b"502 ")
        assert say(b"QUIT") == [b"221 2.0.0 bye\r\n"]
        assert replies.read() == b""  # and it closes
        replies.close()


def test_demo_smtp_server_with_inetkit_starttls(tls_server: DemoServer) -> None:
    from inetkit import starttls

    assert tls_server.certificates is not None and tls_server.smtp_port is not None
    credentials = inetkit.SecurityCredentials(ca_data=tls_server.certificates.ca_pem)
    with inetkit.connect("127.0.0.1", tls_server.smtp_port, timeout=5, credentials=credentials) as conn:
        keywords = starttls.smtp(conn)
        assert conn.is_secure
        assert "STARTTLS" not in keywords  # not offered again over TLS (RFC 3207 §4.2)
        conn.write_line("STARTTLS")
        assert conn.read_line().startswith(b"503 ")
        conn.write_line("QUIT")
        assert conn.read_line() == b"221 2.0.0 bye\r\n"


def test_probe_report_of_a_real_race_says_lost() -> None:
    # ::1 black-holed (SYNs dropped), 127.0.0.1 live on the same port: with
    # IPv6 preferred, the IPv6 attempt starts first and loses to IPv4.
    if not ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback address")
    from conftest import black_hole, dual_stack_port

    with dual_stack_port() as port, black_hole("::1", port):
        resolver = inetkit.Resolver(
            system_hosts=False, dns=False, overrides={"localhost": ["::1", "127.0.0.1"]}
        )
        with inetkit.connect(
            "localhost",
            port,
            timeout=5,
            options=inetkit.Option.PREFER_IPV6,
            resolver=resolver,
            attempt_delay=0.05,
        ) as conn:
            report = cli.probe_report(cli.Target(None, "localhost", port), conn)
    assert report["addresses"] == ["::1", "127.0.0.1"]
    outcomes = {attempt["address"]: attempt["outcome"] for attempt in report["attempts"]}  # type: ignore[union-attr]
    assert outcomes == {"::1": "lost", "127.0.0.1": "connected"}


def test_demo_serve_keeps_the_servers_for_probe_and_connect(tmp_path: Path) -> None:
    """`inetkit demo --serve`: the newcomer's path from the README to probe and connect."""
    serve = subprocess.Popen(
        [sys.executable, "-m", "inetkit", "demo", "--serve", "--for", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert serve.stdout is not None
        banner = [serve.stdout.readline() for _ in range(3)]
        ca_file = banner[0].rsplit(" ", 1)[1].strip()
        ports = dict(re.findall(r"(TLS line echo|SMTP with STARTTLS|UDP echo) (\d+)", banner[1]))
        probe = run(
            "-m",
            "inetkit",
            "probe",
            "localhost",
            ports["SMTP with STARTTLS"],
            "--starttls",
            "smtp",
            "--ca-file",
            ca_file,
            "--json",
        )
        assert probe.returncode == 0, probe.stderr
        report = json.loads(probe.stdout)
        assert report["ok"] is True and report["tls"]["protocol"] == "TLSv1.3"
        talk = connect_command(
            "localhost", ports["TLS line echo"], "--secure", "--ca-file", ca_file, stdin=b"hello\n"
        )
        assert talk.returncode == 0, talk.stderr
        assert talk.stdout == b"hello\r\n"
    finally:
        serve.terminate()  # SIGTERM: a clean stop, as Ctrl-C
        code = serve.wait(10)
        assert serve.stdout is not None and serve.stderr is not None
        serve.stdout.close()
        serve.stderr.close()
    assert code == 0
    # The CA file went with the servers.
    assert not Path(ca_file).exists()


def test_demo_for_without_serve_is_a_usage_error() -> None:
    result = run("-m", "inetkit", "demo", "--for", "1")
    assert result.returncode == 2
    assert "--for goes with --serve" in result.stderr
