"""The STARTTLS dialogs of inetkit._core.dialogs, fed made-up bytes: no socket, no clock.

`talk` plays the server: it answers each read step from a byte string the
way the blocking driver would (a line at a time, exactly n bytes, or what is
there for a bounded read), records what the dialog sends before and after
`StartTLS`, and notes which plaintext bytes were still unread when the dialog
asked for the handshake (those are what ``enable_security`` refuses).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inetkit import ErrorCode
from inetkit._core.dialogs import (
    NAMES,
    Dialog,
    Done,
    FTPDialog,
    IMAPDialog,
    LDAPDialog,
    POP3Dialog,
    PostgresDialog,
    ReadExactly,
    ReadLine,
    ReadSome,
    Refused,
    Send,
    SMTPDialog,
    StartTLS,
    Step,
    XMPPDialog,
    new_dialog,
)
from inetkit._core.dialogs.ldap import STARTTLS_REQUEST, parse_tlv
from inetkit._core.dialogs.postgres import SSL_REQUEST
from inetkit._core.dialogs.xmpp import STARTTLS_ELEMENT, stream_header

#: Most steps `talk` runs before calling the dialog stuck (real dialogs take a few dozen).
MAX_STEPS = 100_000


@dataclass
class Talk:
    """What one made-up conversation produced."""

    end: Step
    sent: list[bytes] = field(default_factory=list)  # before StartTLS
    sent_over_tls: list[bytes] = field(default_factory=list)
    tls: bool = False
    unread_at_tls: bytes | None = None  # plaintext still waiting when StartTLS was asked for
    unread_at_end: bytes = b""

    @property
    def refused(self) -> Refused:
        assert isinstance(self.end, Refused), self.end
        return self.end


def talk(
    dialog: Dialog, server: bytes | list[bytes], over_tls: bytes = b"", *, chunk: int | None = None
) -> Talk:
    """Run ``dialog`` against a server that says ``server`` (then ``over_tls`` after the handshake).

    ``server`` as bytes is there from the start; as a list, its first item is
    there from the start and each further one arrives after the dialog's next
    send (a server answers only what it was asked).
    """
    answers = [server] if isinstance(server, bytes) else list(server)
    incoming = bytearray(answers.pop(0))
    step = dialog.start()
    result = Talk(step)
    for _ in range(MAX_STEPS):
        result.end = step
        if isinstance(step, Done | Refused):
            result.unread_at_end = bytes(incoming)
            return result
        if isinstance(step, Send):
            (result.sent_over_tls if result.tls else result.sent).append(step.data)
            if answers and not result.tls:
                incoming += answers.pop(0)
            step = dialog.proceed()
        elif isinstance(step, StartTLS):
            result.tls = True
            result.unread_at_tls = bytes(incoming)
            incoming = bytearray(over_tls)
            step = dialog.proceed()
        elif isinstance(step, ReadLine):
            end = incoming.find(b"\n")
            size = len(incoming) if end < 0 else end + 1
            data = bytes(incoming[:size])
            del incoming[:size]
            step = dialog.receive(data)
        elif isinstance(step, ReadExactly):
            data = bytes(incoming[: step.count])
            del incoming[: step.count]
            step = dialog.receive(data)
        else:
            assert isinstance(step, ReadSome)
            size = min(step.max_bytes, chunk or len(incoming))
            data = bytes(incoming[:size])
            del incoming[:size]
            step = dialog.receive(data)
    raise AssertionError("the dialog did not end")


def smtp() -> SMTPDialog:
    return SMTPDialog("[127.0.0.1]")


# -- SMTP ------------------------------------------------------------------------

SMTP_EHLO = b"250-mail.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
SMTP_UNTIL_GO = b"220 mail.example ESMTP\r\n" + SMTP_EHLO + b"220 go ahead\r\n"
SMTP_OVER_TLS = b"250-mail.example\r\n250-8BITMIME\r\n250 AUTH PLAIN\r\n"


def test_smtp_happy_path() -> None:
    result = talk(smtp(), SMTP_UNTIL_GO, SMTP_OVER_TLS)
    assert result.sent == [b"EHLO [127.0.0.1]\r\n", b"STARTTLS\r\n"]
    assert result.tls and result.unread_at_tls == b""
    assert result.sent_over_tls == [b"EHLO [127.0.0.1]\r\n"]
    assert result.end == Done(["8BITMIME", "AUTH"])


def test_smtp_keeps_the_extension_lines_of_the_ehlo_over_tls() -> None:
    dialog = smtp()
    assert dialog.extensions is None
    talk(
        dialog,
        SMTP_UNTIL_GO,
        b"250-mail.example greets [127.0.0.1]\r\n250-SIZE 35882577\r\n250 AUTH PLAIN LOGIN\r\n",
    )
    # As written, parameters and all; the greeting line (the server's name) is not an extension.
    assert dialog.extensions == ("SIZE 35882577", "AUTH PLAIN LOGIN")


def test_smtp_extensions_stay_unset_when_the_dialog_is_refused() -> None:
    dialog = smtp()
    talk(dialog, b"220 hi\r\n" + SMTP_EHLO + b"454 TLS not available\r\n")
    assert dialog.extensions is None


@pytest.mark.parametrize(
    ("server", "reason"),
    [
        (b"554 go away\r\n", "greeting 554 'go away'"),
        (b"220 hi\r\n250-x\r\n250 8BITMIME\r\n", "does not offer STARTTLS"),
        (
            b"220 hi\r\n" + SMTP_EHLO + b"454 TLS not available\r\n",
            "STARTTLS answered 454 'TLS not available'",
        ),
        (b"220 hi\r\n502 no EHLO\r\n", "EHLO answered 502"),
        (b"hello\r\n", "malformed reply 'hello'"),
        (b"220-a\r\n250 b\r\n", "different codes"),
        (b"220+x\r\n", "malformed reply"),
        # Digits outside ASCII are digits to str.isdigit but not a reply code.
        ("\u00b2\u00b2\u00b2 hi\r\n".encode(), "malformed reply"),
        (b"\xb2\xb2\xb2 hi\r\n", "malformed reply"),
        (b"", "closed the connection"),
        (b"220 hi\r\n", "closed the connection"),
        (b"220 cut", "in the middle of a reply line"),
        (b"220-x\r\n" * 300, "longer than 256 lines"),
        (b"220 " + b"x" * 5000 + b"\r\n", "longer than 4096 bytes"),
    ],
)
def test_smtp_refusals(server: bytes, reason: str) -> None:
    result = talk(smtp(), server)
    assert not result.tls
    assert result.refused.code is ErrorCode.STARTTLS_REFUSED
    assert reason in result.refused.reason
    assert not result.refused.after_tls


def test_smtp_refusal_over_tls_says_so() -> None:
    result = talk(smtp(), SMTP_UNTIL_GO, b"421 bye\r\n")
    assert result.tls
    assert result.refused.after_tls
    assert "EHLO over TLS answered 421" in result.refused.reason


def test_smtp_leaves_pipelined_plaintext_unread() -> None:
    """The go-ahead is the last line read: what follows it waits for enable_security's check."""
    result = talk(smtp(), SMTP_UNTIL_GO + b"250 forged\r\n", SMTP_OVER_TLS)
    assert result.unread_at_tls == b"250 forged\r\n"


