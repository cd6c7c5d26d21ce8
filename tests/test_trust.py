"""Trust anchors (``SecurityCredentials.trust``) and ``SSLKEYLOGFILE``, by real handshakes on loopback.

The test CA is reachable only through ``SSL_CERT_FILE`` (or ``SSL_CERT_DIR``):
OpenSSL reads those variables when a context loads its default paths, which
inetkit does when it builds a context, so ``monkeypatch.setenv`` in this
process is seen; one test also sets them in a child process's environment
from its start.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import certs
import pytest
from conftest import require_program
from tls_servers import PythonTLSServer, Servers

import inetkit
from inetkit import CertificateError, ErrorCode, InvalidArgumentError, Option, SecurityCredentials
from inetkit._tls import context as context_module
from inetkit._tls import get_context

#: Connect timeout for handshakes on loopback.
TIMEOUT = 5.0
#: Bound on a child process that makes one connect.
CHILD_TIMEOUT = 60.0

pytestmark = pytest.mark.usefixtures("fresh_tls_caches")


@pytest.fixture
def empty_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "no-certs"
    folder.mkdir()
    return folder


@pytest.fixture
def system_store(monkeypatch: pytest.MonkeyPatch, empty_dir: Path) -> pytest.MonkeyPatch:
    """OpenSSL's default locations emptied: SSL_CERT_DIR an empty directory, SSL_CERT_FILE unset."""
    monkeypatch.setenv("SSL_CERT_DIR", str(empty_dir))
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSLKEYLOGFILE", raising=False)
    return monkeypatch


def connect(server: PythonTLSServer, credentials: SecurityCredentials | None) -> None:
    """A TLS connect to ``server`` and one line through it."""
    with inetkit.connect(
        "localhost", server.port, options=Option.SECURE, credentials=credentials, timeout=TIMEOUT
    ) as conn:
        conn.write(b"ping\n")
        assert conn.read_line() == b"gnip\n"


def untrusted(server: PythonTLSServer, credentials: SecurityCredentials | None) -> None:
    with pytest.raises(CertificateError) as info:
        connect(server, credentials)
    assert info.value.code is ErrorCode.CERTIFICATE_UNTRUSTED


def inetkit_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "inetkit" and r.levelno == logging.WARNING]


# -- the field ------------------------------------------------------------------------


def test_trust_defaults_to_certifi_and_takes_the_three_values() -> None:
    assert SecurityCredentials().trust == "certifi"
    for value in ("certifi", "system", "both"):
        assert SecurityCredentials(trust=value).trust == value  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["System", "", "truststore", "certifi ", "none"])
