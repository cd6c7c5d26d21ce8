"""Name resolution: overrides, hosts files, DNS, and the order addresses are tried in.

Theory of operation
-------------------
`Resolver.resolve` turns a normalized host name into ``(family, sockaddr)``
pairs ready for `socket.socket.connect`. It asks its sources in a fixed order
and the first source with any address wins:

1. ``overrides``: a mapping from host name to fixed addresses, for every port
   (what curl's ``--resolve`` does), parsed once when the `Resolver` is made;
2. ``hosts_file``: a hosts file of the caller's choosing (SocketWrench's
   "alternate hosts file");
3. the system hosts file (``/etc/hosts``), through inetkit's own parser, so a
   name listed there never costs a thread; ``system_hosts=False`` skips only
   this parse (the system resolver may still read the file in step 4);
4. DNS: ``socket.getaddrinfo``, i.e. the system resolver with its
   ``nsswitch.conf``/``resolv.conf`` configuration.

Hosts files are parsed into a name -> addresses table and kept in a small
process-wide cache keyed by ``(path, st_mtime_ns, st_size)``: every lookup
re-stats the file (one cheap system call) and re-reads it only when it
changed. Names in a hosts file go through `normalize_host_name`, so a
Unicode name written there matches the A-label a caller's Unicode name turns
into; lines that are not ``address name [aliases...]`` are skipped and
logged at debug level, as the C library skips them.

The deadline. ``getaddrinfo`` cannot be cancelled or given a timeout (the
long-standing complaint in urllib3 issue 1334: DNS sits outside every
timeout). With a deadline, the lookup therefore runs in a daemon helper
thread that the caller waits for only until the deadline, then abandons: the
caller gets `InetTimeoutError` on time and the thread finishes (and is
discarded) whenever the C library gives up. A semaphore bounds how many such
threads exist at once, so a dead DNS server cannot make abandoned lookups
pile up. A thread costs about 0.1 ms here, noise next to a DNS round trip;
names answered by overrides or hosts files never start one, and without a
deadline the lookup runs inline. A `Resolver` subclass that overrides
`resolve` is run the same way by `resolve_traced`, so a slow custom resolver
cannot hold `connect` past its deadline either.

``AI_ADDRCONFIG`` is deliberately not passed. It is meant to hide the
families the machine has no address for, but the C library does not count
loopback addresses, so in a container or network namespace that has only
loopback it hides ``::1`` (and with some libraries ``127.0.0.1``) even for
``localhost``. Without it, an address of a family that has no route fails at
once with "network unreachable" and the race moves on to the next address
immediately, which costs nothing. The standard library's
``socket.create_connection`` makes the same choice.

Address order. `order_addresses` puts one family first (IPv4 unless the
caller prefers IPv6, as InetConnect does) and then alternates the families
(RFC 8305 section 4), keeping the resolver's order within each family.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

from ._errors import (
    ErrorCode,
    HostNotFoundError,
    InetError,
    InetTimeoutError,
    InvalidArgumentError,
    translate_os_error,
)
from ._hostname import ip_literal, literal_sockaddr, normalize_host_name
from ._log import DEBUG, logger
from ._types import Protocol

__all__ = ["SYSTEM_HOSTS_FILE", "AddressInfo", "Resolver", "order_addresses"]


#: One resolved address: ``(family, sockaddr)``, ready for ``socket(family)``
#: and ``connect(sockaddr)``.
AddressInfo = tuple[int, tuple[Any, ...]]

_T = TypeVar("_T")


def _system_hosts_path() -> str:
    if sys.platform == "win32":  # pragma: no cover - inetkit is tested on Linux
        root = os.environ.get("SYSTEMROOT", r"C:\Windows")
        return os.path.join(root, "System32", "drivers", "etc", "hosts")
    return "/etc/hosts"


#: The hosts file the C library reads on this platform.
SYSTEM_HOSTS_FILE: Final = _system_hosts_path()

#: Helper threads running a lookup at once, abandoned ones included. An
#: abandoned ``getaddrinfo`` ends when the C library gives up (resolv.conf:
#: ``timeout`` x ``attempts`` per server, 10 s by default), so this bounds
#: the threads a dead DNS server can pin; past it, callers wait for a slot
#: (still under their deadline).
MAX_LOOKUP_THREADS: Final = 64

#: Longest single lock or event wait (`threading` refuses more); a later
#: deadline is waited for in several rounds.
_MAX_WAIT: Final = threading.TIMEOUT_MAX

#: Hosts files remembered by the parse cache (the system file plus a few
#: alternate ones); the least recently parsed is dropped first.
HOSTS_CACHE_SIZE: Final = 16

#: The families inetkit connects to; getaddrinfo may also list others.
_INET_FAMILIES: Final = frozenset({socket.AF_INET, socket.AF_INET6})

# A parsed address: (family, ip text, IPv6 scope id or 0).
_Entry = tuple[int, str, int]
_Table = dict[str, list[_Entry]]


# -- address order -------------------------------------------------------------


def order_addresses(addresses: Iterable[AddressInfo], prefer_ipv6: bool) -> list[AddressInfo]:
    """Order resolved addresses for the connection race.

    The first address is the first one of the preferred family (IPv6 with
    `Option.PREFER_IPV6`, otherwise IPv4); after it the families alternate,
    as RFC 8305 section 4 asks, so that one broken family costs at most one
    connection-attempt delay per address. Within a family the resolver's
    order (RFC 6724 for DNS answers) is kept; when one family runs out the
    rest of the other follows.

    RFC 8305 starts with IPv6 by default. inetkit starts with IPv4 unless
    told otherwise, on purpose: InetConnect prefers IPv4, ported code expects
    it, and a black-holed IPv6 path (common on misconfigured networks) then
    costs nothing instead of one attempt delay.
    """
    preferred_family = socket.AF_INET6 if prefer_ipv6 else socket.AF_INET
    preferred: list[AddressInfo] = []
    others: list[AddressInfo] = []
    for address in addresses:
        (preferred if address[0] == preferred_family else others).append(address)
    if not preferred or not others:
        return preferred or others
    ordered: list[AddressInfo] = []
    for index in range(max(len(preferred), len(others))):
        if index < len(preferred):
            ordered.append(preferred[index])
        if index < len(others):
            ordered.append(others[index])
    return ordered


# -- hosts files -------------------------------------------------------------


def _parse_address(text: str) -> _Entry | None:
    """The entry an address field of a hosts file spells, or None when it is no IP address."""
    try:
        normalized = normalize_host_name(text)
        if ip_literal(normalized) is None:
            return None
        found = literal_sockaddr(normalized, 0)
    except InvalidArgumentError:
        return None
    if found is None:  # pragma: no cover - ip_literal said it is one
        return None
    family, sockaddr = found
    return (family, sockaddr[0], sockaddr[3] if family == socket.AF_INET6 else 0)


def _parse_name(text: str) -> str | None:
    """A hosts-file name in normalized form without trailing dot, or None when it is no name."""
    try:
        name = normalize_host_name(text)
    except InvalidArgumentError:
        return None
    if ip_literal(name) is not None:
        return None
    return name[:-1] if name.endswith(".") else name


def parse_hosts(text: str, source: str = "hosts file") -> _Table:
    """Parse the text of a hosts file into ``{name: [(family, ip, scope_id), ...]}``.

    Each line is ``address name [aliases...]``; ``#`` starts a comment
    anywhere on a line. Names are matched case-insensitively and IDNA-mapped
    (`normalize_host_name`), without a trailing dot. A name listed on several
    lines collects the addresses of all of them in file order (glibc's
    ``multi on``), without repeats. Lines whose address is not an IP address,
    lines without a name, and names that are not valid host names are
    skipped and logged at debug level.
    """
    table: _Table = {}
    debug = logger.isEnabledFor(DEBUG)
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.partition("#")[0]
        fields = line.split()
        if not fields:
            continue
        entry = _parse_address(fields[0])
        if entry is None or len(fields) < 2:
            if debug:
                why = "no host name after the address" if entry is not None else "not an IP address"
                logger.debug("%s line %d skipped (%s): %r", source, number, why, raw.strip())
            continue
        for field in fields[1:]:
            name = _parse_name(field)
            if name is None:
                if debug:
                    logger.debug("%s line %d: %r is not a valid host name; skipped", source, number, field)
                continue
            entries = table.setdefault(name, [])
            if entry not in entries:
                entries.append(entry)
    return table


_hosts_cache: dict[str, tuple[int, int, _Table]] = {}
_hosts_cache_lock = threading.Lock()


def _load_hosts(path: str, *, quiet_if_missing: bool) -> _Table:
    """The parsed table of the hosts file at ``path``, re-read only when it changed."""
    try:
        status = os.stat(path)
    except OSError as exc:
        log = logger.debug if quiet_if_missing else logger.warning
        log("hosts file %s cannot be read (%s); it is skipped", path, exc.strerror or exc)
        return {}
    with _hosts_cache_lock:
        cached = _hosts_cache.get(path)
    if cached is not None and cached[0] == status.st_mtime_ns and cached[1] == status.st_size:
        return cached[2]
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except OSError as exc:
        log = logger.debug if quiet_if_missing else logger.warning
        log("hosts file %s cannot be read (%s); it is skipped", path, exc.strerror or exc)
        return {}
    # Invalid UTF-8 becomes U+FFFD, which no valid host name contains: such
    # names are skipped instead of failing the whole file.
    table = parse_hosts(data.decode("utf-8", errors="replace"), path)
    with _hosts_cache_lock:
        _hosts_cache.pop(path, None)
        while len(_hosts_cache) >= HOSTS_CACHE_SIZE:
            del _hosts_cache[next(iter(_hosts_cache))]
        _hosts_cache[path] = (status.st_mtime_ns, status.st_size, table)
    logger.debug("parsed hosts file %s: %d names", path, len(table))
    return table


def _sockaddrs(entries: Sequence[_Entry], port: int) -> list[AddressInfo]:
    result: list[AddressInfo] = []
    for family, ip, scope in entries:
        if family == socket.AF_INET6:
            if not socket.has_ipv6:  # pragma: no cover - Python built without IPv6
                continue
            result.append((family, (ip, port, 0, scope)))
        else:
            result.append((family, (ip, port)))
    return result


# -- DNS under a deadline -------------------------------------------------------

_lookup_slots = threading.BoundedSemaphore(MAX_LOOKUP_THREADS)


def _reset_after_fork() -> None:
    # A child process has none of the parent's helper threads: slots they
    # held would never be released, and a lock held by one of them at the
    # fork would never be unlocked.
    global _lookup_slots, _hosts_cache_lock
    _lookup_slots = threading.BoundedSemaphore(MAX_LOOKUP_THREADS)
    _hosts_cache_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


class _Outcome:
    """What a helper thread produced: a value or an exception."""

    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


def _lookup_timed_out(host: str, what: str) -> InetTimeoutError:
    return InetTimeoutError(
        f"resolving {host} timed out: {what} did not answer before the connect deadline",
        ErrorCode.TIMED_OUT,
    )


def _wait_until(wait: Callable[..., bool], deadline: float) -> bool:
    """Call ``wait(timeout=...)`` until it returns True or ``deadline`` passes.

    Lock and event waits refuse a timeout above `threading.TIMEOUT_MAX` with
    OverflowError, and every finite connect timeout is accepted (even
    ``1e308``), so a far deadline is waited for in rounds of at most that
    long. The first round always happens, so a deadline that has just
    passed still takes an answer that is already there.
    """
    while True:
        remaining = max(0.0, deadline - time.monotonic())
        if wait(timeout=min(remaining, _MAX_WAIT)):
            return True
        if remaining <= _MAX_WAIT:
            return False


def run_until(deadline: float, host: str, what: str, call: Callable[[], _T]) -> _T:
    """Run ``call`` in a daemon helper thread and wait for it until ``deadline``.

    When the deadline passes first the thread is abandoned (its result is
    dropped when it arrives) and `InetTimeoutError` naming ``host`` is raised.
    An exception raised by ``call`` is re-raised in the caller.
    """
    if deadline <= time.monotonic() or not _wait_until(_lookup_slots.acquire, deadline):
        raise _lookup_timed_out(host, what)
    outcome = _Outcome()

    def work() -> None:
        try:
            outcome.value = call()
        except BaseException as exc:  # handed to the waiting caller
            outcome.error = exc
        finally:
            _lookup_slots.release()
            outcome.done.set()

    thread = threading.Thread(target=work, name=f"inetkit-resolve {host}", daemon=True)
    try:
        thread.start()
    except BaseException:
        _lookup_slots.release()
        raise
    if not _wait_until(outcome.done.wait, deadline):
        logger.debug("resolving %s: %s abandoned at the deadline", host, what)
        raise _lookup_timed_out(host, what)
    if outcome.error is not None:
        error = outcome.error
        outcome.error = None  # no reference cycle through the traceback
        raise error
    value: _T = outcome.value
    return value


def _getaddrinfo(host: str, port: int, protocol: Protocol) -> list[AddressInfo]:
    """``getaddrinfo`` for one host, its errors translated, other families dropped."""
    if protocol is Protocol.UDP:
        kind, proto = socket.SOCK_DGRAM, socket.IPPROTO_UDP
    else:
        kind, proto = socket.SOCK_STREAM, socket.IPPROTO_TCP
    try:
        # Bytes, not str: the host is already an A-label, and a str would go
        # through the standard library's IDNA 2003 codec again.
        infos = socket.getaddrinfo(host.encode("ascii"), port, socket.AF_UNSPEC, kind, proto)
    except socket.gaierror as exc:
        raise translate_os_error(exc, action="resolve", target=host) from exc
    except UnicodeError as exc:
        raise InvalidArgumentError(
            f"host name {host!r} is not in normalized (ASCII) form; pass it through "
            "inetkit.normalize_host_name first",
            ErrorCode.INVALID_HOST_NAME,
        ) from exc
    except OSError as exc:
        raise translate_os_error(exc, action="resolve", target=host) from exc
    return _unique((family, sockaddr) for family, _, _, _, sockaddr in infos if family in _INET_FAMILIES)


def _unique(addresses: Iterable[AddressInfo]) -> list[AddressInfo]:
    seen: set[AddressInfo] = set()
    result: list[AddressInfo] = []
    for address in addresses:
        if address not in seen:
            seen.add(address)
            result.append(address)
    return result


# -- the resolver ----------------------------------------------------------------


def _parse_overrides(overrides: Mapping[str, str | Sequence[str]]) -> dict[str, list[_Entry]]:
    if not isinstance(overrides, Mapping):
        raise TypeError(
            f"overrides must be a mapping of host name to addresses, not {type(overrides).__name__}"
        )
    table: dict[str, list[_Entry]] = {}
    for key, value in overrides.items():
        if not isinstance(key, str):
            raise TypeError(f"overrides keys must be host names (str), not {type(key).__name__}")
        name = normalize_host_name(key)
        if ip_literal(name) is not None:
            raise InvalidArgumentError(
                f"overrides key {key!r} is an IP address; only host names are resolved",
                ErrorCode.INVALID_HOST_NAME,
            )
        name = name[:-1] if name.endswith(".") else name
        raw: object = value  # checked at run time: callers without type checking pass anything
        if isinstance(raw, bytes | bytearray) or not isinstance(raw, Sequence):
            raise TypeError(
                f"overrides[{key!r}] must be an address (str) or a sequence of addresses, "
                f"not {type(raw).__name__}"
            )
        values: Sequence[object] = [raw] if isinstance(raw, str) else raw
        if not values:
            raise InvalidArgumentError(f"overrides[{key!r}] lists no address", ErrorCode.INVALID_ARGUMENT)
        entries = table.setdefault(name, [])
        for item in values:
            if not isinstance(item, str):
                raise TypeError(f"overrides[{key!r}] addresses must be str, not {type(item).__name__}")
            entry = _parse_address(item)
            if entry is None:
                raise InvalidArgumentError(
                    f"overrides[{key!r}]: {item!r} is not an IP address (of an existing interface, "
                    "for an IPv6 zone)",
                    ErrorCode.INVALID_HOST_NAME,
                )
            if entry not in entries:
                entries.append(entry)
    return table


class Resolver:
    """Turns host names into addresses: overrides, hosts files, then DNS.

    Sources are asked in this order and the first one with any address wins:
    ``overrides`` (host name -> fixed addresses, for every port), the
    ``hosts_file`` given here, the system hosts file (skipped with
    ``system_hosts=False``), then DNS through the system resolver (skipped
    with ``dns=False``). DNS lookups are bounded by the connect deadline.

    A `Resolver` is immutable and safe to share between threads; one
    instance can serve every `connect`. To resolve names some other way,
    subclass it and override `resolve` (or, for `inetkit.aio`, `aresolve`).

    Args:
        hosts_file: path of an extra hosts file in ``/etc/hosts`` format,
            read before the system one; re-read whenever it changes.
        system_hosts: read the system hosts file (``/etc/hosts``) with
            inetkit's own parser. With False only that parse is skipped:
            the system resolver (``dns=True``) may still consult the file.
        dns: ask the system resolver (``getaddrinfo``) last.
        overrides: host name -> one address or a sequence of addresses,
            like curl's ``--resolve``; keys are normalized as
            `normalize_host_name` does (Unicode names welcome).

    Raises:
        TypeError: an argument of the wrong type.
        InvalidArgumentError: an override key that is not a host name, or a
            value that is not an IP address.
    """

    def __init__(
        self,
        hosts_file: str | os.PathLike[str] | None = None,
        *,
        system_hosts: bool = True,
        dns: bool = True,
        overrides: Mapping[str, str | Sequence[str]] | None = None,
    ) -> None:
        if hosts_file is not None and not isinstance(hosts_file, str | os.PathLike):
            raise TypeError(
                f"hosts_file must be a path (str or os.PathLike), not {type(hosts_file).__name__}"
            )
        for flag, value in (("system_hosts", system_hosts), ("dns", dns)):
            if not isinstance(value, bool):
                raise TypeError(f"{flag} must be True or False, not {type(value).__name__}")
        path = None if hosts_file is None else os.fspath(hosts_file)
        if path is not None and not isinstance(path, str):
            raise TypeError("hosts_file must be a text path, not bytes")
        self._hosts_file: str | None = path
        self._system_hosts = system_hosts
        self._dns = dns
        self._overrides = _parse_overrides(overrides) if overrides is not None else {}

    @property
    def hosts_file(self) -> str | None:
        """The extra hosts file, or None."""
        return self._hosts_file

    @property
    def system_hosts(self) -> bool:
        """Whether the system hosts file is read by inetkit's own parser."""
        return self._system_hosts

    @property
    def dns(self) -> bool:
        """Whether the system resolver (DNS) is asked."""
        return self._dns

    @property
    def overrides(self) -> dict[str, list[str]]:
        """The overrides in normalized form: ``{name: [ip, ...]}`` (a copy)."""
        return {name: [_entry_text(e) for e in entries] for name, entries in self._overrides.items()}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(hosts_file={self._hosts_file!r}, system_hosts={self._system_hosts}, "
            f"dns={self._dns}, overrides={self.overrides!r})"
        )

    def resolve(self, host: str, port: int, protocol: Protocol, deadline: float | None) -> list[AddressInfo]:
        """Return the addresses of ``host`` as ``(family, sockaddr)`` pairs.

        This is the hook a custom resolver overrides. The pairs are those
        ``socket.getaddrinfo`` gives (``sockaddr`` is ``(ip, port)`` for IPv4
        and ``(ip, port, flowinfo, scope_id)`` for IPv6), in the source's
        order, without repeats; `connect` orders them for the race itself.

        Args:
            host: the host name, normalized (`normalize_host_name`); a
                trailing dot is ignored for overrides and hosts files and
                passed on to DNS.
            port: the port to put into each ``sockaddr``.
            protocol: `Protocol.TCP` or `Protocol.UDP`.
            deadline: a `time.monotonic` value by which the answer is
                needed, or None for no limit.

        Raises:
            HostNotFoundError: (``HOST_NOT_FOUND``) no source knows the name.
            InetTimeoutError: (``TIMED_OUT``) DNS did not answer by the deadline.
        """
        return self._resolve(normalize_host_name(host), port, protocol, deadline)[0]

    async def aresolve(
        self, host: str, port: int, protocol: Protocol, deadline: float | None
    ) -> list[AddressInfo]:
        """`resolve` for asyncio (`inetkit.aio`): the same arguments and result, awaited.

        This is the hook an asyncio resolver overrides; `inetkit.aio.connect`
        awaits it and cancels it when it overruns ``deadline``. By default the
        sources that need no thread (overrides, hosts files) answer at once,
        and DNS (or an overridden `resolve`) runs in a helper thread that is
        abandoned at the deadline, so a stuck lookup never blocks the event
        loop nor holds up a later lookup.
        """
        from .aio._resolve import default_lookup  # asyncio is loaded only by its users

        found, _ = await default_lookup(self, normalize_host_name(host), port, protocol, deadline)
        return found

    def resolve_traced(
        self, host: str, port: int, protocol: Protocol, deadline: float | None
    ) -> tuple[list[AddressInfo], str]:
        """`resolve`, plus the name of the source that answered (for the connect trace).

        The source is ``"overrides"``, ``"hosts_file"``, ``"system_hosts"``,
        ``"dns"``, ``"literal"`` (``host`` is an IP address), or ``"custom"``
        when a subclass overrides `resolve`. A custom `resolve` runs in a
        helper thread when there is a deadline, so that it cannot hold the
        caller past it; its answer is checked and freed of repeats.
        """
        return self._lookup(normalize_host_name(host), port, protocol, deadline)

    def _lookup(
        self, host: str, port: int, protocol: Protocol, deadline: float | None
    ) -> tuple[list[AddressInfo], str]:
        """`resolve_traced` for a ``host`` that is normalized already (connect's plan did it)."""
        if type(self).resolve is Resolver.resolve:
            return self._resolve(host, port, protocol, deadline)

        def call() -> list[AddressInfo]:
            return self.resolve(host, port, protocol, deadline)

        try:
            if deadline is None:
                found = call()
            else:
                found = run_until(deadline, host, f"{type(self).__name__}.resolve", call)
        except InetError:
            raise
        except OSError as exc:  # socket.gaierror included: HOST_NOT_FOUND
            raise translate_os_error(exc, action="resolve", target=host) from exc
        return _check_custom(found, f"{type(self).__name__}.resolve", host), "custom"

    def _resolve(
        self, host: str, port: int, protocol: Protocol, deadline: float | None
    ) -> tuple[list[AddressInfo], str]:
        # ``host`` is normalized: by `resolve`, `resolve_traced` or connect's plan.
        known = self._resolve_locally(host, port)
        if known is not None:
            return known
        if deadline is None:
            found = _getaddrinfo(host, port, protocol)
        else:
            found = run_until(deadline, host, "DNS", lambda: _getaddrinfo(host, port, protocol))
        return _from_dns(host, found), "dns"

    def _resolve_locally(self, host: str, port: int) -> tuple[list[AddressInfo], str] | None:
        """The sources that need no thread: literal, overrides, hosts files; None: ask DNS.

        Raises `HostNotFoundError` when the name is in none of them and DNS is off.
        """
        literal = literal_sockaddr(host, port)
        if literal is not None:
            return [literal], "literal"
        key = host[:-1] if host.endswith(".") else host
        if self._overrides:
            entries = self._overrides.get(key)
            if entries:
                found = _sockaddrs(entries, port)
                if found:
                    return found, "overrides"
        if self._hosts_file is not None:
            found = _sockaddrs(_load_hosts(self._hosts_file, quiet_if_missing=False).get(key, ()), port)
            if found:
                return found, "hosts_file"
        if self._system_hosts:
            found = _sockaddrs(_load_hosts(SYSTEM_HOSTS_FILE, quiet_if_missing=True).get(key, ()), port)
            if found:
                return found, "system_hosts"
        if not self._dns:
            raise HostNotFoundError(
                f"host name {host} not found in {self._sources_text()} (DNS lookups are off: dns=False)",
                ErrorCode.HOST_NOT_FOUND,
            )
        return None

    def _sources_text(self) -> str:
        sources = []
        if self._overrides:
            sources.append("the overrides")
        if self._hosts_file is not None:
            sources.append(f"the hosts file {self._hosts_file}")
        if self._system_hosts:
            sources.append(f"the system hosts file {SYSTEM_HOSTS_FILE}")
        if not sources:
            return "any source (overrides, hosts files and DNS are all off)"
        return ", ".join(sources)


