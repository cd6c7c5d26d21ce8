"""A C-style surface for porting SocketWrench code: integer handles and last-error codes.

Theory of operation
-------------------
SocketWrench's ``InetConnect`` family returns an integer handle and reports
failure through a sentinel return value (``INVALID_SOCKET``, ``FALSE``,
``-1``) plus a per-thread "last error" (``InetGetLastError``). Code ported
from it is shaped around that contract, so this module keeps it on top of the
Pythonic API:

* a process-wide *handle table* maps positive integers to `Connection`
  objects. Handles come from a counter that starts at 1 and only grows, so a
  number is never reused, not even after its handle was disconnected. The
  table's lock guards only the dictionary; I/O runs outside it, so one
  thread blocked in `InetRead` never stalls another thread's calls;
* every function catches the failure, stores its `ErrorCode` in a
  ``threading.local`` and returns the failure value. A call that works stores
  0, so `InetGetLastError` always describes the calling thread's most recent
  call, whatever other threads do meanwhile. ``KeyboardInterrupt``,
  ``SystemExit`` and other non-``Exception`` errors are never swallowed.

Handle numbers that do not name an open connection: a number this module
handed out and that was disconnected since gives ``HANDLE_CLOSED``; anything
else (0, negative numbers, ``INVALID_SOCKET``, numbers never handed out, a
value that is not an ``int``) gives ``INVALID_ARGUMENT``, as a wrong argument.

Ownership is the one of `Connection`: a handle belongs to the thread that
connected until another thread calls `InetAttachThread`, unless it was made
with ``INET_OPTION_FREETHREAD``. A call from a thread that does not own the
handle fails with ``NOT_HANDLE_OWNER`` (it is not disconnected).

New code should use `inetkit.connect` and `Connection` directly: exceptions
carry the message, the attempts and the connect trace that an integer code
cannot.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar, cast

from ._connect import DEFAULT_TIMEOUT, connect, connect_url
from ._connection import Connection
from ._errors import ErrorCode, InetError, InvalidArgumentError, OwnershipError, translate_os_error
from ._hostname import normalize_host_name
from ._log import logger
from ._types import Option, Protocol

if TYPE_CHECKING:
    from ._credentials import SecurityCredentials
    from ._tls import SecurityInfo

__all__ = [
    "INET_OPTION_BROADCAST",
    "INET_OPTION_DONTROUTE",
    "INET_OPTION_FREETHREAD",
    "INET_OPTION_KEEPALIVE",
    "INET_OPTION_NODELAY",
    "INET_OPTION_NOINHERIT",
    "INET_OPTION_NONE",
    "INET_OPTION_PREFER_IPV6",
    "INET_OPTION_RESERVEDPORT",
    "INET_OPTION_SECURE",
    "INET_OPTION_SECURE_FALLBACK",
    "INET_OPTION_TRUSTEDSITE",
    "INET_PROTOCOL_TCP",
    "INET_PROTOCOL_UDP",
    "INVALID_SOCKET",
    "InetAttachThread",
    "InetCancel",
    "InetConnect",
    "InetConnectEx",
    "InetConnectUrl",
    "InetDisconnect",
    "InetEnableSecurity",
    "InetGetErrorString",
    "InetGetLastError",
    "InetGetLastErrorMessage",
    "InetGetLocalAddress",
    "InetGetPeerAddress",
    "InetGetSecurityInformation",
    "InetGetTimeout",
    "InetInitialize",
    "InetIsConnected",
    "InetIsReadable",
    "InetIsWritable",
    "InetNormalizeHostName",
    "InetRead",
    "InetReadLine",
    "InetSetLastError",
    "InetSetTimeout",
    "InetShutdown",
    "InetUninitialize",
    "InetWrite",
    "InetWriteLine",
]


#: The failure value of `InetConnect` / `InetConnectUrl`, as in SocketWrench.
INVALID_SOCKET = -1

INET_OPTION_NONE = int(Option.NONE)
INET_OPTION_BROADCAST = int(Option.BROADCAST)
INET_OPTION_DONTROUTE = int(Option.DONTROUTE)
INET_OPTION_KEEPALIVE = int(Option.KEEPALIVE)
INET_OPTION_NODELAY = int(Option.NODELAY)
INET_OPTION_RESERVEDPORT = int(Option.RESERVEDPORT)
INET_OPTION_NOINHERIT = int(Option.NOINHERIT)
INET_OPTION_TRUSTEDSITE = int(Option.TRUSTEDSITE)
INET_OPTION_SECURE = int(Option.SECURE)
INET_OPTION_SECURE_FALLBACK = int(Option.SECURE_FALLBACK)
INET_OPTION_PREFER_IPV6 = int(Option.PREFER_IPV6)
INET_OPTION_FREETHREAD = int(Option.FREETHREAD)

INET_PROTOCOL_TCP = int(Protocol.TCP)
INET_PROTOCOL_UDP = int(Protocol.UDP)

#: `InetRead`'s default size: `Connection.read`'s default.
DEFAULT_READ_SIZE = 65536
#: `InetReadLine`'s default limit: `Connection.read_line`'s default.
DEFAULT_MAX_LINE = 65536
#: `InetIsReadable` / `InetIsWritable` take milliseconds, as SocketWrench does.
MS_PER_SECOND = 1000

_T = TypeVar("_T")


# -- per-thread last error --------------------------------------------------


class _LastError(threading.local):
    code: int = 0
    message: str = ""


_last = _LastError()


def _succeeded() -> None:
    _last.code = 0
    _last.message = ""


def _failed(function: str, exc: Exception) -> None:
    """Record ``exc`` as the calling thread's last error."""
    if isinstance(exc, InetError):
        code = exc.code
        message = exc.message
    elif isinstance(exc, OSError):
        translated = translate_os_error(exc, action=function, target="the handle")
        code = translated.code
        message = translated.message
    elif isinstance(exc, TypeError | ValueError):
        code = ErrorCode.INVALID_ARGUMENT
        message = f"{function}: {exc}"
    else:
        # Not a failure the API documents: keep the traceback in the log,
        # since an integer code cannot carry it.
        logger.warning("%s: unexpected %s", function, type(exc).__name__, exc_info=exc)
        code = ErrorCode.INVALID_ARGUMENT
        message = f"{function}: unexpected {type(exc).__name__}: {exc}"
    _last.code = int(code)
    _last.message = message
    logger.debug("%s failed (%s): %s", function, ErrorCode(code).name, message)


