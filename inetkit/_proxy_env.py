"""`proxy_from_environment`: the proxy URL the environment selects for a target, as curl picks it.

Theory of operation
-------------------
Programs on one machine share the proxy variables, so the useful rule is
the one the other programs follow. curl's is the most widely documented
and the one API.md fixes; this module follows curl's source (``lib/proxy.c``:
``proxy_detect_proxy``, ``proxy_check_noproxy``, ``cidr4_match``,
``cidr6_match``; curl 8.9 and later) line for line in behaviour:

* Which variable. A secure target reads ``https_proxy``, then
  ``HTTPS_PROXY``; a plain one reads ``http_proxy`` only (never
  ``HTTP_PROXY``: a CGI program gets the client's ``Proxy:`` request header
  as ``HTTP_PROXY``, so trusting it lets any web client redirect the
  server's own requests, "httpoxy"). Then ``all_proxy``, then
  ``ALL_PROXY``. An empty variable counts as not set (curl's
  ``curl_getenv``), so an empty ``https_proxy`` falls through to
  ``HTTPS_PROXY``. The value is returned exactly as written.
* ``no_proxy`` (else ``NO_PROXY``; an empty one counts as not set) wins over
  all of them. The whole value ``*`` (nothing else, not even blanks) turns
  every proxy off. Otherwise it is a list of entries separated by commas;
  blanks (space, tab) around an entry are skipped, but an entry followed by
  a blank and then something other than a comma ends the list there (curl
  8.9 made space-separated lists stop parsing; older curl read on).
* A host name matches an entry that equals it or is a domain above it:
  ``example.com`` and ``.example.com`` both match ``example.com`` and
  ``www.example.com``, never ``notexample.com``. One trailing dot of the
  entry and of the host is ignored, one leading dot of the entry too;
  ASCII case is ignored. There is no other wildcard: ``*.example.com``
  matches nothing.
* An IP literal target is compared with entries that are IP literals of its
  family, optionally with a CIDR prefix length ``/N`` (digits only, at most
  32 for IPv4 and 128 for IPv6). As in curl, ``/0`` means the whole address
  (``10.0.0.0/0`` matches 10.0.0.0 only, not every address). No name is
  resolved: ``localhost`` in the list does not match ``127.0.0.1``.
* An entry with a port (``example.com:8080``) matches nothing: curl compares
  names, not ports. The target's ``port`` is validated like `connect`'s and
  otherwise plays no part.

The target goes through `normalize_host_name` first, as it does in
`connect`, which gives what curl compares too: an IDN becomes its A-label
(curl's libidn2 step; write international names in the list as
``xn--`` A-labels, as curl's documentation asks), ``[::1]`` loses its
brackets, letters are lower case; an IPv6 zone id (``fe80::1%eth0``) is
left out of the comparison, as curl keeps it apart from the host.

Rejected: `urllib.request.getproxies` and ``proxy_bypass_environment``
(Python's rules differ from curl's: ``HTTP_PROXY`` is read, entries may
carry ports, no CIDR ranges), and resolving names to compare them with IP
entries (I/O and a second answer for the same name).
"""

from __future__ import annotations

import os
import socket

from ._hostname import check_host, check_port

__all__ = ["proxy_from_environment"]

#: The variables read for a secure target and a plain one, in order (curl's order).
SECURE_VARIABLES = ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")
PLAIN_VARIABLES = ("http_proxy", "all_proxy", "ALL_PROXY")
NO_PROXY_VARIABLES = ("no_proxy", "NO_PROXY")

#: curl's ISBLANK: the characters skipped around entries.
_BLANKS = " \t"
#: curl copies an IP entry into a 128-byte buffer; a longer one matches nothing.
MAX_IP_ENTRY_LENGTH = 127
#: Bits in an IPv4 and an IPv6 address.
IPV4_BITS = 32
IPV6_BITS = 128


