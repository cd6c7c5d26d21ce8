"""Secrets: passwords never shown, decrypted keys never on disk, weakened TLS always logged.

* The password of a PKCS#12 store or an encrypted PEM key must not appear
  in ``repr`` of the credentials or the handle, in an error's message,
  ``repr``, trace or formatted traceback, nor in anything the ``inetkit``
  logger emits at DEBUG, through a whole mutual-TLS connect and through
  failures with wrong passwords.
* While credentials are loaded, the kernel (inotify) reports every file
  created in the temporary directory and the working directory; none may
  appear on the normal path, and on the no-memfd fallback the one file that
  appears holds only an *encrypted* key.
* `Option.TRUSTEDSITE` and `Option.SECURE_FALLBACK` log a warning on every
  use, not once.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import ssl
import struct
import tempfile
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import certs
import pytest

import inetkit
from inetkit import InetError, Option, SecurityCredentials, SecurityError

from .conftest import Measure
from .peers import peer, read_some

#: inotify event bits (linux/inotify.h): a file was created, moved in, or opened for writing and closed.
IN_CREATE = 0x100
IN_MOVED_TO = 0x80
IN_CLOSE_WRITE = 0x8
#: Header of one inotify event: wd, mask, cookie, name length.
EVENT_HEADER = struct.Struct("iIII")
#: Passwords used here: distinctive, so a search cannot hit by chance.
WRONG_PASSWORD = "wrong-Pa55word-zebra-lantern"
#: How many connects show the "every time" warning rule.
WARN_REPEATS = 3


class Inotify:
    """Files created in some directories, as the kernel reports them (no polling race)."""

    def __init__(self, *directories: Path) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            pytest.skip(f"inotify is not available: {os.strerror(ctypes.get_errno())}")
        self.names: dict[int, Path] = {}
        for directory in directories:
            wd = self._libc.inotify_add_watch(
                self.fd, os.fsencode(directory), IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE
            )
            assert wd >= 0, os.strerror(ctypes.get_errno())
            self.names[wd] = directory

    def created(self) -> list[Path]:
        found = []
        with contextlib.suppress(BlockingIOError):
            while data := os.read(self.fd, 65536):
                offset = 0
                while offset < len(data):
                    wd, _mask, _cookie, length = EVENT_HEADER.unpack_from(data, offset)
                    offset += EVENT_HEADER.size
                    name = data[offset : offset + length].rstrip(b"\0")
                    offset += length
                    found.append(self.names[wd] / os.fsdecode(name))
        return found

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def capture_debug() -> Iterator[list[str]]:
    """Everything the inetkit logger emits at DEBUG, formatted (messages and tracebacks)."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    logger = logging.getLogger("inetkit")
    handler = Keep(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    saved = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)


def secret_forms(password: str) -> list[str]:
    """The password as text, as bytes repr, and as hex: none may show anywhere."""
    return [password, repr(password.encode()), password.encode().hex()]


def assert_hidden(password: str, *texts: str) -> None:
    for text in texts:
        for form in secret_forms(password):
            assert form not in text, f"the password shows in: {text[:300]}"


def error_texts(error: BaseException) -> list[str]:
    texts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    trace = getattr(error, "trace", None)
    if trace is not None:
        texts.append(trace.format())
    return texts


IDENTITIES = {
    "PKCS#12": lambda c: (c.p12_modern, None),
    "PKCS#12 legacy": lambda c: (c.p12_legacy, None),
    "encrypted PEM": lambda c: (c.combined_encrypted_pem, None),
    "encrypted PEM key file": lambda c: (c.cert_file, c.encrypted_key_file),
}


@pytest.mark.parametrize("form", IDENTITIES, ids=IDENTITIES.keys())
def test_passwords_never_show_through_a_mutual_tls_connect(
    form: str, pki: Any, capture_debug: list[str], measure: Measure
) -> None:
    store, key = IDENTITIES[form](pki.client)
    context = pki.servers["valid"].context(client_ca=pki.ca_file)
    creds = SecurityCredentials(
        cert_store=store, private_key=key, password=certs.PASSWORD, ca_file=pki.ca_file
    )
    subjects: list[str] = []

    def handler(sock: Any) -> None:
        with context.wrap_socket(sock, server_side=True) as tls:
            subjects.append(str(tls.getpeercert()["subject"]))
            tls.sendall(read_some(tls))

    with measure(f"password of {form}: mutual TLS", "connect, DEBUG log captured") as case:
        with peer(handler) as port:
            with (
                case.timed(),
                inetkit.connect(
                    "localhost", port, timeout=5, options=Option.SECURE, credentials=creds
                ) as conn,
            ):
                conn.write(b"hello")
                assert conn.read_exactly(5) == b"hello"
                texts = [repr(creds), repr(conn), conn.trace.format(), repr(conn.security_info)]
        assert subjects, "the server saw no client certificate"
        assert capture_debug, "nothing was logged at DEBUG; the check would prove nothing"
        assert_hidden(certs.PASSWORD, *texts, *capture_debug)
        case.outcome = f"hidden in repr, trace and {len(capture_debug)} DEBUG records"


@pytest.mark.parametrize("form", IDENTITIES, ids=IDENTITIES.keys())
def test_wrong_passwords_never_show_in_errors_or_logs(
    form: str, pki: Any, capture_debug: list[str], measure: Measure
) -> None:
    store, key = IDENTITIES[form](pki.client)
    creds = SecurityCredentials(
        cert_store=store, private_key=key, password=WRONG_PASSWORD, ca_file=pki.ca_file
    )
    with measure(f"wrong password for {form}", "connect(SECURE)") as case:
        with peer(read_some) as port:
            with case.timed(), pytest.raises(SecurityError) as info:
                inetkit.connect("localhost", port, timeout=5, options=Option.SECURE, credentials=creds)
        error = info.value
        assert error.code.name == "INVALID_CREDENTIALS"
        assert "password" in str(error)  # it says what is wrong, without the value
        assert_hidden(WRONG_PASSWORD, repr(creds), *error_texts(error), *capture_debug)
        assert_hidden(certs.PASSWORD, *error_texts(error), *capture_debug)
        case.outcome = "SecurityError/INVALID_CREDENTIALS; password hidden"


