"""Proxy URLs: ``scheme://[user[:password]@]host:port``, checked before any I/O.

`parse_proxy` turns what ``connect(proxy=...)`` was given into a `Proxy`:
the scheme (one of `SCHEMES`), the host normalized like any host
(`normalize_host_name`), the port (which the URL must name: a proxy has no
usual port everybody agrees on), and the percent-decoded user information.
The pieces of ``inetkit._url`` that split ``connect_url``'s URLs do the
splitting here too, so a proxy URL and a target URL read alike and fail
with the same words.

The password is kept in a slot that `Proxy.__repr__` never shows; every
message quotes the URL through `redact_userinfo`, and `Proxy.endpoint`
(what traces and logs show) names scheme, host and port only.
"""

from __future__ import annotations

import functools
from urllib.parse import unquote

from ..._errors import ErrorCode, InvalidArgumentError
from ..._hostname import character_problem, literal_sockaddr, normalize_host_name, redact_userinfo, shorten
from ..._url import _SCHEME, _port_number, _split_host_port
from ..race import Address

__all__ = ["SCHEMES", "Proxy", "parse_proxy"]

#: The schemes ``proxy=`` accepts, and what each one means.
SCHEMES = {
    "http": "HTTP CONNECT",
    "https": "HTTP CONNECT over TLS to the proxy",
    "socks5": "SOCKS5, the client resolves the target",
    "socks5h": "SOCKS5, the proxy resolves the target",
    "socks4a": "SOCKS4a, the proxy resolves the target",
}
#: RFC 1929: user name and password are each 1 to 255 bytes (one length byte).
MAX_SOCKS5_CREDENTIAL = 255


class Proxy:
    """A checked proxy URL (see the module header); made by `parse_proxy` only.

    Attributes:
        scheme: ``"http"``, ``"https"``, ``"socks5"``, ``"socks5h"`` or ``"socks4a"``.
        host: the proxy's host, normalized.
        port: the proxy's port.
        username: the decoded user name, or None.
        password: the decoded password, or None (never shown).
        literal: ``(family, sockaddr)`` when ``host`` is an IP literal, else None.
    """

    __slots__ = ("host", "literal", "password", "port", "scheme", "username")

    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None
    literal: Address | None

    def __init__(
        self, scheme: str, host: str, port: int, username: str | None = None, password: str | None = None
    ) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.literal = literal_sockaddr(host, port)

    @property
    def endpoint(self) -> str:
        """``scheme://host:port`` (IPv6 in brackets): how traces and messages name the proxy."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def resolves_target(self) -> bool:
        """Whether the proxy is sent the target's name (True) or the client resolves it first (``socks5``)."""
        return self.scheme != "socks5"

    @property
    def tls(self) -> bool:
        """Whether the hop to the proxy is TLS (``https``)."""
        return self.scheme == "https"

    def __repr__(self) -> str:
        user = "" if self.username is None else f" user={self.username!r}"
        secret = "" if self.password is None else " password=***"
        return f"<inetkit proxy {self.endpoint}{user}{secret}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Proxy):
            return NotImplemented
        return (self.scheme, self.host, self.port, self.username, self.password) == (
            other.scheme,
            other.host,
            other.port,
            other.username,
            other.password,
        )

    __hash__ = None  # type: ignore[assignment]  # compared by value, not used as a key


def _error(shown: str, problem: str, code: ErrorCode = ErrorCode.INVALID_ARGUMENT) -> InvalidArgumentError:
    return InvalidArgumentError(f"invalid proxy URL {shown!r}: {problem}", code)


def _renamed(exc: InvalidArgumentError) -> InvalidArgumentError:
    """An error of the URL helpers that ``connect_url`` shares, worded for a proxy URL."""
    return InvalidArgumentError(exc.message.replace("invalid URL", "invalid proxy URL", 1), exc.code)


def _decode(text: str, what: str, shown: str) -> str:
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise _error(shown, f"the {what}'s %-escapes are not UTF-8") from None


