"""Real servers that nobody on the team wrote, run on loopback for the STARTTLS tests.

Each runner writes a private configuration into a temporary folder, starts
the server in the foreground in its own process group (``start_new_session``)
on free loopback ports, waits (bounded) until every port accepts, and on
``stop`` ends exactly that process group and waits for it by PID. Servers
that refuse to run as root (PostgreSQL) or drop to their own user (Prosody)
get their files owned by that user in a folder it can traverse; the folder is
made under ``/tmp`` directly because dovecot's socket paths must stay short
(PEERS.md) and pytest's own temporary root is closed to other users.

Every runner takes a `ServerCert` from the test PKI (``tls``) or None for the
same server configured without TLS, which the refusal tests need.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest
from certs import ServerCert
from conftest import REQUIRE_ENV, free_port, require_module, require_program

#: Seconds a server may take to accept on its ports (each starts in about one on this machine).
START_TIMEOUT = 20.0
#: Pause between readiness probes.
START_POLL = 0.05
#: Seconds a stopped server may take to exit before it is killed.
STOP_TIMEOUT = 5.0
#: Seconds one readiness probe may take (loopback answers at once).
PROBE_TIMEOUT = 1.0
#: Tries to start on free ports (another process may take a port in between).
START_TRIES = 3
#: The PostgreSQL major version Debian 12 ships (its programs live under /usr/lib/postgresql/15/bin).
POSTGRES_VERSION = "15"
#: How much of a server's log an error message quotes.
LOG_TAIL = 3000


class PeerError(RuntimeError):
    """A server did not start; the message carries the end of its log."""


def require_root(server: str) -> None:
    """Skip (or fail under CI) unless we are root: ``server`` runs as a system user of its own."""
    if os.geteuid() != 0:
        message = f"{server} runs as its own system user here, which needs root (as .ci/run has)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(message)
        pytest.skip(message)


def owned_folder(prefix: str, user: str | None = None) -> Path:
    """A fresh folder under /tmp that ``user`` (if given) owns, traversable by everyone."""
    folder = Path(tempfile.mkdtemp(prefix=f"inetkit-{prefix}-", dir="/tmp"))
    folder.chmod(0o755)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    return folder


def _copy_identity(tls: ServerCert, folder: Path, user: str | None) -> tuple[Path, Path]:
    """The server's chain and key, copied into its folder, owned by ``user``; the key mode 0600."""
    chain = folder / "server.pem"
    key = folder / "server.key"
    shutil.copyfile(tls.chain_file, chain)
    shutil.copyfile(tls.key_file, key)
    key.chmod(0o600)
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in (chain, key):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    return chain, key


def _port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT):
            return True
    except OSError:
        return False


