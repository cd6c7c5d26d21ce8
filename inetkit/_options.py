"""Applying option flags to a socket: socket options, keep-alive tuning, a reserved local port.

The flag types themselves (`Option`, `Protocol`, `KeepAlive`) and their
checks are ``inetkit._types``; this is the part of a driver that acts on
them, once per fresh socket, before it connects.
"""

from __future__ import annotations

import _socket
import errno
import socket

from ._errors import translate_os_error
from ._log import logger
from ._types import KeepAlive, Option, Protocol

__all__ = ["apply_socket_options", "bind_reserved_port"]

_BROADCAST = int(Option.BROADCAST)
_DONTROUTE = int(Option.DONTROUTE)
_NODELAY = int(Option.NODELAY)
_KEEPALIVE = int(Option.KEEPALIVE)


def apply_socket_options(
    sock: _socket.socket, options: int, protocol: Protocol, keepalive: KeepAlive | None
) -> None:
    """Apply the socket-level flags in ``options`` to a fresh socket.

    Called before ``connect`` so that options that matter for the handshake
    (``SO_DONTROUTE``) already hold. Raises `InetError` from `OSError`.
    """
    try:
        if options & _BROADCAST:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        if options & _DONTROUTE:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_DONTROUTE, 1)
        if protocol is Protocol.TCP:
            if options & _NODELAY:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if options & _KEEPALIVE:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                if keepalive is not None:
                    _apply_keepalive(sock, keepalive)
    except OSError as exc:
        raise translate_os_error(exc, action="set socket options on", target="a new socket") from exc


_KEEPALIVE_KNOBS = (
    ("idle", "TCP_KEEPIDLE"),
    ("interval", "TCP_KEEPINTVL"),
    ("count", "TCP_KEEPCNT"),
)


def _apply_keepalive(sock: _socket.socket, keepalive: KeepAlive) -> None:
    for field, constant in _KEEPALIVE_KNOBS:
        value = getattr(keepalive, field)
        if value is None:
            continue
        opt = getattr(socket, constant, None)
        if opt is None:  # pragma: no cover - platform without the knob
            logger.debug("keep-alive %s is not tunable on this platform; ignored", field)
            continue
        sock.setsockopt(socket.IPPROTO_TCP, opt, value)


#: RESERVEDPORT searches this range from the top down, as rresvport(3) does.
RESERVED_PORT_HIGH = 1023
RESERVED_PORT_LOW = 512


def bind_reserved_port(sock: _socket.socket, local_ip: str) -> int:
    """Bind ``sock`` to a free port in 1023..512 and return the port.

    Raises `InetError` (`PERMISSION_DENIED`) when the process may not bind
    privileged ports, and `InetConnectionError` (`ADDRESS_IN_USE`) when every
    port in the range is taken.
    """
    for port in range(RESERVED_PORT_HIGH, RESERVED_PORT_LOW - 1, -1):
        try:
            sock.bind((local_ip, port))
        except PermissionError as exc:
            raise translate_os_error(
                exc,
                action=f"Option.RESERVEDPORT: bind local port {port} (below 1024) on",
                target=local_ip or "any address",
                hint="ports below 1024 need CAP_NET_BIND_SERVICE or root; or drop Option.RESERVEDPORT",
            ) from exc
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                continue
            raise translate_os_error(
                exc, action="bind reserved port on", target=local_ip or "any address"
            ) from exc
        return port
    raise translate_os_error(
        OSError(errno.EADDRINUSE, f"all ports {RESERVED_PORT_LOW}-{RESERVED_PORT_HIGH} are in use"),
        action="Option.RESERVEDPORT: bind",
        target=local_ip or "any address",
    )