def test_smtp_client_name_must_be_one_word() -> None:
    with pytest.raises(ValueError, match="one word"):
        SMTPDialog("two words")
    with pytest.raises(ValueError, match="one word"):
        SMTPDialog("x\r\nRCPT TO:<a@b>")


# -- IMAP ------------------------------------------------------------------------

IMAP_UNTIL_GO = (
    b"* OK [CAPABILITY IMAP4rev1] ready\r\n"
    b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n"
    b"A1 OK done\r\n"
    b"A2 OK Begin TLS\r\n"
)


def test_imap_happy_path() -> None:
    result = talk(IMAPDialog(), IMAP_UNTIL_GO)
    assert result.sent == [b"A1 CAPABILITY\r\n", b"A2 STARTTLS\r\n"]
    assert result.tls and result.unread_at_tls == b""
    assert result.sent_over_tls == []
    assert result.end == Done(None)


def test_imap_skips_untagged_responses_and_reads_lowercase_capabilities() -> None:
    server = (
        b"* OK hi\r\n* OK still starting\r\n* capability imap4rev1 starttls\r\nA1 ok\r\n* OK\r\nA2 OK\r\n"
    )
    assert talk(IMAPDialog(), server).tls


@pytest.mark.parametrize(
    ("server", "reason"),
    [
        (b"* PREAUTH welcome\r\n", "PREAUTH"),
        (b"* BYE busy\r\n", "greeting '* BYE busy'"),
        (b"hello\r\n", "greeting 'hello'"),
        (b"* OK\r\n* CAPABILITY IMAP4rev1\r\nA1 OK\r\n", "does not list STARTTLS"),
        (b"* OK\r\nA1 BAD what\r\n", "CAPABILITY answered BAD 'what'"),
        (b"* OK\r\n* CAPABILITY STARTTLS\r\nA1 OK\r\nA2 NO not now\r\n", "STARTTLS answered NO 'not now'"),
        (b"* OK\r\n* CAPABILITY STARTTLS\r\nA1 OK\r\nA3 OK\r\n", "unexpected tag"),
        (b"* OK\r\n" + b"* x\r\n" * 300, "more than 256 untagged"),
        (b"* OK " + b"x" * 9000 + b"\r\n", "longer than 8192 bytes"),
        (b"* OK\r\n", "closed the connection"),
    ],
)
def test_imap_refusals(server: bytes, reason: str) -> None:
    result = talk(IMAPDialog(), server)
    assert not result.tls
    assert result.refused.code is ErrorCode.STARTTLS_REFUSED
    assert reason in result.refused.reason


