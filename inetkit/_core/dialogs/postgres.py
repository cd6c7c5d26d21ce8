"""PostgreSQL SSLRequest (protocol 3, "SSL Session Encryption"): ask, then take one byte.

The client sends an 8-byte SSLRequest; the server answers with one byte:
``S`` (go ahead) or ``N`` (no TLS here). Anything else is refused: an old
server answers with an ``E`` ErrorResponse, whose message is quoted when it
came along. ``S`` must come alone: bytes after it were sent in plaintext
before the handshake and would later pass for protected data (CVE-2021-23222,
the libpq response-injection bug), so they are refused with
``UNEXPECTED_PLAINTEXT``. After TLS the caller sends its StartupMessage.
"""

from __future__ import annotations

import struct

from ..._errors import ErrorCode
from ._steps import Dialog, ReadSome, Refusal, Script, Send, StartTLS, quote

__all__ = ["SSL_REQUEST", "PostgresDialog"]

#: The SSLRequest code: 1234 in the high 16 bits, 5679 in the low 16 bits.
SSL_REQUEST_CODE = 80877103
#: The SSLRequest message: int32 length 8 (itself included), int32 code.
SSL_REQUEST = struct.pack("!II", 8, SSL_REQUEST_CODE)
#: How much of the answer one read takes: the verdict byte, and room to see
#: an error packet's message or bytes pipelined behind ``S``.
POSTGRES_ANSWER_BYTES = 512


def _error_message(packet: bytes) -> str | None:
    """The ``M`` field of a (possibly cut) ErrorResponse, or None."""
    body = packet[5:]  # the type byte "E" and the int32 length
    while body and body[0] != 0:
        field, end = body[0], body.find(b"\0", 1)
        if end < 0:
            return None  # cut before the end of this field
        if field == ord("M"):
            return body[1:end].decode("utf-8", "replace")
        body = body[end + 1 :]
    return None


class PostgresDialog(Dialog):
    """PostgreSQL SSLRequest; the caller sends the StartupMessage over TLS."""

    name = "postgres"

    def _script(self) -> Script:
        yield Send(SSL_REQUEST)
        answer = yield ReadSome(POSTGRES_ANSWER_BYTES)
        assert answer is not None
        if not answer:
            raise Refusal("the server closed the connection")
        verdict = answer[:1]
        if verdict == b"N":
            raise Refusal("the server does not accept SSL connections (it answered 'N' to SSLRequest)")
        if verdict == b"E":
            message = _error_message(answer)
            said = f": {quote(message)}" if message else ""
            raise Refusal(f"the server answered SSLRequest with an error packet{said}")
        if verdict != b"S":
            raise Refusal(f"the server answered SSLRequest with {quote(answer[:16])}, not 'S' or 'N'")
        if len(answer) > 1:
            raise Refusal(
                f"the server sent {len(answer) - 1} byte(s) of plaintext after its 'S'; refusing to start "
                "TLS (bytes sent in the clear must not be mistaken for protected data)",
                ErrorCode.UNEXPECTED_PLAINTEXT,
            )
        yield StartTLS()
        return None
