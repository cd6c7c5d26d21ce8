"""IMAP STARTTLS (RFC 3501 §6.2.1, RFC 9051 §6.2.1): greeting, CAPABILITY, STARTTLS.

The greeting must be ``* OK``: ``* PREAUTH`` means the session is already
authenticated, where STARTTLS is not allowed (a known way to strip TLS,
CVE-2020-12398 and friends), and ``* BYE`` is a refusal. ``CAPABILITY`` must
list ``STARTTLS``; the tagged ``OK`` to ``STARTTLS`` is the go-ahead. Untagged
responses in between are allowed by the protocol and skipped (a bounded
number). After TLS the caller asks for CAPABILITY again (RFC 3501 §6.2.1:
what was learnt before TLS must be forgotten).
"""

from __future__ import annotations

from collections.abc import Generator

from ._steps import Dialog, Refusal, Script, Send, StartTLS, Step, quote, read_line

__all__ = ["IMAPDialog"]

#: Longest IMAP response line we accept (RFC 7162 §4 suggests clients allow 8192 octets).
IMAP_MAX_LINE = 8192
#: Most untagged responses we skip while waiting for a tagged one.
IMAP_MAX_UNTAGGED = 256


def tagged_reply(tag: str) -> Generator[Step, bytes | None, tuple[str, str, list[str]]]:
    """Read up to the response tagged ``tag``: (status, its text, the untagged lines before it)."""
    untagged: list[str] = []
    for _ in range(IMAP_MAX_UNTAGGED):
        line = yield from read_line(IMAP_MAX_LINE)
        if line.startswith("* "):
            untagged.append(line[2:])
            continue
        head, _, rest = line.partition(" ")
        if head != tag:
            raise Refusal(f"a response with an unexpected tag {quote(line)}")
        status, _, text = rest.partition(" ")
        return status.upper(), text, untagged
    raise Refusal(f"more than {IMAP_MAX_UNTAGGED} untagged responses without the tagged one")


class IMAPDialog(Dialog):
    """IMAP STARTTLS; the caller speaks next (CAPABILITY, LOGIN, ...) over TLS."""

    name = "imap"

    def _script(self) -> Script:
        greeting = yield from read_line(IMAP_MAX_LINE)
        status = greeting[2:].split(" ", 1)[0].upper() if greeting.startswith("* ") else ""
        if status == "PREAUTH":
            raise Refusal(
                "the server greets with PREAUTH (already authenticated), where STARTTLS is not allowed"
            )
        if status != "OK":
            raise Refusal(f"greeting {quote(greeting)}")
        yield Send(b"A1 CAPABILITY\r\n")
        status, text, untagged = yield from tagged_reply("A1")
        if status != "OK":
            raise Refusal(f"CAPABILITY answered {status} {quote(text)}")
        capabilities: set[str] = set()
        for line in untagged:
            words = line.upper().split()
            if words and words[0] == "CAPABILITY":
                capabilities.update(words[1:])
        if "STARTTLS" not in capabilities:
            raise Refusal("the server does not list STARTTLS in its CAPABILITY response")
        yield Send(b"A2 STARTTLS\r\n")
        status, text, _ = yield from tagged_reply("A2")
        if status != "OK":
            raise Refusal(f"STARTTLS answered {status} {quote(text)}")
        yield StartTLS()
        return None