@contextlib.contextmanager
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    temp = tmp_path / "tmp"
    work = tmp_path / "cwd"
    temp.mkdir()
    work.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.chdir(work)
    yield temp, work


def load_in_background(creds: SecurityCredentials, rounds: int) -> None:
    """Load the identity into fresh contexts from another thread too (what connect does)."""
    from inetkit._credentials import apply_identity

    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(rounds):
                apply_identity(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), creds)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors


@pytest.mark.parametrize("form", IDENTITIES, ids=IDENTITIES.keys())
def test_decrypted_keys_never_touch_the_disk(
    form: str, pki: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, measure: Measure
) -> None:
    store, key = IDENTITIES[form](pki.client)
    creds = SecurityCredentials(cert_store=store, private_key=key, password=certs.PASSWORD)
    with measure(f"key of {form} loaded (memfd)", "inotify on TMPDIR and cwd") as case:
        with private_dirs(tmp_path, monkeypatch) as (temp, work):
            watch = Inotify(temp, work, Path(tempfile.gettempdir()))
            try:
                with case.timed():
                    load_in_background(creds, 10)
                created = watch.created()
            finally:
                watch.close()
            assert created == [], f"files were created while loading a key: {created}"
            assert list(temp.iterdir()) == list(work.iterdir()) == []
        case.outcome = "no file created (inotify)"


def test_the_no_memfd_fallback_writes_only_an_encrypted_key(
    pki: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, measure: Measure
) -> None:
    from inetkit import _credentials

    creds = SecurityCredentials(cert_store=pki.client.p12_modern, password=certs.PASSWORD)
    seen: list[bytes] = []
    original = _credentials._write_all

    def spy(fd: int, data: bytes) -> None:
        seen.append(data)  # exactly what goes into the file
        original(fd, data)

    with measure("key loaded without memfd (fallback)", "inotify + content of the temporary file") as case:
        with private_dirs(tmp_path, monkeypatch) as (temp, work):
            monkeypatch.setattr(_credentials, "_USE_MEMFD", False)
            monkeypatch.setattr(_credentials, "_write_all", spy)
            watch = Inotify(temp, work)
            try:
                _credentials.apply_identity(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), creds)
                created = watch.created()
            finally:
                watch.close()
            assert created and all(path.parent == temp for path in created), created
            assert list(temp.iterdir()) == [], "the temporary file was not removed"
            assert list(work.iterdir()) == []
        assert len(seen) == 1
        content = seen[0]
        assert b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in content
        assert b"-----BEGIN PRIVATE KEY-----" not in content
        assert b"-----BEGIN EC PRIVATE KEY-----" not in content
        assert b"-----BEGIN RSA PRIVATE KEY-----" not in content
        case.outcome = "one temp file, encrypted key only, removed"


@pytest.mark.parametrize("flag", [Option.TRUSTEDSITE, Option.SECURE_FALLBACK], ids=lambda f: f.name)
def test_weakened_tls_logs_a_warning_every_time(
    flag: Option, pki: Any, caplog: pytest.LogCaptureFixture, measure: Measure
) -> None:
    context = pki.servers["valid"].context()
    creds = SecurityCredentials(ca_file=pki.ca_file)

    def handler(sock: Any) -> None:
        with contextlib.suppress(OSError, ssl.SSLError), context.wrap_socket(sock, server_side=True) as tls:
            read_some(tls)

    with measure(
        f"{flag.name} used {WARN_REPEATS + 1} times",
        f"{WARN_REPEATS} x connect(SECURE | flag), 1 x enable_security",
    ) as case:
        caplog.set_level(logging.WARNING, logger="inetkit")
        with peer(handler, connections=WARN_REPEATS + 1) as port:
            for _ in range(WARN_REPEATS):
                with inetkit.connect(
                    "localhost", port, timeout=5, options=Option.SECURE | flag, credentials=creds
                ) as conn:
                    conn.write(b"x")
            # Explicit TLS on a handle made with the flag warns too.
            with inetkit.connect("localhost", port, timeout=5, options=flag, credentials=creds) as conn:
                conn.enable_security()
                conn.write(b"x")
        warned = [r for r in caplog.records if r.levelno == logging.WARNING and flag.name in r.getMessage()]
        assert len(warned) == WARN_REPEATS + 1, [r.getMessage() for r in caplog.records]
        assert all("localhost" in r.getMessage() for r in warned)
        case.outcome = f"{len(warned)} warnings for {WARN_REPEATS + 1} uses"


def test_errors_of_every_kind_never_carry_the_password(pki: Any, capture_debug: list[str]) -> None:
    """Failures after the credentials loaded (refused, certificate) do not leak the password either."""
    creds = SecurityCredentials(
        cert_store=pki.client.p12_modern, password=certs.PASSWORD, ca_file=pki.ca_file
    )
    from conftest import free_port

    for call in (
        lambda: inetkit.connect(
            "localhost", free_port(), timeout=2, options=Option.SECURE, credentials=creds
        ),
        lambda: inetkit.connect("localhost", 0, timeout=2, options=Option.SECURE, credentials=creds),
    ):
        with pytest.raises(InetError) as info:
            call()
        assert_hidden(certs.PASSWORD, *error_texts(info.value), *capture_debug)
