"""URL parsing for `connect_url`: scheme table, host, port, user information.

Theory of operation
-------------------
`connect_url` needs only four things from a URL: where to connect (host and
port), whether the scheme implies TLS, and the rest for the caller. RFC 3986
section 3.2 splits ``scheme://[userinfo@]host[:port]`` unambiguously, so a
small parser written against the RFC does the job, and every failure gets a
message that says which part is wrong.

`urllib.parse.urlsplit` was rejected as the core: its ``.port`` raises a bare
`ValueError` ("Port out of range 0-65535") that names neither the URL nor the
problem in our terms, it accepts ``http://host:0`` and unbracketed garbage,
and ``.hostname`` silently lower-cases without IDNA. Here the host goes
through `normalize_host_name`, so a URL host is treated exactly like a host
passed to `connect`.

User information (``user:password@``) is accepted and dropped: it is never
stored in `ParsedUrl` and never shown. Every message that quotes the URL
shows it through `redact_userinfo` (``https://***@host/``).

Invariants: the authority ends at the first ``/``, ``?`` or ``#``; the user
information ends at the last ``@`` of the authority (what browsers do with an
unencoded ``@`` in a password); a backslash in the authority is refused,
because browsers read it as ``/`` and would reach a different host than an
RFC 3986 reading of the same text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from ._errors import ErrorCode, InvalidArgumentError
from ._hostname import (
    MAX_PORT,
    character_problem,
    normalize_host_name,
    redact_userinfo,
    shorten,
)

__all__ = ["SCHEMES", "ParsedUrl", "SchemeInfo", "parse_url"]

#: Longest port text quoted in a message.
MAX_SHOWN_PORT_LENGTH = 16
#: Five digits are enough for 65535; longer strings (after leading zeros) are
#: out of range without converting them (int() limits digit strings anyway).
MAX_PORT_DIGITS = 5

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass(frozen=True, slots=True)
class SchemeInfo:
    """What a URL scheme implies: its usual port and whether it starts with TLS."""

    default_port: int
    secure: bool


#: The schemes `connect_url` knows. ``secure`` schemes are implicit TLS
#: (`Option.SECURE` on connect); the others are plain until a STARTTLS dialog.
SCHEMES: dict[str, SchemeInfo] = {
    "http": SchemeInfo(80, False),
    "https": SchemeInfo(443, True),
    "ws": SchemeInfo(80, False),
    "wss": SchemeInfo(443, True),
    "ftp": SchemeInfo(21, False),
    "ftps": SchemeInfo(990, True),
    "smtp": SchemeInfo(25, False),
    "submission": SchemeInfo(587, False),
    "smtps": SchemeInfo(465, True),
    "imap": SchemeInfo(143, False),
    "imaps": SchemeInfo(993, True),
    "pop3": SchemeInfo(110, False),
    "pop3s": SchemeInfo(995, True),
    "ldap": SchemeInfo(389, False),
    "ldaps": SchemeInfo(636, True),
    "nntp": SchemeInfo(119, False),
    "nntps": SchemeInfo(563, True),
    "telnet": SchemeInfo(23, False),
    "xmpp": SchemeInfo(5222, False),
    "postgres": SchemeInfo(5432, False),
    "postgresql": SchemeInfo(5432, False),
}


@dataclass(frozen=True, slots=True)
class ParsedUrl:
    """The parts of a URL that `connect_url` uses.

    Attributes:
        scheme: the scheme, lower-cased (``"https"``).
        host: the host, normalized as by `normalize_host_name` (an IPv6
            literal without brackets).
        port: the URL's port, or the scheme's usual port.
        secure: True for implicit-TLS schemes (``https``, ``imaps``, ...);
            False for an unknown scheme.
        path: the path and query as written (``"/a/b?x=1"``; ``""`` when the
            URL has none); the fragment is dropped.

    User information is not kept, so ``repr()`` can never show a password.
    """

    scheme: str
    host: str
    port: int
    secure: bool
    path: str


def _error(shown: str, problem: str, code: ErrorCode = ErrorCode.INVALID_ARGUMENT) -> InvalidArgumentError:
    return InvalidArgumentError(f"invalid URL {shown!r}: {problem}", code)


def _split_host_port(hostport: str, shown: str, echo: bool) -> tuple[str, str | None]:
    """Split ``host[:port]`` / ``[v6]:port``; the host keeps its brackets."""
    if hostport.startswith("["):
        close = hostport.find("]")
        if close == -1:
            raise _error(shown, "'[' without a closing ']' in the host", ErrorCode.INVALID_HOST_NAME)
        # RFC 6874: a zone id in a URL is written %25zone.
        host = hostport[: close + 1].replace("%25", "%")
        rest = hostport[close + 1 :]
        if not rest:
            return host, None
        if not rest.startswith(":"):
            what = (
                f"unexpected {shorten(rest, MAX_SHOWN_PORT_LENGTH)!r} after ']'" if echo else "text after ']'"
            )
            raise _error(shown, what, ErrorCode.INVALID_HOST_NAME)
        return host, rest[1:]
    host, colon, port = hostport.partition(":")
    if ":" in port:
        raise _error(
            shown,
            "an IPv6 address in a URL must be in brackets, as in http://[::1]:8080/",
            ErrorCode.INVALID_HOST_NAME,
        )
    if "%" in host:
        try:
            host = unquote(host, errors="strict")
        except UnicodeDecodeError:
            raise _error(shown, "the host's %-escapes are not UTF-8", ErrorCode.INVALID_HOST_NAME) from None
    return host, (port if colon else None)


def _port_number(port: str, shown: str, echo: bool) -> int:
    quoted = f"port {shorten(port, MAX_SHOWN_PORT_LENGTH)!r}" if echo else "the port"
    if not (port.isascii() and port.isdigit()):
        raise _error(shown, f"{quoted} is not a number", ErrorCode.INVALID_PORT)
    digits = port.lstrip("0")
    if not digits:
        value = 0
    elif len(digits) > MAX_PORT_DIGITS:
        value = MAX_PORT + 1
    else:
        value = int(digits)
    if not 1 <= value <= MAX_PORT:
        raise _error(shown, f"{quoted} is out of range (1..{MAX_PORT})", ErrorCode.INVALID_PORT)
    return value


def parse_url(url: str) -> ParsedUrl:
    """Take a URL apart into what a connection needs: host, port, TLS or not.

    The port is the URL's own, else the scheme's usual one (see `SCHEMES`);
    a scheme not in the table is accepted only with an explicit port (and is
    then not secure). IPv6 literals go in brackets (``http://[::1]:8080/``),
    Unicode hosts are normalized with IDNA 2008, and user information is
    dropped.

    Raises:
        TypeError: ``url`` is not a `str`.
        InvalidArgumentError: no scheme, no usable host (``INVALID_HOST_NAME``),
            an unknown scheme without a port, a bad port (``INVALID_PORT``),
            whitespace or control characters. The message quotes the URL with
            its user information replaced by ``***``.
    """
    text = _require_url(url)
    shown = shorten(redact_userinfo(text))
    if not text:
        raise _error(shown, "the URL is empty")
    if character_problem(text) is not None:
        # Described on the redacted text, so a character of a password is never shown.
        problem = (
            character_problem(shown) or "the user information contains whitespace or a control character"
        )
        raise _error(shown, problem)
    match = _SCHEME.match(text)
    if match is None:
        raise _error(
            shown, "it has no scheme; write it as scheme://host[:port]/..., such as https://example.com/"
        )
    scheme = match.group(1).lower()
    rest = text[match.end() :]
    if not rest.startswith("//"):
        if rest[:1].isdigit():
            raise _error(
                shown, "it has no scheme (this looks like host:port); write it as https://host:port/"
            )
        # Without '//' the "scheme" may be a user name ("user:pw@host"): name it only if nothing was hidden.
        where = f"'{scheme}:'" if shown == text else "the scheme"
        raise _error(shown, f"it has no host: expected '//' after {where}", ErrorCode.INVALID_HOST_NAME)
    after = rest[2:]
    end = len(after)
    for delimiter in "/?#":
        found = after.find(delimiter)
        if found != -1:
            end = min(end, found)
    authority, tail = after[:end], after[end:]
    # An '@' after the authority may mean a password with an unencoded '/',
    # '?' or '#' ("https://user:pa/ss@host"): then what RFC 3986 calls the
    # host and port may be parts of it, and are not quoted in messages
    # (the redacted URL hides everything up to that '@').
    echo = "@" not in tail
    if "\\" in authority:
        raise _error(shown, "a backslash in the host part is not allowed", ErrorCode.INVALID_HOST_NAME)
    hostport = authority[authority.rfind("@") + 1 :]
    host_text, port_text = _split_host_port(hostport, shown, echo)
    if not host_text:
        raise _error(shown, "it has no host", ErrorCode.INVALID_HOST_NAME)
    try:
        host = normalize_host_name(host_text)
    except InvalidArgumentError as exc:
        if not echo:
            raise _error(shown, "the host is not a valid host name", exc.code) from None
        raise InvalidArgumentError(f"invalid URL {shown!r}: {exc.message}", exc.code) from exc
    info = SCHEMES.get(scheme)
    if port_text:
        port = _port_number(port_text, shown, echo)
    elif info is not None:
        port = info.default_port
    else:
        raise _error(
            shown,
            f"unknown scheme {scheme!r} and no port; give the port (such as {scheme}://host:1234/) "
            f"or use a known scheme: {', '.join(sorted(SCHEMES))}",
        )
    path = tail.partition("#")[0]
    return ParsedUrl(scheme, host, port, info.secure if info is not None else False, path)


def _require_url(url: object) -> str:
    if not isinstance(url, str):
        hint = " (decode it first)" if isinstance(url, bytes | bytearray) else ""
        raise TypeError(f"url must be a str, not {type(url).__name__}{hint}")
    return url
