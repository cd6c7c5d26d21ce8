"""`proxy_from_environment` against the curl program's own choice, case by case, on loopback only.

Every proxy variable points at its own loopback listener; curl runs with
only that environment (``-q``: no ``.curlrc``) and ``--resolve`` sends every
target name to 127.0.0.1, so nothing leaves the machine. Whichever listener
curl connects to is the variable it chose; no listener means it went
direct (then it reached the direct listener, or found nothing listening on
a loopback address). The listeners close each connection at once, so curl
gives up quickly.

The table holds the cases on which every curl since 7.86 (CIDR support)
agrees. Where curl releases differ, inetkit follows the newest and
``test_proxy_env.py`` pins the rule from curl's source: space-separated
lists (curl 8.9 stops at the first blank without a comma), IPv6 prefix
lengths that are not a multiple of 8 (fixed in curl 8.17), IPv6 ranges at
all (curl before 8.18 compared an IPv6 target with the list as a name, so
only an exact ``::1`` entry matched it), a prefix length followed by junk
such as ``/16a`` (refused since curl 8.18).
"""

from __future__ import annotations

import re
import selectors
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from conftest import require_program

from inetkit import proxy_from_environment

#: The variables curl may read, each with its own listener.
PROXY_VARIABLES = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")
#: Bound on one curl run; a listener closes each connection at once, so a run takes milliseconds.
CURL_TIMEOUT = 20.0
#: How long the accept loop sleeps in select() before looking for the stop flag.
POLL_INTERVAL = 0.05
#: curl's exit status when it could not connect (to a loopback address nothing listens on).
CURL_COULDNT_CONNECT = 7
#: The target names of the table; --resolve sends each to 127.0.0.1.
NAMES = (
    "example.com",
    "www.example.com",
    "nexample.com",
    "ample.com.org",
    "localhost",
    "www.example.de",
    "xn--bcher-kva.example",
)


