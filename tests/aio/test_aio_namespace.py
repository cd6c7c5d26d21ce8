"""Real DNS and real routing failures for `inetkit.aio`, in a private network namespace.

The child runs in ``unshare -n -m``: only loopback, a resolv.conf that points
at a tiny DNS server on 127.0.0.1:53 which answers ``dual.test`` (A and
AAAA), says NXDOMAIN for other names and never answers names that start with
``slow``. So ``getaddrinfo`` really gets stuck (for the resolv.conf timeout,
longer than the connect deadlines), and the routes make NETWORK_UNREACHABLE
and HOST_UNREACHABLE. Every connect runs once blocking and once on the loop,
and the child prints what each raised.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_program

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import asyncio, json, socket, struct, sys, threading, time
sys.path.insert(0, sys.argv[1])
import inetkit, inetkit.aio

RECORDS = {1: (socket.AF_INET, "127.0.0.1", 4), 28: (socket.AF_INET6, "::1", 16)}

def serve(sock):
    while True:
        data, peer = sock.recvfrom(512)
        i, labels = 12, []
        while data[i]:
            labels.append(data[i + 1 : i + 1 + data[i]].decode().lower())
            i += 1 + data[i]
        qtype = struct.unpack("!H", data[i + 1 : i + 3])[0]
        name = ".".join(labels)
        if name.startswith("slow"):
            continue
        answers = []
        if name == "dual.test" and qtype in RECORDS:
            family, ip, size = RECORDS[qtype]
            answers.append(struct.pack("!HHHIH", 0xC00C, qtype, 1, 60, size) + socket.inet_pton(family, ip))
        rcode = 0 if name == "dual.test" else 3
        header = data[:2] + struct.pack("!HHHHH", 0x8180 | rcode, 1, len(answers), 0, 0)
        sock.sendto(header + data[12 : i + 5] + b"".join(answers), peer)

dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dns.bind(("127.0.0.1", 53))
threading.Thread(target=serve, args=(dns,), daemon=True).start()
listener = socket.create_server(("127.0.0.1", 0))
port = listener.getsockname()[1]
resolver = inetkit.Resolver(system_hosts=False)

def describe(exc, started):
    return [type(exc).__name__, exc.code.name, str(exc), round(time.monotonic() - started, 3)]

def blocking(host, **kwargs):
    started = time.monotonic()
    try:
        inetkit.connect(host, kwargs.pop("port", port), resolver=resolver, **kwargs).close()
        return ["connected"]
    except inetkit.InetError as exc:
        return describe(exc, started)

async def ours(host, delay=0.0, **kwargs):
    await asyncio.sleep(delay)
    started = time.monotonic()
    try:
        conn = await inetkit.aio.connect(host, kwargs.pop("port", port), resolver=resolver, **kwargs)
    except inetkit.InetError as exc:
        return describe(exc, started)
    source = conn.trace.resolution.source
    await conn.aclose()
    return ["connected", source, round(time.monotonic() - started, 3)]

async def main():
    out = {}
    # Two stuck lookups and, while they are stuck, a quick one: each on its own time.
    out["stuck"] = await asyncio.gather(
        ours("slow1.test", timeout=0.5),
        ours("slow2.test", 0.1, timeout=0.5),
        ours("dual.test", 0.2, timeout=5),
    )
    out["after"] = await ours("slow3.test", timeout=0.5)  # no queue behind the abandoned lookups
    out["names"] = await inetkit.aio.aresolve("dual.test", 80, resolver=resolver)
    routed = {"port": 80, "timeout": 2}
    for host, kwargs in (("nx.test", {}), ("10.9.0.1", routed), ("10.8.0.1", routed)):
        out[host] = [blocking(host, **dict(kwargs)), await ours(host, **dict(kwargs))]
    return out

print(json.dumps(asyncio.run(main())))
"""


@pytest.mark.needs_program("unshare")
def test_stuck_dns_and_unreachable_routes(tmp_path: Path) -> None:
    unshare = require_program("unshare")
    ip = require_program("ip")
    if os.geteuid() != 0:
        pytest.skip("creating a network namespace needs root")
    resolv = tmp_path / "resolv.conf"
    # timeout:3 > every deadline here: the abandoned lookups really are still running.
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:3 attempts:1\n")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    command = (
        f"mount --bind {resolv} /etc/resolv.conf && {ip} link set lo up && "
        f"{ip} route add unreachable 10.9.0.0/16 && exec {sys.executable} {script} {ROOT}"
    )
    result = subprocess.run(
        [unshare, "-n", "-m", "sh", "-c", command], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0 and "Operation not permitted" in result.stderr:
        pytest.skip(f"cannot make a network namespace here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    first, second, quick = out["stuck"]
    for stuck, name in ((first, "slow1.test"), (second, "slow2.test"), (out["after"], "slow3.test")):
        kind, code, message, took = stuck
        assert (kind, code) == ("InetTimeoutError", "TIMED_OUT")
        assert message == f"resolving {name} timed out: DNS did not answer before the connect deadline"
        assert 0.5 <= took < 1.5  # its own deadline: not queued behind another lookup
    assert quick[:2] == ["connected", "dns"]
    assert quick[2] < 1.0  # answered while both stuck lookups were still stuck
    assert sorted(tuple(pair[1][:2]) for pair in out["names"]) == [("127.0.0.1", 80), ("::1", 80)]
    for host, code in (
        ("nx.test", "HOST_NOT_FOUND"),
        ("10.9.0.1", "HOST_UNREACHABLE"),
        ("10.8.0.1", "NETWORK_UNREACHABLE"),
    ):
        blocking, ours = out[host]
        assert blocking[:3] == ours[:3], host  # class, code and message
        assert blocking[1] == code
