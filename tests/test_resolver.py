"""Name resolution: hosts files, overrides, DNS under a deadline, custom resolvers, address order."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import require_program

import inetkit._resolver as resolver_module
from inetkit._errors import (
    ErrorCode,
    HostNotFoundError,
    InetError,
    InetTimeoutError,
    InvalidArgumentError,
)
from inetkit._resolver import SYSTEM_HOSTS_FILE, Resolver, order_addresses, parse_hosts, run_until
from inetkit._types import Protocol

V4 = socket.AF_INET
V6 = socket.AF_INET6
LO_INDEX = socket.if_nametoindex("lo")
ROOT = Path(__file__).resolve().parent.parent


def ips(found: list[tuple[int, tuple[Any, ...]]]) -> list[str]:
    return [sockaddr[0] for _, sockaddr in found]


def offline(**kwargs: Any) -> Resolver:
    """A resolver that never reads /etc/hosts or asks DNS."""
    return Resolver(system_hosts=False, dns=False, **kwargs)


@pytest.fixture
def hosts_file(tmp_path: Path) -> Path:
    path = tmp_path / "hosts"
    path.write_text(
        textwrap.dedent(
            """\
            # a comment line
              # an indented comment

            192.0.2.10\tAlpha.Test alpha  a1.test   # trailing comment
            2001:db8::10 alpha.test
            192.0.2.10 alpha.test
            192.0.2.11 alpha.test
            fe80::1%lo linklocal.test
            fe80::2%no-such-if0 badzone.test
            Bücher.test-line-is-not-an-address unicode.test
            192.0.2.20 Bücher.Test
            127.1 shorthand.test
            192.0.2.30
            192.0.2.31 bad..name good.test 192.0.2.99
            192.0.2.40 trailing.test.
            not-an-ip name.test
            """
        ),
        encoding="utf-8",
    )
    return path


# -- hosts file parsing ----------------------------------------------------------


def test_parse_hosts_table(hosts_file: Path) -> None:
    table = parse_hosts(hosts_file.read_text(encoding="utf-8"))
    assert table["alpha.test"] == [(V4, "192.0.2.10", 0), (V6, "2001:db8::10", 0), (V4, "192.0.2.11", 0)]
    assert table["alpha"] == [(V4, "192.0.2.10", 0)]
    assert table["a1.test"] == [(V4, "192.0.2.10", 0)]
    assert table["linklocal.test"] == [(V6, "fe80::1", LO_INDEX)]
    assert table["xn--bcher-kva.test"] == [(V4, "192.0.2.20", 0)]
    assert table["good.test"] == [(V4, "192.0.2.31", 0)]
    assert table["trailing.test"] == [(V4, "192.0.2.40", 0)]
    # Skipped: unknown zone, address that is no IP address, numeric
    # shorthand, a line without names, invalid names, a name that is an IP.
    for absent in ("badzone.test", "unicode.test", "shorthand.test", "name.test", "bad..name", "192.0.2.99"):
        assert absent not in table
    assert set(table) == {
        "alpha.test",
        "alpha",
        "a1.test",
        "linklocal.test",
        "xn--bcher-kva.test",
        "good.test",
        "trailing.test",
    }


def test_parse_hosts_logs_skipped_lines(hosts_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="inetkit"):
        parse_hosts(hosts_file.read_text(encoding="utf-8"), "my hosts")
    messages = [r.getMessage() for r in caplog.records]
    assert any("my hosts line 10 skipped (not an IP address)" in m for m in messages)
    assert any("line 13 skipped (no host name after the address)" in m for m in messages)
    assert any("'bad..name' is not a valid host name" in m for m in messages)


def test_parse_hosts_odd_input() -> None:
    assert parse_hosts("") == {}
    assert parse_hosts("#only a comment\n\n   \n") == {}
    assert parse_hosts("127.0.0.1 one\r\n::1 one\r\n") == {"one": [(V4, "127.0.0.1", 0), (V6, "::1", 0)]}
    # IPv6 literals are stored compressed; case does not matter for names or addresses.
    assert parse_hosts("0:0:0:0:0:0:0:1 Loop\n::1 LOOP\n") == {"loop": [(V6, "::1", 0)]}
    assert parse_hosts("[::1] bracketed\n") == {"bracketed": [(V6, "::1", 0)]}


def test_hosts_file_source(hosts_file: Path) -> None:
    resolver = offline(hosts_file=hosts_file)
    found, source = resolver.resolve_traced("alpha.test", 443, Protocol.TCP, None)
    assert source == "hosts_file"
    assert found == [
        (V4, ("192.0.2.10", 443)),
        (V6, ("2001:db8::10", 443, 0, 0)),
        (V4, ("192.0.2.11", 443)),
    ]
    # Names are matched case-insensitively, IDNA-mapped, and a trailing dot is ignored.
    assert ips(resolver.resolve("ALPHA.test.", 1, Protocol.UDP, None)) == [
        "192.0.2.10",
        "2001:db8::10",
        "192.0.2.11",
    ]
    assert ips(resolver.resolve("xn--bcher-kva.test", 1, Protocol.TCP, None)) == ["192.0.2.20"]
    assert ips(resolver.resolve("BÜCHER.test", 1, Protocol.TCP, None)) == ["192.0.2.20"]
    assert resolver.resolve("linklocal.test", 7, Protocol.TCP, None) == [(V6, ("fe80::1", 7, 0, LO_INDEX))]
    with pytest.raises(HostNotFoundError) as info:
        resolver.resolve("badzone.test", 7, Protocol.TCP, None)
    assert info.value.code is ErrorCode.HOST_NOT_FOUND
    assert "badzone.test" in str(info.value)
    assert str(hosts_file) in str(info.value)


def test_hosts_file_is_cached_and_reread_when_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "hosts"
    path.write_text("192.0.2.1 one.test\n")
    parses: list[str] = []
    real_parse = resolver_module.parse_hosts

    def counting_parse(text: str, source: str = "hosts file") -> Any:
        parses.append(source)
        return real_parse(text, source)

    monkeypatch.setattr(resolver_module, "parse_hosts", counting_parse)
    resolver = offline(hosts_file=str(path))
    for _ in range(50):
        assert ips(resolver.resolve("one.test", 80, Protocol.TCP, None)) == ["192.0.2.1"]
    # A second resolver on the same file shares the parse.
    assert ips(offline(hosts_file=path).resolve("one.test", 80, Protocol.TCP, None)) == ["192.0.2.1"]
    assert parses == [str(path)]

    path.write_text("192.0.2.2 one.test\n192.0.2.3 two.test\n")
    assert ips(resolver.resolve("one.test", 80, Protocol.TCP, None)) == ["192.0.2.2"]
    assert ips(resolver.resolve("two.test", 80, Protocol.TCP, None)) == ["192.0.2.3"]
    assert parses == [str(path)] * 2

    # Same size, new modification time: re-read too.
    path.write_text("192.0.2.4 one.test\n192.0.2.5 two.test\n")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert ips(resolver.resolve("one.test", 80, Protocol.TCP, None)) == ["192.0.2.4"]
    assert len(parses) == 3


def test_missing_hosts_file_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    resolver = Resolver(
        tmp_path / "absent", system_hosts=False, dns=False, overrides={"other.test": "192.0.2.1"}
    )
    with caplog.at_level(logging.WARNING, logger="inetkit"), pytest.raises(HostNotFoundError) as info:
        resolver.resolve("nowhere.test", 80, Protocol.TCP, None)
    assert any("absent" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert "nowhere.test" in str(info.value)
    assert "dns=False" in str(info.value)


def test_system_hosts_file(monkeypatch: pytest.MonkeyPatch, hosts_file: Path) -> None:
    # Point the "system" file at a temporary one: the parser and the source name are what is tested.
    monkeypatch.setattr(resolver_module, "SYSTEM_HOSTS_FILE", str(hosts_file))
    found, source = Resolver(dns=False).resolve_traced("good.test", 25, Protocol.TCP, None)
    assert (found, source) == ([(V4, ("192.0.2.31", 25))], "system_hosts")
    with pytest.raises(HostNotFoundError):
        Resolver(system_hosts=False, dns=False).resolve("good.test", 25, Protocol.TCP, None)


def test_real_system_hosts_localhost() -> None:
    table = resolver_module._load_hosts(SYSTEM_HOSTS_FILE, quiet_if_missing=True)
    if "localhost" not in table:
        pytest.skip(f"{SYSTEM_HOSTS_FILE} does not list localhost")
    found, source = Resolver(dns=False).resolve_traced("localhost", 80, Protocol.TCP, None)
    assert source == "system_hosts"
    assert set(ips(found)) <= {"127.0.0.1", "::1"}


# -- overrides and source order ------------------------------------------------------


def test_overrides() -> None:
    resolver = offline(
        overrides={
            "Bücher.Test": "127.0.0.1",
            "multi.test.": ["::1", "127.0.0.2", "[::1]", "127.0.0.2", "0:0::1"],
            "zoned.test": ["fe80::1%lo"],
        }
    )
    found, source = resolver.resolve_traced("xn--bcher-kva.test", 8080, Protocol.TCP, None)
    assert (found, source) == ([(V4, ("127.0.0.1", 8080))], "overrides")
    # For every port, in the given order, without repeats; the trailing dot does not matter.
    assert resolver.resolve("multi.test", 1, Protocol.UDP, None) == [
        (V6, ("::1", 1, 0, 0)),
        (V4, ("127.0.0.2", 1)),
    ]
    assert resolver.resolve("multi.test.", 2, Protocol.TCP, None) == [
        (V6, ("::1", 2, 0, 0)),
        (V4, ("127.0.0.2", 2)),
    ]
    assert resolver.resolve("zoned.test", 3, Protocol.TCP, None) == [(V6, ("fe80::1", 3, 0, LO_INDEX))]
    assert resolver.overrides == {
        "xn--bcher-kva.test": ["127.0.0.1"],
        "multi.test": ["::1", "127.0.0.2"],
        "zoned.test": [f"fe80::1%{LO_INDEX}"],
    }
    assert "multi.test" in repr(resolver)


def test_source_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = tmp_path / "extra"
    extra.write_text("192.0.2.2 both.test file.test\n")
    system = tmp_path / "system"
    system.write_text("192.0.2.3 both.test file.test system.test\n")
    monkeypatch.setattr(resolver_module, "SYSTEM_HOSTS_FILE", str(system))
    resolver = Resolver(extra, dns=False, overrides={"both.test": "192.0.2.1"})
    assert resolver.resolve_traced("both.test", 80, Protocol.TCP, None) == (
        [(V4, ("192.0.2.1", 80))],
        "overrides",
    )
    assert resolver.resolve_traced("file.test", 80, Protocol.TCP, None) == (
        [(V4, ("192.0.2.2", 80))],
        "hosts_file",
    )
    assert resolver.resolve_traced("system.test", 80, Protocol.TCP, None) == (
        [(V4, ("192.0.2.3", 80))],
        "system_hosts",
    )


def test_literals_need_no_source() -> None:
    resolver = offline()
    assert resolver.resolve_traced("127.0.0.1", 80, Protocol.TCP, None) == (
        [(V4, ("127.0.0.1", 80))],
        "literal",
    )
    assert resolver.resolve_traced("[::1]", 80, Protocol.TCP, None) == ([(V6, ("::1", 80, 0, 0))], "literal")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"hosts_file": 3}, TypeError),
        ({"hosts_file": b"/etc/hosts"}, TypeError),
        ({"system_hosts": 1}, TypeError),
        ({"dns": None}, TypeError),
        ({"overrides": [("a.test", "127.0.0.1")]}, TypeError),
        ({"overrides": {1: "127.0.0.1"}}, TypeError),
        ({"overrides": {"a.test": b"127.0.0.1"}}, TypeError),
        ({"overrides": {"a.test": 2130706433}}, TypeError),
        ({"overrides": {"a.test": [None]}}, TypeError),
        ({"overrides": {"a.test": []}}, InvalidArgumentError),
        ({"overrides": {"a.test": "a.example"}}, InvalidArgumentError),
        ({"overrides": {"a.test": "127.1"}}, InvalidArgumentError),
        ({"overrides": {"a.test": "fe80::1%no-such-if0"}}, InvalidArgumentError),
        ({"overrides": {"127.0.0.1": "127.0.0.2"}}, InvalidArgumentError),
        ({"overrides": {"bad..name": "127.0.0.2"}}, InvalidArgumentError),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        Resolver(**kwargs)
    if isinstance(info.value, InetError):
        assert info.value.code in (ErrorCode.INVALID_ARGUMENT, ErrorCode.INVALID_HOST_NAME)


def test_dns_off_and_not_listed_is_host_not_found() -> None:
    with pytest.raises(HostNotFoundError) as info:
        offline().resolve("nowhere.test", 80, Protocol.TCP, time.monotonic() + 5)
    assert info.value.code is ErrorCode.HOST_NOT_FOUND
    assert "nowhere.test" in str(info.value)
    assert "all off" in str(info.value)


# -- DNS -------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [Protocol.TCP, Protocol.UDP])
@pytest.mark.parametrize("deadline", [None, 5.0])
def test_dns_localhost(protocol: Protocol, deadline: float | None) -> None:
    """The name localhost through the system resolver (answered from /etc/hosts, loopback only)."""
    absolute = None if deadline is None else time.monotonic() + deadline
    found, source = Resolver(system_hosts=False).resolve_traced("localhost", 80, protocol, absolute)
    assert source == "dns"
    assert found
    assert set(ips(found)) <= {"127.0.0.1", "::1"}
    assert all(sockaddr[1] == 80 for _, sockaddr in found)
    assert len(found) == len(set(found))


def test_dns_without_deadline_runs_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []
    real = socket.getaddrinfo

    def recording(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    resolver = Resolver(system_hosts=False)
    resolver.resolve("localhost", 80, Protocol.TCP, None)
    resolver.resolve("localhost", 80, Protocol.TCP, time.monotonic() + 5)
    assert threads[0] == threading.get_ident()
    assert threads[1] != threading.get_ident()


def test_no_thread_for_names_in_overrides_or_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_thread(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no helper thread expected")

    monkeypatch.setattr(resolver_module, "run_until", no_thread)
    resolver = Resolver(overrides={"fixed.test": "127.0.0.1"})
    assert ips(resolver.resolve("fixed.test", 80, Protocol.TCP, time.monotonic() + 5)) == ["127.0.0.1"]


def test_run_until_abandons_at_the_deadline() -> None:
    release = threading.Event()
    finished = threading.Event()

    def stuck() -> int:
        release.wait(10)
        finished.set()
        return 1

    start = time.monotonic()
    with pytest.raises(InetTimeoutError) as info:
        run_until(start + 0.3, "stuck.test", "DNS", stuck)
    elapsed = time.monotonic() - start
    assert 0.3 <= elapsed < 1.0
    assert info.value.code is ErrorCode.TIMED_OUT
    assert "stuck.test" in str(info.value)
    assert not finished.is_set()
    release.set()
    assert finished.wait(5)
    # A deadline already past: no thread, timed out at once.
    with pytest.raises(InetTimeoutError):
        run_until(time.monotonic() - 1, "late.test", "DNS", stuck)
    # Values and exceptions come back from the thread.
    assert run_until(time.monotonic() + 5, "h", "DNS", lambda: 42) == 42
    empty: dict[str, int] = {}
    with pytest.raises(KeyError):
        run_until(time.monotonic() + 5, "h", "DNS", lambda: empty["missing"])


# Runs inside a network namespace that has only loopback, with a resolv.conf
# pointing at a tiny DNS server on 127.0.0.1:53: DNS for real, nothing leaves
# the machine.
NAMESPACE_SCRIPT = r"""
import json, socket, struct, sys, threading, time
sys.path.insert(0, sys.argv[1])
from inetkit._errors import InetError
from inetkit._types import Protocol
from inetkit._resolver import Resolver, order_addresses

