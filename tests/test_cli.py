"""The ``inetkit`` command: demo, probe, --version, -v; in-process and as a user runs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Server, free_port, require_module

import inetkit
from inetkit._demo_server import DemoServer
from inetkit.cli import main

#: Seconds a command may take before the test gives up (the demo needs about one).
COMMAND_LIMIT = 60

DEMO_LINES = [
    "inetkit",
    "1. Implicit TLS: connect, round trip, resumption",
    "resolve: 2 address(es) from overrides",
    "server certificate: CN=localhost",
    "issued by: CN=inetkit demo CA",
    "expires in: 0 days left",
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
        (["probe", "localhost", "1", "--trust", "system"], "--trust is not supported yet"),
        (["connect", "localhost", "1", "--proxy", "http://127.0.0.1:3128"], "--proxy is not supported yet"),
        (["probe", "localhost", "1", "--cert-name", "me"], "--cert-name and --password-env need --cert"),
        (["probe", "localhost", "1", "--alpn", ","], "--alpn needs at least one protocol"),
        (["probe", "https://localhost/", "--udp"], "--udp takes HOST PORT, not a URL"),
        (["probe", "127.1", "80", "--json"], ""),
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