def test_imap_leaves_pipelined_plaintext_unread() -> None:
    result = talk(IMAPDialog(), IMAP_UNTIL_GO + b"* OK forged\r\n")
    assert result.unread_at_tls == b"* OK forged\r\n"


# -- POP3 ------------------------------------------------------------------------

POP3_CAPA = b"+OK\r\nUSER\r\nSTLS\r\nSASL PLAIN\r\n.\r\n"


def test_pop3_happy_path_with_capa() -> None:
    result = talk(POP3Dialog(), b"+OK ready\r\n" + POP3_CAPA + b"+OK begin TLS\r\n")
    assert result.sent == [b"CAPA\r\n", b"STLS\r\n"]
    assert result.tls and result.unread_at_tls == b""
    assert result.end == Done(None)


def test_pop3_without_capa_asks_stls_directly() -> None:
    result = talk(POP3Dialog(), b"+OK ready\r\n-ERR unknown command\r\n+OK begin TLS\r\n")
    assert result.sent == [b"CAPA\r\n", b"STLS\r\n"]
    assert result.tls


@pytest.mark.parametrize(
    ("server", "reason"),
    [
        (b"-ERR go away\r\n", "greeting '-ERR go away'"),
        (b"+OK\r\n+OK\r\nUSER\r\n.\r\n", "does not list STLS"),
        (b"+OK\r\n-ERR\r\n-ERR command not permitted\r\n", "STLS answered '-ERR command not permitted'"),
        (b"+OK\r\nwhat\r\n", "CAPA answered 'what'"),
        (b"+OK\r\n+OK\r\n" + b"X\r\n" * 300, "longer than 256 lines"),
        (b"+OK " + b"x" * 5000 + b"\r\n", "longer than 4096 bytes"),
        (b"+OK\r\n" + POP3_CAPA, "closed the connection"),
    ],
)
def test_pop3_refusals(server: bytes, reason: str) -> None:
    result = talk(POP3Dialog(), server)
    assert not result.tls
    assert result.refused.code is ErrorCode.STARTTLS_REFUSED
    assert reason in result.refused.reason


def test_pop3_leaves_pipelined_plaintext_unread() -> None:
    result = talk(POP3Dialog(), b"+OK\r\n-ERR\r\n+OK go\r\n+OK forged\r\n")
    assert result.unread_at_tls == b"+OK forged\r\n"


# -- FTP -------------------------------------------------------------------------

