"""`inetkit.aio.connect(starttls=...)`: the dialog inside the connect deadline, as in the blocking connect."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import certs
import pytest
from aio_connect_support import Run, loop_fixture
from conftest import Server, silent_listener
from test_aio_connect import (
    assert_same_error,
    async_error,
    blocking_error,
    cancelled_after,
    counted,
    settled,
    steady_fds,
)
from test_starttls import SMTPServer, smtp_server, trust

import inetkit
import inetkit.aio
from inetkit import ErrorCode

__all__ = ["smtp_server"]  # a fixture, used by name

pytestmark = pytest.mark.usefixtures("fresh_tls_caches")
arun = loop_fixture()

#: Connect timeout of the deadline tests: short, so the tests are quick.
SHORT_TIMEOUT = 0.5


def test_starttls_smtp(pki: certs.PKI, smtp_server: Callable[..., SMTPServer], arun: Run[Any]) -> None:
    server = smtp_server(pki.servers["valid"].context(), require_starttls=True)

    async def main() -> None:
        async with await inetkit.aio.connect(
            "localhost", server.port, starttls="smtp", credentials=trust(pki), timeout=5
        ) as conn:
            assert conn.is_secure
            await conn.write_line("NOOP")
            assert (await conn.read_line()).startswith(b"250")
            trace = conn.trace
            assert trace.starttls is not None and trace.starttls > 0
            assert trace.tls_handshake is not None and trace.tls_handshake > 0
            assert trace.total >= trace.starttls + trace.tls_handshake

    arun(main())


def test_starttls_not_offered_parity(
    pki: certs.PKI, smtp_server: Callable[..., SMTPServer], arun: Run[Any]
) -> None:
    """A server without STARTTLS: the same refusal from both connects, and the handle closed."""
    server = smtp_server(None)
    blocking = blocking_error("localhost", server.port, starttls="smtp", credentials=trust(pki), timeout=5)

    async def main() -> tuple[BaseException, int]:
        before = await steady_fds()  # the blocking connect's server end may still be closing
        error = await async_error(
            "localhost", server.port, starttls="smtp", credentials=trust(pki), timeout=5
        )
        return error, await settled(before) - before

    ours, leaked = arun(main())
    assert_same_error(ours, blocking)
    assert isinstance(ours, inetkit.SecurityError) and ours.code is ErrorCode.STARTTLS_REFUSED
    assert leaked == 0


@pytest.mark.parametrize("name", ["smtp", "imap", "ftp", "postgres"])
def test_dialog_counts_against_the_connect_deadline(pki: certs.PKI, name: str, arun: Run[Any]) -> None:
    """A server that accepts and never answers: TIMED_OUT at the connect deadline, as the blocking connect."""
    with silent_listener(4) as port:
        blocking = blocking_error(
            "127.0.0.1", port, starttls=name, credentials=trust(pki), timeout=SHORT_TIMEOUT
        )

        async def main() -> tuple[BaseException, float]:
            started = time.monotonic()
            error = await async_error(
                "127.0.0.1", port, starttls=name, credentials=trust(pki), timeout=SHORT_TIMEOUT
            )
            return error, time.monotonic() - started

        ours, elapsed = arun(main())
    assert_same_error(ours, blocking)
    assert isinstance(ours, inetkit.InetTimeoutError) and ours.code is ErrorCode.TIMED_OUT
    assert SHORT_TIMEOUT * 0.9 <= elapsed < SHORT_TIMEOUT + 1.0
    assert ours.trace is not None and ours.trace.attempts[0].outcome == "failed"


def test_cancelled_dialog_closes_the_socket(
    pki: certs.PKI, make_server: Callable[..., Server], arun: Run[Any]
) -> None:
    with silent_listener(4) as port:

        async def main() -> tuple[int, int, int]:
            return await counted(
                lambda: cancelled_after(
                    0.1,
                    inetkit.aio.connect(
                        "127.0.0.1", port, starttls="smtp", credentials=trust(pki), timeout=10
                    ),
                )
            )

        assert arun(main()) == (0, 0, 0)
