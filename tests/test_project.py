"""The public face and the project's own promises (README, CI, import cost)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import inetkit

ROOT = Path(__file__).resolve().parent.parent

#: Names API.md fixes for the top-level package.
CONTRACT = {
    "connect",
    "connect_url",
    "normalize_host_name",
    "Option",
    "Protocol",
    "SecurityCredentials",
    "Connection",
    "Resolver",
    "ErrorCode",
    "InetError",
    "InvalidArgumentError",
    "HostNotFoundError",
    "InetTimeoutError",
    "InetConnectionError",
    "InetConnectionRefusedError",
    "InetConnectionResetError",
    "ConnectionClosedError",
    "SecurityError",
    "CertificateError",
    "OwnershipError",
    "CancelledError",
    "SecurityInfo",
    "CertificateInfo",
}


def test_face_exports_the_contract() -> None:
    assert set(inetkit.__all__) >= CONTRACT
    for name in inetkit.__all__:
        assert hasattr(inetkit, name), name
    # Everything public that is not a submodule is listed in __all__.
    extra = [
        name
        for name in dir(inetkit)
        if not name.startswith("_")
        and name not in inetkit.__all__
        and not isinstance(getattr(inetkit, name), type(sys))
    ]
    assert extra == []


def test_option_values_match_socketwrench() -> None:
    opt = inetkit.Option
    assert (opt.BROADCAST, opt.DONTROUTE, opt.KEEPALIVE, opt.NODELAY) == (0x1, 0x2, 0x4, 0x10)
    assert (opt.RESERVEDPORT, opt.NOINHERIT, opt.TRUSTEDSITE, opt.SECURE) == (0x40, 0x80, 0x800, 0x1000)
    assert (opt.SECURE_FALLBACK, opt.PREFER_IPV6, opt.FREETHREAD) == (0x2000, 0x4000, 0x8000)
    assert inetkit.Protocol.TCP == 6 and inetkit.Protocol.UDP == 17


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert block is not None
    lines = block.group(1).strip().splitlines()
    assert "inetkit demo" in lines[0]
    assert "pytest" in lines[1]
    test_command = lines[1].replace("pip install", "python3 -m pip install --quiet")
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_import_is_cheap() -> None:
    code = "import sys, inetkit; print('cryptography' in sys.modules, 'idna.core' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    crypto, idna_core = out.stdout.split()
    assert crypto == "False"
    assert idna_core == "False"


def test_py_typed_is_shipped() -> None:
    assert (ROOT / "inetkit" / "py.typed").exists()