def proxy_from_environment(host: str, port: int | str, *, secure: bool) -> str | None:
    """The proxy URL the environment selects for ``host``, or None for a direct connection.

    Programs configured through ``https_proxy``, ``all_proxy`` and
    ``no_proxy`` expect every client on the machine to honour them the same
    way; this applies curl's rules (see the module documentation and
    ``docs/trust.md``) so that ``connect(host, port,
    proxy=proxy_from_environment(host, port, secure=True))`` goes where curl
    would. ``connect`` itself never reads the environment.

    Args:
        host: the target host, as given to `connect` (a name, an IP literal,
            ``[::1]``).
        port: the target port (number or service name); checked as `connect`
            checks it, it does not change the answer.
        secure: True for a target reached with TLS from the start (``https``
            in curl's terms: ``https_proxy``/``HTTPS_PROXY`` are read), False
            for a plain one (``http_proxy`` only); ``all_proxy``/``ALL_PROXY``
            follow in both cases.

    Returns:
        The variable's value exactly as written (the proxy URL), or None when
        no variable is set or ``no_proxy`` exempts the host.

    Raises:
        TypeError: ``host`` is not a str, ``port`` not an int or str,
            ``secure`` not a bool.
        InvalidArgumentError: an invalid host name (``INVALID_HOST_NAME``) or
            port (``INVALID_PORT``); checked before the environment is read.
    """
    name = check_host(host)
    check_port(port)
    if not isinstance(secure, bool):
        raise TypeError(f"secure must be a bool, not {type(secure).__name__}")
    if no_proxy_matches(name, _first_set(NO_PROXY_VARIABLES)):
        return None
    return _first_set(SECURE_VARIABLES if secure else PLAIN_VARIABLES)


def _first_set(names: tuple[str, ...]) -> str | None:
    """The first of these variables that is set and not empty (curl's ``curl_getenv``)."""
    environ = os.environ
    for variable in names:
        value = environ.get(variable)
        if value:
            return value
    return None


def no_proxy_matches(name: str, no_proxy: str | None) -> bool:
    """Does the ``no_proxy`` list exempt the normalized host ``name`` (curl's ``proxy_check_noproxy``)?"""
    if not no_proxy:
        return False
    if no_proxy == "*":
        return True
    if ":" in name:
        address = _address(socket.AF_INET6, name.partition("%")[0])
        return address is not None and any(
            _ip_entry_matches(socket.AF_INET6, address, entry) for entry in entries(no_proxy)
        )
    address = _address(socket.AF_INET, name)
    if address is not None:
        return any(_ip_entry_matches(socket.AF_INET, address, entry) for entry in entries(no_proxy))
    host = name[:-1] if name.endswith(".") else name
    return any(_name_entry_matches(host, entry) for entry in entries(no_proxy))


def entries(no_proxy: str) -> list[str]:
    """The entries of a ``no_proxy`` value, split as curl 8.9+ splits it.

    Commas separate entries (runs of commas and empty entries are skipped);
    blanks around an entry are skipped; a blank followed by anything but a
    comma ends the list (``"a b,c"`` is just ``["a"]``).
    """
    found: list[str] = []
    end = len(no_proxy)
    at = 0
    while at < end:
        while at < end and no_proxy[at] in _BLANKS:
            at += 1
        start = at
        while at < end and no_proxy[at] not in _BLANKS and no_proxy[at] != ",":
            at += 1
        if at > start:
            found.append(no_proxy[start:at])
        while at < end and no_proxy[at] in _BLANKS:
            at += 1
        if at >= end or no_proxy[at] != ",":
            break
        while at < end and no_proxy[at] == ",":
            at += 1
    return found


def _name_entry_matches(host: str, entry: str) -> bool:
    """``host`` (lower case, no trailing dot) is the entry's name or lies under it."""
    if not entry.isascii():
        return False  # the host is ASCII (A-labels); curl compares bytes, so this never matches
    if entry.endswith("."):
        entry = entry[:-1]
    if entry.startswith("."):
        entry = entry[1:]
    if not entry:
        return False
    entry = entry.lower()
    if len(entry) == len(host):
        return entry == host
    return len(entry) < len(host) and host.endswith(entry) and host[-len(entry) - 1] == "."


def _address(family: int, text: str) -> int | None:
    """The address ``text`` spells in ``family`` as a number, or None (curl's ``inet_pton`` test)."""
    if not text.isascii():
        return None
    try:
        return int.from_bytes(socket.inet_pton(family, text), "big")
    except (OSError, ValueError):
        return None


def _ip_entry_matches(family: int, address: int, entry: str) -> bool:
    """An ``ADDRESS`` or ``ADDRESS/BITS`` entry covers ``address`` (curl's ``cidr4/6_match``)."""
    if len(entry) > MAX_IP_ENTRY_LENGTH:
        return False
    text, slash, bits_text = entry.partition("/")
    bits = 0
    if slash:
        if not (bits_text.isascii() and bits_text.isdigit()):
            return False
        bits = int(bits_text)
    width = IPV4_BITS if family == socket.AF_INET else IPV6_BITS
    if bits > width:
        return False
    network = _address(family, text)
    if network is None:
        return False
    if bits == 0:
        bits = width  # curl: no prefix, and /0, compare the whole address
    shift = width - bits
    return (address >> shift) == (network >> shift)