FTP_OVER_TLS = b"200 PBSZ=0\r\n200 Protection set to Private\r\n"


def test_ftp_happy_path() -> None:
    greeting = b"220-Welcome\r\n free text line\r\n220 ready\r\n"
    result = talk(FTPDialog(), greeting + b"234 AUTH TLS ok\r\n", FTP_OVER_TLS)
    assert result.sent == [b"AUTH TLS\r\n"]
    assert result.tls and result.unread_at_tls == b""
    assert result.sent_over_tls == [b"PBSZ 0\r\n", b"PROT P\r\n"]
    assert result.end == Done(None)


def test_ftp_waits_through_a_preliminary_greeting() -> None:
    result = talk(FTPDialog(), b"120 ready in 1 minute\r\n220 ready\r\n234 go\r\n", FTP_OVER_TLS)
    assert result.end == Done(None)


@pytest.mark.parametrize(
    ("server", "over_tls", "reason"),
    [
        (b"421 busy\r\n", b"", "greeting 421 'busy'"),
        (b"220 hi\r\n500 AUTH not understood\r\n", b"", "AUTH TLS answered 500"),
        (b"220 hi\r\n534 policy\r\n", b"", "AUTH TLS answered 534"),
        (b"hi\r\n", b"", "malformed reply"),
        ("\u0662\u0662\u0660 hi\r\n".encode(), b"", "malformed reply"),
        (b"220-x\r\n" + b"y\r\n" * 300, b"", "longer than 256 lines"),
        (b"120 wait\r\n" * 6, b"", "preliminary replies"),
        (b"220 " + b"x" * 5000 + b"\r\n", b"", "longer than 4096 bytes"),
        (b"220 hi\r\n", b"", "closed the connection"),
    ],
)
def test_ftp_refusals(server: bytes, over_tls: bytes, reason: str) -> None:
    result = talk(FTPDialog(), server, over_tls)
    assert not result.tls
    assert result.refused.code is ErrorCode.STARTTLS_REFUSED
    assert reason in result.refused.reason


@pytest.mark.parametrize(
    ("over_tls", "reason"),
    [
        (b"500 PBSZ?\r\n", "PBSZ 0 over TLS answered 500"),
        (
            b"200 ok\r\n534 no\r\n",
            "PROT P over TLS answered 534 'no'; data connections would not be protected",
        ),
    ],
)
def test_ftp_fails_closed_when_protection_is_refused_after_tls(over_tls: bytes, reason: str) -> None:
    result = talk(FTPDialog(), b"220 hi\r\n234 go\r\n", over_tls)
    assert result.tls
    assert result.refused.after_tls
    assert reason in result.refused.reason


def test_ftp_leaves_pipelined_plaintext_unread() -> None:
    result = talk(FTPDialog(), b"220 hi\r\n234 go\r\n200 forged\r\n", FTP_OVER_TLS)
    assert result.unread_at_tls == b"200 forged\r\n"


# -- PostgreSQL -------------------------------------------------------------------


def test_postgres_sslrequest_bytes() -> None:
    assert SSL_REQUEST == b"\x00\x00\x00\x08\x04\xd2\x16\x2f"  # 8, then 1234 << 16 | 5679


def test_postgres_happy_path() -> None:
    result = talk(PostgresDialog(), b"S")
    assert result.sent == [SSL_REQUEST]
    assert result.tls and result.unread_at_tls == b""
    assert result.end == Done(None)


def error_packet(message: str) -> bytes:
    fields = b"SFATAL\0" + b"M" + message.encode() + b"\0\0"
    return b"E" + struct.pack("!I", len(fields) + 4) + fields


@pytest.mark.parametrize(
    ("server", "reason"),
    [
        (b"N", "does not accept SSL connections"),
        (
            error_packet("unsupported frontend protocol 1234.5679"),
            "error packet: 'unsupported frontend protocol",
        ),
        (b"E\x00\x00", "error packet"),
        (b"X", "with 'X', not 'S' or 'N'"),
        (b"", "closed the connection"),
    ],
)
def test_postgres_refusals(server: bytes, reason: str) -> None:
    result = talk(PostgresDialog(), server)
    assert not result.tls
    assert result.refused.code is ErrorCode.STARTTLS_REFUSED
    assert reason in result.refused.reason


