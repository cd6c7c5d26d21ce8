"""Host names and ports: validation, IDNA, IP literals, trailing dots, SNI names.

Theory of operation
-------------------
Every host a user passes goes through `normalize_host_name` once, before any
I/O, and everything downstream (resolver, dialer, TLS) sees only the
normalized form. The result is one of:

* an IP literal in `ipaddress`'s compressed spelling, without brackets
  (``[::1]`` -> ``::1``; an IPv6 zone id such as ``%eth0`` is kept as
  written), or
* a DNS name in lower-case ASCII: labels of letters, digits, ``-`` and
  ``_``, non-ASCII labels replaced by their IDNA 2008 A-labels, and a
  trailing dot kept if the caller wrote one.

The function is idempotent: a normalized name normalizes to itself.

Algorithm. A pure-ASCII host takes the fast path: one precompiled regular
expression recognises the canonical dotted quad (returned as it is), a ``:``
or ``[`` sends it to `ipaddress.IPv6Address`, and anything else is
lower-cased and matched against one precompiled label grammar, with no call
into the IDNA codec. Only a host with a non-ASCII character pays for
UTS #46 mapping (`idna.uts46_remap`, non-transitional, so ``ß`` stays ``ß``
and ``faß.de`` becomes ``xn--fa-hia.de`` as IDNA 2008 requires, where the
IDNA 2003 codec of the standard library would have gone to ``fass.de``).
If the mapped host is pure ASCII (``⑧.⑧.⑧.⑧`` -> ``8.8.8.8``, fullwidth
digits and dots) it re-enters the ASCII path, so it is treated exactly like
the ASCII text it stands for; otherwise each non-ASCII label is checked
against IDNA 2008 (`idna.check_label`: code points, joiners, hyphens, bidi)
and Punycode-encoded.

Numeric forms. `ipaddress` accepts only four decimal numbers without leading
zeros. Shorthand the C library would guess at (``127.1``, ``0x7f.0.0.1``,
``010.0.0.1`` in octal, ``4294967295``) is refused: when the last label is
all digits or ``0x`` + hex digits (the WHATWG URL standard's test for a
numeric host) and the host is not an IP literal, it is an error rather than
a name that ``getaddrinfo`` would silently turn into some address.

Rejected alternatives. The standard library's ``"idna"`` codec implements
IDNA 2003 (wrong host for ``ß``, ``ς``, ZWJ/ZWNJ) and refuses ``_``; running
every ASCII name through the `idna` package's full ``encode`` would also
refuse ``_`` (used by real DNS names such as ``_dmarc`` or service hosts)
and cost tens of microseconds per call. A-labels (``xn--...``) written in
ASCII are taken as they are, like any other ASCII label: they are what DNS
holds, and some names in use predate IDNA 2008.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from typing import Any

from ._errors import ErrorCode, InvalidArgumentError
from ._types import Protocol

__all__ = [
    "cached_literal",
    "check_host",
    "check_port",
    "ip_literal",
    "literal_sockaddr",
    "normalize_host_name",
    "redact_userinfo",
    "sni_name",
]

#: RFC 1035 section 2.3.4: a label is at most 63 octets.
MAX_LABEL_LENGTH = 63
#: RFC 1035 allows 255 octets on the wire, which is 253 characters of text
#: once the length bytes and the root label are taken away (trailing dot not counted).
MAX_NAME_LENGTH = 253
#: Highest TCP/UDP port number (16-bit field).
MAX_PORT = 65535
#: RFC 6335 limits service names to 15 characters; a few /etc/services entries
#: run a little longer, so allow some slack but never pass huge strings on.
MAX_SERVICE_NAME_LENGTH = 32
#: sin6_scope_id is a 32-bit unsigned field.
MAX_SCOPE_ID = 0xFFFFFFFF
#: Distinct IPv6 literals remembered: parsing one costs ~5 us, and programs
#: dial the same few literals again and again.
IPV6_CACHE_SIZE = 256
#: Longest host or URL quoted in a message (a valid name is at most 253
#: characters); longer input is cut so that messages and logs stay readable.
MAX_SHOWN_LENGTH = 256
#: The A-label prefix of IDNA (RFC 5890 section 2.3.2.5).
ACE_PREFIX = "xn--"


class _LazyPattern:
    """A regular expression compiled the first time it is used.

    The patterns below serve rarer forms (IDNA dots, IPv6 zone ids,
    URL-looking hosts, service names) and error messages. Compiling them
    costs about 0.9 ms together; at ``import inetkit`` every program would
    pay that for forms most never meet. The methods mirror `re.Pattern`'s,
    so a call site reads as if the pattern were compiled; the check for the
    compiled pattern costs a few tens of nanoseconds per call.
    """

    __slots__ = ("_compiled", "_source")

    def __init__(self, source: str) -> None:
        self._source = source
        self._compiled: re.Pattern[str] | None = None

    def _pattern(self) -> re.Pattern[str]:
        compiled = self._compiled
        if compiled is None:
            # Two threads may both compile it once; either result is the same.
            compiled = self._compiled = re.compile(self._source)
        return compiled

    def match(self, text: str) -> re.Match[str] | None:
        return self._pattern().match(text)

    def fullmatch(self, text: str) -> re.Match[str] | None:
        return self._pattern().fullmatch(text)

    def split(self, text: str) -> list[str | Any]:
        return self._pattern().split(text)


# The three checks every first connect (or every new name) makes are plain
# string operations, not patterns: compiling the equivalent regular
# expressions cost about 0.9 ms (0.55 ms of it the dotted quad), paid by the
# first connect of every program, while the checks themselves take well
# under a microsecond either way.

_DECIMAL = "0123456789"
_HEX = "0123456789abcdef"
#: What a lower-case ASCII label may consist of.
_LABEL_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-_"


def is_dotted_quad(text: str) -> bool:
    """A canonical dotted quad: four decimal octets 0..255 without leading zeros.

    Exactly what `ipaddress.IPv4Address` accepts, so the most common literal
    skips `ipaddress` entirely.
    """
    parts = text.split(".")
    if len(parts) != 4:
        return False
    for part in parts:
        # strip() leaves nothing exactly when every character is a digit ("" is refused by size).
        if not 0 < len(part) <= 3 or part.strip(_DECIMAL):
            return False
        if (part[0] == "0" and len(part) > 1) or int(part) > 255:
            return False
    return True


def _is_ascii_name(lowered: str) -> bool:
    """A lower-case ASCII name: labels of 1..63 letters, digits, '-' and '_'; an optional trailing dot."""
    stem = lowered[:-1] if lowered.endswith(".") else lowered
    for label in stem.split("."):
        if not 0 < len(label) <= MAX_LABEL_LENGTH or label.strip(_LABEL_CHARS):
            return False
    return True


def _is_hex_label(label: str) -> bool:
    """``0x`` and hexadecimal digits (lower case), as ``inet_aton`` would read a number."""
    return label.startswith("0x") and not label[2:].strip(_HEX)


# RFC 6874 allows unreserved characters in a zone id (interface names).
_ZONE_ID = _LazyPattern(r"[A-Za-z0-9._~-]+")
_ZONE_RULE = "must be one or more letters, digits, '.', '_', '~' and '-' (an interface name or number)"
# A scheme followed by ':/' at the start (RFC 3986 section 3.1): a URL, not a host.
_URL_START = _LazyPattern(r"[A-Za-z][A-Za-z0-9+.-]*:/")
_SERVICE_NAME = _LazyPattern(r"[a-z0-9][a-z0-9_.+-]*")
# The characters that UTS #46 maps to a full stop (RFC 3490 section 3.1).
_DOT_LIKE = _LazyPattern("[.\u3002\uff0e\uff61]")

# Used when the services database (/etc/services) is missing or lacks an
# entry, as in minimal containers. Numbers are the IANA registrations.
_SERVICE_FALLBACK: dict[str, int] = {
    "ftp": 21,
    "ssh": 22,
    "telnet": 23,
    "smtp": 25,
    "domain": 53,
    "http": 80,
    "pop3": 110,
    "nntp": 119,
    "imap": 143,
    "ldap": 389,
    "https": 443,
    "smtps": 465,
    "submissions": 465,
    "nntps": 563,
    "submission": 587,
    "ldaps": 636,
    "ftps": 990,
    "imaps": 993,
    "pop3s": 995,
    "xmpp-client": 5222,
    "postgresql": 5432,
    "postgres": 5432,
}


def shorten(text: str, limit: int = MAX_SHOWN_LENGTH) -> str:
    """``text`` cut to ``limit`` characters (with ``...``) for a message."""
    return text if len(text) <= limit else text[:limit] + "..."


def _invalid_host(host: str, problem: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"invalid host name {shorten(host)!r}: {problem}", ErrorCode.INVALID_HOST_NAME
    )


def redact_userinfo(url: str) -> str:
    """Return ``url`` with any user information replaced by ``***``.

    Used for every message that shows a URL, so that a password in
    ``scheme://user:password@host`` never reaches an exception or a log. It
    errs on the side of hiding and works on malformed text too: everything
    between ``scheme://`` (or the start of the text, when it does not begin
    with ``scheme://``) and the last ``@`` is replaced.
    """
    match = _URL_START.match(url)
    start = match.end() + 1 if match is not None and url.startswith("//", match.end() - 1) else 0
    # The last '@' anywhere after the scheme: a password may hold '/', '?' or
    # '#' unencoded, and hiding part of a path in a message costs nothing.
    at = url.rfind("@", start)
    if at == -1:
        return url
    return f"{url[:start]}***{url[at:]}"


def _url_error(host: str) -> InvalidArgumentError:
    return _invalid_host(
        redact_userinfo(host),
        "this is a URL, not a host name; pass the host alone, or call inetkit.connect_url() with the URL",
    )


def character_problem(text: str) -> str | None:
    """Describe the first whitespace or control character in ``text``, if any."""
    for index, char in enumerate(text):
        if char == "\0":
            return f"contains a NUL character at position {index}"
        if char.isspace():
            return f"contains whitespace ({char!r}) at position {index}"
        # General category Cc is exactly U+0000..U+001F and U+007F..U+009F,
        # and the Unicode stability policy fixes that set for ever: no need
        # to load `unicodedata` for it.
        if char <= "\x1f" or "\x7f" <= char <= "\x9f":
            return f"contains a control character ({char!r}) at position {index}"
    return None


def _diagnose_ascii(name: str, original: str) -> InvalidArgumentError:
    """Explain why a lower-cased ASCII ``name`` failed the label grammar."""
    if not name:
        return _invalid_host(original, "the name is empty")
    problem = character_problem(name)
    if problem is not None:
        return _invalid_host(original, problem)
    if name == ".":
        return _invalid_host(original, "the name is only the root '.'")
    stem = name[:-1] if name.endswith(".") else name
    for label in stem.split("."):
        problem = _label_problem(label)
        if problem is not None:
            return _invalid_host(original, problem)
    # The grammar and the checks above agree; reaching here would be a bug.
    return _invalid_host(original, "not a valid host name")  # pragma: no cover


def _label_problem(label: str) -> str | None:
    """Describe what is wrong with one ASCII label, or None when it is fine."""
    if not label:
        return "it has an empty label (a leading dot or two dots in a row)"
    if len(label) > MAX_LABEL_LENGTH:
        return f"label {label[:20]!r}... is {len(label)} characters long; the limit is {MAX_LABEL_LENGTH}"
    for char in label:
        if not (char.isalnum() or char in "-_"):
            hint = ""
            if char == "/":
                hint = " (for a URL call inetkit.connect_url())"
            elif char == ":":
                hint = " (pass a port as its own argument)"
            elif char == "@":
                hint = " (user information belongs in a URL, not in a host name)"
            return (
                f"label {label!r} contains {char!r}; host names may contain only letters, digits, "
                f"'-' and '_'{hint}"
            )
    return None


def _numeric_problem(name: str) -> str | None:
    """Refuse a non-literal whose last label is numeric (``127.1``, ``0x7f.1``)."""
    stem = name[:-1] if name.endswith(".") else name
    last = stem[stem.rfind(".") + 1 :]
    if last.isdigit() or _is_hex_label(last):
        return (
            "an all-numeric name that is not an IP address; write IPv4 addresses as four "
            "decimal numbers without leading zeros (such as 127.0.0.1)"
        )
    return None


def _normalize_ipv6(name: str, original: str) -> str:
    """The ASCII host contains ':' or starts with '[': an IPv6 literal or an error."""
    if "://" in name or _URL_START.match(name):
        raise _url_error(original)
    bracketed = name.startswith("[")
    inner = name
    if bracketed:
        close = name.find("]")
        if close == -1:
            raise _invalid_host(original, "'[' without a closing ']'")
        if close != len(name) - 1:
            rest = name[close + 1 :]
            if rest.startswith(":"):
                raise _invalid_host(original, "it includes a port; pass the port as its own argument")
            raise _invalid_host(original, f"unexpected {rest!r} after ']'")
        inner = name[1:-1]
    compressed = _compressed_ipv6(inner)
    if compressed is None:
        problem = character_problem(name)
        if problem is not None:
            raise _invalid_host(original, problem)
        address, percent, zone = inner.partition("%")
        if percent and _compressed_ipv6(address) is not None:
            raise _invalid_host(original, f"zone id {zone!r} {_ZONE_RULE}")
        if bracketed:
            raise _invalid_host(original, "brackets may only enclose an IPv6 address")
        head, _, tail = name.rpartition(":")
        if tail.isdigit() and ":" not in head:
            raise _invalid_host(original, "it looks like 'host:port'; pass the port as its own argument")
        raise _invalid_host(original, "it contains ':' but is not a valid IPv6 address")
    _, percent, zone = compressed.partition("%")
    if percent and _ZONE_ID.fullmatch(zone) is None:
        problem = character_problem(name)
        raise _invalid_host(
            original,
            problem or f"zone id {zone!r} {_ZONE_RULE}",
        )
    return compressed


@functools.lru_cache(maxsize=IPV6_CACHE_SIZE)
def _compressed_ipv6(text: str) -> str | None:
    """`ipaddress`'s compressed spelling of an IPv6 literal, or None."""
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        return None


