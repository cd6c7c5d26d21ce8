"""inetkit._log: the "inetkit" logger that imports `logging` only when a record can be seen."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from inetkit import _log
from inetkit._log import DEBUG, logger


def run_fresh(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter where nothing has imported `logging` yet.

    ``code`` finds the module as ``log``, loaded from its file alone (it
    imports nothing from inetkit by design), so what the other inetkit
    modules import does not matter here; ``tests/test_project.py`` checks
    that ``import inetkit`` as a whole leaves `logging` alone.
    """
    prologue = "\n".join(
        [
            "import importlib.util, sys",
            "if 'logging' in sys.modules:",
            "    print('PRELOADED')",
            "    raise SystemExit(0)",
            f"spec = importlib.util.spec_from_file_location('log', {_log.__file__!r})",
            "log = importlib.util.module_from_spec(spec)",
            "spec.loader.exec_module(log)",
            "",
        ]
    )
    out = subprocess.run(
        [sys.executable, "-c", prologue + code], capture_output=True, text=True, check=True, timeout=60
    )
    if out.stdout.startswith("PRELOADED"):
        pytest.skip("this interpreter imports logging at start-up (sitecustomize or a .pth file)")
    return out


def test_debug_is_skipped_without_importing_logging() -> None:
    out = run_fresh(
        "logger = log.logger\n"
        "print(logger.isEnabledFor(log.DEBUG), logger.isEnabledFor(log.INFO))\n"
        "logger.debug('debug %s', 1)\n"
        "logger.info('info %s', 2)\n"
        "logger.log(log.DEBUG, 'log %s', 3)\n"
        "assert logger.name == 'inetkit'\n"
        "print('logging' in sys.modules)\n"
    )
    assert out.stdout.split() == ["False", "False", "False"]
    assert out.stderr == ""


def test_warning_imports_logging_and_is_emitted() -> None:
    # With logging never configured, the real logger prints warnings to
    # stderr (logging.lastResort): the stand-in must do the same.
    out = run_fresh(
        "logger = log.logger\n"
        "print(logger.isEnabledFor(log.WARNING), 'logging' in sys.modules)\n"
        "logger.warning('Option.TRUSTEDSITE: %s', 'not verified')\n"
        "logger.log(log.ERROR, 'second %d', 2)\n"
        "print('logging' in sys.modules)\n"
    )
    assert out.stdout.split() == ["True", "True", "True"]
    assert out.stderr.splitlines() == ["Option.TRUSTEDSITE: not verified", "second 2"]


def test_logging_configured_after_import_gets_debug_records() -> None:
    out = run_fresh(
        "logger, DEBUG = log.logger, log.DEBUG\n"
        "logger.debug('dropped: nobody listens yet')\n"
        "import logging\n"
        "logging.basicConfig(level=logging.DEBUG, stream=sys.stdout,\n"
        "                    format='%(name)s %(levelname)s %(funcName)s %(lineno)d %(message)s')\n"
        "def dial():\n"
        "    if logger.isEnabledFor(DEBUG):\n"
        "        logger.debug('attempt %s', '127.0.0.1')\n"
        "dial()\n"
        "print(vars(logger)['isEnabledFor'].__self__ is logging.getLogger('inetkit'))\n"
    )
    # The record names the caller (dial, at line 8 of the code, 15 after
    # the prologue), not a function of inetkit._log; afterwards the check
    # is the real logger's own method.
    assert out.stdout.splitlines() == ["inetkit DEBUG dial 15 attempt 127.0.0.1", "True"]


@pytest.fixture
def fresh_logger() -> _log._LazyLogger:
    """A stand-in not bound yet (the module's own may have been bound by earlier tests)."""
    return _log._LazyLogger()


def test_records_reach_caplog_with_the_callers_location(
    fresh_logger: _log._LazyLogger, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="inetkit"):
        fresh_logger.debug("first %d", 1)  # binds the real logger
        fresh_logger.debug("second %d", 2)  # goes straight to it
        fresh_logger.warning("careful")
    records = [r for r in caplog.records if r.name == "inetkit"]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.DEBUG, "first 1"),
        (logging.DEBUG, "second 2"),
        (logging.WARNING, "careful"),
    ]
    assert {r.pathname for r in records} == {__file__}
    assert {r.funcName for r in records} == {"test_records_reach_caplog_with_the_callers_location"}


@pytest.mark.parametrize("method", ["info", "warning", "error", "critical", "exception"])
def test_every_level_method_names_the_caller(
    fresh_logger: _log._LazyLogger, caplog: pytest.LogCaptureFixture, method: str
) -> None:
    with caplog.at_level(logging.DEBUG, logger="inetkit"):
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            getattr(fresh_logger, method)("via %s", method)
    (record,) = [r for r in caplog.records if r.name == "inetkit"]
    assert record.getMessage() == f"via {method}"
    assert record.levelname == ("ERROR" if method == "exception" else method.upper())
    assert record.funcName == "test_every_level_method_names_the_caller"
    assert (record.exc_info is not None) == (method == "exception")


def test_is_enabled_for_follows_the_real_logger(fresh_logger: _log._LazyLogger) -> None:
    real = logging.getLogger("inetkit")
    previous = real.level
    try:
        real.setLevel(logging.WARNING)
        assert not fresh_logger.isEnabledFor(DEBUG)
        real.setLevel(logging.DEBUG)
        assert fresh_logger.isEnabledFor(DEBUG)
        # Bound: the check is the real logger's own method, no call in between.
        assert "isEnabledFor" in vars(fresh_logger)
        real.setLevel(logging.INFO)
        assert not fresh_logger.isEnabledFor(DEBUG)
    finally:
        real.setLevel(previous)


def test_is_a_drop_in_for_the_logger_attributes_inetkit_uses() -> None:
    real = logging.getLogger("inetkit")
    assert logger.name == "inetkit"
    assert logger.level == real.level
    handler = logging.NullHandler()
    logger.addHandler(handler)
    try:
        assert handler in real.handlers
    finally:
        logger.removeHandler(handler)
    assert handler not in real.handlers
    assert (_log.DEBUG, _log.INFO, _log.WARNING, _log.ERROR, _log.CRITICAL) == (
        logging.DEBUG,
        logging.INFO,
        logging.WARNING,
        logging.ERROR,
        logging.CRITICAL,
    )
    with pytest.raises(AttributeError):
        logger.__wrapped__  # noqa: B018 - dunder probes (copy, inspect) must not import logging
