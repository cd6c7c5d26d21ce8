"""Every script in examples/ runs as a user would run it and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: Seconds one example may take (each needs well under one).
EXAMPLE_LIMIT = 60

#: What each example must print (one line each at least).
EXPECTED = {
    "echo_client.py": ["connected to", "echoed: héllo wörld", "echoed: bye"],
    "udp_client.py": ["sent b'one', received b'one'", "sent b'three', received b'three'"],
    "worker_thread.py": [
        "worker before attach_thread: NOT_HANDLE_OWNER",
        "worker attached; previous owner was thread",
        "worker echoed: from the worker",
        "main after the hand-over: NOT_HANDLE_OWNER",
    ],
    "free_threaded.py": ["owner: None (free-threaded)", "reader got 200 of 200 lines, in order: True"],
    "compat_port.py": [
        "InetConnect returned handle 1",
        "InetReadLine returned 'HELLO'",
        "refused connect: handle -1, last error 301 (CONNECTION_REFUSED)",
    ],
    "tls_client.py": ["TLSv1.3", "server certificate: CN=127.0.0.1", "echoed: hello over TLS"],
    "probe_report.py": [
        "resolved 1 address(es) from literal",
        "connected, ",
        "TLSv1.3, ",
        "ALPN: http/1.1",
        "session reused: no",
        "session reused: yes",
        "certificate: CN=127.0.0.1",
        "issued by: CN=probe example CA",
        "names: IP:127.0.0.1",
        "(29 days left)",
        "sha256: ",
    ],
    "client_certificate_p12.py": [
        "with the PKCS#12 certificate: the server said 'hello example client'",
        "without a client certificate: CLIENT_CERTIFICATE_REQUIRED",
        "with a wrong password: INVALID_CREDENTIALS",
    ],
}


def test_every_example_is_checked() -> None:
    assert sorted(path.name for path in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str) -> None:
    env = dict(os.environ, PYTHONWARNINGS="error", PYTHONIOENCODING="utf-8")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=EXAMPLE_LIMIT,
        env=env,
        cwd=EXAMPLES,
        check=False,
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    assert result.stderr == ""
    for line in EXPECTED[name]:
        assert line in result.stdout, f"{name}: {line!r} not in\n{result.stdout}"