def _normalize_ascii(name: str, original: str) -> str:
    """Normalize a pure-ASCII host (the fast path, no IDNA codec)."""
    if is_dotted_quad(name):
        return name if type(name) is str else str.__str__(name)
    if ":" in name or name.startswith("["):
        return _normalize_ipv6(name, original)
    lowered = name.lower()
    if not _is_ascii_name(lowered):
        raise _diagnose_ascii(lowered, original)
    length = len(lowered) - (1 if lowered.endswith(".") else 0)
    if length > MAX_NAME_LENGTH:
        raise _invalid_host(original, f"the name is {length} characters long; the limit is {MAX_NAME_LENGTH}")
    problem = _numeric_problem(lowered)
    if problem is not None:
        raise _invalid_host(original, problem)
    return lowered


def _unmappable(host: str) -> InvalidArgumentError:
    """Name the label and character that UTS #46 refused."""
    import idna  # loaded only for non-ASCII names: keeps `import inetkit` cheap

    for label in _DOT_LIKE.split(host):
        for char in label:
            try:
                idna.uts46_remap(char, std3_rules=False, transitional=False)
            except idna.IDNAError:
                return _invalid_host(
                    host,
                    f"label {label!r} contains {char!r} (U+{ord(char):04X}), "
                    "which is not allowed in host names",
                )
    return _invalid_host(host, "it cannot be mapped with UTS #46")  # pragma: no cover