class Peer:
    """One server process in its own process group, with its log in a file of its folder."""

    def __init__(
        self,
        name: str,
        args: list[str],
        folder: Path,
        ports: dict[str, int],
        *,
        user: str | None = None,
        log_files: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.args = args
        self.folder = folder
        self.ports = ports
        self.log_files = log_files
        self._output: IO[bytes] = (folder / "output.log").open("wb")
        kwargs: dict[str, object] = {}
        if user is not None:
            entry = pwd.getpwnam(user)
            kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        try:
            self.process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=self._output,
                stderr=subprocess.STDOUT,
                cwd=folder,
                start_new_session=True,
                **kwargs,  # type: ignore[arg-type]
            )
        except BaseException:
            self._output.close()
            raise

    @property
    def port(self) -> int:
        """The first (often only) port."""
        return next(iter(self.ports.values()))

    def log(self) -> str:
        """The end of what the server printed and logged, for error messages."""
        texts = []
        for name in ("output.log", *self.log_files):
            path = self.folder / name
            if path.exists():
                texts.append(f"--- {name}\n" + path.read_text("utf-8", "replace")[-LOG_TAIL:])
        return "\n".join(texts)

    def wait_ready(self, deadline: float) -> None:
        """Until every port accepts (bounded); a server that exits early raises `PeerError`."""
        waiting = set(self.ports.values())
        while waiting:
            if self.process.poll() is not None:
                raise PeerError(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise PeerError(f"{self.name} did not listen within {START_TIMEOUT} s:\n{self.log()}")
            waiting = {port for port in waiting if not _port_accepts(port)}
            if waiting:
                time.sleep(START_POLL)

    def stop(self) -> None:
        """End the process group we started, wait for it by PID (bounded), then remove the folder."""
        try:
            if self.process.poll() is None:
                try:
                    os.killpg(self.process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    self.process.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(STOP_TIMEOUT)
            # Children left in the group (dovecot's, postgres's workers) go with it.
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        finally:
            self._output.close()
            shutil.rmtree(self.folder, ignore_errors=True)


def start(*plans: tuple[Callable[..., Peer], tuple[object, ...]]) -> list[Peer]:
    """Start every ``(make, args)`` at once, then wait until all listen (bounded).

    Starting them together keeps a module's servers' start-up under the
    slowest one's. A server whose port was taken meanwhile is started again
    on fresh ports (up to `START_TRIES` times); on failure every peer
    started here is stopped.
    """
    peers: list[Peer] = []
    try:
        peers.extend(make(*args) for make, args in plans)
        deadline = time.monotonic() + START_TIMEOUT
        for index, (make, args) in enumerate(plans):
            for attempt in range(START_TRIES):
                try:
                    peers[index].wait_ready(deadline)
                    break
                except PeerError:
                    peers[index].stop()
                    if attempt == START_TRIES - 1:
                        raise
                    peers[index] = make(*args)
                    deadline = time.monotonic() + START_TIMEOUT
    except BaseException:
        for peer in peers:
            peer.stop()
        raise
    return peers


def version(args: list[str]) -> str:
    """The first line a program prints for its version option (for the docs and the test report)."""
    out = subprocess.run(args, capture_output=True, text=True, timeout=STOP_TIMEOUT, check=False)
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "?"


# -- dovecot: IMAP and POP3 ---------------------------------------------------------

DOVECOT_USER = "alice"
DOVECOT_PASSWORD = "wonderland"


def dovecot(tls: ServerCert | None) -> Peer:
    """Dovecot with IMAP and POP3 (``ports["imap"]``, ``ports["pop3"]``); STARTTLS iff ``tls``."""
    program = require_program("dovecot")
    require_root("dovecot")
    folder = owned_folder("dovecot")
    home = folder / "home"
    home.mkdir()
    mail = pwd.getpwnam("dovecot")
    os.chown(home, mail.pw_uid, mail.pw_gid)
    ports = {"imap": free_port(), "pop3": free_port()}
    if tls is not None:
        chain, key = _copy_identity(tls, folder, None)
        ssl = f"ssl = yes\nssl_cert = <{chain}\nssl_key = <{key}\n"
    else:
        ssl = "ssl = no\n"
    (folder / "dovecot.conf").write_text(
        f"base_dir = {folder}/run\n"
        f"state_dir = {folder}/state\n"
        f"log_path = {folder}/dovecot.log\n"
        "protocols = imap pop3\n"
        "listen = 127.0.0.1\n"
        f"{ssl}"
        "auth_mechanisms = plain\n"
        f"passdb {{\n  driver = static\n  args = password={DOVECOT_PASSWORD}\n}}\n"
        f"userdb {{\n  driver = static\n  args = uid=dovecot gid=dovecot home={home}/%u\n}}\n"
        "mail_location = maildir:~/Maildir\n"
        # Mail processes run as the dovecot system user, below the usual first_valid_uid of 500.
        f"first_valid_uid = {mail.pw_uid}\nfirst_valid_gid = {mail.pw_gid}\n"
        f"service imap-login {{\n  inet_listener imap {{\n    port = {ports['imap']}\n  }}\n"
        "  inet_listener imaps {\n    port = 0\n  }\n}\n"
        f"service pop3-login {{\n  inet_listener pop3 {{\n    port = {ports['pop3']}\n  }}\n"
        "  inet_listener pop3s {\n    port = 0\n  }\n}\n"
    )
    peer = Peer(
        "dovecot",
        [program, "-F", "-c", str(folder / "dovecot.conf")],
        folder,
        ports,
        log_files=("dovecot.log",),
    )
    return peer


def dovecot_version() -> str:
    return "Dovecot " + version([require_program("dovecot"), "--version"])


def wait_for_imap_greeting(port: int) -> None:
    """Until dovecot greets "ready" (right after start it says "Waiting for authentication process")."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        with socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT) as sock:
            sock.settimeout(PROBE_TIMEOUT)
            try:
                greeting = sock.recv(4096)
            except TimeoutError:
                greeting = b""
        if b"ready" in greeting:
            return
        time.sleep(START_POLL)
    raise PeerError("dovecot's authentication process did not come up")


# -- pyftpdlib: FTP -------------------------------------------------------------------

FTP_USER = "bob"
FTP_PASSWORD = "builder"


def pyftpdlib(tls: ServerCert | None) -> Peer:
    """pyftpdlib's standalone server (one user, read-only); AUTH TLS iff ``tls``."""
    require_module("pyftpdlib")
    folder = owned_folder("ftp")
    (folder / "share").mkdir()
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "pyftpdlib",
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-d",
        str(folder / "share"),
        "-u",
        FTP_USER,
        "-P",
        FTP_PASSWORD,
    ]
    if tls is not None:
        require_module("OpenSSL")
        chain, key = _copy_identity(tls, folder, None)
        args += ["--tls", "--certfile", str(chain), "--keyfile", str(key)]
    return Peer("pyftpdlib", args, folder, {"ftp": port})


def pyftpdlib_version() -> str:
    import pyftpdlib as module

    return f"pyftpdlib {module.__ver__}"


# -- PostgreSQL -------------------------------------------------------------------------

POSTGRES_BIN = Path("/usr/lib/postgresql") / POSTGRES_VERSION / "bin"


def postgres_template(folder: Path) -> Path:
    """A cluster made once by initdb (trust authentication), to copy for each server."""
    initdb = require_program(str(POSTGRES_BIN / "initdb"))
    require_root("PostgreSQL")
    data = folder / "template"
    entry = pwd.getpwnam("postgres")
    out = subprocess.run(
        [
            initdb,
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        ],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT * 3,
        check=False,
        user=entry.pw_uid,
        group=entry.pw_gid,
        extra_groups=[],
        cwd=folder,
    )
    if out.returncode != 0:
        raise PeerError(f"initdb failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return data


def postgres(template: Path, tls: ServerCert | None) -> Peer:
    """A private PostgreSQL server (a copy of ``template``) as user ``postgres``; ``ssl=on`` iff ``tls``."""
    program = require_program(str(POSTGRES_BIN / "postgres"))
    folder = owned_folder("pg", "postgres")
    data = folder / "data"
    subprocess.run(["cp", "-a", str(template), str(data)], check=True, timeout=START_TIMEOUT)
    port = free_port()
    args = [
        program,
        "-D",
        str(data),
        "-k",
        str(folder),
        "-p",
        str(port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "fsync=off",
    ]
    if tls is not None:
        chain, key = _copy_identity(tls, folder, "postgres")
        args += ["-c", "ssl=on", "-c", f"ssl_cert_file={chain}", "-c", f"ssl_key_file={key}"]
    else:
        args += ["-c", "ssl=off"]
    return Peer("postgres", args, folder, {"postgres": port}, user="postgres")


def postgres_version() -> str:
    return version([require_program(str(POSTGRES_BIN / "postgres")), "--version"])


def startup_message(user: str, database: str) -> bytes:
    """A protocol 3.0 StartupMessage."""
    body = (
        struct.pack("!I", 196608)
        + b"".join(
            key.encode() + b"\0" + value.encode() + b"\0"
            for key, value in (("user", user), ("database", database))
        )
        + b"\0"
    )
    return struct.pack("!I", len(body) + 4) + body


# -- slapd: LDAP ---------------------------------------------------------------------------


def slapd(tls: ServerCert | None) -> Peer:
    """slapd without any database (StartTLS and an anonymous bind need none); StartTLS iff ``tls``."""
    program = require_program("slapd")
    folder = owned_folder("ldap")
    port = free_port()
    conf = f"pidfile {folder}/slapd.pid\nargsfile {folder}/slapd.args\n"
    if tls is not None:
        chain, key = _copy_identity(tls, folder, None)
        conf += f"TLSCertificateFile {chain}\nTLSCertificateKeyFile {key}\n"
    (folder / "slapd.conf").write_text(conf)
    args = [program, "-d", "0", "-h", f"ldap://127.0.0.1:{port}/", "-f", str(folder / "slapd.conf")]
    return Peer("slapd", args, folder, {"ldap": port})


def slapd_version() -> str:
    line = version([require_program("slapd"), "-VV"])
    # "@(#) $OpenLDAP: slapd 2.5.13+dfsg-5 (Feb  8 2023 01:56:12) $"
    return line.split("$OpenLDAP:", 1)[-1].split("(", 1)[0].strip() or line


# -- Prosody: XMPP ---------------------------------------------------------------------------


def prosody(tls: ServerCert | None) -> Peer:
    """Prosody for ``VirtualHost "localhost"`` as the ``prosody`` user; mod_tls (required) iff ``tls``."""
    program = require_program("prosody")
    require_root("Prosody")
    folder = owned_folder("xmpp", "prosody")
    data = folder / "data"
    data.mkdir()
    entry = pwd.getpwnam("prosody")
    os.chown(data, entry.pw_uid, entry.pw_gid)
    port = free_port()
    if tls is not None:
        chain, key = _copy_identity(tls, folder, "prosody")
        modules = '"tls", "saslauth"'
        security = f'c2s_require_encryption = true\nssl = {{ certificate = "{chain}", key = "{key}" }}\n'
    else:
        modules = '"saslauth"'
        security = (
            "c2s_require_encryption = false\n"
            "allow_unencrypted_plain_auth = true\n"
            'modules_disabled = { "tls" }\n'
        )
    config = folder / "prosody.cfg.lua"
    config.write_text(
        f'pidfile = "{folder}/prosody.pid"\n'
        f'data_path = "{data}"\n'
        "daemonize = false\n"
        f'log = {{ info = "{folder}/prosody.log" }}\n'
        f'certificates = "{folder}"\n'
        f"modules_enabled = {{ {modules} }}\n"
        f"c2s_ports = {{ {port} }}\n"
        'c2s_interfaces = { "127.0.0.1" }\n'
        "s2s_ports = { }\n"
        f"{security}"
        'VirtualHost "localhost"\n'
    )
    os.chown(config, entry.pw_uid, entry.pw_gid)
    return Peer(
        "prosody",
        [program, "--config", str(config), "-F"],
        folder,
        {"xmpp": port},
        user="prosody",
        log_files=("prosody.log",),
    )


def prosody_version() -> str:
    return version([require_program("prosodyctl"), "about"])


# -- Exim: SMTP (GnuTLS) ------------------------------------------------------------------------

#: The user Debian's exim drops to; with a private -C configuration it runs as this user.
EXIM_USER = "Debian-exim"


def exim(tls: ServerCert | None) -> Peer:
    """Exim as a foreground daemon with a private configuration; STARTTLS offered iff ``tls``."""
    program = require_program("exim")
    require_root("exim")
    folder = owned_folder("exim")
    entry = pwd.getpwnam(EXIM_USER)
    for name in ("spool", "log"):
        (folder / name).mkdir()
        os.chown(folder / name, entry.pw_uid, entry.pw_gid)
    port = free_port()
    if tls is not None:
        chain, key = _copy_identity(tls, folder, EXIM_USER)
        security = f"tls_advertise_hosts = *\ntls_certificate = {chain}\ntls_privatekey = {key}\n"
    else:
        security = "tls_advertise_hosts =\n"
    (folder / "exim.conf").write_text(
        "keep_environment =\n"
        f"spool_directory = {folder}/spool\n"
        f"log_file_path = {folder}/log/%slog\n"
        f"pid_file_path = {folder}/exim.pid\n"
        f"daemon_smtp_ports = {port}\n"
        "local_interfaces = 127.0.0.1\n"
        "primary_hostname = localhost\n"
        f"{security}"
        "acl_smtp_rcpt = acl_check_rcpt\n"
        "begin acl\n"
        "acl_check_rcpt:\n"
        "  deny\n"
    )
    return Peer(
        "exim",
        [program, "-C", str(folder / "exim.conf"), "-bdf"],
        folder,
        {"smtp": port},
        log_files=("log/mainlog", "log/paniclog"),
    )


def exim_version() -> str:
    return version([require_program("exim"), "--version"])
