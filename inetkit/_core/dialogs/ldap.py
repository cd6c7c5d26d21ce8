"""LDAP StartTLS (RFC 4511 §4.14, §4.12): one ExtendedRequest, one ExtendedResponse.

The request is a BER-encoded LDAPMessage (messageID 1, ``[APPLICATION 23]``
ExtendedRequest with requestName ``1.3.6.1.4.1.1466.20037``). The response is
read as BER with every length checked: the outer header first (tag, then a
short- or long-form length of at most `LDAP_MAX_LENGTH_OCTETS` octets, the
indefinite form refused as RFC 4511 §5.1 requires), a message longer than
`LDAP_MAX_MESSAGE` is refused before any of it is read, and the inner
elements are parsed only within the bytes actually received. ``resultCode``
0 is the go-ahead; any other code is refused with its number and name and
the server's diagnostic message. An unsolicited Notice of Disconnection
(messageID 0) is a refusal too. After TLS the caller binds.
"""

from __future__ import annotations

from ._steps import Dialog, ReadExactly, Refusal, Script, Send, StartTLS, quote

__all__ = ["STARTTLS_OID", "STARTTLS_REQUEST", "LDAPDialog", "parse_tlv"]

#: The StartTLS extended operation (RFC 4511 §4.14.1).
STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"
#: The Notice of Disconnection's responseName (RFC 4511 §4.4.1).
NOTICE_OF_DISCONNECTION_OID = b"1.3.6.1.4.1.1466.20036"

# BER tags (X.690 §8.1.2), as LDAP uses them.
TAG_INTEGER = 0x02
TAG_OCTET_STRING = 0x04
TAG_ENUMERATED = 0x0A
TAG_SEQUENCE = 0x30
TAG_EXTENDED_REQUEST = 0x77  # [APPLICATION 23], constructed
TAG_EXTENDED_RESPONSE = 0x78  # [APPLICATION 24], constructed
TAG_REQUEST_NAME = 0x80  # [0] primitive, inside ExtendedRequest
TAG_RESPONSE_NAME = 0x8A  # [10] primitive, inside ExtendedResponse

#: A StartTLS response is a few dozen bytes; a long diagnostic fits in this.
LDAP_MAX_MESSAGE = 16384
#: Long-form length octets we accept (4 give lengths up to 4 GiB, far past the limit anyway).
LDAP_MAX_LENGTH_OCTETS = 4
#: An INTEGER/ENUMERATED longer than this is no messageID or resultCode (RFC 4511: 0..2^31-1).
LDAP_MAX_INTEGER_OCTETS = 4

#: resultCode names (RFC 4511 §4.1.9, Appendix A).
RESULT_CODES = {
    0: "success",
    1: "operationsError",
    2: "protocolError",
    3: "timeLimitExceeded",
    4: "sizeLimitExceeded",
    7: "authMethodNotSupported",
    8: "strongerAuthRequired",
    11: "adminLimitExceeded",
    12: "unavailableCriticalExtension",
    13: "confidentialityRequired",
    48: "inappropriateAuthentication",
    50: "insufficientAccessRights",
    51: "busy",
    52: "unavailable",
    53: "unwillingToPerform",
    80: "other",
}


def _tlv(tag: int, value: bytes) -> bytes:
    """One BER element with a definite length (short form below 128, else long form)."""
    size = len(value)
    if size < 0x80:
        return bytes([tag, size]) + value
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + value


#: The whole request: LDAPMessage { messageID 1, extendedReq { requestName STARTTLS_OID } }.
STARTTLS_REQUEST = _tlv(
    TAG_SEQUENCE,
    _tlv(TAG_INTEGER, b"\x01") + _tlv(TAG_EXTENDED_REQUEST, _tlv(TAG_REQUEST_NAME, STARTTLS_OID)),
)