def test_postgres_refuses_bytes_after_s() -> None:
    result = talk(PostgresDialog(), b"SR\x00\x00\x00\x08\x00\x00\x00\x00")
    assert not result.tls
    assert result.refused.code is ErrorCode.UNEXPECTED_PLAINTEXT
    assert "9 byte(s) of plaintext after its 'S'" in result.refused.reason


def test_postgres_reads_are_bounded() -> None:
    dialog = PostgresDialog()
    assert isinstance(dialog.start(), Send)
    step = dialog.proceed()
    assert isinstance(step, ReadSome) and step.max_bytes <= 1024


# -- LDAP ------------------------------------------------------------------------


def test_ldap_request_bytes() -> None:
    # LDAPMessage { messageID 1, [APPLICATION 23] { [0] "1.3.6.1.4.1.1466.20037" } }
    assert bytes.fromhex("301d02010177188016") + b"1.3.6.1.4.1.1466.20037" == STARTTLS_REQUEST


def ldap_response(
    code: int, diagnostic: bytes = b"", *, message_id: int = 1, name: bytes | None = None
) -> bytes:
    body = b"\x0a\x01" + bytes([code]) + b"\x04\x00" + b"\x04" + bytes([len(diagnostic)]) + diagnostic
    if name is not None:
        body += b"\x8a" + bytes([len(name)]) + name
    op = b"\x78" + bytes([len(body)]) + body
    message = b"\x02\x01" + bytes([message_id]) + op
    return b"\x30" + bytes([len(message)]) + message


def test_ldap_happy_path_as_slapd_answers() -> None:
    # slapd 2.5's success answer, byte for byte: no responseName.
    result = talk(LDAPDialog(), bytes.fromhex("300c02010178070a0100040004 00".replace(" ", "")))
    assert result.sent == [STARTTLS_REQUEST]
    assert result.tls and result.unread_at_tls == b""


def test_ldap_happy_path_with_response_name_and_long_form_length() -> None:
    response = ldap_response(0, name=b"1.3.6.1.4.1.1466.20037")
    long_form = b"\x30\x82" + struct.pack("!H", response[1]) + response[2:]
    assert talk(LDAPDialog(), long_form).tls


@pytest.mark.parametrize(
    ("server", "reason"),
    [
        (
            ldap_response(2, b"unsupported extended operation"),
            "resultCode 2 (protocolError): 'unsupported extended",
        ),
        (ldap_response(52), "resultCode 52 (unavailable)"),
        (ldap_response(99), "resultCode 99 (unknown result code)"),
        (ldap_response(0, message_id=7), "messageID 7"),
        (
            ldap_response(52, b"shutting down", message_id=0, name=b"1.3.6.1.4.1.1466.20036"),
            "Notice of Disconnection, resultCode 52",
        ),
        (ldap_response(0, name=b"1.2.3"), "naming '1.2.3'"),
        (b"\x04\x00", "not an LDAPMessage"),
        (b"\x30\x80", "indefinite length"),
        (b"\x30\x85\x01\x00\x00\x00\x00", "a length of 5 octets"),
        (b"\x30\x84\x7f\xff\xff\xff", "more than 16384"),
        (b"\x30\x05\x02\x01\x01\x78\x09", "claims 9 bytes, 0 remain"),
        (b"\x30\x03\x02\x01\x01", "cut short"),
        (b"\x30\x05\x02\x01\x01\x61\x00", "not an ExtendedResponse"),
        (b"\x30\x05\x02\x00\x78\x01\x00", "messageID of 0 octets"),
        (b"\x30\x07\x02\x01\x01\x78\x01\x00", "closed the connection"),
        (b"\x30", "closed the connection"),
        (b"", "closed the connection"),
    ],
)
def test_ldap_refusals(server: bytes, reason: str) -> None:
    result = talk(LDAPDialog(), server)
    assert not result.tls
    assert result.refused.code is ErrorCode.STARTTLS_REFUSED
    assert reason in result.refused.reason


