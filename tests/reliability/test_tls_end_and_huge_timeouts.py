"""How a TLS stream ends, what a failed TLS write reports, and the largest connect timeouts.

* A TLS stream that ends without close_notify (a bare FIN) raises
  `ConnectionClosedError` (``TLS_TRUNCATED``) after the data before it was
  delivered; it is never a clean end.
* A TLS write that fails part-way reports ``bytes_sent`` in *plaintext*
  bytes (the slices whose records were all sent), and the handle is
  unusable after it.
* ``connect(timeout=1e308)`` (any finite timeout) works: the dialer's waits
  clamp instead of raising OverflowError.
"""

from __future__ import annotations

import socket
import ssl
import sys
import threading
import time
from typing import Any

import pytest
from conftest import silent_listener

import inetkit
from inetkit import ConnectionClosedError, ErrorCode, InetError, InetTimeoutError, Option, SecurityCredentials

from .conftest import Measure
from .peers import peer, read_some

#: Bound on helper waits.
WAIT_LIMIT = 10.0
#: What the TLS write to a peer that never reads tries to send.
FLOOD = 64 << 20


@pytest.fixture(scope="module")
def tls(pki: Any) -> tuple[ssl.SSLContext, SecurityCredentials]:
    return pki.servers["valid"].context(), SecurityCredentials(ca_file=pki.ca_file)


def test_a_bare_fin_on_tls_is_truncation_not_a_clean_end(
    tls: tuple[ssl.SSLContext, SecurityCredentials], measure: Measure
) -> None:
    context, creds = tls
    code = ErrorCode.TLS_TRUNCATED

    def handler(sock: socket.socket) -> None:
        server = context.wrap_socket(sock, server_side=True)
        server.sendall(b"partial answer\n")
        raw = socket.socket(fileno=server.detach())
        raw.close()  # FIN without close_notify

    with measure("TLS FIN without close_notify", "read to the end") as case, peer(handler) as port:
        with inetkit.connect("localhost", port, timeout=5, options=Option.SECURE, credentials=creds) as conn:
            assert conn.read_line() == b"partial answer\n"
            with pytest.raises(ConnectionClosedError) as info:
                conn.read()
            assert info.value.code is code
        case.outcome = "ConnectionClosedError/TLS_TRUNCATED"


def test_a_tls_write_to_a_peer_that_never_reads_reports_plaintext_bytes_sent(
    tls: tuple[ssl.SSLContext, SecurityCredentials], measure: Measure
) -> None:
    context, creds = tls
    release = threading.Event()
    drained = threading.Event()
    received = bytearray()

    def handler(sock: socket.socket) -> None:
        server = context.wrap_socket(sock, server_side=True)
        release.wait(WAIT_LIMIT)
        server.settimeout(0.5)  # the end of what the client's kernel held
        try:
            while data := server.recv(1 << 20):
                received.extend(data)
        except (TimeoutError, ssl.SSLError, OSError):
            pass
        drained.set()
        server.close()

    with (
        measure("TLS peer never reads; 64 MiB write", "write() with timeout 0.3") as case,
        peer(handler) as port,
    ):
        with inetkit.connect("localhost", port, timeout=5, options=Option.SECURE, credentials=creds) as conn:
            conn.timeout = 0.3
            with pytest.raises(InetTimeoutError) as info:
                conn.write(b"z" * FLOOD)
            release.set()
            error = info.value
            assert error.bytes_sent is not None
            assert 0 < error.bytes_sent < FLOOD
            # Counted in the caller's bytes: "N of <len(data)> bytes", not of the ciphertext.
            assert f"of {FLOOD} bytes" in str(error), str(error)
            with pytest.raises(InetError):
                conn.write(b"after a failed TLS write")
            # Closing with unread data would reset the connection and drop what the
            # peer has not read yet: wait until it has read everything.
            assert drained.wait(WAIT_LIMIT)
        # bytes_sent counts the slices whose records were all sent: the peer may
        # also have the first records of the slice that was in flight.
        from inetkit._core.tls_engine import SEND_SLICE

        assert error.bytes_sent <= len(received) < error.bytes_sent + SEND_SLICE
        case.outcome = f"InetTimeoutError/TIMED_OUT, bytes_sent={error.bytes_sent} (plaintext)"


@pytest.mark.parametrize("timeout", [1e308, sys.float_info.max], ids=["1e308", "max float"])
def test_connect_with_the_largest_timeouts(
    timeout: float, tls: tuple[ssl.SSLContext, SecurityCredentials], measure: Measure
) -> None:
    context, creds = tls
    with measure(f"connect timeout {timeout:.3g} s", "connect plain and TLS") as case:
        with silent_listener(4) as port:
            started = time.monotonic()
            with inetkit.connect("127.0.0.1", port, timeout=timeout) as conn:
                assert conn.timeout == timeout
            case.saw(time.monotonic() - started)

        def handler(sock: socket.socket) -> None:
            with context.wrap_socket(sock, server_side=True) as server:
                read_some(server)

        with peer(handler) as port:
            with inetkit.connect(
                "localhost", port, timeout=timeout, options=Option.SECURE, credentials=creds
            ) as conn:
                conn.write(b"x")
        case.outcome = "connects"
