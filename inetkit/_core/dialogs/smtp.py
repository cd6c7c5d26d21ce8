"""SMTP STARTTLS (RFC 3207): greeting, EHLO, STARTTLS, TLS, EHLO again.

Replies are RFC 5321 §4.2: ``250-text`` lines continue a reply, ``250 text``
ends it. The go-ahead is ``220`` to STARTTLS; over TLS the dialog says EHLO
again (RFC 3207 §4.2: the client must discard what it knew) and returns the
keywords the server offers then, so the handle is ready for MAIL or AUTH.
The whole extension lines of that reply (keyword and parameters, such as
``AUTH PLAIN LOGIN``) stay on the dialog as `SMTPDialog.extensions`.
"""

from __future__ import annotations

from collections.abc import Generator

from ._steps import Dialog, Refusal, Script, Send, StartTLS, Step, quote, read_line

__all__ = ["SMTPDialog", "ehlo_name"]

#: Longest SMTP reply line we accept (RFC 5321 §4.5.3.1.5 says 512 octets;
#: real servers send longer EHLO lines, so allow some room).
SMTP_MAX_LINE = 4096
#: Most lines one SMTP reply may have (bounds a server that never ends one).
SMTP_MAX_REPLY_LINES = 256


def ehlo_name(local_ip: str) -> str:
    """The EHLO argument when the caller has no domain name to give: an address literal (RFC 5321 §4.1.3)."""
    return f"[IPv6:{local_ip}]" if ":" in local_ip else f"[{local_ip}]"


def smtp_reply() -> Generator[Step, bytes | None, tuple[int, list[str]]]:
    """One SMTP reply: its code and the text of each line."""
    lines: list[str] = []
    code = 0
    for _ in range(SMTP_MAX_REPLY_LINES):
        line = yield from read_line(SMTP_MAX_LINE)
        if (
            len(line) < 3
            or not (line[:3].isascii() and line[:3].isdigit())
            or (len(line) > 3 and line[3] not in " -")
        ):
            raise Refusal(f"malformed reply {quote(line)}")
        if lines and int(line[:3]) != code:
            raise Refusal(f"a reply whose lines carry different codes ({quote(line)})")
        code = int(line[:3])
        lines.append(line[4:])
        if len(line) == 3 or line[3] == " ":
            return code, lines
    raise Refusal(f"a reply longer than {SMTP_MAX_REPLY_LINES} lines")


def _keywords(lines: list[str]) -> list[str]:
    # The first line of an EHLO reply is the server's name; each further line starts with a keyword.
    return [line.split(" ", 1)[0].upper() for line in lines[1:]]


class SMTPDialog(Dialog):
    """SMTP STARTTLS; the `Done` result is the EHLO keywords offered over TLS (upper-cased).

    ``extensions`` holds, once the dialog is done, the extension lines of
    the EHLO reply over TLS as the server wrote them (all lines but the
    first, which names the server): ``("8BITMIME", "AUTH PLAIN LOGIN")``.
    """

    name = "smtp"

    def __init__(self, client_name: str) -> None:
        super().__init__()
        if not client_name or any(c in client_name for c in "\r\n "):
            raise ValueError(f"an EHLO name must be one word, not {client_name!r}")
        self.client_name = client_name
        self.extensions: tuple[str, ...] | None = None

    def _script(self) -> Script:
        ehlo = f"EHLO {self.client_name}\r\n".encode()
        code, lines = yield from smtp_reply()
        if code != 220:
            raise Refusal(f"greeting {code} {quote(' '.join(lines))}")
        yield Send(ehlo)
        code, lines = yield from smtp_reply()
        if code != 250:
            raise Refusal(f"EHLO answered {code} {quote(' '.join(lines))}")
        if "STARTTLS" not in _keywords(lines):
            raise Refusal("the server does not offer STARTTLS in its EHLO reply")
        yield Send(b"STARTTLS\r\n")
        code, lines = yield from smtp_reply()
        if code != 220:
            raise Refusal(f"STARTTLS answered {code} {quote(' '.join(lines))}")
        yield StartTLS()
        yield Send(ehlo)
        code, lines = yield from smtp_reply()
        if code != 250:
            raise Refusal(f"EHLO over TLS answered {code} {quote(' '.join(lines))}")
        self.extensions = tuple(lines[1:])
        return _keywords(lines)