def _call(function: str, failure: _T, body: Callable[[], _T]) -> _T:
    """Run ``body``; on an ``Exception`` record it and return ``failure``."""
    try:
        result = body()
    except Exception as exc:
        _failed(function, exc)
        return failure
    _succeeded()
    return result


# -- the handle table ---------------------------------------------------------


class _HandleTable:
    """Positive integers -> open `Connection` objects, safe to use from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[int, Connection] = {}
        self._numbers = itertools.count(1)
        self._issued = 0  # the highest number handed out so far

    def add(self, conn: Connection) -> int:
        with self._lock:
            handle = next(self._numbers)
            self._issued = handle
            self._open[handle] = conn
            return handle

    def get(self, handle: object, function: str) -> Connection:
        if isinstance(handle, bool) or not isinstance(handle, int):
            raise TypeError(f"a handle is an int, not {type(handle).__name__}")
        with self._lock:
            conn = self._open.get(handle)
            issued = self._issued
        if conn is not None:
            return conn
        if 1 <= handle <= issued:
            raise InetError(f"{function}: handle {handle} was disconnected", ErrorCode.HANDLE_CLOSED)
        raise InvalidArgumentError(
            f"{function}: {handle} is not a handle returned by InetConnect or InetConnectUrl",
            ErrorCode.INVALID_ARGUMENT,
        )

    def remove(self, handle: int, conn: Connection) -> None:
        with self._lock:
            if self._open.get(handle) is conn:
                del self._open[handle]

    def take_all(self) -> list[tuple[int, Connection]]:
        """Empty the table; return what it held (the numbers stay retired)."""
        with self._lock:
            held = list(self._open.items())
            self._open.clear()
            return held


_handles = _HandleTable()


def _register(conn: Connection) -> int:
    try:
        return _handles.add(conn)
    except BaseException:
        conn.close()
        raise


# -- connecting ---------------------------------------------------------------


def InetConnect(
    host: str,
    port: int | str,
    protocol: int = INET_PROTOCOL_TCP,
    timeout: float | None = DEFAULT_TIMEOUT,
    options: int = INET_OPTION_NONE,
    credentials: SecurityCredentials | None = None,
) -> int:
    """Connect to ``host`` on ``port``; return a positive handle or `INVALID_SOCKET`.

    SocketWrench: ``InetConnect(lpszRemoteHost, nRemotePort, nProtocol,
    nTimeout, dwOptions, lpCredentials)``. inetkit: `inetkit.connect`, with
    the same one deadline (``timeout`` seconds for resolution, every address
    attempt and the TLS handshake), Happy Eyeballs and IDNA names.

    ``timeout`` is a number of seconds > 0, or ``None`` for no deadline; it
    also becomes the handle's I/O timeout. On failure `InetGetLastError`
    gives the `ErrorCode` (``HOST_NOT_FOUND``, ``CONNECTION_REFUSED``,
    ``TIMED_OUT``, ``CERTIFICATE_UNTRUSTED``, ...).
    """

    def body() -> int:
        # connect() checks the types and values; ints are what ported code passes.
        conn = connect(host, port, cast(Protocol, protocol), timeout, cast(Option, options), credentials)
        return _register(conn)

    return _call("InetConnect", INVALID_SOCKET, body)


def InetConnectEx(
    host: str,
    port: int | str,
    protocol: int = INET_PROTOCOL_TCP,
    timeout: float | None = DEFAULT_TIMEOUT,
    options: int = INET_OPTION_NONE,
    local_address: str | None = None,
    local_port: int = 0,
    credentials: SecurityCredentials | None = None,
) -> int:
    """`InetConnect` from a chosen local address and port; a handle or `INVALID_SOCKET`.

    SocketWrench: ``InetConnectEx(lpszRemoteHost, nRemotePort, nProtocol,
    nTimeout, dwOptions, lpszLocalAddress, nLocalPort, lpCredentials)``.
    inetkit: `inetkit.connect` with ``local_address=(local_address,
    local_port)``. ``local_address`` ``None`` (or ``""``) with ``local_port``
    0 binds nothing, as `InetConnect`; ``None`` with a port binds that port
    on the wildcard address of the remote address's family. Fails with
    ``ADDRESS_IN_USE`` or ``ADDRESS_NOT_AVAILABLE`` when the local end cannot
    be bound, ``INVALID_ARGUMENT`` when its family matches no remote address
    or ``INET_OPTION_RESERVEDPORT`` is combined with a non-zero port.
    """

    def body() -> int:
        # connect() checks the types and values of the local end, as of the rest.
        bind: tuple[str, int] | None = None
        if local_address or local_port:
            bind = (local_address or "", local_port)
        conn = connect(
            host,
            port,
            cast(Protocol, protocol),
            timeout,
            cast(Option, options),
            credentials,
            local_address=bind,
        )
        return _register(conn)

    return _call("InetConnectEx", INVALID_SOCKET, body)


def InetConnectUrl(
    url: str,
    timeout: float | None = DEFAULT_TIMEOUT,
    options: int = INET_OPTION_NONE,
    credentials: SecurityCredentials | None = None,
) -> int:
    """Connect to the host and port a URL names; return a handle or `INVALID_SOCKET`.

    SocketWrench: ``InetConnectUrl``. inetkit: `inetkit.connect_url`: the
    scheme's usual port when the URL has none, and ``INET_OPTION_SECURE``
    turned on for secure schemes (``https``, ``imaps``, ...). A URL without a
    usable host, or an unknown scheme without a port, fails with
    ``INVALID_ARGUMENT`` (or ``INVALID_HOST_NAME`` / ``INVALID_PORT``).
    """

    def body() -> int:
        return _register(connect_url(url, timeout, cast(Option, options), credentials))

    return _call("InetConnectUrl", INVALID_SOCKET, body)


def InetEnableSecurity(handle: int, credentials: SecurityCredentials | None = None) -> bool:
    """Start TLS on a connected plain handle (after a STARTTLS exchange); True on success.

    SocketWrench: ``InetEnableSecurity(hSocket, bEnable)``. inetkit:
    `Connection.enable_security`, with the same verification as
    ``INET_OPTION_SECURE``. ``credentials`` defaults to the ones given to
    `InetConnect`. Fails with ``UNEXPECTED_PLAINTEXT`` when the server sent
    data that was not read yet, ``ALREADY_SECURE`` on a secure handle, or a
    certificate code when verification fails. A handle whose handshake failed
    should be disconnected.
    """

    def body() -> bool:
        _handles.get(handle, "InetEnableSecurity").enable_security(credentials)
        return True

    return _call("InetEnableSecurity", False, body)


def InetAttachThread(handle: int) -> int:
    """Make the calling thread the handle's owner; return the previous owner (0 on error).

    SocketWrench: ``InetAttachThread(hSocket)``. inetkit:
    `Connection.attach_thread`. The thread ids are ``threading.get_ident()``
    values. On a handle made with ``INET_OPTION_FREETHREAD`` there is no
    owner: this returns 0 and the last error is 0 (success). Fails with
    ``HANDLE_BUSY`` while the owner is blocked in a call on the handle.
    """

    def body() -> int:
        previous = _handles.get(handle, "InetAttachThread").attach_thread()
        return 0 if previous is None else previous

    return _call("InetAttachThread", 0, body)


# -- I/O ----------------------------------------------------------------------


def InetRead(handle: int, max_bytes: int = DEFAULT_READ_SIZE) -> bytes | None:
    """Read up to ``max_bytes``; ``b""`` once the peer has closed, ``None`` on error.

    SocketWrench: ``InetRead(hSocket, lpBuffer, nLength)`` returning the
    count, 0 at the end of the stream or ``SOCKET_ERROR``. inetkit:
    `Connection.read`. Waits at most the handle's I/O timeout (``TIMED_OUT``).
    On UDP, one datagram per call.
    """

    def body() -> bytes | None:
        return _handles.get(handle, "InetRead").read(max_bytes)

    return _call("InetRead", None, body)


def InetWrite(handle: int, data: bytes | bytearray | memoryview) -> int:
    """Write all of ``data``; return the number of bytes written, or -1 on error.

    SocketWrench: ``InetWrite(hSocket, lpBuffer, nLength)``. inetkit:
    `Connection.write`, which sends everything or fails: there are no short
    writes to loop over. After a failure part-way the count sent is lost to
    this interface (`Connection.write` reports it as ``bytes_sent``).
    """

    def body() -> int:
        return _handles.get(handle, "InetWrite").write(data)

    return _call("InetWrite", -1, body)


def InetReadLine(handle: int, max_length: int = DEFAULT_MAX_LINE) -> str | None:
    """Read one line and return it without its terminator; ``None`` at EOF or on error.

    SocketWrench: ``InetReadLine(hSocket, lpszBuffer, lpnLength)``. inetkit:
    `Connection.read_line`. The line is decoded as UTF-8 with
    ``errors="replace"``; ``\\r\\n`` and ``\\n`` both end a line, and a last
    line without a terminator is returned as it is. At the end of the stream
    the result is ``None`` and `InetGetLastError` is 0 (that is how EOF and
    an error differ). A line longer than ``max_length`` bytes fails with
    ``LINE_TOO_LONG``; its bytes stay buffered for `InetRead`.
    """

    def body() -> str | None:
        line = _handles.get(handle, "InetReadLine").read_line(max_length)
        if not line:
            return None
        if line.endswith(b"\r\n"):
            line = line[:-2]
        elif line.endswith(b"\n"):
            line = line[:-1]
        return line.decode("utf-8", errors="replace")

    return _call("InetReadLine", None, body)


def InetWriteLine(handle: int, text: str | bytes) -> bool:
    """Write ``text`` (``str`` as UTF-8, or bytes) followed by CRLF; True on success.

    SocketWrench: ``InetWriteLine(hSocket, lpszBuffer)``. inetkit:
    `Connection.write_line`.
    """

    def body() -> bool:
        _handles.get(handle, "InetWriteLine").write_line(text)
        return True

    return _call("InetWriteLine", False, body)


def InetDisconnect(handle: int) -> bool:
    """Close the connection and release the handle; True on success.

    SocketWrench: ``InetDisconnect(hSocket)``. inetkit: `Connection.close`
    (a TLS handle sends close_notify and keeps its session for resumption).
    The handle number is never handed out again; using it afterwards fails
    with ``HANDLE_CLOSED``. A thread that does not own the handle gets
    ``NOT_HANDLE_OWNER`` and the handle stays open.
    """

    def body() -> bool:
        conn = _handles.get(handle, "InetDisconnect")
        conn.close()
        _handles.remove(handle, conn)
        return True

    return _call("InetDisconnect", False, body)


def InetShutdown(handle: int) -> bool:
    """Half-close: no more writes on the handle, reads go on; True on success.

    SocketWrench: ``InetShutdown(hSocket, nHow)`` with the sending side.
    inetkit: `Connection.shutdown` (TLS close_notify, then FIN). The peer
    sees the end of the stream and may still answer; read it with
    `InetRead` / `InetReadLine`, then `InetDisconnect`.
    """

    def body() -> bool:
        _handles.get(handle, "InetShutdown").shutdown()
        return True

    return _call("InetShutdown", False, body)


def InetCancel(handle: int) -> bool:
    """From any thread: wake a call blocked on the handle, which fails with ``CANCELLED``.

    SocketWrench: ``InetCancel(hSocket)``. inetkit: `Connection.cancel`.
    True when the handle is open (whether or not a call was blocked: with
    nothing in progress there is nothing to cancel, and nothing is kept for
    a later call). The cancelled call returns its failure value and its
    thread's last error is ``CANCELLED``; the handle stays open.
    """

    def body() -> bool:
        _handles.get(handle, "InetCancel").cancel()
        return True

    return _call("InetCancel", False, body)


def _ready(function: str, handle: int, milliseconds: int, *, write: bool) -> bool:
    if isinstance(milliseconds, bool) or not isinstance(milliseconds, int):
        raise TypeError(f"{function}: the wait is an int of milliseconds, not {type(milliseconds).__name__}")
    if milliseconds < 0:
        raise InvalidArgumentError(
            f"{function}: the wait must be 0 (poll) or more milliseconds, not {milliseconds}",
            ErrorCode.INVALID_ARGUMENT,
        )
    conn = _handles.get(handle, function)
    seconds = milliseconds / MS_PER_SECOND
    return conn.is_writable(seconds) if write else conn.is_readable(seconds)


def InetIsReadable(handle: int, milliseconds: int = 0) -> bool:
    """True when a read would not block: data, or the end of the stream, is waiting.

    SocketWrench: ``InetIsReadable(hSocket, nTimeout, lpdwAvail)``.
    inetkit: `Connection.is_readable`. Waits up to ``milliseconds`` (0
    polls). False with last error 0 means "not yet"; False with a non-zero
    last error is a failure (a closed or unknown handle, a negative wait).
    """
    return _call("InetIsReadable", False, lambda: _ready("InetIsReadable", handle, milliseconds, write=False))


def InetIsWritable(handle: int, milliseconds: int = 0) -> bool:
    """True when a write of at least one byte would not block.

    SocketWrench: ``InetIsWritable(hSocket, nTimeout)``. inetkit:
    `Connection.is_writable`. Waits up to ``milliseconds`` (0 polls); the
    last error tells "not yet" (0) from a failure, as for `InetIsReadable`.
    """
    return _call("InetIsWritable", False, lambda: _ready("InetIsWritable", handle, milliseconds, write=True))


def InetIsConnected(handle: int) -> bool:
    """True while the handle is open: connected and not yet disconnected.

    SocketWrench: ``InetIsConnected(hSocket)``. A peer that closed its end
    is noticed by the next read (``b""`` from `InetRead`, ``None`` with last
    error 0 from `InetReadLine`), not here: telling it without reading would
    consume data. A disconnected handle gives False with ``HANDLE_CLOSED``,
    an unknown number False with ``INVALID_ARGUMENT``.
    """

    def body() -> bool:
        conn = _handles.get(handle, "InetIsConnected")
        if conn.closed:
            raise InetError(f"InetIsConnected: handle {handle} is closed", ErrorCode.HANDLE_CLOSED)
        return True

    return _call("InetIsConnected", False, body)


def InetGetTimeout(handle: int) -> int:
    """The handle's I/O timeout in whole seconds (rounded up); 0 for none; -1 on error.

    SocketWrench: ``InetGetTimeout(hSocket)``. inetkit: `Connection.timeout`
    (which may be fractional: 0.5 s reads as 1, so a port never sees 0 for
    a handle that does time out). A handle without a timeout (``None``,
    waits forever) gives 0.
    """

    def body() -> int:
        timeout = _handles.get(handle, "InetGetTimeout").timeout
        return 0 if timeout is None else math.ceil(timeout)

    return _call("InetGetTimeout", -1, body)


def InetSetTimeout(handle: int, seconds: float | None) -> bool:
    """Set the handle's I/O timeout in seconds (> 0, or ``None`` to wait forever); True on success.

    SocketWrench: ``InetSetTimeout(hSocket, nTimeout)``. inetkit:
    `Connection.timeout`: each read or write call as a whole is bounded by
    it and fails with ``TIMED_OUT``. 0 and negative values fail with
    ``INVALID_ARGUMENT`` (to poll, use `InetIsReadable` with 0 ms).
    """

    def body() -> bool:
        _handles.get(handle, "InetSetTimeout").timeout = seconds
        return True

    return _call("InetSetTimeout", False, body)


def _address(function: str, handle: int, *, peer: bool) -> tuple[str, int]:
    conn = _handles.get(handle, function)
    if conn.closed:
        raise InetError(f"{function}: handle {handle} is closed", ErrorCode.HANDLE_CLOSED)
    ip, port = conn.remote_address if peer else conn.local_address
    return (ip, port)


def InetGetLocalAddress(handle: int) -> tuple[str, int] | None:
    """The local end of the connection as ``(ip, port)``; ``None`` on error.

    SocketWrench: ``InetGetLocalAddress(hSocket, lpAddress, lpnPort)``.
    inetkit: `Connection.local_address`. IPv6 addresses come without
    brackets (``("::1", 50000)``).
    """
    return _call("InetGetLocalAddress", None, lambda: _address("InetGetLocalAddress", handle, peer=False))


def InetGetPeerAddress(handle: int) -> tuple[str, int] | None:
    """The remote end (the address that won the race) as ``(ip, port)``; ``None`` on error.

    SocketWrench: ``InetGetPeerAddress(hSocket, lpAddress, lpnPort)``.
    inetkit: `Connection.remote_address`.
    """
    return _call("InetGetPeerAddress", None, lambda: _address("InetGetPeerAddress", handle, peer=True))


def InetGetSecurityInformation(handle: int) -> SecurityInfo | None:
    """What TLS negotiated on the handle (`inetkit.SecurityInfo`); ``None`` when it has no TLS.

    SocketWrench: ``InetGetSecurityInformation(hSocket, lpSecurityInfo)``.
    inetkit: `Connection.security_info`: ``protocol``, ``cipher``,
    ``cipher_bits``, ``alpn_protocol``, ``session_reused`` and
    ``peer_certificate``. A plain handle gives ``None`` with last error 0
    (nothing failed: there is no TLS to describe); an unknown or
    disconnected handle gives ``None`` with the error.
    """

    def body() -> SecurityInfo | None:
        conn = _handles.get(handle, "InetGetSecurityInformation")
        if conn.closed:
            raise InetError(f"InetGetSecurityInformation: handle {handle} is closed", ErrorCode.HANDLE_CLOSED)
        return conn.security_info

    return _call("InetGetSecurityInformation", None, body)


# -- start-up and shut-down ------------------------------------------------------


def InetInitialize(key: str | None = None) -> bool:
    """Accepted so that ported start-up code runs; there is nothing to set up. Returns True.

    SocketWrench: ``InetInitialize(lpszLicenseKey, lpData)`` loads the
    library and checks its licence key. inetkit needs neither; ``key`` is
    accepted (a ``str`` or ``None``) and ignored. Calling it more than once,
    or not at all, is fine.
    """

    def body() -> bool:
        if key is not None and not isinstance(key, str):
            raise TypeError(f"key is a str or None, not {type(key).__name__}")
        return True

    return _call("InetInitialize", False, body)


def InetUninitialize() -> bool:
    """Close every handle still open; True when each one closed cleanly.

    SocketWrench: ``InetUninitialize()``, called when the program ends.
    Every handle in the table is released and its number retired, whichever
    thread owns it: a call blocked on one (in another thread) is cancelled
    first, then the handle is closed. When a close reports an error (a TLS
    peer that went away while we said goodbye, say) the handle is released
    all the same, the result is False and the last error is the first such
    error.
    """

    def body() -> bool:
        first_error: Exception | None = None
        for _handle, conn in _handles.take_all():
            try:
                _close_any_owner(conn)
            except Exception as exc:
                if first_error is None:
                    first_error = exc
        if first_error is not None:
            raise first_error
        return True

    return _call("InetUninitialize", False, body)


def _close_any_owner(conn: Connection) -> None:
    """Close ``conn`` from whichever thread calls, as a program's last act does."""
    try:
        conn.close()
        return
    except OwnershipError:
        pass
    # Another thread owns it: wake whatever it is blocked in, then close
    # without the owner check (the path a garbage-collected handle takes).
    conn.cancel()
    conn._close(check_owner=False)