def parse_tlv(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """One BER element of ``data`` at ``pos``: (tag, value, position after it), lengths checked.

    Only what LDAP allows is accepted: one-octet tags, definite lengths. A
    length that runs past the end of ``data`` is refused, whatever it claims.
    """
    if pos + 2 > len(data):
        raise Refusal("a malformed response (an element cut short)")
    tag, first = data[pos], data[pos + 1]
    if tag & 0x1F == 0x1F:
        raise Refusal(f"a malformed response (multi-octet tag at byte {pos})")
    pos += 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise Refusal("a malformed response (indefinite length, which LDAP forbids)")
    else:
        count = first & 0x7F
        if count > LDAP_MAX_LENGTH_OCTETS or pos + count > len(data):
            raise Refusal("a malformed response (a length field out of bounds)")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if length > len(data) - pos:
        raise Refusal(f"a malformed response (an element claims {length} bytes, {len(data) - pos} remain)")
    return tag, data[pos : pos + length], pos + length


def _integer(value: bytes, what: str) -> int:
    if not 1 <= len(value) <= LDAP_MAX_INTEGER_OCTETS:
        raise Refusal(f"a malformed response ({what} of {len(value)} octets)")
    return int.from_bytes(value, "big", signed=True)


def _expect(data: bytes, pos: int, tag: int, what: str) -> tuple[bytes, int]:
    found, value, pos = parse_tlv(data, pos)
    if found != tag:
        raise Refusal(f"a malformed response ({what}: tag 0x{found:02x}, expected 0x{tag:02x})")
    return value, pos


def _result_name(code: int) -> str:
    return RESULT_CODES.get(code, "unknown result code")


class LDAPDialog(Dialog):
    """LDAP StartTLS; the caller binds next over TLS."""

    name = "ldap"

    def _read_message(self) -> Script:
        """Read one LDAPMessage (its header first, so the length is checked before the body is read)."""
        header = yield ReadExactly(2)
        assert header is not None
        if len(header) < 2:
            raise Refusal("the server closed the connection")
        if header[0] != TAG_SEQUENCE:
            raise Refusal(f"a malformed response (it starts with 0x{header[0]:02x}, not an LDAPMessage)")
        first = header[1]
        if first == 0x80:
            raise Refusal("a malformed response (indefinite length, which LDAP forbids)")
        if first > 0x80:
            count = first & 0x7F
            if count > LDAP_MAX_LENGTH_OCTETS:
                raise Refusal(f"a malformed response (a length of {count} octets)")
            length_octets = yield ReadExactly(count)
            assert length_octets is not None  # a read step is always answered with bytes
            if len(length_octets) < count:
                raise Refusal("the server closed the connection")
            length = int.from_bytes(length_octets, "big")
        else:
            length = first
        if length > LDAP_MAX_MESSAGE:
            raise Refusal(f"a response of {length} bytes (more than {LDAP_MAX_MESSAGE})")
        body = yield ReadExactly(length)
        assert body is not None
        if len(body) < length:
            raise Refusal("the server closed the connection")
        return body

    def _script(self) -> Script:
        yield Send(STARTTLS_REQUEST)
        body = yield from self._read_message()
        assert isinstance(body, bytes)
        message_id_value, pos = _expect(body, 0, TAG_INTEGER, "messageID")
        message_id = _integer(message_id_value, "messageID")
        op, response, _ = parse_tlv(body, pos)  # optional controls after it are ignored
        if op != TAG_EXTENDED_RESPONSE:
            raise Refusal(f"a response that is not an ExtendedResponse (tag 0x{op:02x})")
        code_value, pos = _expect(response, 0, TAG_ENUMERATED, "resultCode")
        code = _integer(code_value, "resultCode")
        _, pos = _expect(response, pos, TAG_OCTET_STRING, "matchedDN")
        diagnostic, pos = _expect(response, pos, TAG_OCTET_STRING, "diagnosticMessage")
        name = None
        while pos < len(response):
            tag, value, pos = parse_tlv(response, pos)
            if tag == TAG_RESPONSE_NAME:
                name = value
        said = f": {quote(diagnostic)}" if diagnostic else ""
        if message_id == 0:
            notice = name == NOTICE_OF_DISCONNECTION_OID
            what = "a Notice of Disconnection" if notice else "an unsolicited notice"
            raise Refusal(f"the server sent {what}, resultCode {code} ({_result_name(code)}){said}")
        if message_id != 1:
            raise Refusal(f"a response to messageID {message_id}, not to the StartTLS request (1)")
        if code != 0:
            raise Refusal(f"StartTLS answered resultCode {code} ({_result_name(code)}){said}")
        if name is not None and name != STARTTLS_OID:
            raise Refusal(f"a success response naming {quote(name)}, not the StartTLS operation")
        yield StartTLS()
        return None