def _encode_label(label: str, host: str) -> str:
    """Check one mapped non-ASCII label against IDNA 2008 and return its A-label."""
    import idna

    try:
        idna.check_label(label)
    except idna.IDNAError as exc:
        raise _invalid_host(host, f"label {label!r} is not a valid IDNA 2008 label: {exc}") from None
    encoded = ACE_PREFIX + label.encode("punycode").decode("ascii")
    if len(encoded) > MAX_LABEL_LENGTH:
        raise _invalid_host(
            host,
            f"label {label!r} is {len(encoded)} octets long once encoded; the limit is {MAX_LABEL_LENGTH}",
        )
    return encoded


def _normalize_unicode(host: str) -> str:
    """Normalize a host with non-ASCII characters: UTS #46, then IDNA 2008."""
    import idna

    if "://" in host or _URL_START.match(host):
        raise _url_error(host)
    problem = character_problem(host)
    if problem is not None:
        raise _invalid_host(host, problem)
    try:
        mapped = idna.uts46_remap(host, std3_rules=False, transitional=False)
    except idna.IDNAError:
        raise _unmappable(host) from None
    if not mapped:
        raise _invalid_host(host, "the name is empty once ignored characters are removed")
    if mapped.isascii():
        # Fullwidth digits, circled numbers, ideographic dots ...: treat the
        # host exactly like the ASCII text it maps to (an IP literal or a name).
        return _normalize_ascii(mapped, host)
    trailing_dot = mapped.endswith(".")
    stem = mapped[:-1] if trailing_dot else mapped
    parts: list[str] = []
    for label in stem.split("."):
        if label.isascii():
            problem = _label_problem(label)
            if problem is not None:
                raise _invalid_host(host, problem)
            parts.append(label)
        else:
            parts.append(_encode_label(label, host))
    result = ".".join(parts)
    problem = _numeric_problem(result)
    if problem is not None:
        raise _invalid_host(host, problem)
    if len(result) > MAX_NAME_LENGTH:
        raise _invalid_host(
            host, f"the name is {len(result)} octets long once encoded; the limit is {MAX_NAME_LENGTH}"
        )
    return result + "." if trailing_dot else result


