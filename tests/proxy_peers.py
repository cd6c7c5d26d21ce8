"""Real proxies that nobody on the team wrote, run on loopback for the proxy tests.

Like ``peers`` (whose `Peer` runs them): each runner writes a private
configuration into a temporary folder, starts the server in the foreground
in its own process group on free loopback ports, and `Peer.stop` ends
exactly that group.

* squid (Debian ``squid``): four listeners of one instance: ``open`` (HTTP
  CONNECT for anyone), ``auth`` (Basic authentication through its
  ``basic_ncsa_auth`` helper, against an htpasswd file made here), ``tls``
  (its ``https_port``: an HTTPS proxy with the test PKI's valid
  certificate) and ``badtls`` (an HTTPS proxy whose certificate chains to a
  foreign root). CONNECT to ports 1-1023 is denied (403).
* dante (Debian ``dante-server``): ``danted`` twice, one instance without
  authentication and one that requires RFC 1929 user name authentication
  against a system user made here (`SOCKS_USER`); both block one port
  (``socks block``, SOCKS5 reply 2).
* OpenSSH's ``ssh -D``: a SOCKS4/4a/5 proxy whose far end is ``sshd -i``
  started by ``ProxyCommand`` (no sshd port), with throwaway host and
  user keys.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

from certs import ServerCert
from conftest import free_port, require_program
from peers import Peer, _copy_identity, owned_folder, require_root, version

__all__ = [
    "BLOCKED_PORT_NOTE",
    "SOCKS_PASSWORD",
    "SOCKS_USER",
    "SQUID_PASSWORD",
    "SQUID_USER",
    "danted",
    "ensure_socks_user",
    "squid",
    "ssh_socks",
    "versions",
]

SQUID_USER = "alice"
SQUID_PASSWORD = "won:der@land"  # a ':' and an '@': they must travel percent-encoded
#: The system user dante checks RFC 1929 user names against (made by `ensure_socks_user`).
SOCKS_USER = "inetkit-socks"
SOCKS_PASSWORD = "rabbit-hole"
#: Why the blocked port is a live one: the refusal then comes from dante's rules, not from the target.
BLOCKED_PORT_NOTE = "dante's socks block rule (the target listens)"
#: Seconds a helper program (openssl, ssh-keygen, useradd) may take.
TOOL_TIMEOUT = 20.0


def _run(args: list[str], **kwargs: object) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=True, **kwargs)  # type: ignore[call-overload]
    return str(done.stdout)


# -- squid -------------------------------------------------------------------------------


def squid(tls: ServerCert, bad_tls: ServerCert) -> Peer:
    """squid with ``ports["open"]``, ``["auth"]``, ``["tls"]`` (valid certificate) and ``["badtls"]``."""
    program = require_program("squid")
    openssl = require_program("openssl")
    require_root("squid")
    # squid drops to user "proxy", which must reach its files (PEERS.md).
    folder = owned_folder("squid", "proxy")
    chain, key = _copy_identity(tls, folder, "proxy")
    bad_folder = folder / "bad"
    bad_folder.mkdir()
    os.chown(bad_folder, pwd.getpwnam("proxy").pw_uid, pwd.getpwnam("proxy").pw_gid)
    bad_chain, bad_key = _copy_identity(bad_tls, bad_folder, "proxy")
    digest = _run([openssl, "passwd", "-apr1", "-stdin"], input=SQUID_PASSWORD + "\n").strip()
    (folder / "htpasswd").write_text(f"{SQUID_USER}:{digest}\n")
    ports = {"open": free_port(), "auth": free_port(), "tls": free_port(), "badtls": free_port()}
    (folder / "squid.conf").write_text(
        f"http_port 127.0.0.1:{ports['open']} name=open\n"
        f"http_port 127.0.0.1:{ports['auth']} name=auth\n"
        f"https_port 127.0.0.1:{ports['tls']} name=tls tls-cert={chain} tls-key={key}\n"
        f"https_port 127.0.0.1:{ports['badtls']} name=badtls tls-cert={bad_chain} tls-key={bad_key}\n"
        f"pid_filename {folder}/squid.pid\n"
        f"cache_log {folder}/cache.log\n"
        f"access_log stdio:{folder}/access.log\n"
        f"coredump_dir {folder}\n"
        "cache deny all\n"
        "pinger_enable off\n"
        # Stop at once on SIGTERM (the default waits 30 s for clients).
        "shutdown_lifetime 0 seconds\n"
        f"auth_param basic program /usr/lib/squid/basic_ncsa_auth {folder}/htpasswd\n"
        "auth_param basic realm inetkit\n"
        "acl open_ports myportname open tls badtls\n"
        "acl auth_port myportname auth\n"
        "acl low_ports port 1-1023\n"
        "acl authed proxy_auth REQUIRED\n"
        "http_access deny low_ports\n"
        "http_access allow open_ports\n"
        "http_access allow auth_port authed\n"
        "http_access deny all\n"
    )
    return Peer(
        "squid",
        [program, "-N", "-f", str(folder / "squid.conf")],
        folder,
        ports,
        log_files=("cache.log",),
    )


# -- dante ---------------------------------------------------------------------------------


def ensure_socks_user() -> None:
    """The system user dante's user name authentication checks (made once, with its password)."""
    require_root("dante's user name authentication (it needs a system user)")
    try:
        pwd.getpwnam(SOCKS_USER)
    except KeyError:
        _run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SOCKS_USER])
    _run(["chpasswd"], input=f"{SOCKS_USER}:{SOCKS_PASSWORD}\n")