# -- names and errors ---------------------------------------------------------


def InetNormalizeHostName(name: str) -> str | None:
    """The canonical form of a host name or IP literal; ``None`` when it is invalid.

    SocketWrench: ``InetNormalizeHostName``. inetkit:
    `inetkit.normalize_host_name`: ASCII lower case, IDNA 2008 for Unicode
    names (``Bücher.Example`` -> ``xn--bcher-kva.example``), IP literals
    compressed and without brackets. Fails with ``INVALID_HOST_NAME``.
    """

    def body() -> str | None:
        return normalize_host_name(name)

    return _call("InetNormalizeHostName", None, body)


def InetGetLastError() -> int:
    """The calling thread's last error: 0 after a call that worked, else an `ErrorCode` value.

    SocketWrench: ``InetGetLastError()``. Each thread sees only the outcome
    of its own calls. Reading it does not reset it.
    """
    return _last.code


def InetSetLastError(code: int) -> None:
    """Set the calling thread's last error, as a ported routine of your own may need to.

    SocketWrench: ``InetSetLastError(dwErrorCode)``. ``code`` is 0 or an
    `ErrorCode` value; the message becomes the code's name. A value that is
    no ``int`` raises ``TypeError`` (a programming error, not a network one).
    """
    if isinstance(code, bool) or not isinstance(code, int):
        raise TypeError(f"InetSetLastError takes an int error code, not {type(code).__name__}")
    _last.code = code
    _last.message = "" if code == 0 else InetGetErrorString(code)


def InetGetLastErrorMessage() -> str:
    """The message of the calling thread's last error (``""`` after a call that worked).

    The message names the host, port or handle and says what to do next, as
    the exception `inetkit.connect` would have raised does.
    """
    return _last.message


def InetGetErrorString(error: int) -> str:
    """The name of an error code (``301`` -> ``"CONNECTION_REFUSED"``), for logs.

    SocketWrench: ``InetGetErrorString(dwErrorCode, ...)``. 0 is
    ``"SUCCESS"``; a number that is no `ErrorCode` gives ``"UNKNOWN_ERROR"``.
    """
    try:
        return ErrorCode(error).name
    except ValueError:
        return "UNKNOWN_ERROR"