def normalize_host_name(host: str) -> str:
    """Return the one spelling of ``host`` that inetkit resolves, dials and verifies.

    ASCII names are lower-cased and checked (letters, digits, ``-``, ``_``);
    labels with other characters are mapped with UTS #46 and encoded with
    IDNA 2008, non-transitional (``faß.de`` -> ``xn--fa-hia.de``); IP
    literals come back in compressed form without brackets (``[::1]`` ->
    ``::1``, an IPv6 zone id kept); a trailing dot is kept. Normalizing the
    result again changes nothing.

    Raises:
        TypeError: ``host`` is not a `str`.
        InvalidArgumentError: (``INVALID_HOST_NAME``) an empty name, a URL,
            whitespace or control characters, an empty or over-long label, a
            name over 253 octets, a numeric form that is not an IP address
            (``127.1``, ``0x7f.0.0.1``, ``010.0.0.1``), or a label that is not
            valid IDNA 2008; the message names the host and the problem.
    """
    text = _require_str(host)
    if text.isascii():
        if not text:
            raise _invalid_host(text, "the name is empty")
        return _normalize_ascii(text, text)
    return _normalize_unicode(text)


def _require_str(host: object) -> str:
    # Checked at run time too: callers without type checking pass None or bytes.
    if not isinstance(host, str):
        hint = " (decode it first)" if isinstance(host, bytes | bytearray) else ""
        raise TypeError(f"host must be a str, not {type(host).__name__}{hint}")
    return host


