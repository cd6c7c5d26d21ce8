"""The error model: classes, codes, built-in bases, pickling, translation."""

from __future__ import annotations

import errno
import pickle
import ssl

import pytest

import inetkit
from inetkit import ErrorCode
from inetkit._errors import translate_os_error

BASES = [
    (inetkit.InvalidArgumentError, ValueError, ErrorCode.INVALID_ARGUMENT),
    (inetkit.HostNotFoundError, OSError, ErrorCode.HOST_NOT_FOUND),
    (inetkit.InetTimeoutError, TimeoutError, ErrorCode.TIMED_OUT),
    (inetkit.InetConnectionError, ConnectionError, ErrorCode.NETWORK_ERROR),
    (inetkit.InetConnectionRefusedError, ConnectionRefusedError, ErrorCode.CONNECTION_REFUSED),
    (inetkit.InetConnectionResetError, ConnectionResetError, ErrorCode.CONNECTION_RESET),
    (inetkit.ConnectionClosedError, ConnectionError, ErrorCode.CONNECTION_CLOSED),
    (inetkit.SecurityError, ssl.SSLError, ErrorCode.HANDSHAKE_FAILED),
    (inetkit.CertificateError, ssl.SSLCertVerificationError, ErrorCode.CERTIFICATE_UNTRUSTED),
    (inetkit.OwnershipError, OSError, ErrorCode.NOT_HANDLE_OWNER),
    (inetkit.CancelledError, OSError, ErrorCode.CANCELLED),
]


@pytest.mark.parametrize(("cls", "builtin", "code"), BASES)
def test_classes_derive_from_builtins(cls: type[inetkit.InetError], builtin: type, code: ErrorCode) -> None:
    exc = cls("something happened")
    assert isinstance(exc, inetkit.InetError)
    assert isinstance(exc, OSError)
    assert isinstance(exc, builtin)
    assert exc.code is code
    assert str(exc) == "something happened"
    assert exc.errno is None
    assert code.name in repr(exc)


def test_refused_is_a_connection_error() -> None:
    assert issubclass(inetkit.InetConnectionRefusedError, inetkit.InetConnectionError)
    assert issubclass(inetkit.InetConnectionResetError, inetkit.InetConnectionError)
    assert issubclass(inetkit.CertificateError, inetkit.SecurityError)


@pytest.mark.parametrize(("cls", "builtin", "code"), BASES)
def test_pickling_keeps_everything(cls: type[inetkit.InetError], builtin: type, code: ErrorCode) -> None:
    inner = inetkit.InetConnectionRefusedError("refused at 127.0.0.1", errno=errno.ECONNREFUSED)
    exc = cls("all failed", code, errno=errno.ETIMEDOUT, attempts=[inner], bytes_sent=7)
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is cls
    assert copy.code is code
    assert str(copy) == "all failed"
    assert copy.errno == errno.ETIMEDOUT
    assert copy.bytes_sent == 7
    assert len(copy.attempts) == 1
    assert type(copy.attempts[0]) is inetkit.InetConnectionRefusedError
    assert copy.attempts[0].errno == errno.ECONNREFUSED


def test_codes_are_unique_stable_integers() -> None:
    values = [code.value for code in ErrorCode]
    assert len(values) == len(set(values))
    assert ErrorCode.SUCCESS == 0
    assert ErrorCode.CONNECTION_REFUSED == 301


@pytest.mark.parametrize(
    ("err", "cls", "code"),
    [
        (errno.ECONNREFUSED, inetkit.InetConnectionRefusedError, ErrorCode.CONNECTION_REFUSED),
        (errno.ECONNRESET, inetkit.InetConnectionResetError, ErrorCode.CONNECTION_RESET),
        (errno.EPIPE, inetkit.InetConnectionResetError, ErrorCode.CONNECTION_RESET),
        (errno.ETIMEDOUT, inetkit.InetTimeoutError, ErrorCode.TIMED_OUT),
        (errno.ENETUNREACH, inetkit.InetConnectionError, ErrorCode.NETWORK_UNREACHABLE),
        (errno.EHOSTUNREACH, inetkit.InetConnectionError, ErrorCode.HOST_UNREACHABLE),
        (errno.EADDRINUSE, inetkit.InetConnectionError, ErrorCode.ADDRESS_IN_USE),
        (errno.EADDRNOTAVAIL, inetkit.InetConnectionError, ErrorCode.ADDRESS_NOT_AVAILABLE),
        (errno.EACCES, inetkit.InetError, ErrorCode.PERMISSION_DENIED),
        (errno.EIO, inetkit.InetConnectionError, ErrorCode.NETWORK_ERROR),
    ],
)
def test_translate_os_error(err: int, cls: type[inetkit.InetError], code: ErrorCode) -> None:
    exc = translate_os_error(OSError(err, "boom"), action="connect to", target="h port 1 (10.0.0.1)")
    assert type(exc) is cls
    assert exc.code is code
    assert exc.errno == err
    assert "connect to h port 1 (10.0.0.1)" in str(exc)


def test_translate_keeps_inet_errors() -> None:
    original = inetkit.CancelledError("x")
    assert translate_os_error(original, action="a", target="b") is original


def test_exception_classes_are_named_where_users_import_them() -> None:
    import traceback

    names = [name for name in inetkit.__all__ if name.endswith("Error") or name == "ErrorCode"]
    assert len(names) == 14
    for name in names:
        cls = getattr(inetkit, name)
        assert cls.__module__ == "inetkit", name
        assert getattr(inetkit, cls.__qualname__) is cls
    try:
        raise inetkit.InetTimeoutError("connect to x port 1 timed out", ErrorCode.TIMED_OUT)
    except inetkit.InetError as exc:
        last = traceback.format_exception(exc)[-1]
    assert last.startswith("inetkit.InetTimeoutError: connect to x port 1 timed out")
