"""A client certificate from a PKCS#12 store, against a server that requires one.

Makes a throwaway CA, a server certificate for 127.0.0.1 and a client
certificate with ``cryptography``, packs the client's certificate and key
into a password-protected PKCS#12 store (what a ``.p12``/``.pfx`` file
holds), and starts a TLS server on loopback that accepts only clients with
a certificate from that CA. Then:

1. connects with ``SecurityCredentials(cert_store=<the PKCS#12 bytes>,
   password=...)``: the server sees the client's certificate;
2. connects without a client certificate: the server refuses
   (``CLIENT_CERTIFICATE_REQUIRED``; with TLS 1.3 the server's verdict
   arrives after the handshake, so the first read reports it);
3. tries a wrong password: refused before any network I/O
   (``INVALID_CREDENTIALS``).

inetkit never writes the decrypted client key to a file. ``cert_store`` may
as well be a path (``"client.p12"``).

    python examples/client_certificate_p12.py
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
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import inetkit
from inetkit import Option, SecurityCredentials

#: Seconds any step may take; loopback answers in microseconds.
TIMEOUT = 5.0
#: Clients the server takes: one with a certificate, one without.
CLIENTS = 2
#: The PKCS#12 store's password (in real code: from a secret store, never in source).
P12_PASSWORD = b"example password"


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *extensions: tuple[x509.ExtensionType, bool],
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki() -> tuple[bytes, bytes, ec.EllipticCurvePrivateKey, bytes]:
    """CA certificate (PEM), server certificate (PEM) and key, and the client's PKCS#12 store."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example CA")])
    ca = _cert("example CA", ca_key, ca_name, ca_key, (x509.BasicConstraints(ca=True, path_length=0), True))
    leaf = (x509.BasicConstraints(ca=False, path_length=None), True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _cert(
        "127.0.0.1",
        server_key,
        ca_name,
        ca_key,
        leaf,
        (x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _cert(
        "example client",
        client_key,
        ca_name,
        ca_key,
        leaf,
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
    )
    store = pkcs12.serialize_key_and_certificates(
        b"example client", client_key, client, None, serialization.BestAvailableEncryption(P12_PASSWORD)
    )
    pem = serialization.Encoding.PEM
    return ca.public_bytes(pem), server.public_bytes(pem), server_key, store


def server_context(ca_pem: bytes, cert_pem: bytes, key: ec.EllipticCurvePrivateKey) -> ssl.SSLContext:
    """A server context that requires a client certificate from the example CA.

    The server key goes to a file only encrypted, under a one-time password.
    """
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
    context.load_verify_locations(cadata=ca_pem.decode("ascii"))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def serve(listener: socket.socket, context: ssl.SSLContext) -> None:
    """Greet each client by its certificate's common name; refuse those without one."""
    for _ in range(CLIENTS):
        sock, _ = listener.accept()
        sock.settimeout(TIMEOUT)
        try:
            with context.wrap_socket(sock, server_side=True) as tls:
                der = tls.getpeercert(binary_form=True)
                assert der is not None  # CERT_REQUIRED: the handshake fails without one
                subject = x509.load_der_x509_certificate(der).subject
                names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
                tls.recv(65536)
                name = str(names[0].value) if names else "?"
                tls.sendall(f"hello {name}\r\n".encode())
        except OSError:
            sock.close()  # the handshake failed: no certificate; the client hears why


def main() -> int:
    ca_pem, cert_pem, server_key, store = make_pki()
    context = server_context(ca_pem, cert_pem, server_key)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(TIMEOUT)
        server = threading.Thread(target=serve, args=(listener, context), daemon=True)
        server.start()
        port = listener.getsockname()[1]

        # 1. With the client certificate from the PKCS#12 store.
        with_certificate = SecurityCredentials(cert_store=store, password=P12_PASSWORD, ca_data=ca_pem)
        with inetkit.connect(
            "127.0.0.1", port, timeout=TIMEOUT, options=Option.SECURE, credentials=with_certificate
        ) as conn:
            conn.write_line("hello")
            print(f"with the PKCS#12 certificate: the server said {conn.read_line().decode().rstrip()!r}")

        # 2. Without one: the server refuses.
        try:
            with inetkit.connect(
                "127.0.0.1",
                port,
                timeout=TIMEOUT,
                options=Option.SECURE,
                credentials=SecurityCredentials(ca_data=ca_pem),
            ) as conn:
                conn.write_line("hello")
                conn.read_line()
        except inetkit.SecurityError as exc:
            print(f"without a client certificate: {exc.code.name}")
        else:
            raise SystemExit("the server accepted a client without a certificate")
        server.join(TIMEOUT)

    # 3. A wrong password: found when the credentials are loaded, before any I/O.
    wrong = SecurityCredentials(cert_store=store, password=b"not the password", ca_data=ca_pem)
    try:
        inetkit.connect("127.0.0.1", port, timeout=TIMEOUT, options=Option.SECURE, credentials=wrong)
    except inetkit.SecurityError as exc:
        print(f"with a wrong password: {exc.code.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