# query type -> (family, address, length): A and AAAA records.
RECORDS = {1: (socket.AF_INET, "127.0.0.1", 4), 28: (socket.AF_INET6, "::1", 16)}

def serve(sock):
    while True:
        data, peer = sock.recvfrom(512)
        tid = data[:2]
        i, labels = 12, []
        while data[i]:
            labels.append(data[i + 1 : i + 1 + data[i]].decode().lower())
            i += 1 + data[i]
        qtype = struct.unpack("!H", data[i + 1 : i + 3])[0]
        question = data[12 : i + 5]
        name = ".".join(labels)
        if name == "slow.test":
            continue
        answers = []
        if name == "dual.test" and qtype in RECORDS:
            family, ip, size = RECORDS[qtype]
            answer = struct.pack("!HHHIH", 0xC00C, qtype, 1, 60, size)
            answers.append(answer + socket.inet_pton(family, ip))
        rcode = 0 if name == "dual.test" else 3
        header = tid + struct.pack("!HHHHH", 0x8180 | rcode, 1, len(answers), 0, 0)
        sock.sendto(header + question + b"".join(answers), peer)

server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
server.bind(("127.0.0.1", 53))
threading.Thread(target=serve, args=(server,), daemon=True).start()

resolver = Resolver(system_hosts=False)
out = {}
found, source = resolver.resolve_traced("dual.test", 443, Protocol.TCP, time.monotonic() + 5)
out["dual"] = [source, [list(a[1][:2]) for a in found], [a[1][0] for a in order_addresses(found, False)]]
for name in ("nx.test", "slow.test"):
    start = time.monotonic()
    try:
        resolver.resolve(name, 80, Protocol.TCP, start + 0.5)
        out[name] = ["no error"]
    except InetError as exc:
        out[name] = [type(exc).__name__, exc.code.name, str(exc), time.monotonic() - start]