def parse_proxy(value: object) -> Proxy:
    """Check a ``proxy=`` value and take it apart; raise before any I/O.

    Raises:
        TypeError: ``value`` is not a `str`.
        InvalidArgumentError: an unknown scheme, no host (``INVALID_HOST_NAME``),
            no port or a bad one (``INVALID_PORT``), a path, query or
            fragment, credentials the scheme cannot carry. The message quotes
            the URL with its user information replaced by ``***``.
    """
    if not isinstance(value, str):
        raise TypeError(f"proxy must be a proxy URL (str) or None, not {type(value).__name__}")
    return _parse(value)


#: Proxy URLs remembered with their parse: a program uses one or two, on every connect.
PARSED_CACHE_SIZE = 64


@functools.lru_cache(maxsize=PARSED_CACHE_SIZE)
def _parse(value: str) -> Proxy:
    """`parse_proxy` for a `str`, remembered (a `Proxy` is never changed after it is made)."""
    shown = shorten(redact_userinfo(value))
    if not value:
        raise _error(shown, "the URL is empty")
    if character_problem(value) is not None:
        problem = (
            character_problem(shown) or "the user information contains whitespace or a control character"
        )
        raise _error(shown, problem)
    match = _SCHEME.match(value)
    if match is None or not value[match.end() :].startswith("//"):
        raise _error(shown, f"write it as scheme://host:port with a scheme of {', '.join(SCHEMES)}")
    scheme = match.group(1).lower()
    if scheme not in SCHEMES:
        raise _error(shown, f"unknown proxy scheme {scheme!r}; known: {', '.join(SCHEMES)}")
    after = value[match.end() + 2 :]
    # The user information ends at the last '@' (an unencoded '@' in a password).
    at = after.rfind("@")
    userinfo, hostpart = (after[:at], after[at + 1 :]) if at != -1 else (None, after)
    authority, slash, tail = hostpart.partition("/")
    for delimiter in "?#":
        if delimiter in authority:
            raise _error(shown, "a proxy URL has no query or fragment")
    if slash and tail:
        raise _error(shown, "a proxy URL has no path (only scheme://host:port)")
    if "\\" in authority:
        raise _error(shown, "a backslash in the host part is not allowed", ErrorCode.INVALID_HOST_NAME)
    try:
        host_text, port_text = _split_host_port(authority, shown, True)
    except InvalidArgumentError as exc:
        raise _renamed(exc) from None
    if not host_text:
        raise _error(shown, "it has no host", ErrorCode.INVALID_HOST_NAME)
    try:
        host = normalize_host_name(host_text)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"invalid proxy URL {shown!r}: {exc.message}", exc.code) from exc
    if not port_text:
        raise _error(
            shown,
            f"a proxy URL must name its port, such as {scheme}://{host_text}:1080",
            ErrorCode.INVALID_PORT,
        )
    try:
        port = _port_number(port_text, shown, True)
    except InvalidArgumentError as exc:
        raise _renamed(exc) from None
    username = password = None
    if userinfo is not None:
        user_text, colon, password_text = userinfo.partition(":")
        username = _decode(user_text, "user name", shown)
        password = _decode(password_text, "password", shown) if colon else None
        _check_credentials(scheme, username, password, shown)
    return Proxy(scheme, host, port, username, password)


def _check_credentials(scheme: str, username: str, password: str | None, shown: str) -> None:
    """Refuse credentials that the scheme's wire format cannot carry (never quoting them)."""
    if not username and password is None:
        raise _error(shown, "an empty user name before '@'")
    if scheme in ("http", "https"):
        if ":" in username:
            raise _error(shown, "the user name must not contain ':' (Basic authentication splits on it)")
        return
    if scheme == "socks4a":
        if password is not None:
            raise _error(shown, "SOCKS4a carries a user id only, no password")
        if "\0" in username:
            raise _error(shown, "the SOCKS4a user id must not contain a NUL character")
        return
    if password is None:
        raise _error(
            shown, "SOCKS5 user name authentication (RFC 1929) needs a password too (user:password@)"
        )
    for what, text in (("user name", username), ("password", password)):
        size = len(text.encode("utf-8"))
        if not 1 <= size <= MAX_SOCKS5_CREDENTIAL:
            raise _error(shown, f"the SOCKS5 {what} must be 1 to {MAX_SOCKS5_CREDENTIAL} bytes (RFC 1929)")