class Listeners:
    """One loopback listener per proxy variable and one for direct connections, with a record of hits."""

    def __init__(self) -> None:
        self.sockets: dict[str, socket.socket] = {}
        self.hits: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._selector = selectors.DefaultSelector()
        try:
            for name in (*PROXY_VARIABLES, "direct"):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                self.sockets[name] = sock
                sock.bind(("127.0.0.1", 0))
                sock.listen(8)  # one connection per curl run; 8 is plenty
                sock.setblocking(False)
                self._selector.register(sock, selectors.EVENT_READ, name)
        except BaseException:
            self.close()
            raise
        self._thread = threading.Thread(target=self._serve, name="curl-listeners", daemon=True)
        self._thread.start()

    def port(self, name: str) -> int:
        return int(self.sockets[name].getsockname()[1])

    def _serve(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(POLL_INTERVAL):
                try:
                    conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                except BlockingIOError:
                    continue
                with self._lock:  # recorded before the close that lets curl finish
                    self.hits.append(key.data)
                conn.close()

    def take(self) -> list[str]:
        with self._lock:
            hits, self.hits = self.hits, []
        return hits

    def close(self) -> None:
        self._stop.set()
        thread = getattr(self, "_thread", None)
        if thread is not None:
            thread.join()
        self._selector.close()
        for sock in self.sockets.values():
            sock.close()


@pytest.fixture(scope="module")
def listeners() -> Iterator[Listeners]:
    running = Listeners()
    try:
        yield running
    finally:
        running.close()


@dataclass(frozen=True)
class Case:
    host: str
    secure: bool
    variables: tuple[str, ...]  # proxy variables set, each to its listener's URL
    no_proxy: str | None = None
    no_proxy_upper: str | None = None
    empty: tuple[str, ...] = ()  # variables set to the empty string


ALL_SIX = PROXY_VARIABLES
CASES = [
    # which variable
    Case("www.example.com", True, ALL_SIX),
    Case("www.example.com", False, ALL_SIX),
    Case("www.example.com", True, ("HTTPS_PROXY", "all_proxy", "ALL_PROXY")),
    Case("www.example.com", False, ("HTTP_PROXY", "all_proxy", "ALL_PROXY")),
    Case("www.example.com", False, ("HTTP_PROXY", "ALL_PROXY")),
    Case("www.example.com", False, ("HTTP_PROXY",)),
    Case("www.example.com", True, ("http_proxy", "HTTP_PROXY")),
    Case("www.example.com", False, ("https_proxy", "HTTPS_PROXY")),
    Case("www.example.com", True, ("HTTPS_PROXY", "ALL_PROXY"), empty=("https_proxy",)),
    Case("www.example.com", True, ("ALL_PROXY",), empty=("https_proxy", "HTTPS_PROXY", "all_proxy")),
    # no_proxy names
    Case("www.example.com", True, ALL_SIX, no_proxy="example.com"),
    Case("www.example.com", True, ALL_SIX, no_proxy=".example.com"),
    Case("example.com", True, ALL_SIX, no_proxy=".example.com"),
    Case("nexample.com", True, ALL_SIX, no_proxy="example.com"),
    Case("ample.com.org", True, ALL_SIX, no_proxy="ample.com"),
    Case("www.example.com", True, ALL_SIX, no_proxy="localhost, .EXAMPLE.com."),
    Case("www.example.com", True, ALL_SIX, no_proxy="www2.example.com, .example.net"),
    Case("www.example.com", False, ALL_SIX, no_proxy="*"),
    Case("www.example.com", True, ALL_SIX, no_proxy="*.example.com"),
    Case("www.example.com", True, ALL_SIX, no_proxy="example.org,*"),
    Case("example.com", True, ALL_SIX, no_proxy="example.com:443"),
    Case("localhost", True, ALL_SIX, no_proxy="127.0.0.1"),
    Case("xn--bcher-kva.example", True, ALL_SIX, no_proxy="xn--bcher-kva.example"),
    # no_proxy and NO_PROXY
    Case("www.example.com", True, ALL_SIX, no_proxy="other.test", no_proxy_upper="example.com"),
    Case("www.example.com", True, ALL_SIX, no_proxy="", no_proxy_upper="example.com"),
    Case("www.example.com", True, ALL_SIX, no_proxy_upper="example.com"),
    # IP literals and CIDR ranges
    Case("127.0.0.1", True, ALL_SIX, no_proxy="127.0.0.1"),
    Case("127.0.0.1", True, ALL_SIX, no_proxy="localhost"),
    Case("127.1.2.3", True, ALL_SIX, no_proxy="127.0.0.0/8"),
    Case("127.1.2.3", True, ALL_SIX, no_proxy="127.1.2.0/28"),
    Case("127.1.2.3", True, ALL_SIX, no_proxy="127.1.3.0/24"),
    Case("127.1.2.3", True, ALL_SIX, no_proxy="127.1.2.3/33"),
    Case("127.1.2.3", True, ALL_SIX, no_proxy="0.0.0.0/0"),
    Case("::1", True, ALL_SIX, no_proxy="::1"),
    Case("::1", True, ALL_SIX, no_proxy="127.0.0.1"),
    Case("::1", True, ALL_SIX, no_proxy="::2"),
]

#: Cases where older curl releases chose otherwise: (case, the first curl that agrees).
NEWER_CURL_CASES = [
    (Case("www.example.com", True, ALL_SIX, no_proxy="localhost .example.com"), (8, 9)),
    (Case("::1", True, ALL_SIX, no_proxy="foo, ::1/64"), (8, 18)),
    (Case("::1", True, ALL_SIX, no_proxy="::1/127"), (8, 18)),
    (Case("127.1.2.3", True, ALL_SIX, no_proxy="127.0.0.0/8a"), (8, 18)),
]


def case_id(case: Case) -> str:
    parts = [case.host, "secure" if case.secure else "plain", "+".join(case.variables)]
    if case.empty:
        parts.append("empty:" + "+".join(case.empty))
    if case.no_proxy is not None:
        parts.append(f"no_proxy={case.no_proxy!r}")
    if case.no_proxy_upper is not None:
        parts.append(f"NO_PROXY={case.no_proxy_upper!r}")
    return " ".join(parts)


def environment(case: Case, listeners: Listeners) -> dict[str, str]:
    env = {name: f"http://127.0.0.1:{listeners.port(name)}" for name in case.variables}
    env.update({name: "" for name in case.empty})
    if case.no_proxy is not None:
        env["no_proxy"] = case.no_proxy
    if case.no_proxy_upper is not None:
        env["NO_PROXY"] = case.no_proxy_upper
    return env


def curl_choice(curl: str, case: Case, listeners: Listeners) -> str:
    """The variable whose proxy curl connected to, or "direct"."""
    port = listeners.port("direct")
    url_host = f"[{case.host}]" if ":" in case.host else case.host
    url = f"{'https' if case.secure else 'http'}://{url_host}:{port}/"
    command = [curl, "-q", "--silent", "--output", "/dev/null", "--max-time", str(CURL_TIMEOUT)]
    for name in NAMES:
        command += ["--resolve", f"{name}:{port}:127.0.0.1"]
    env = {"PATH": "/usr/bin:/bin", **environment(case, listeners)}
    result = subprocess.run(
        [*command, url], env=env, capture_output=True, timeout=CURL_TIMEOUT + 10, check=False
    )
    hits = listeners.take()
    assert len(hits) <= 1, hits
    if hits and hits[0] != "direct":
        return hits[0]
    # Direct: it reached the direct listener, or nothing listens on that loopback address.
    assert hits == ["direct"] or result.returncode == CURL_COULDNT_CONNECT, (result.returncode, result.stderr)
    return "direct"


def inetkit_choice(case: Case, listeners: Listeners, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in (*PROXY_VARIABLES, "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    env = environment(case, listeners)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    url = proxy_from_environment(case.host, listeners.port("direct"), secure=case.secure)
    if url is None:
        return "direct"
    (variable,) = [name for name in case.variables if env[name] == url]
    return variable


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_inetkit_chooses_what_curl_chooses(
    case: Case, listeners: Listeners, monkeypatch: pytest.MonkeyPatch
) -> None:
    curl = require_program("curl")
    assert inetkit_choice(case, listeners, monkeypatch) == curl_choice(curl, case, listeners)


def curl_version(curl: str) -> tuple[int, int]:
    first = subprocess.run(
        [curl, "--version"], capture_output=True, text=True, timeout=CURL_TIMEOUT, check=True
    )
    match = re.match(r"curl (\d+)\.(\d+)", first.stdout)
    assert match is not None, first.stdout
    return (int(match.group(1)), int(match.group(2)))


@pytest.mark.parametrize(
    ("case", "since"), NEWER_CURL_CASES, ids=lambda value: case_id(value) if isinstance(value, Case) else ""
)
def test_rules_of_newer_curl_releases(
    case: Case, since: tuple[int, int], listeners: Listeners, monkeypatch: pytest.MonkeyPatch
) -> None:
    curl = require_program("curl")
    version = curl_version(curl)
    if version < since:
        pytest.skip(f"curl {version[0]}.{version[1]} predates this rule (curl {since[0]}.{since[1]})")
    assert inetkit_choice(case, listeners, monkeypatch) == curl_choice(curl, case, listeners)
