"""What one benchmark stream looks like: its SSE events and the decode step each is due at.

The bare server must send what the mock sends, so the template is captured from the mock
itself (one idle stream, event times rounded to whole decode steps). Without a mock (a
`--servers bare` run) an OpenAI-shaped synthetic template stands in.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Template:
    """Pre-encoded events and the decode step (0-based, from the first event) of each."""

    events: tuple[bytes, ...]
    steps: tuple[int, ...]
    first_delay_ms: float
    content_type: str = "text/event-stream"
    source: str = "synthetic"

    def __post_init__(self) -> None:
        if not self.events or len(self.events) != len(self.steps):
            raise ValueError("a template needs events, one step each")
        if any(b < a for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError(f"template steps must not decrease: {self.steps}")

    def save(self, path: Path) -> None:
        doc = {
            "events": [e.decode() for e in self.events],
            "steps": list(self.steps),
            "first_delay_ms": self.first_delay_ms,
            "content_type": self.content_type,
            "source": self.source,
        }
        path.write_text(json.dumps(doc))

    @classmethod
    def load(cls, path: Path) -> Template:
        raw = json.loads(path.read_text())
        return cls(
            events=tuple(e.encode() for e in raw["events"]),
            steps=tuple(int(s) for s in raw["steps"]),
            first_delay_ms=float(raw.get("first_delay_ms", 0.0)),
            content_type=str(raw.get("content_type", "text/event-stream")),
            source=str(raw.get("source", "file")),
        )


def synthetic_template(tokens: int, step_ms: float) -> Template:
    """OpenAI chat-completion chunks: role + first token at step 0, one token per step after."""

    def chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
        body: dict = {
            "id": "chatcmpl-0123456789abcdef01234567",
            "object": "chat.completion.chunk",
            "created": 1764000000,
            "model": "mock-small",
            "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if usage:
            body["usage"] = usage
        return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    steps = [0]
    for i in range(tokens):
        events.append(chunk({"content": " tok"}))
        steps.append(i)
    usage = {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": tokens + 10}
    events += [chunk({}, "length"), chunk({}, usage=usage), b"data: [DONE]\n\n"]
    steps += [tokens - 1] * 3
    return Template(tuple(events), tuple(steps), first_delay_ms=step_ms, source="synthetic")


def _probe(url: str, body: bytes) -> tuple[float, list[tuple[float, bytes]], str]:
    """One streamed request: (send time, [(arrival, event bytes)], content type)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        t_send = time.perf_counter()
        conn.request(
            "POST",
            u.path,
            body=body,
            headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
        )
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"probe {url}: HTTP {resp.status}: {resp.read()[:300]!r}")
        ctype = resp.getheader("Content-Type", "text/event-stream")
        events: list[tuple[float, bytes]] = []
        cur = b""
        while True:
            line = resp.readline()
            if not line:
                break
            cur += line
            if line == b"\n":
                events.append((time.perf_counter(), cur))
                cur = b""
        return t_send, events, ctype
    finally:
        conn.close()


def _steps(arrivals: list[float], step_s: float) -> tuple[int, ...]:
    """Step 0: events that came with the first one (the first token); then one per grid tick."""
    t_first = arrivals[0]
    rest = [t for t in arrivals if t - t_first > 0.25 * step_s]
    if not rest:
        return tuple(0 for _ in arrivals)
    t_one = rest[0]
    return tuple(
        0 if t - t_first <= 0.25 * step_s else 1 + round((t - t_one) / step_s) for t in arrivals
    )


def capture_template(url: str, body: bytes, step_ms: float, probes: int = 3) -> Template:
    """The mock's own events and steps, from idle single-stream probes (the last one kept)."""
    found: list[tuple[int, ...]] = []
    for _ in range(probes):
        t_send, events, ctype = _probe(url, body)
        if not events:
            raise RuntimeError(f"probe {url}: no SSE events")
        found.append(_steps([t for t, _ in events], step_ms / 1000.0))
    if len(found) > 1 and found[-1] != found[-2]:
        raise RuntimeError(f"the mock's step pattern is not stable across probes: {found}")
    return Template(
        events=tuple(e for _, e in events),
        steps=found[-1],
        first_delay_ms=round((events[0][0] - t_send) * 1000.0, 2),
        content_type=ctype,
        source="captured from the mock",
    )
