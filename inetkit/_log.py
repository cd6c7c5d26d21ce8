"""inetkit's one logger, ``logging.getLogger("inetkit")``, without importing `logging` early.

Theory of operation
-------------------
The `logging` package and what it pulls in (`traceback`, `string`,
`threading` bookkeeping ...) cost several milliseconds, about as much as
the rest of ``import inetkit`` together, and most programs never look at inetkit's
records. `logger` is a stand-in for the real `logging.Logger` that imports
`logging` only when a record could actually be seen:

* Levels below WARNING (DEBUG, INFO) are off unless somebody configured
  them, and nobody can have done so without importing `logging`. So while
  ``"logging"`` is not in `sys.modules`, `isEnabledFor` answers ``False``
  for them and `debug`/`info` return at once. Once any code has imported
  `logging` (a caller configuring it after ``import inetkit``, pytest's
  ``caplog``, a library), the next call asks the real logger.
* WARNING and above are always emitted: such a call imports `logging` if
  needed and logs (with no handler configured, `logging.lastResort`
  prints the warning to stderr, exactly as the real logger would).

The first call that finds `logging` loaded binds the real logger's methods
onto the stand-in's instance, so from then on ``logger.isEnabledFor(DEBUG)``
is the real bound method, with no extra call in between.

Every other `logging.Logger` attribute (``level``, ``handlers``,
``addHandler``, ``setLevel`` ...) is forwarded to the real logger, importing
`logging` then; so ``from ._log import logger`` can replace
``logger = logging.getLogger("inetkit")`` line for line. The level
constants are here too (`DEBUG` ... `CRITICAL`, the same numbers as
`logging`'s) so that ``logger.isEnabledFor(DEBUG)`` needs no `logging`.

Rejected: a `logging.Logger` subclass (needs `logging` imported to define
it) and a `NullHandler`-style "configure nothing" logger built at import
(still imports `logging`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    import logging
    from collections.abc import Mapping
    from types import TracebackType
    from typing import TypeAlias, TypedDict, Unpack

    _ExcInfo: TypeAlias = (
        bool
        | BaseException
        | tuple[type[BaseException], BaseException, TracebackType | None]
        | tuple[None, None, None]
        | None
    )

    class _LogKwargs(TypedDict, total=False):
        """The keyword arguments of `logging.Logger.debug` and its siblings."""

        exc_info: _ExcInfo
        stack_info: bool
        stacklevel: int
        extra: Mapping[str, object] | None


__all__ = ["CRITICAL", "DEBUG", "ERROR", "INFO", "LOGGER_NAME", "WARNING", "logger"]

#: The name of inetkit's logger (configure it with ``logging.getLogger("inetkit")``).
LOGGER_NAME = "inetkit"

# The numbers of `logging`'s levels (documented, never changed since Python 2).
CRITICAL = 50
ERROR = 40
WARNING = 30
INFO = 20
DEBUG = 10

#: The methods bound straight onto the stand-in once `logging` is loaded.
_BOUND = ("debug", "info", "warning", "error", "exception", "critical", "log", "isEnabledFor")


class _LazyLogger:
    """Stands in for ``logging.getLogger("inetkit")`` until `logging` is loaded.

    The methods defined here run only until the real logger is bound; after
    that the instance attributes set by `_bind` (the real bound methods)
    shadow them.
    """

    name = LOGGER_NAME

    def _bind(self) -> logging.Logger:
        """Import `logging`, get the real logger, and route every call straight to it."""
        import logging

        real = logging.getLogger(LOGGER_NAME)
        for name in _BOUND:
            # Instance attributes shadow the class's methods (functions are
            # non-data descriptors): later calls skip this class entirely.
            setattr(self, name, getattr(real, name))
        return real

    def __getattr__(self, name: str) -> object:
        # Only reached for attributes this class lacks: level, handlers,
        # addHandler, setLevel, getEffectiveLevel ...
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._bind(), name)

    def isEnabledFor(self, level: int) -> bool:
        """Whether a record of ``level`` would be handled (the hot-path check)."""
        if level < WARNING and "logging" not in sys.modules:
            return False
        return self._bind().isEnabledFor(level)

    def _emit(self, level: int, msg: object, args: tuple[object, ...], kwargs: _LogKwargs) -> None:
        """Log through the real logger; below WARNING only if `logging` is loaded."""
        if level < WARNING and "logging" not in sys.modules:
            return
        # Two frames more (the level method and this one): the record names
        # the line that called ``logger.debug(...)``, as the real logger would.
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 2
        self._bind().log(level, msg, *args, **kwargs)

    def log(self, level: int, msg: object, *args: object, **kwargs: Unpack[_LogKwargs]) -> None:
        """Log ``msg % args`` at ``level``."""
        self._emit(level, msg, args, kwargs)

    def debug(self, msg: object, *args: object, **kwargs: Unpack[_LogKwargs]) -> None:
        """Log at DEBUG, if `logging` is loaded (else nobody can have enabled it)."""
        self._emit(DEBUG, msg, args, kwargs)

    def info(self, msg: object, *args: object, **kwargs: Unpack[_LogKwargs]) -> None:
        """Log at INFO, if `logging` is loaded (else nobody can have enabled it)."""
        self._emit(INFO, msg, args, kwargs)

    def warning(self, msg: object, *args: object, **kwargs: Unpack[_LogKwargs]) -> None:
        """Log at WARNING, always (importing `logging` if needed)."""
        self._emit(WARNING, msg, args, kwargs)

    def error(self, msg: object, *args: object, **kwargs: Unpack[_LogKwargs]) -> None:
        """Log at ERROR, always (importing `logging` if needed)."""
        self._emit(ERROR, msg, args, kwargs)

    def exception(self, msg: object, *args: object, **kwargs: Unpack[_LogKwargs]) -> None:
        """Log at ERROR with the exception being handled, always."""
        kwargs.setdefault("exc_info", True)
        self._emit(ERROR, msg, args, kwargs)

    def critical(self, msg: object, *args: object, **kwargs: Unpack[_LogKwargs]) -> None:
        """Log at CRITICAL, always (importing `logging` if needed)."""
        self._emit(CRITICAL, msg, args, kwargs)

    def __repr__(self) -> str:
        state = "bound" if "isEnabledFor" in self.__dict__ else "logging not loaded yet"
        return f"<inetkit logger {LOGGER_NAME!r} ({state})>"


#: inetkit's logger. Typed as the `logging.Logger` it stands for: every
#: attribute of one works on it (see the module docstring).
logger = cast("logging.Logger", _LazyLogger())
