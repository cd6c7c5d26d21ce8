"""Connect through an HTTP CONNECT proxy, with Basic credentials, and read the trace.

Without arguments it runs on loopback: a tiny CONNECT proxy that wants the
user ``alice`` (a stand-in for squid or a corporate proxy) and an echo
server behind it. It connects through the proxy, shows the proxy phase of
the trace, then shows what a wrong password and a proxy-denied target
raise, and does the same from asyncio (`inetkit.aio.connect` takes the
same ``proxy=``). With arguments it connects through your proxy instead:

    python examples/through_a_proxy.py
    python examples/through_a_proxy.py http://user:pass@proxy.example:3128 example.com 443
"""

from __future__ import annotations

import asyncio
import base64
import socket
import sys
import threading

import inetkit
import inetkit.aio
from inetkit import ErrorCode, Option, ProxyError

#: Seconds any step may take; loopback answers in microseconds.
TIMEOUT = 5.0
USER, PASSWORD = "alice", "wonder:land"  # the ':' travels percent-encoded in the URL
#: The only port the demo proxy opens tunnels to (it answers 403 for any other).
ALLOWED: set[int] = set()


def pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy one direction of a tunnel until it ends."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def proxy_connection(client: socket.socket) -> None:
    """One CONNECT exchange as a proxy does it: check the credentials and the port, then tunnel."""
    with client:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
        request, *headers = head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
        host, _, port = request.split()[1].rpartition(":")
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if f"Proxy-Authorization: Basic {token}" not in headers:
            client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n")
            return
        if int(port) not in ALLOWED:
            client.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            return
        with socket.create_connection((host.strip("[]"), int(port)), timeout=TIMEOUT) as target:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            back = threading.Thread(target=pump, args=(target, client), daemon=True)
            back.start()
            pump(client, target)
            back.join(TIMEOUT)


def serve(listener: socket.socket, handle: object) -> None:
    while True:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=handle, args=(sock,), daemon=True).start()  # type: ignore[arg-type]


def echo(sock: socket.socket) -> None:
    with sock:
        while data := sock.recv(65536):
            sock.sendall(data)


def demo() -> None:
    proxy_listener = socket.create_server(("127.0.0.1", 0))
    echo_listener = socket.create_server(("127.0.0.1", 0))
    ALLOWED.add(echo_listener.getsockname()[1])
    for listener, handler in ((proxy_listener, proxy_connection), (echo_listener, echo)):
        threading.Thread(target=serve, args=(listener, handler), daemon=True).start()
    proxy_port = proxy_listener.getsockname()[1]
    echo_port = echo_listener.getsockname()[1]
    proxy = f"http://{USER}:wonder%3Aland@127.0.0.1:{proxy_port}"

    # The target's name goes to the proxy unresolved; the proxy resolves "localhost".
    with inetkit.connect("localhost", echo_port, timeout=TIMEOUT, proxy=proxy) as conn:
        conn.write_line("hello through the proxy")
        print("echoed:", conn.read_line().decode().strip())
        print("host_name, port:", conn.host_name, conn.port, "(the target)")
        print("remote_address:", conn.remote_address, "(the proxy: the socket's real peer)")
        print(conn.trace.format())

    wrong = f"http://{USER}:guess@127.0.0.1:{proxy_port}"
    try:
        inetkit.connect("localhost", echo_port, timeout=TIMEOUT, proxy=wrong)
    except ProxyError as exc:
        assert exc.code is ErrorCode.PROXY_AUTH_REQUIRED
        print(f"wrong password: {exc.code.name}: {exc}")
    try:
        inetkit.connect("localhost", 25, timeout=TIMEOUT, proxy=proxy)
    except ProxyError as exc:
        print(f"denied port: {exc.code.name}: {exc}")
    asyncio.run(from_asyncio(proxy, wrong, echo_port))
    proxy_listener.close()
    echo_listener.close()


async def from_asyncio(proxy: str, wrong: str, echo_port: int) -> None:
    """The same connect on the event loop: the same tunnel, the same errors and messages."""
    async with await inetkit.aio.connect("localhost", echo_port, timeout=TIMEOUT, proxy=proxy) as conn:
        await conn.write_line("hello from asyncio")
        print("async echoed:", (await conn.read_line()).decode().strip())
    try:
        await inetkit.aio.connect("localhost", echo_port, timeout=TIMEOUT, proxy=wrong)
    except ProxyError as exc:
        print(f"async wrong password: {exc.code.name}")


def through(proxy: str, host: str, port: str) -> None:
    options = Option.SECURE if port in ("443", "https") else Option.NONE
    with inetkit.connect(host, port, options=options, timeout=20.0, proxy=proxy) as conn:
        print(conn.trace.format())
        if conn.security_info is not None:
            print("TLS with the target:", conn.security_info.protocol, conn.security_info.cipher)


if __name__ == "__main__":
    if len(sys.argv) == 4:
        through(*sys.argv[1:])
    elif len(sys.argv) == 1:
        demo()
    else:
        sys.exit(__doc__)
