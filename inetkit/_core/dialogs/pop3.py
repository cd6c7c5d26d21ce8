"""POP3 STLS (RFC 2595 §4): greeting ``+OK``, CAPA (optional), STLS, ``+OK``.

CAPA (RFC 2449) is asked first: a server that answers it and does not list
``STLS`` has said it cannot upgrade, so the dialog refuses without sending
STLS; a server that answers ``-ERR`` (no CAPA) is asked STLS directly. The
go-ahead is ``+OK`` to STLS. After TLS the caller goes on (CAPA, USER/PASS).
"""

from __future__ import annotations

from ._steps import Dialog, Refusal, Script, Send, StartTLS, quote, read_line

__all__ = ["POP3Dialog"]

#: Longest POP3 response line we accept (RFC 2449 §4 allows 512 octets; leave room).
POP3_MAX_LINE = 4096
#: Most lines of a CAPA response we read (real servers send about ten).
POP3_MAX_CAPA_LINES = 256


class POP3Dialog(Dialog):
    """POP3 STLS; the caller speaks next (CAPA, USER, ...) over TLS."""

    name = "pop3"

    def _script(self) -> Script:
        greeting = yield from read_line(POP3_MAX_LINE)
        if not greeting.startswith("+OK"):
            raise Refusal(f"greeting {quote(greeting)}")
        yield Send(b"CAPA\r\n")
        answer = yield from read_line(POP3_MAX_LINE)
        if answer.startswith("+OK"):
            capabilities: set[str] = set()
            for _ in range(POP3_MAX_CAPA_LINES):
                line = yield from read_line(POP3_MAX_LINE)
                if line == ".":
                    break
                capabilities.add(line.split(" ", 1)[0].upper())
            else:
                raise Refusal(f"a CAPA response longer than {POP3_MAX_CAPA_LINES} lines")
            if "STLS" not in capabilities:
                raise Refusal("the server does not list STLS in its CAPA response")
        elif not answer.startswith("-ERR"):
            raise Refusal(f"CAPA answered {quote(answer)}")
        yield Send(b"STLS\r\n")
        answer = yield from read_line(POP3_MAX_LINE)
        if not answer.startswith("+OK"):
            raise Refusal(f"STLS answered {quote(answer)}")
        yield StartTLS()
        return None