def _from_dns(host: str, found: list[AddressInfo]) -> list[AddressInfo]:
    """What DNS answered for ``host``; `HostNotFoundError` when that is no IPv4 or IPv6 address."""
    if not found:
        raise HostNotFoundError(
            f"host name {host} not found: DNS returned no IPv4 or IPv6 address", ErrorCode.HOST_NOT_FOUND
        )
    return found


def _entry_text(entry: _Entry) -> str:
    family, ip, scope = entry
    return f"{ip}%{scope}" if family == socket.AF_INET6 and scope else ip


def _check_custom(found: object, hook: str, host: str) -> list[AddressInfo]:
    """Check what a custom `Resolver.resolve` (or ``aresolve``), named ``hook``, returned; drop repeats."""
    shape = "a list of (family, sockaddr) pairs of IP addresses, like (socket.AF_INET, ('192.0.2.1', 443))"
    if not isinstance(found, list | tuple):
        raise TypeError(f"{hook} must return {shape}, not {type(found).__name__}")
    result: list[AddressInfo] = []
    for item in found:
        if not (
            isinstance(item, tuple)
            and len(item) == 2
            and item[0] in _INET_FAMILIES
            and isinstance(item[1], tuple)
            and (len(item[1]) == 2 if item[0] == socket.AF_INET else 2 <= len(item[1]) <= 4)
            and isinstance(item[1][0], str)
            and ip_literal(item[1][0]) is not None
            and isinstance(item[1][1], int)
        ):
            raise TypeError(f"{hook} must return {shape}; got the item {item!r}")
        family, sockaddr = item
        if family == socket.AF_INET6 and len(sockaddr) < 4:
            # (ip, port[, flowinfo]) is accepted by connect(); the full form
            # makes repeats recognisable.
            sockaddr = (*sockaddr, 0, 0)[:4]
        result.append((family, sockaddr))
    if not result:
        raise HostNotFoundError(
            f"host name {host} not found: {hook} returned no address", ErrorCode.HOST_NOT_FOUND
        )
    return _unique(result)