#: Recently normalized hosts (input -> result). Normalization is a pure
#: function of the text, and applications connect to few distinct hosts
#: over and over; the cache saves the checks on every connect.
_NORMALIZED: dict[str, str] = {}
#: The IP literals among them (input -> (normalized, address family)), for
#: connect's short path. Literals with a zone id are left out: the interface
#: it names can come and go.
_LITERALS: dict[str, tuple[str, int]] = {}
#: Entries kept at most; the caches are emptied when they fill.
NORMALIZED_CACHE_SIZE = 512


def check_host(host: object) -> str:
    """Validate a ``host`` argument of any type and return it normalized.

    A non-`str` (``None``, ``bytes``, a number ...) raises `TypeError`;
    everything else is as for `normalize_host_name`.
    """
    if type(host) is str:
        name = _NORMALIZED.get(host)
        if name is not None:
            return name
        name = normalize_host_name(host)
        if len(_NORMALIZED) >= NORMALIZED_CACHE_SIZE:
            _NORMALIZED.clear()
            _LITERALS.clear()
        _NORMALIZED[host] = name
        if "%" not in name:
            address = ip_literal(name)
            if address is not None:
                family = socket.AF_INET if address.version == 4 else socket.AF_INET6
                _LITERALS[host] = (name, family)
        return name
    return normalize_host_name(_require_str(host))


def cached_literal(host: str) -> tuple[str, int] | None:
    """``(normalized, family)`` if ``host`` (a `str`) is an IP literal checked before.

    A dictionary look-up, for connect's short path; None means "not known
    to be a literal", and the caller goes the full way (`check_host`).
    """
    return _LITERALS.get(host)