def danted(blocked_port: int, username: bool = False) -> Peer:
    """``danted`` on ``ports["socks"]``: SOCKS5, without or with user name authentication."""
    program = require_program("danted")
    require_root("danted")
    if username:
        ensure_socks_user()
    folder = owned_folder("danted")
    port = free_port()
    method = "username" if username else "none"
    (folder / "danted.conf").write_text(
        f"logoutput: {folder}/danted.log\n"
        f"internal: 127.0.0.1 port = {port}\n"
        "external: 127.0.0.1\n"
        "clientmethod: none\n"
        f"socksmethod: {method}\n"
        # root to check passwords in /etc/shadow, nobody for the rest.
        "user.privileged: root\n"
        "user.unprivileged: nobody\n"
        "client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }\n"
        f"socks block {{ from: 0.0.0.0/0 to: 127.0.0.1/32 port = {blocked_port} }}\n"
        f"socks pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 socksmethod: {method} }}\n"
    )
    return Peer(
        "danted",
        [program, "-f", str(folder / "danted.conf"), "-p", str(folder / "danted.pid")],
        folder,
        {"socks": port},
        log_files=("danted.log",),
    )


# -- ssh -D --------------------------------------------------------------------------------


def ssh_socks() -> Peer:
    """``ssh -N -D`` on ``ports["socks"]``; its far end is ``sshd -i`` run by ProxyCommand (no sshd port)."""
    ssh = require_program("ssh")
    keygen = require_program("ssh-keygen")
    sshd = "/usr/sbin/sshd"
    if not os.access(sshd, os.X_OK):
        require_program("sshd")  # skips (or fails under CI) with the package's name
    require_root("sshd -i (it logs in the user it runs as, root here)")
    # sshd refuses to start without its privilege separation folder.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    folder = owned_folder("ssh")
    for name in ("host", "user"):
        _run(
            [keygen, "-q", "-t", "ed25519", "-N", "", "-C", f"inetkit test {name}", "-f", str(folder / name)]
        )
    (folder / "authorized_keys").write_text((folder / "user.pub").read_text())
    (folder / "authorized_keys").chmod(0o600)
    (folder / "known_hosts").write_text(f"inetkit-test {(folder / 'host.pub').read_text()}")
    (folder / "sshd_config").write_text(
        f"HostKey {folder}/host\n"
        f"AuthorizedKeysFile {folder}/authorized_keys\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "StrictModes no\n"
        "AllowTcpForwarding yes\n"
        "PidFile none\n"
        "LogLevel ERROR\n"
    )
    port = free_port()
    args = [
        ssh,
        "-N",
        "-F",
        "none",
        "-D",
        f"127.0.0.1:{port}",
        "-i",
        str(folder / "user"),
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"UserKnownHostsFile={folder}/known_hosts",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "HostKeyAlias=inetkit-test",
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        f"ProxyCommand={sshd} -i -f {folder}/sshd_config",
        f"{pwd.getpwuid(os.geteuid()).pw_name}@inetkit-test",
    ]
    return Peer("ssh -D", args, folder, {"socks": port})


def versions() -> dict[str, str]:
    """The real servers' versions, for the test report."""
    found = {}
    for name, args in (
        ("squid", ["squid", "-v"]),
        ("dante", ["danted", "-v"]),
        ("openssh", ["ssh", "-V"]),
    ):
        try:
            found[name] = version(args)
        except (OSError, subprocess.SubprocessError):
            found[name] = "missing"
    return found