print(json.dumps(out))
"""


@pytest.mark.needs_program("unshare")
def test_dns_in_a_loopback_only_namespace(tmp_path: Path) -> None:
    unshare = require_program("unshare")
    require_program("ip")
    resolv = tmp_path / "resolv.conf"
    # timeout:2 > the 0.5 s deadline, so the abandoned lookup really is still running.
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:2 attempts:1\n")
    script = tmp_path / "dns_child.py"
    script.write_text(NAMESPACE_SCRIPT)
    command = (
        f"mount --bind {resolv} /etc/resolv.conf && ip link set lo up && "
        f"exec {sys.executable} {script} {ROOT}"
    )
    result = subprocess.run(
        [unshare, "-n", "-m", "sh", "-c", command], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0 and "Operation not permitted" in result.stderr:
        pytest.skip(f"cannot make a network namespace here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    source, found, ordered = out["dual"]
    assert source == "dns"
    # Both families come back (no AI_ADDRCONFIG, which would hide them with only loopback up).
    assert sorted(map(tuple, found)) == [("127.0.0.1", 443), ("::1", 443)]
    assert ordered == ["127.0.0.1", "::1"]
    kind, code, message, _ = out["nx.test"]
    assert (kind, code) == ("HostNotFoundError", "HOST_NOT_FOUND")
    assert "nx.test" in message
    kind, code, message, elapsed = out["slow.test"]
    assert (kind, code) == ("InetTimeoutError", "TIMED_OUT")
    assert "slow.test" in message
    assert 0.5 <= elapsed < 1.5


# -- custom resolvers ------------------------------------------------------------------


class FixedResolver(Resolver):
    def __init__(self, answer: object, delay: float = 0.0) -> None:
        super().__init__()
        self.answer = answer
        self.delay = delay
        self.threads: list[int] = []

    def resolve(self, host: str, port: int, protocol: Protocol, deadline: float | None) -> Any:
        self.threads.append(threading.get_ident())
        if self.delay:
            time.sleep(self.delay)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def test_custom_resolver_is_traced_as_custom() -> None:
    answer = [(V4, ("127.0.0.1", 80)), (V6, ("::1", 80)), (V4, ("127.0.0.1", 80)), (V6, ("::1", 80, 0, 0))]
    resolver = FixedResolver(answer)
    found, source = resolver.resolve_traced("custom.test", 80, Protocol.TCP, None)
    assert source == "custom"
    # IPv6 2-tuples are completed, repeats dropped, order kept.
    assert found == [(V4, ("127.0.0.1", 80)), (V6, ("::1", 80, 0, 0))]
    assert resolver.threads == [threading.get_ident()]  # no deadline: called inline
    resolver.resolve_traced("custom.test", 80, Protocol.TCP, time.monotonic() + 5)
    assert resolver.threads[1] != threading.get_ident()  # with a deadline: in a helper thread


def test_slow_custom_resolver_does_not_hold_past_the_deadline() -> None:
    resolver = FixedResolver([(V4, ("127.0.0.1", 80))], delay=2.0)
    start = time.monotonic()
    with pytest.raises(InetTimeoutError) as info:
        resolver.resolve_traced("slow.test", 80, Protocol.TCP, start + 0.3)
    elapsed = time.monotonic() - start
    assert 0.3 <= elapsed < 1.0
    assert info.value.code is ErrorCode.TIMED_OUT
    assert "slow.test" in str(info.value) and "FixedResolver.resolve" in str(info.value)


@pytest.mark.parametrize(
    "answer",
    [
        None,
        "127.0.0.1",
        [("127.0.0.1", 80)],
        [(V4, ("127.0.0.1",))],
        [(V4, ("::1", 80, 0, 0))],
        [(V4, ("localhost", 80))],
        [(V4, ("127.0.0.1", "80"))],
        [(socket.AF_UNIX, ("/tmp/x", 80))],
    ],
)
def test_custom_resolver_answers_are_checked(answer: object) -> None:
    with pytest.raises(TypeError, match=r"FixedResolver\.resolve must return"):
        FixedResolver(answer).resolve_traced("custom.test", 80, Protocol.TCP, None)


def test_custom_resolver_errors() -> None:
    with pytest.raises(HostNotFoundError, match="returned no address"):
        FixedResolver([]).resolve_traced("custom.test", 80, Protocol.TCP, None)
    gai = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    with pytest.raises(HostNotFoundError, match=r"custom\.test"):
        FixedResolver(gai).resolve_traced("custom.test", 80, Protocol.TCP, time.monotonic() + 5)
    with pytest.raises(InetTimeoutError):
        FixedResolver(InetTimeoutError("mine")).resolve_traced("custom.test", 80, Protocol.TCP, None)
    with pytest.raises(ZeroDivisionError):
        FixedResolver(ZeroDivisionError()).resolve_traced("custom.test", 80, Protocol.TCP, None)


# -- address order ----------------------------------------------------------------------

A4 = [(V4, (f"192.0.2.{i}", 80)) for i in range(1, 4)]
A6 = [(V6, (f"2001:db8::{i}", 80, 0, 0)) for i in range(1, 4)]


@pytest.mark.parametrize(
    ("given", "prefer_ipv6", "expected"),
    [
        ([], False, []),
        ([A6[0], A6[1], A4[0], A4[1]], False, [A4[0], A6[0], A4[1], A6[1]]),
        ([A6[0], A6[1], A4[0], A4[1]], True, [A6[0], A4[0], A6[1], A4[1]]),
        ([A4[0], A4[1], A4[2], A6[0]], False, [A4[0], A6[0], A4[1], A4[2]]),
        ([A4[0], A4[1], A4[2], A6[0]], True, [A6[0], A4[0], A4[1], A4[2]]),
        ([A6[2], A4[1], A6[0], A4[0], A6[1]], False, [A4[1], A6[2], A4[0], A6[0], A6[1]]),
        ([A6[0], A6[1]], False, [A6[0], A6[1]]),
        ([A4[1], A4[0]], True, [A4[1], A4[0]]),
    ],
)
def test_order_addresses(
    given: list[tuple[int, tuple[Any, ...]]], prefer_ipv6: bool, expected: list[tuple[int, tuple[Any, ...]]]
) -> None:
    assert order_addresses(given, prefer_ipv6) == expected


# -- the documentation's samples run ------------------------------------------------------------


def python_blocks(path: Path) -> Iterator[str]:
    text = path.read_text(encoding="utf-8")
    for block in text.split("```python\n")[1:]:
        yield block.split("```", 1)[0]


def test_connecting_doc_samples_run(tmp_path: Path) -> None:
    """Every Python sample in docs/connecting.md runs: scripts as they are, ``>>>`` sessions as doctests."""
    doc = ROOT / "docs" / "connecting.md"
    blocks = list(python_blocks(doc))
    assert blocks
    for number, block in enumerate(blocks, start=1):
        if block.lstrip().startswith(">>>"):
            session = tmp_path / f"sample{number}.txt"
            session.write_text(block, encoding="utf-8")
            command = [sys.executable, "-m", "doctest", "-o", "ELLIPSIS", str(session)]
        else:
            command = [sys.executable, "-c", block]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
        assert result.returncode == 0, (
            f"sample {number} of {doc.name} failed:\n{block}\n{result.stdout}{result.stderr}"
        )
