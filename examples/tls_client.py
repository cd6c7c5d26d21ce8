"""TLS to a local server whose certificate is made at run time.

Makes a throwaway CA and a server certificate for 127.0.0.1 with
``cryptography``, starts a TLS echo server in a thread, and connects with
``Option.SECURE``, trusting only that CA through
``SecurityCredentials(ca_data=...)``. Verification stays on: the certificate
chain and the IP address are checked, as for any server.

    python examples/tls_client.py
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import socket
import ssl
import tempfile
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import inetkit
from inetkit import Option, SecurityCredentials

#: Seconds any step may take; loopback answers in microseconds.
TIMEOUT = 5.0


def make_certificates() -> tuple[bytes, bytes, ec.EllipticCurvePrivateKey]:
    """A CA certificate, a server certificate for 127.0.0.1 signed by it, and the server key."""
    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(hours=1))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example CA")])
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
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "server.pem")
        with open(path, "wb") as file:
            file.write(cert_pem + encrypted)
        context.load_cert_chain(path, password=password)
    return context


def serve_echo(listener: socket.socket, context: ssl.SSLContext) -> None:
    sock, _ = listener.accept()
    sock.settimeout(TIMEOUT)
    with context.wrap_socket(sock, server_side=True) as tls:
        while data := tls.recv(65536):
            tls.sendall(data)


def main() -> int:
    ca_pem, cert_pem, key = make_certificates()
    context = server_context(cert_pem, key)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(TIMEOUT)
        server = threading.Thread(target=serve_echo, args=(listener, context), daemon=True)
        server.start()
        port = listener.getsockname()[1]

        credentials = SecurityCredentials(ca_data=ca_pem)  # trust this CA only
        with inetkit.connect(
            "127.0.0.1", port, timeout=TIMEOUT, options=Option.SECURE, credentials=credentials
        ) as conn:
            info = conn.security_info
            assert info is not None
            print(f"{info.protocol} {info.cipher} ({info.cipher_bits} bits)")
            if info.peer_certificate is not None:
                print(f"server certificate: {info.peer_certificate.subject}")
                print(f"issued by: {info.peer_certificate.issuer}")
            conn.write_line("hello over TLS")
            print(f"echoed: {conn.read_line().decode().rstrip()}")
        server.join(TIMEOUT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
