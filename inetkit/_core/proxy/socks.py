"""SOCKS5 (RFC 1928, with RFC 1929 user/password) and SOCKS4a as sans-I/O dialogs.

SOCKS5: the client offers its methods (``00`` no authentication, plus
``02`` user/password when the proxy URL has credentials); the proxy picks
one (``FF``: none acceptable). With ``02`` the client sends the user name
and password and the proxy answers status 0 (success) or anything else
(refused). Then the client asks ``CONNECT`` to the target as an IPv4 or
IPv6 address (``socks5://``: the client resolved the name) or as a domain
name (``socks5h://``: the proxy resolves it); the proxy's reply carries a
code (0 success; 1-8 as RFC 1928 section 6 names them) and the address it
bound, whose length depends on its type (4, 16, or a length byte).

SOCKS4a: one request (version 4, command 1, port, the address ``0.0.0.1``
that says "a name follows", the user id, NUL, the name, NUL; an IPv4
literal goes in the address field instead, as plain SOCKS4) and one 8-byte
reply whose second byte is 90 (granted), 91 (rejected or failed), 92 or 93
(the proxy's identd check failed).

Every read is exact (`ReadExactly`), so the bytes after the reply are the
target's and stay with the driver. Codes: a reply that is not 0 / 90 is
``PROXY_REFUSED`` quoting the reply; refused credentials (method ``FF``,
an RFC 1929 failure, SOCKS4's identd codes 92 and 93) are
``PROXY_AUTH_REQUIRED``; a wrong version, an unknown method or address
type, or an answer cut short is ``PROXY_PROTOCOL``; a proxy that closes
the connection instead of answering (what ``ssh -D`` does when the target
refuses) is ``PROXY_REFUSED``.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Generator

from ..._errors import ErrorCode
from ..dialogs._steps import Dialog, ReadExactly, Refusal, Script, Send, Step

__all__ = ["SOCKS4_REPLIES", "SOCKS5_REPLIES", "SOCKS4aDialog", "SOCKS5Dialog"]

#: RFC 1928 section 6: what each reply code means.
SOCKS5_REPLIES = {
    1: "general SOCKS server failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}
#: The SOCKS4 protocol document: what each reply code means.
SOCKS4_REPLIES = {
    90: "request granted",
    91: "request rejected or failed",
    92: "request rejected: the proxy cannot reach the client's identd",
    93: "request rejected: the client's identd reports a different user id",
}
#: RFC 1928: a domain name goes with one length byte.
MAX_SOCKS5_NAME = 255

_NO_AUTH = 0x00
_USER_PASSWORD = 0x02
_NONE_ACCEPTABLE = 0xFF
_ATYP_IPV4, _ATYP_NAME, _ATYP_IPV6 = 0x01, 0x03, 0x04


def _exactly(count: int, what: str) -> Generator[Step, bytes | None, bytes]:
    """``count`` bytes of the proxy's answer; refuses when the stream ends first."""
    data = yield ReadExactly(count)
    assert data is not None
    if not data:
        # ssh -D and dante close without a reply when they cannot open the tunnel.
        raise Refusal(
            f"the proxy closed the connection instead of sending its {what} (no tunnel)",
            ErrorCode.PROXY_REFUSED,
        )
    if len(data) < count:
        raise Refusal(
            f"the proxy closed the connection in the middle of its {what} "
            f"({len(data)} of {count} bytes came)",
            ErrorCode.PROXY_PROTOCOL,
        )
    return data


def _shown(data: bytes) -> str:
    return data.hex(" ")


