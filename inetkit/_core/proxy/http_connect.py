"""HTTP CONNECT (RFC 9110 section 9.3.6) as a sans-I/O dialog: ask for a tunnel, read the verdict.

The client sends ``CONNECT host:port HTTP/1.1`` with a ``Host`` header (and
``Proxy-Authorization: Basic`` when the proxy URL has user information);
the proxy answers with a status line and header lines up to an empty line.
A 2xx status opens the tunnel: every byte after the empty line is the
target's (it stays with the driver's buffer, and a ``Content-Length`` on a
2xx answer is ignored, as section 9.3.6 requires). 407 means credentials
are wanted or were refused (``PROXY_AUTH_REQUIRED``); any other status is a
refusal (``PROXY_REFUSED``) whose message quotes the status line. An answer
that is not HTTP/1.x, a line longer than `MAX_LINE`, more than
`MAX_HEADER_LINES` lines or `MAX_HEADER_BYTES` bytes of header, or an
answer cut short is ``PROXY_PROTOCOL``; a proxy that closes without a
word is ``PROXY_REFUSED``.

The target name is sent unresolved (the proxy resolves it), in brackets
when it is an IPv6 literal. Names and ports were normalized by the connect
plan, so neither can carry a CR or LF into the request; the credentials go
base64-encoded and appear nowhere else.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Generator

from ..._errors import ErrorCode
from ..dialogs._steps import Dialog, ReadLine, Refusal, Script, Send, Step, quote

__all__ = ["MAX_HEADER_BYTES", "MAX_HEADER_LINES", "MAX_LINE", "HTTPConnectDialog", "connect_request"]

#: Longest status or header line taken (squid's own limit on a request line is 64 KiB;
#: real CONNECT answers have lines of a few dozen bytes).
MAX_LINE = 8192
#: Header lines after the status line (a real answer has a handful).
MAX_HEADER_LINES = 100
#: Bytes of status line and headers together.
MAX_HEADER_BYTES = 65536

_STATUS = re.compile(rb"HTTP/1\.[0-9] ([0-9]{3})(?: [^\r\n]*)?")


def authority(host: str, port: int) -> str:
    """``host:port`` as a request target, an IPv6 literal in brackets (RFC 9112 section 3.2.3)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def connect_request(host: str, port: int, username: str | None, password: str | None) -> bytes:
    """The CONNECT request for ``host:port``, with Basic credentials when a user name is given."""
    target = authority(host, port)
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if username is not None:
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode("ascii")
        lines.append(f"Proxy-Authorization: Basic {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


class HTTPConnectDialog(Dialog):
    """One CONNECT exchange; the result of `Done` is the status line (text)."""

    name = "http connect"
    oversize_code = ErrorCode.PROXY_PROTOCOL

    def __init__(
        self, host: str, port: int, username: str | None = None, password: str | None = None
    ) -> None:
        super().__init__()
        self._request = connect_request(host, port, username, password)
        self._with_credentials = username is not None

    def _line(self, budget: int, first: bool = False) -> Generator[Step, bytes | None, bytes]:
        """One answer line without its terminator; refuses at the end of the stream or past the limits."""
        limit = min(MAX_LINE, budget)
        data = yield ReadLine(limit)
        assert data is not None
        if not data and first:
            raise Refusal("the proxy closed the connection without answering", ErrorCode.PROXY_REFUSED)
        if not data:
            raise Refusal("the proxy closed the connection before its answer ended", ErrorCode.PROXY_PROTOCOL)
        if not data.endswith(b"\n"):
            raise Refusal(
                "the proxy closed the connection in the middle of an answer line", ErrorCode.PROXY_PROTOCOL
            )
        line = data[:-1]
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > limit:  # the driver enforces the limit; made-up bytes may not
            raise Refusal(f"an answer line longer than {limit} bytes", ErrorCode.PROXY_PROTOCOL)
        return line

    def _script(self) -> Script:
        yield Send(self._request)
        status = yield from self._line(MAX_HEADER_BYTES, first=True)
        match = _STATUS.fullmatch(status)
        if match is None:
            raise Refusal(f"the proxy's answer is not HTTP/1.x: {quote(status)}", ErrorCode.PROXY_PROTOCOL)
        budget = MAX_HEADER_BYTES - len(status)
        for _ in range(MAX_HEADER_LINES):
            line = yield from self._line(budget)
            if not line:
                break
            budget -= len(line) + 2
            if budget <= 0:
                raise Refusal(
                    f"the proxy's header is longer than {MAX_HEADER_BYTES} bytes", ErrorCode.PROXY_PROTOCOL
                )
            if line[:1] in (b" ", b"\t") or b":" not in line:
                # Obsolete line folding or no field name: not an answer to trust (RFC 9112 section 5.2).
                raise Refusal(
                    f"a malformed header line in the proxy's answer: {quote(line)}", ErrorCode.PROXY_PROTOCOL
                )
        else:
            raise Refusal(
                f"the proxy's answer has more than {MAX_HEADER_LINES} header lines", ErrorCode.PROXY_PROTOCOL
            )
        code = int(match.group(1))
        said = quote(status)
        if code == 407:
            detail = (
                "the proxy refused the credentials given"
                if self._with_credentials
                else "the proxy wants credentials (none were given: put user:password@ in the proxy URL)"
            )
            raise Refusal(f"{detail}: {said}", ErrorCode.PROXY_AUTH_REQUIRED)
        if not 200 <= code <= 299:
            raise Refusal(f"the proxy refused the tunnel: {said}", ErrorCode.PROXY_REFUSED)
        return status.decode("latin-1")
