"""Server-sent events, parsed as bytes arrive: the framing of OpenAI's, Azure's and
Anthropic's streams and of many teams' own services.

The client hands over the body in blocks of complete lines, one block per socket read
(see `loadkit.traffic.client`). `SSEParser.feed_lines` turns them into event payloads
(the `data:` field, joined over continuation lines, dispatched on the blank line): the
OpenAI hot path, which needs no event names. `feed_events` gives (event name, payload)
pairs for the APIs that name their events (Anthropic, a copilot's `event: token`).
"""

from __future__ import annotations


class SSEParser:
    """Feed raw lines; get complete event payloads."""

    __slots__ = ("_data", "_event", "junk")

    def __init__(self) -> None:
        self._data: list[bytes] = []
        self._event = b""
        self.junk: bytes | None = None  # the first line that is no SSE field (HTML, text)

    def feed_lines(self, block: bytes) -> list[bytes]:
        """Payloads of the events completed by `block`: complete lines joined by `\\n`,
        without the last line's ending (one socket read's worth)."""
        events: list[bytes] = []
        data = self._data
        for line in block.split(b"\n"):
            if line[-1:] == b"\r":
                line = line[:-1]
            if not line:
                if data:
                    events.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data.clear()
            elif line[:5] == b"data:":
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif self.junk is None and not _is_field(line):
                self.junk = line
            # comments (":"), "event:", "id:", "retry:" lines carry nothing the client needs
        return events

    def feed(self, raw: bytes) -> str | None:
        """One line (with or without its ending): the data of an event it completes, else None."""
        events = self.feed_lines(raw.rstrip(b"\r\n"))
        return events[0].decode("utf-8", "replace") if events else None

    def finish(self) -> str | None:
        """Data of an event the stream ended without a blank line after (lenient)."""
        if not self._data:
            return None
        data = b"\n".join(self._data).decode("utf-8", "replace")
        self._data.clear()
        return data

    def feed_events(self, block: bytes) -> list[tuple[str, bytes]]:
        """(event name, payload) of the events completed by `block` ("" when unnamed)."""
        events: list[tuple[str, bytes]] = []
        data = self._data
        for line in block.split(b"\n"):
            if line[-1:] == b"\r":
                line = line[:-1]
            if not line:
                if data:
                    payload = data[0] if len(data) == 1 else b"\n".join(data)
                    events.append((self._event.decode("utf-8", "replace"), payload))
                    data.clear()
                self._event = b""
            elif line[:5] == b"data:":
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line[:6] == b"event:":
                self._event = line[6:].strip()
            elif self.junk is None and not _is_field(line):
                self.junk = line
        return events


_FIELDS = frozenset({b"event", b"data", b"id", b"retry"})


def _is_field(line: bytes) -> bool:
    """A comment or one of the four fields the SSE format defines (with or without a
    value). The format lets a reader skip other lines; a load test names them instead: an
    HTML page or plain text inside a stream is not what the service meant to send."""
    return line[:1] == b":" or line.partition(b":")[0] in _FIELDS