class SOCKS5Dialog(Dialog):
    """SOCKS5 CONNECT to ``host`` (an IP literal, or a name the proxy resolves); `Done`: the bound address."""

    name = "socks5"
    oversize_code = ErrorCode.PROXY_PROTOCOL

    def __init__(
        self, host: str, port: int, username: str | None = None, password: str | None = None
    ) -> None:
        super().__init__()
        self._host = host
        self._port = port
        self._username = username
        self._password = password

    def _address(self) -> bytes:
        """The target as ATYP and address: an IP literal as itself, anything else as a name."""
        host = self._host
        try:
            ip = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            name = host.rstrip(".").encode("ascii")
            if not 1 <= len(name) <= MAX_SOCKS5_NAME:
                raise Refusal(
                    f"the target name is longer than SOCKS5's {MAX_SOCKS5_NAME} bytes",
                    ErrorCode.PROXY_PROTOCOL,
                ) from None
            return bytes((_ATYP_NAME, len(name))) + name
        return bytes((_ATYP_IPV4 if ip.version == 4 else _ATYP_IPV6,)) + ip.packed

    def _script(self) -> Script:
        with_auth = self._username is not None
        methods = bytes((_NO_AUTH, _USER_PASSWORD)) if with_auth else bytes((_NO_AUTH,))
        # The request is checked before the first byte goes out (a name too long for SOCKS5).
        request = b"\x05\x01\x00" + self._address() + struct.pack("!H", self._port)
        yield Send(bytes((5, len(methods))) + methods)
        choice = yield from _exactly(2, "method choice")
        if choice[0] != 5:
            raise Refusal(
                f"the proxy's answer is not SOCKS5 (it began {_shown(choice)})", ErrorCode.PROXY_PROTOCOL
            )
        method = choice[1]
        if method == _NONE_ACCEPTABLE:
            detail = (
                "every method offered (no authentication, user name and password)"
                if with_auth
                else "connecting without authentication (give user:password@ in the proxy URL)"
            )
            raise Refusal(
                f"the proxy refuses {detail}: reply {_shown(choice)}", ErrorCode.PROXY_AUTH_REQUIRED
            )
        if method not in methods:
            raise Refusal(
                f"the proxy chose method {method:#04x}, which was not offered", ErrorCode.PROXY_PROTOCOL
            )
        if method == _USER_PASSWORD:
            assert self._username is not None and self._password is not None
            user = self._username.encode("utf-8")
            secret = self._password.encode("utf-8")
            yield Send(bytes((1, len(user))) + user + bytes((len(secret),)) + secret)
            status = yield from _exactly(2, "authentication status")
            if status[0] != 1:
                raise Refusal(
                    f"the proxy's authentication status is not RFC 1929 (it began {_shown(status)})",
                    ErrorCode.PROXY_PROTOCOL,
                )
            if status[1] != 0:
                raise Refusal(
                    f"the proxy refused the user name and password: status {status[1]}",
                    ErrorCode.PROXY_AUTH_REQUIRED,
                )
        yield Send(request)
        head = yield from _exactly(4, "reply")
        if head[0] != 5 or head[2] != 0:
            raise Refusal(
                f"the proxy's reply is not SOCKS5 (it began {_shown(head)})", ErrorCode.PROXY_PROTOCOL
            )
        reply, kind = head[1], head[3]
        if reply != 0:
            meaning = SOCKS5_REPLIES.get(reply, "unassigned reply code")
            raise Refusal(
                f"the proxy refused the target: SOCKS5 reply {reply} ({meaning})", ErrorCode.PROXY_REFUSED
            )
        if kind == _ATYP_IPV4:
            bound = yield from _exactly(4 + 2, "reply")
            address = str(ipaddress.IPv4Address(bound[:4]))
        elif kind == _ATYP_IPV6:
            bound = yield from _exactly(16 + 2, "reply")
            address = str(ipaddress.IPv6Address(bound[:16]))
        elif kind == _ATYP_NAME:
            size = yield from _exactly(1, "reply")
            bound = yield from _exactly(size[0] + 2, "reply")
            address = bound[:-2].decode("ascii", "replace")
        else:
            raise Refusal(f"the proxy's reply has an unknown address type {kind}", ErrorCode.PROXY_PROTOCOL)
        return (address, struct.unpack("!H", bound[-2:])[0])


class SOCKS4aDialog(Dialog):
    """SOCKS4a CONNECT to ``host`` (the proxy resolves a name; an IPv4 literal goes as plain SOCKS4)."""

    name = "socks4a"
    oversize_code = ErrorCode.PROXY_PROTOCOL

    def __init__(self, host: str, port: int, user_id: str | None = None) -> None:
        super().__init__()
        self._host = host
        self._port = port
        self._user_id = (user_id or "").encode("utf-8")

    def _script(self) -> Script:
        try:
            ip = ipaddress.IPv4Address(self._host)
        except ValueError:
            # 0.0.0.1: "the name follows" (any 0.0.0.x with x != 0 says so).
            request = struct.pack("!BBH4s", 4, 1, self._port, b"\0\0\0\x01") + self._user_id + b"\0"
            request += self._host.rstrip(".").encode("ascii") + b"\0"
        else:
            request = struct.pack("!BBH4s", 4, 1, self._port, ip.packed) + self._user_id + b"\0"
        yield Send(request)
        reply = yield from _exactly(8, "reply")
        if reply[0] != 0:
            raise Refusal(
                f"the proxy's reply is not SOCKS4 (it began {_shown(reply[:2])})", ErrorCode.PROXY_PROTOCOL
            )
        code = reply[1]
        if code == 90:
            return (str(ipaddress.IPv4Address(reply[4:8])), struct.unpack("!H", reply[2:4])[0])
        meaning = SOCKS4_REPLIES.get(code)
        if meaning is None:
            raise Refusal(f"the proxy's reply has an unknown code {code}", ErrorCode.PROXY_PROTOCOL)
        error = ErrorCode.PROXY_AUTH_REQUIRED if code in (92, 93) else ErrorCode.PROXY_REFUSED
        raise Refusal(f"the proxy refused the target: SOCKS4 reply {code} ({meaning})", error)
