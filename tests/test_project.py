"""The public face and the project's own promises (README, CI, import cost)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

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
    "ProxyError",
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


#: Modules ``import inetkit`` must not load: each costs milliseconds and only
#: some programs need it (logging: once somebody logs; TLS, credentials and
#: IDNA: once they are used).
HEAVY_MODULES = [
    "dataclasses",
    "logging",
    "inspect",
    "datetime",
    "hashlib",
    "secrets",
    "unicodedata",
    "cryptography",
    "idna",
    "inetkit._credentials",
    "inetkit._tls",
]


@pytest.fixture(scope="module")
def added_by_import() -> dict[str, list[str]]:
    """What a fresh interpreter loads for ``import inetkit`` and the connect driver (beyond what it had)."""
    code = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        "import inetkit\n"
        "inetkit.connect, inetkit.connect_url, inetkit.Connection, inetkit.Resolver, inetkit.ConnectTrace\n"
        "added = sorted(set(sys.modules) - before)\n"
        "print(json.dumps({'before': sorted(before), 'added': added}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    loaded: dict[str, list[str]] = json.loads(out.stdout)
    return loaded


@pytest.mark.parametrize("module", HEAVY_MODULES)
def test_import_is_cheap(added_by_import: dict[str, list[str]], module: str) -> None:
    added = added_by_import["added"]
    loaded = [name for name in added if name == module or name.startswith(module + ".")]
    assert loaded == [], f"import inetkit loads {loaded}; inetkit modules loaded: " + ", ".join(
        name for name in added if name.startswith("inetkit")
    )


def test_import_measures_something(added_by_import: dict[str, list[str]]) -> None:
    # The check above means nothing if the interpreter had loaded the
    # modules before inetkit (a sitecustomize, a .pth file) or if inetkit
    # itself had been loaded already.
    assert "inetkit._connect" in added_by_import["added"]
    already = [name for name in HEAVY_MODULES if name in added_by_import["before"]]
    assert already == [], f"loaded before import inetkit, so not checked: {already}"


def _printed(code: str) -> list[str]:
    """The lines a fresh interpreter prints running ``code``."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.splitlines()


def test_bare_import_loads_errors_and_value_types_only() -> None:
    # `import inetkit` defers the driver (connect, the handle, the resolver)
    # to the first use of one of its names.
    code = "import sys, inetkit; print(' '.join(sorted(n for n in sys.modules if n.startswith('inetkit'))))"
    assert _printed(code) == ["inetkit inetkit._errors inetkit._types"]


def test_lazy_names_load_on_first_use() -> None:
    code = (
        "import sys, inetkit\n"
        "names = dir(inetkit)\n"
        "print('SecurityInfo' in names, 'inetkit._tls' in sys.modules)\n"
        "from inetkit import SecurityCredentials, SecurityInfo\n"
        "print(inetkit.CertificateInfo.__name__, 'inetkit._tls' in sys.modules)\n"
        "print(inetkit.SecurityInfo is sys.modules['inetkit._tls'].SecurityInfo)\n"
        "print('SecurityCredentials' in vars(inetkit))\n"
        "try:\n"
        "    inetkit.SecurityCredntials\n"
        "except AttributeError as exc:\n"
        "    print(exc)\n"
    )
    assert _printed(code) == [
        "True False",
        "CertificateInfo True",
        "True",
        "True",  # cached in the module: the next look-up does not call __getattr__
        "module 'inetkit' has no attribute 'SecurityCredntials'",
    ]


def test_py_typed_is_shipped() -> None:
    assert (ROOT / "inetkit" / "py.typed").exists()