def test_other_values_are_refused_naming_the_field(value: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        SecurityCredentials(trust=value)  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    assert "SecurityCredentials.trust" in str(info.value)
    assert repr(value) in str(info.value)
    assert "'certifi', 'system', 'both'" in str(info.value)


@pytest.mark.parametrize("value", [None, b"system", 1, ["system"]])
def test_other_types_are_type_errors(value: object) -> None:
    with pytest.raises(TypeError, match=r"SecurityCredentials\.trust must be a str"):
        SecurityCredentials(trust=value)  # type: ignore[arg-type]


def test_repr_and_equality() -> None:
    assert repr(SecurityCredentials()) == "SecurityCredentials()"
    assert repr(SecurityCredentials(trust="certifi")) == "SecurityCredentials()"
    assert repr(SecurityCredentials(trust="system")) == "SecurityCredentials(trust='system')"
    assert repr(SecurityCredentials(alpn_protocols=["h2"], trust="both")) == (
        "SecurityCredentials(alpn_protocols=('h2',), trust='both')"
    )
    assert SecurityCredentials(trust="certifi") == SecurityCredentials()
    assert SecurityCredentials(trust="system") == SecurityCredentials(trust="system")
    assert SecurityCredentials(trust="system") != SecurityCredentials(trust="both")
    assert hash(SecurityCredentials(trust="system")) == hash(SecurityCredentials(trust="system"))

    class Text(str):
        pass

    made = SecurityCredentials(trust=Text("system"))  # type: ignore[arg-type]
    assert type(made.trust) is str


# -- trust anchors by real handshakes ---------------------------------------------------


def test_system_trusts_what_ssl_cert_file_names_and_certifi_does_not(
    pki: certs.PKI, servers: Servers, system_store: pytest.MonkeyPatch
) -> None:
    server = servers.python(pki.servers["valid"].context())
    system_store.setenv("SSL_CERT_FILE", str(pki.ca_file))
    connect(server, SecurityCredentials(trust="system"))
    untrusted(server, SecurityCredentials(trust="certifi"))
    untrusted(server, None)  # the default is certifi


def test_both_accepts_either_store(
    pki: certs.PKI, servers: Servers, system_store: pytest.MonkeyPatch
) -> None:
    server = servers.python(pki.servers["valid"].context())
    system_store.setenv("SSL_CERT_FILE", str(pki.ca_file))
    connect(server, SecurityCredentials(trust="both"))
    # The certifi half: no public CA signs a test server, so count what is loaded instead.
    certifi_only = get_context(SecurityCredentials(), Option.SECURE).cert_store_stats()["x509_ca"]
    system_only = get_context(SecurityCredentials(trust="system"), Option.SECURE).cert_store_stats()[
        "x509_ca"
    ]
    both = get_context(SecurityCredentials(trust="both"), Option.SECURE).cert_store_stats()["x509_ca"]
    assert system_only == 1  # the test root, and nothing else
    assert certifi_only > 100
    assert both == certifi_only + system_only


def test_system_with_another_ca_in_ssl_cert_file_is_untrusted(
    pki: certs.PKI, servers: Servers, system_store: pytest.MonkeyPatch
) -> None:
    server = servers.python(pki.servers["valid"].context())
    system_store.setenv("SSL_CERT_FILE", str(pki.foreign_ca_file))
    untrusted(server, SecurityCredentials(trust="system"))
    untrusted(server, SecurityCredentials(trust="both"))


def test_ca_file_replaces_trust(pki: certs.PKI, servers: Servers, system_store: pytest.MonkeyPatch) -> None:
    server = servers.python(pki.servers["valid"].context())
    system_store.setenv("SSL_CERT_FILE", str(pki.ca_file))
    untrusted(server, SecurityCredentials(trust="system", ca_file=pki.foreign_ca_file))
    untrusted(server, SecurityCredentials(trust="both", ca_data=pki.foreign_ca_file.read_bytes()))
    connect(server, SecurityCredentials(trust="certifi", ca_file=pki.ca_file))


def test_system_reads_a_hashed_ssl_cert_dir(
    pki: certs.PKI, servers: Servers, system_store: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    openssl = require_program("openssl")
    subject_hash = subprocess.run(
        [openssl, "x509", "-noout", "-subject_hash", "-in", str(pki.ca_file)],
        capture_output=True,
        text=True,
        check=True,
        timeout=CHILD_TIMEOUT,
    ).stdout.strip()
    hashed = tmp_path / "hashed"
    hashed.mkdir()
    shutil.copy(pki.ca_file, hashed / f"{subject_hash}.0")
    server = servers.python(pki.servers["valid"].context())
    system_store.setenv("SSL_CERT_FILE", str(pki.foreign_ca_file))
    untrusted(server, SecurityCredentials(trust="system"))
    system_store.setenv("SSL_CERT_DIR", f"{tmp_path / 'missing'}{os.pathsep}{hashed}")
    connect(server, SecurityCredentials(trust="system"))


def test_the_environment_of_a_child_process_from_its_start(
    pki: certs.PKI, servers: Servers, empty_dir: Path
) -> None:
    server = servers.python(pki.servers["valid"].context())
    code = (
        "import sys, inetkit\n"
        "trust = sys.argv[2]\n"
        "try:\n"
        "    with inetkit.connect('localhost', int(sys.argv[1]), options=inetkit.Option.SECURE,\n"
        "                         credentials=inetkit.SecurityCredentials(trust=trust), timeout=5) as c:\n"
        "        c.write(b'ping\\n'); print(c.read_line().decode().strip())\n"
        "except inetkit.InetError as exc:\n"
        "    print(exc.code.name)\n"
    )
    env = {**os.environ, "SSL_CERT_FILE": str(pki.ca_file), "SSL_CERT_DIR": str(empty_dir)}
    env.pop("SSLKEYLOGFILE", None)
    answers = {}
    for trust in ("system", "certifi", "both"):
        result = subprocess.run(
            [sys.executable, "-c", code, str(server.port), trust],
            env=env,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            check=True,
        )
        answers[trust] = result.stdout.strip()
    assert answers == {"system": "gnip", "certifi": "CERTIFICATE_UNTRUSTED", "both": "gnip"}


# -- the context cache follows the environment ----------------------------------------


def test_a_changed_ssl_cert_file_path_is_never_served_a_stale_context(
    pki: certs.PKI, servers: Servers, system_store: pytest.MonkeyPatch
) -> None:
    server = servers.python(pki.servers["valid"].context())
    credentials = SecurityCredentials(trust="system")
    system_store.setenv("SSL_CERT_FILE", str(pki.ca_file))
    connect(server, credentials)
    system_store.setenv("SSL_CERT_FILE", str(pki.foreign_ca_file))
    untrusted(server, credentials)
    system_store.setenv("SSL_CERT_FILE", str(pki.ca_file))
    connect(server, credentials)


def test_changed_ssl_cert_file_contents_are_picked_up(
    pki: certs.PKI, servers: Servers, system_store: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = servers.python(pki.servers["valid"].context())
    credentials = SecurityCredentials(trust="system")
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pki.foreign_ca_file.read_bytes())
    system_store.setenv("SSL_CERT_FILE", str(bundle))
    untrusted(server, credentials)
    replacement = tmp_path / "bundle.new"
    replacement.write_bytes(pki.ca_file.read_bytes() + pki.foreign_ca_file.read_bytes())
    os.replace(replacement, bundle)  # as package managers update a bundle: a new file
    connect(server, credentials)


def test_certifi_contexts_do_not_depend_on_ssl_cert_file(
    pki: certs.PKI, system_store: pytest.MonkeyPatch
) -> None:
    first = get_context(None, Option.SECURE)
    system_store.setenv("SSL_CERT_FILE", str(pki.ca_file))
    assert get_context(None, Option.SECURE) is first
    system = get_context(SecurityCredentials(trust="system"), Option.SECURE)
    assert get_context(SecurityCredentials(trust="system"), Option.SECURE) is system


def test_trustedsite_loads_no_anchors(pki: certs.PKI, system_store: pytest.MonkeyPatch) -> None:
    system_store.setenv("SSL_CERT_FILE", str(pki.ca_file))
    ctx = get_context(SecurityCredentials(trust="both"), Option.TRUSTEDSITE, warn=False)
    assert ctx.cert_store_stats()["x509_ca"] == 0


@pytest.mark.parametrize("problem", ["missing", "not PEM"])
def test_an_unusable_ssl_cert_file_logs_a_warning(
    pki: certs.PKI,
    servers: Servers,
    system_store: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    problem: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="inetkit")
    path = tmp_path / "bundle.pem"
    if problem == "not PEM":
        path.write_text("no certificates here\n")
    system_store.setenv("SSL_CERT_FILE", str(path))
    server = servers.python(pki.servers["valid"].context())
    untrusted(server, SecurityCredentials(trust="system"))
    (message,) = inetkit_warnings(caplog)
    assert "SSL_CERT_FILE" in message and str(path) in message and "skipped" in message


def test_missing_default_locations_are_skipped_quietly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """OpenSSL's compiled-in locations need not exist (many systems have only one of the two)."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    real = ssl.get_default_verify_paths()
    elsewhere = real._replace(
        openssl_cafile=str(tmp_path / "cert.pem"), openssl_capath=str(tmp_path / "certs")
    )
    monkeypatch.setattr(context_module, "_openssl_defaults", lambda: elsewhere)
    caplog.set_level(logging.WARNING, logger="inetkit")
    ctx = get_context(SecurityCredentials(trust="system"), Option.SECURE)
    assert ctx.cert_store_stats()["x509_ca"] == 0
    assert inetkit_warnings(caplog) == []


# -- SSLKEYLOGFILE ------------------------------------------------------------------------

#: An NSS key log line: label, the 32-byte client random, the secret (hex).
KEYLOG_LINE = re.compile(r"([A-Z0-9_]+) ([0-9a-f]{64}) ([0-9a-f]+)")
TLS13_LABELS = {
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0",
    "SERVER_TRAFFIC_SECRET_0",
}


def keylog_lines(path: Path) -> list[tuple[str, str]]:
    """(label, client random) of every secret in a key log file (comments skipped)."""
    found = []
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        match = KEYLOG_LINE.fullmatch(line)
        assert match is not None, line
        found.append((match.group(1), match.group(2)))
    return found


@pytest.fixture
def keylog(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """SSLKEYLOGFILE set to a fresh path, and the once-per-process warning not yet given."""
    path = tmp_path / "keys.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(path))
    monkeypatch.setattr(context_module, "_keylog_warned", False)
    return path


def trust_test_root(pki: certs.PKI, **fields: object) -> SecurityCredentials:
    return SecurityCredentials(ca_file=pki.ca_file, **fields)  # type: ignore[arg-type]


def test_a_tls13_handshake_writes_its_secrets(pki: certs.PKI, servers: Servers, keylog: Path) -> None:
    server = servers.python(pki.servers["valid"].context())
    connect(server, trust_test_root(pki))
    lines = keylog_lines(keylog)
    assert {label for label, _ in lines} >= TLS13_LABELS
    assert len({random for _, random in lines}) == 1  # one handshake, one client random
    assert stat.S_IMODE(keylog.stat().st_mode) == 0o600  # made owner-only: it holds secrets


def test_a_tls12_handshake_writes_client_random(pki: certs.PKI, servers: Servers, keylog: Path) -> None:
    server = servers.python(pki.servers["valid"].context(max_version=ssl.TLSVersion.TLSv1_2))
    connect(server, trust_test_root(pki))
    assert [label for label, _ in keylog_lines(keylog)] == ["CLIENT_RANDOM"]


def test_the_warning_is_logged_once_per_process(
    pki: certs.PKI, servers: Servers, keylog: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="inetkit")
    server = servers.python(pki.servers["valid"].context())
    connect(server, trust_test_root(pki))
    connect(server, trust_test_root(pki, alpn_protocols=["x-test"]))  # a second context is built
    connect(server, trust_test_root(pki))
    (message,) = inetkit_warnings(caplog)
    assert "SSLKEYLOGFILE" in message and str(keylog) in message and "decrypt" in message
    assert len({random for _, random in keylog_lines(keylog)}) == 3


def test_a_context_made_before_the_variable_is_not_reused(
    pki: certs.PKI, servers: Servers, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SSLKEYLOGFILE", raising=False)
    server = servers.python(pki.servers["valid"].context())
    before = get_context(trust_test_root(pki), Option.SECURE)
    connect(server, trust_test_root(pki))
    path = tmp_path / "later.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(path))
    assert get_context(trust_test_root(pki), Option.SECURE) is not before
    connect(server, trust_test_root(pki))
    assert len({random for _, random in keylog_lines(path)}) == 1
    monkeypatch.setenv("SSLKEYLOGFILE", "")  # empty: not set
    assert get_context(trust_test_root(pki), Option.SECURE) is before
    connect(server, trust_test_root(pki))
    assert len({random for _, random in keylog_lines(path)}) == 1


def test_an_existing_file_is_appended_to_and_keeps_its_mode(
    pki: certs.PKI, servers: Servers, keylog: Path
) -> None:
    keylog.write_text("# earlier capture\nCLIENT_RANDOM " + "ab" * 32 + " " + "cd" * 48 + "\n")
    keylog.chmod(0o640)
    server = servers.python(pki.servers["valid"].context())
    connect(server, trust_test_root(pki))
    lines = keylog_lines(keylog)
    assert lines[0] == ("CLIENT_RANDOM", "ab" * 32)
    assert len(lines) > 1
    assert stat.S_IMODE(keylog.stat().st_mode) == 0o640


def test_a_path_that_cannot_be_opened_warns_and_the_connect_goes_on(
    pki: certs.PKI,
    servers: Servers,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="inetkit")
    monkeypatch.setattr(context_module, "_keylog_warned", False)
    for path in (tmp_path / "missing" / "keys.log", tmp_path):  # no such directory; a directory
        caplog.clear()
        clear = context_module.clear_context_cache
        clear()
        monkeypatch.setenv("SSLKEYLOGFILE", str(path))
        server = servers.python(pki.servers["valid"].context())
        connect(server, trust_test_root(pki))
        connect(server, trust_test_root(pki))  # the context is cached: one warning
        (message,) = inetkit_warnings(caplog)
        assert str(path) in message and "cannot be opened" in message and "not logged" in message
    assert not (tmp_path / "missing").exists()