def test_ldap_never_reads_past_the_response() -> None:
    forged = ldap_response(0, message_id=2)
    result = talk(LDAPDialog(), ldap_response(0) + forged)
    assert result.unread_at_tls == forged


def test_ldap_checks_the_length_before_reading_the_body() -> None:
    dialog = LDAPDialog()
    dialog.start()
    assert dialog.proceed() == ReadExactly(2)
    assert dialog.receive(b"\x30\x84") == ReadExactly(4)
    step = dialog.receive(b"\x01\x00\x00\x00")  # 16 MiB claimed: refused, not read
    assert isinstance(step, Refused) and "more than 16384" in step.reason


def test_parse_tlv_bounds() -> None:
    assert parse_tlv(b"\x04\x02ab\x05", 0) == (0x04, b"ab", 4)
    assert parse_tlv(b"\x04\x81\x02ab", 0) == (0x04, b"ab", 5)
    for bad in (b"\x04", b"\x04\x03ab", b"\x1f\x01a", b"\x04\x82\x00", b"\x04\x80"):
        with pytest.raises(Exception, match="malformed"):
            parse_tlv(bad, 0)


# -- XMPP ------------------------------------------------------------------------

XMPP_HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' "
    b"version='1.0' xmlns='jabber:client' from='localhost' id='1'>"
)
XMPP_FEATURES = (
    b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
    b"</stream:features>"
)
XMPP_PROCEED = b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"


def test_xmpp_stream_header_names_the_host() -> None:
    assert stream_header("localhost") == (
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
        b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
    )
    assert b"to='a&apos;b&lt;'" in stream_header("a'b<")  # escaped, whatever the name


@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_xmpp_happy_path(chunk: int | None) -> None:
    """The same bytes, in one read or split anywhere."""
    result = talk(XMPPDialog("localhost"), [b"", XMPP_HEADER + XMPP_FEATURES, XMPP_PROCEED], chunk=chunk)
    assert result.sent == [stream_header("localhost"), STARTTLS_ELEMENT]
    assert result.tls and result.unread_at_tls == b""
    assert result.end == Done(None)


def test_xmpp_proceed_with_an_end_tag() -> None:
    proceed = b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'></proceed>"
    assert talk(XMPPDialog("localhost"), [b"", XMPP_HEADER + XMPP_FEATURES, proceed]).tls


