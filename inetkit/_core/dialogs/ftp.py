"""FTP AUTH TLS (RFC 4217): greeting 220, AUTH TLS -> 234, TLS, PBSZ 0 -> 200, PROT P -> 200.

Replies are RFC 959 §4.2: a multi-line reply starts with ``nnn-`` and ends
with a line that starts with the same ``nnn `` (lines in between are free
text); a ``120`` greeting ("ready in n minutes") is followed by the real one.
After the handshake ``PBSZ 0`` and ``PROT P`` (RFC 4217 §9, §8) make data
connections protected too; a server that refuses them would move files in
the clear, so that fails closed as well.
"""

from __future__ import annotations

from collections.abc import Generator

from ._steps import Dialog, Refusal, Script, Send, StartTLS, Step, quote, read_line

__all__ = ["FTPDialog"]

#: Longest FTP reply line we accept (no limit in RFC 959; real greetings are under 200).
FTP_MAX_LINE = 4096
#: Most lines of one FTP reply (banners can be long, not endless).
FTP_MAX_REPLY_LINES = 256
#: Preliminary ``1yz`` replies we wait through before the real one.
FTP_MAX_PRELIMINARY = 4


def ftp_reply() -> Generator[Step, bytes | None, tuple[int, str]]:
    """One final FTP reply: its code and its text (the lines joined); preliminary 1yz replies are skipped."""
    for _ in range(FTP_MAX_PRELIMINARY + 1):
        first = yield from read_line(FTP_MAX_LINE)
        if (
            len(first) < 3
            or not (first[:3].isascii() and first[:3].isdigit())
            or (len(first) > 3 and first[3] not in " -")
        ):
            raise Refusal(f"malformed reply {quote(first)}")
        code = first[:3]
        texts = [first[4:]]
        if len(first) > 3 and first[3] == "-":
            for _ in range(FTP_MAX_REPLY_LINES):
                line = yield from read_line(FTP_MAX_LINE)
                texts.append(line)
                if line.startswith(code + " ") or line == code:
                    break
            else:
                raise Refusal(f"a reply longer than {FTP_MAX_REPLY_LINES} lines")
        if not code.startswith("1"):
            return int(code), " ".join(texts)
    raise Refusal(f"more than {FTP_MAX_PRELIMINARY} preliminary replies")


def ftp_command(
    command: str, expected: int, *, over_tls: bool = False, consequence: str = ""
) -> Generator[Step, bytes | None, None]:
    """Send ``command``; refuse unless its final reply has the ``expected`` code.

    The refusal names the command (``over_tls``: after the handshake) and
    quotes the reply; ``consequence`` says what going on would have meant.
    """
    yield Send(command.encode("ascii") + b"\r\n")
    code, text = yield from ftp_reply()
    if code != expected:
        after = " over TLS" if over_tls else ""
        raise Refusal(f"{command}{after} answered {code} {quote(text)}{consequence}")


class FTPDialog(Dialog):
    """FTP AUTH TLS with PBSZ 0 and PROT P; the caller logs in next (USER/PASS) over TLS."""

    name = "ftp"

    def _script(self) -> Script:
        code, text = yield from ftp_reply()
        if code != 220:
            raise Refusal(f"greeting {code} {quote(text)}")
        yield from ftp_command("AUTH TLS", 234)
        yield StartTLS()
        yield from ftp_command("PBSZ 0", 200, over_tls=True)
        yield from ftp_command(
            "PROT P", 200, over_tls=True, consequence="; data connections would not be protected"
        )
        return None
