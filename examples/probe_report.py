"""A probe-style report of one secure connect, from the public API only.

What ``inetkit probe`` prints, built from `Connection.trace` (the name
lookup and every address attempt) and `Connection.security_info` (the TLS
parameters and the server certificate): useful as a starting point for a
health check of your own.

    python examples/probe_report.py                      # a TLS server on loopback
    python examples/probe_report.py https://example.com/ # a real server (reaches the internet)

Without an argument the script makes a throwaway CA and a certificate for
127.0.0.1 with ``cryptography``, starts a TLS server in a thread (offering
ALPN ``http/1.1``) and reports on two connects to it: the second resumes the
first one's TLS session.
"""

from __future__ import annotations

import datetime
import ipaddress
import math
import os
import secrets
import socket
import ssl
import sys
import tempfile
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import inetkit
from inetkit import SecurityCredentials

#: Seconds any step may take on loopback (a real server gets the default 20).
TIMEOUT = 5.0
#: Connects the loopback server accepts: one full handshake, one resumption.
CONNECTS = 2


def report(conn: inetkit.Connection) -> None:
    """Print the resolution, each attempt, the TLS parameters and the certificate."""
    trace = conn.trace
    print(f"connect {trace.host} port {trace.port}")
    if trace.resolution is not None:
        res = trace.resolution
        print(
            f"  resolved {len(res.addresses)} address(es) from {res.source} "
            f"in {res.duration * 1000:.1f} ms: {', '.join(res.addresses)}"
        )
    for attempt in trace.attempts:
        if attempt.outcome == "abandoned":
            outcome = "lost (another attempt connected first)"
        elif isinstance(attempt.error, inetkit.InetError):
            outcome = f"failed: {attempt.error.code.name}"
        else:
            outcome = attempt.outcome
        took = "" if attempt.duration is None else f", {attempt.duration * 1000:.1f} ms"
        print(f"  attempt {attempt.address} at +{attempt.start * 1000:.1f} ms: {outcome}{took}")
    if trace.tls_handshake is not None:
        print(f"  TLS handshake: {trace.tls_handshake * 1000:.1f} ms")
    print(f"  connected {conn.local_address} -> {conn.remote_address}")
    info = conn.security_info
    if info is None:
        print("  no TLS")
        return
    print(f"  {info.protocol}, {info.cipher} ({info.cipher_bits} bits)")
    print(f"  ALPN: {info.alpn_protocol or 'none'}")
    print(f"  session reused: {'yes' if info.session_reused else 'no'}")
    cert = info.peer_certificate
    if cert is not None:
        left = math.floor((cert.not_after - datetime.datetime.now(datetime.UTC)).total_seconds() / 86400)
        print(f"  certificate: {cert.subject}")
        print(f"    issued by: {cert.issuer}")
        print(f"    names: {', '.join(cert.subject_alt_names) or 'none'}")
        print(f"    expires: {cert.not_after:%Y-%m-%d %H:%M} UTC ({left} days left)")
        print(f"    sha256: {cert.fingerprint_sha256}")


# -- a TLS server on loopback, for the run without arguments -----------------------------------


def make_certificates() -> tuple[bytes, bytes, ec.EllipticCurvePrivateKey]:
    """A CA certificate, a server certificate for 127.0.0.1 signed by it, and the server key."""
    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=30))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "probe example CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return ca.public_bytes(pem), leaf.public_bytes(pem), key


def server_context(cert_pem: bytes, key: ec.EllipticCurvePrivateKey) -> ssl.SSLContext:
    """The server's context. Its key goes to a file only encrypted, under a one-time password."""
    password = secrets.token_hex(32).encode()
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_alpn_protocols(["http/1.1"])
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "server.pem")
        with open(path, "wb") as file:
            file.write(cert_pem + encrypted)
        context.load_cert_chain(path, password=password)
    return context


def serve(listener: socket.socket, context: ssl.SSLContext) -> None:
    """Accept ``CONNECTS`` clients; answer each line, close when the client closes."""
    for _ in range(CONNECTS):
        sock, _ = listener.accept()
        sock.settimeout(TIMEOUT)
        try:
            with context.wrap_socket(sock, server_side=True) as tls:
                while data := tls.recv(65536):
                    tls.sendall(data)
        except OSError:
            pass  # a client that went away; the next one may come


def loopback() -> int:
    ca_pem, cert_pem, key = make_certificates()
    context = server_context(cert_pem, key)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(TIMEOUT)
        server = threading.Thread(target=serve, args=(listener, context), daemon=True)
        server.start()
        url = f"https://127.0.0.1:{listener.getsockname()[1]}/"
        credentials = SecurityCredentials(ca_data=ca_pem, alpn_protocols=["h2", "http/1.1"])
        for _ in range(CONNECTS):
            with inetkit.connect_url(url, timeout=TIMEOUT, credentials=credentials) as conn:
                # TLS 1.3 sends the session ticket after the handshake: one round
                # trip collects it, so that the next connect can resume.
                conn.write_line("ping")
                conn.read_line()
                report(conn)
        server.join(TIMEOUT)
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        return loopback()
    try:
        with inetkit.connect_url(argv[0]) as conn:
            report(conn)
    except inetkit.InetError as exc:
        print(f"{exc.code.name}: {exc}", file=sys.stderr)
        if exc.trace is not None:
            print(exc.trace.format(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