def ip_literal(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a normalized host name spells, or None for a DNS name."""
    if ":" in name:
        try:
            return ipaddress.IPv6Address(name)
        except ValueError:
            return None
    if is_dotted_quad(name):
        return ipaddress.IPv4Address(name)
    return None


def sni_name(normalized: str) -> str | None:
    """The name to send in SNI and to match against the certificate.

    None for an IP literal (RFC 6066 section 3 forbids literals in SNI; the
    certificate is then checked against its IP addresses). A trailing dot is
    dropped: certificates never carry one, and servers reject it in SNI.
    """
    # A normalized name is a literal exactly when it is a dotted quad or has
    # a colon (no DNS name keeps one): no need to parse the address.
    if ":" in normalized or is_dotted_quad(normalized):
        return None
    return normalized[:-1] if normalized.endswith(".") else normalized


def _scope_id(zone: str, name: str) -> int:
    if zone.isascii() and zone.isdigit():
        value = int(zone)
        if value > MAX_SCOPE_ID:
            raise _invalid_host(name, f"zone id {zone} is out of range")
        return value
    try:
        return socket.if_nametoindex(zone)
    except OSError:
        raise _invalid_host(name, f"zone id {zone!r} names no network interface on this machine") from None


def literal_sockaddr(normalized: str, port: int) -> tuple[int, tuple[Any, ...]] | None:
    """``(family, sockaddr)`` ready for `socket.socket.connect`, for an IP literal.

    None for a DNS name. An IPv6 zone id (interface name or number) becomes
    the scope id of the 4-tuple ``(address, port, flowinfo=0, scope_id)``.

    Raises:
        InvalidArgumentError: (``INVALID_HOST_NAME``) the zone names no
            interface of this machine.
    """
    if is_dotted_quad(normalized):
        # Already canonical (normalize_host_name made it so): no parse needed.
        return (socket.AF_INET, (normalized, port))
    address = ip_literal(normalized)
    if address is None:
        return None
    if isinstance(address, ipaddress.IPv4Address):  # pragma: no cover - matched above
        return (socket.AF_INET, (str(address), port))
    zone = address.scope_id
    scope = 0 if zone is None else _scope_id(zone, normalized)
    bare = normalized.partition("%")[0]
    return (socket.AF_INET6, (bare, port, 0, scope))


def check_port(port: object, protocol: Protocol = Protocol.TCP) -> int:
    """Validate a ``port`` argument: a number 1..65535 or a service name.

    Service names (``"https"`` -> 443) are looked up in the services
    database for ``protocol``, then in a small built-in table of common
    names (for systems without ``/etc/services``). A string of digits is
    taken as the number it spells.

    Raises:
        TypeError: ``port`` is not an `int` or a `str` (``bool``, ``float``,
            ``None`` and ``bytes`` included).
        InvalidArgumentError: (``INVALID_PORT``) out of range, empty, or an
            unknown service name; the message names the value.
    """
    if isinstance(port, bool) or not isinstance(port, int | str):
        raise TypeError(f"port must be an int or a service name str, not {type(port).__name__}")
    if isinstance(port, int):
        if not 1 <= port <= MAX_PORT:
            raise InvalidArgumentError(
                f"port must be between 1 and {MAX_PORT}, got {int(port)}", ErrorCode.INVALID_PORT
            )
        return int(port)
    if not port:
        raise InvalidArgumentError("port must not be an empty string", ErrorCode.INVALID_PORT)
    if port.isascii() and port.isdigit():
        value = int(port)
        if not 1 <= value <= MAX_PORT:
            raise InvalidArgumentError(
                f"port must be between 1 and {MAX_PORT}, got {port!r}", ErrorCode.INVALID_PORT
            )
        return value
    name = port.lower()
    if len(name) > MAX_SERVICE_NAME_LENGTH or not name.isascii() or _SERVICE_NAME.fullmatch(name) is None:
        raise InvalidArgumentError(
            f"port {port!r} is neither a number nor a service name", ErrorCode.INVALID_PORT
        )
    transport = "udp" if protocol == Protocol.UDP else "tcp"
    try:
        return socket.getservbyname(name, transport)
    except OSError:
        pass
    fallback = _SERVICE_FALLBACK.get(name)
    if fallback is not None:
        return fallback
    raise InvalidArgumentError(
        f"unknown service name {port!r} for {transport.upper()}; give the port number instead",
        ErrorCode.INVALID_PORT,
    )