@pytest.mark.parametrize(
    ("server", "reason"),
    [
        (
            XMPP_HEADER
            + b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></stream:features>",
            "does not offer starttls in its stream features (it offers mechanisms)",
        ),
        (XMPP_HEADER + XMPP_FEATURES + b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", "<failure/>"),
        (XMPP_HEADER + XMPP_FEATURES + b"<success/>", "answered starttls with 'success'"),
        (XMPP_HEADER + b"<message/>", "'message' instead of stream features"),
        (
            XMPP_HEADER
            + b"<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "stream error (host-unknown)",
        ),
        (XMPP_HEADER + b"</stream:stream>", "closed the XML stream"),
        (b"<html>", "not an XMPP stream"),
        (XMPP_HEADER.replace(b"version='1.0' ", b""), "version ''"),
        (XMPP_HEADER.replace(b"version='1.0'", b"version='0.9'"), "version '0.9'"),
        (XMPP_HEADER + b"<a></b>", "malformed XML"),
        (b"<!DOCTYPE x [<!ENTITY a 'b'>]>" + XMPP_HEADER, "DTD"),
        (XMPP_HEADER + b"<!-- hi -->", "DTD, comment"),
        (XMPP_HEADER + b"<?pi x?>", "processing instruction"),
        (XMPP_HEADER + b"<stream:features>" + b"<x/>" * 20000, "more than 65536 bytes"),
        (XMPP_HEADER, "closed the connection"),
    ],
)
def test_xmpp_refusals(server: bytes, reason: str) -> None:
    result = talk(XMPPDialog("localhost"), server)
    assert not result.tls
    assert result.refused.code is ErrorCode.STARTTLS_REFUSED
    assert reason in result.refused.reason


def test_xmpp_dtd_split_over_two_reads_is_still_seen() -> None:
    result = talk(XMPPDialog("localhost"), XMPP_HEADER + b"<!-- x -->", chunk=len(XMPP_HEADER) + 1)
    assert "DTD, comment" in result.refused.reason


@pytest.mark.parametrize("after", [b"<message>forged</message>", b" ", b"<mess", b"</stream:stream>", b"x"])
def test_xmpp_refuses_plaintext_after_proceed(after: bytes) -> None:
    result = talk(XMPPDialog("localhost"), [b"", XMPP_HEADER + XMPP_FEATURES, XMPP_PROCEED + after])
    assert not result.tls
    assert result.refused.code is ErrorCode.UNEXPECTED_PLAINTEXT


def test_xmpp_refuses_a_proceed_sent_before_it_was_asked_for() -> None:
    """A proceed that came with the features was pipelined, not an answer: plaintext injection."""
    dialog = XMPPDialog("localhost")
    dialog.start()
    assert isinstance(dialog.proceed(), ReadSome)
    step = dialog.receive(XMPP_HEADER + XMPP_FEATURES + XMPP_PROCEED)  # all before our <starttls/>
    assert step == Send(STARTTLS_ELEMENT)
    step = dialog.proceed()
    assert isinstance(step, Refused) and step.code is ErrorCode.UNEXPECTED_PLAINTEXT


def test_xmpp_reads_are_bounded() -> None:
    dialog = XMPPDialog("localhost")
    dialog.start()
    step = dialog.proceed()
    assert isinstance(step, ReadSome) and step.max_bytes <= 4096


def test_xmpp_needs_a_host() -> None:
    with pytest.raises(ValueError, match="domain"):
        XMPPDialog("")


# -- the object's contract --------------------------------------------------------


def test_new_dialog_knows_every_name() -> None:
    for name in NAMES:
        dialog = new_dialog(name, "localhost", "127.0.0.1")
        assert dialog.name == name
    assert isinstance(new_dialog("smtp", "h", "::1"), SMTPDialog)
    assert new_dialog("smtp", "h", "::1").client_name == "[IPv6:::1]"  # type: ignore[attr-defined]
    assert new_dialog("smtp", "h", "::1", client_name="me.example").client_name == "me.example"  # type: ignore[attr-defined]
    with pytest.raises(KeyError):
        new_dialog("gopher", "h", "127.0.0.1")


def test_steps_out_of_turn_are_errors() -> None:
    dialog = IMAPDialog()
    with pytest.raises(RuntimeError):
        dialog.proceed()
    step = dialog.start()
    assert isinstance(step, ReadLine)
    with pytest.raises(RuntimeError, match="already started"):
        dialog.start()
    with pytest.raises(RuntimeError, match="not waiting for a send"):
        dialog.proceed()
    with pytest.raises(ValueError, match="one line at a time"):
        dialog.receive(b"* OK\r\n* OK\r\n")
    step = dialog.receive(b"* OK\r\n")
    assert isinstance(step, Send)
    with pytest.raises(RuntimeError, match="not waiting for input"):
        dialog.receive(b"x")


def test_a_read_may_not_hand_over_more_than_asked() -> None:
    dialog = LDAPDialog()
    dialog.start()
    dialog.proceed()
    with pytest.raises(ValueError, match="ReadExactly"):
        dialog.receive(b"\x30\x03\x02")
    postgres = PostgresDialog()
    postgres.start()
    step = postgres.proceed()
    assert isinstance(step, ReadSome)
    with pytest.raises(ValueError, match="ReadSome"):
        postgres.receive(b"S" * (step.max_bytes + 1))


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(NAMES), server=st.binary(max_size=600), chunk=st.integers(1, 64))
def test_any_bytes_end_in_a_verdict(name: str, server: bytes, chunk: int) -> None:
    """Whatever the server says, a dialog ends (Done or Refused) and never raises."""
    result = talk(new_dialog(name, "localhost", "127.0.0.1"), server, server, chunk=chunk)
    assert isinstance(result.end, Done | Refused)
    if isinstance(result.end, Refused):
        assert result.end.code in (ErrorCode.STARTTLS_REFUSED, ErrorCode.UNEXPECTED_PLAINTEXT)
