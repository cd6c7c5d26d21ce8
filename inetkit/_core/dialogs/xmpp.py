"""XMPP STARTTLS (RFC 6120 §5): stream header, features with starttls, ``<starttls/>``, ``<proceed/>``.

The client opens a stream to the host name, reads the server's stream header
and ``<stream:features>``, requires ``<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>``
among them, sends ``<starttls/>`` and requires ``<proceed/>`` (``<failure/>``
is a refusal, RFC 6120 §5.4.2.2). After TLS the caller opens a new stream
(RFC 6120 §5.4.3.3: the old one is gone).

Parsing is incremental (`xml.etree.ElementTree.XMLPullParser`) and bounded:
at most `XMPP_MAX_BYTES` are read before the go-ahead, in reads of at most
`XMPP_READ_BYTES`. RFC 6120 §11.1 restricted XML is enforced: comments,
processing instructions and DTDs (``<!``, the door to entity expansion) are
refused. Everything the server sent after our ``<starttls/>`` must be the
``<proceed/>`` element and nothing else: anything after it in the reads so
far (another element, text, even whitespace) was sent in plaintext before
the handshake and is refused with ``UNEXPECTED_PLAINTEXT``; whatever arrives
later is left in the socket for ``enable_security``'s own check.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Generator
from xml.etree.ElementTree import Element, ParseError, XMLPullParser
from xml.sax.saxutils import escape

from ..._errors import ErrorCode
from ._steps import Dialog, ReadSome, Refusal, Script, Send, StartTLS, Step, quote

__all__ = ["STARTTLS_ELEMENT", "XMPPDialog", "stream_header"]

STREAMS_NS = "http://etherx.jabber.org/streams"
TLS_NS = "urn:ietf:params:xml:ns:xmpp-tls"
STREAM_TAG = f"{{{STREAMS_NS}}}stream"
FEATURES_TAG = f"{{{STREAMS_NS}}}features"
ERROR_TAG = f"{{{STREAMS_NS}}}error"
STARTTLS_TAG = f"{{{TLS_NS}}}starttls"
PROCEED_TAG = f"{{{TLS_NS}}}proceed"
FAILURE_TAG = f"{{{TLS_NS}}}failure"

#: What the client sends to ask for TLS (RFC 6120 §5.4.2.1).
STARTTLS_ELEMENT = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
#: Bytes read before the go-ahead, at most: a stream header and features are
#: well under 4 KiB (Prosody's are about 600 bytes); this bounds a server that
#: never finishes them.
XMPP_MAX_BYTES = 65536
#: One read's size: a whole header and features usually come in one.
XMPP_READ_BYTES = 4096
#: The element depth of a stream's direct children (the stream itself is 1).
TOP_LEVEL = 2
#: Everything the server may send after our ``<starttls/>``: one proceed element (empty, or
#: with only whitespace inside), maybe after whitespace, and not a byte after it.
_PROCEED_ONLY = re.compile(
    rb"\s*<(?:[A-Za-z_][\w.-]*:)?proceed(?:\s[^<>]*)?(?:/>|>\s*</(?:[A-Za-z_][\w.-]*:)?proceed\s*>)"
)


#: Quotes escaped in attribute values (``escape`` does ``&``, ``<`` and ``>``).
_QUOTES = {"'": "&apos;", '"': "&quot;"}


def stream_header(host: str) -> bytes:
    """The initial stream header to ``host`` (RFC 6120 §4.7), ``to=`` escaped."""
    return (
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
        f"xmlns:stream='{STREAMS_NS}' to='{escape(host, _QUOTES)}' version='1.0'>"
    ).encode()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class XMPPDialog(Dialog):
    """XMPP STARTTLS; the caller opens a new stream over TLS."""

    name = "xmpp"

    def __init__(self, host: str) -> None:
        super().__init__()
        if not host:
            raise ValueError("an XMPP stream needs the server's domain (to=)")
        self.host = host
        self._parser: XMLPullParser[Element] = XMLPullParser(events=("start", "end", "comment", "pi"))
        self._events: deque[tuple[str, object]] = deque()
        self._depth = 0
        self._received = 0
        self._tail = b""  # the last byte of the previous read, to see "<!" split over two reads
        self._answer: bytearray | None = None  # what arrived after our <starttls/>

    def _event(self) -> Generator[Step, bytes | None, tuple[str, object]]:
        """The next parse event, reading (bounded) when none is pending."""
        while not self._events:
            room = XMPP_MAX_BYTES - self._received
            if room <= 0:
                raise Refusal(
                    f"more than {XMPP_MAX_BYTES} bytes from the server without the expected element"
                )
            data = yield ReadSome(min(XMPP_READ_BYTES, room))
            assert data is not None
            if not data:
                raise Refusal("the server closed the connection")
            self._received += len(data)
            if b"<!" in self._tail + data:
                raise Refusal("the server sent a DTD, comment or CDATA section (RFC 6120 §11.1 forbids them)")
            self._tail = data[-1:]
            if self._answer is not None:
                self._answer += data
            try:
                self._parser.feed(data)
                for event in self._parser.read_events():
                    self._events.append((event[0], event[1] if len(event) > 1 else None))
            except ParseError as exc:
                raise Refusal(f"malformed XML from the server ({exc})") from None
        return self._events.popleft()

    def _top_level_element(self) -> Generator[Step, bytes | None, Element]:
        """The next complete child of the stream (the stream header is checked on the way)."""
        while True:
            kind, item = yield from self._event()
            if kind in ("comment", "pi"):
                raise Refusal("the server sent a comment or processing instruction, which XMPP forbids")
            assert isinstance(item, Element)
            if kind == "start":
                self._depth += 1
                if self._depth == 1:
                    self._check_stream(item)
                continue
            self._depth -= 1
            if self._depth == 0:
                raise Refusal("the server closed the XML stream")
            if self._depth == TOP_LEVEL - 1:
                if item.tag == ERROR_TAG:
                    condition = ", ".join(_local(child.tag) for child in item) or "no condition"
                    raise Refusal(f"the server sent a stream error ({condition})")
                return item

    def _check_stream(self, root: Element) -> None:
        if root.tag != STREAM_TAG:
            raise Refusal(f"the server opened {quote(root.tag)}, not an XMPP stream")
        version = root.get("version", "")
        major = version.split(".", 1)[0]
        if not (major.isascii() and major.isdigit()) or int(major) < 1:
            raise Refusal(f"the server speaks XMPP version {quote(version)}, without stream features")

    def _script(self) -> Script:
        yield Send(stream_header(self.host))
        features = yield from self._top_level_element()
        if features.tag != FEATURES_TAG:
            raise Refusal(f"the server sent {quote(_local(features.tag))} instead of stream features")
        if features.find(STARTTLS_TAG) is None:
            offered = ", ".join(_local(child.tag) for child in features) or "nothing"
            raise Refusal(f"the server does not offer starttls in its stream features (it offers {offered})")
        yield Send(STARTTLS_ELEMENT)
        self._answer = bytearray()
        answer = yield from self._top_level_element()
        if answer.tag == FAILURE_TAG:
            raise Refusal("the server answered starttls with <failure/>")
        if answer.tag != PROCEED_TAG:
            raise Refusal(f"the server answered starttls with {quote(_local(answer.tag))}, not <proceed/>")
        if self._events or not _PROCEED_ONLY.fullmatch(self._answer):
            raise Refusal(
                "the server sent plaintext after <proceed/>; refusing to start TLS (bytes sent in the clear "
                "must not be mistaken for protected data)",
                ErrorCode.UNEXPECTED_PLAINTEXT,
            )
        yield StartTLS()
        return None
