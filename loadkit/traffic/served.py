"""What the response headers say about who answered: the serving upstream (`served_by`),
the headers a scenario keeps (`h_<name>` columns), and the chaos tag.

A gateway passes an upstream's headers on under its own rules: LiteLLM prefixes them with
`llm_provider-`, others drop them. So every name is also read with that prefix, and the
listener loadkit puts behind a gateway names itself (`x-loadkit-upstream`), which wins: it
is right whatever the gateway sends back. A `served_by` header whose value is a URL (LiteLLM's
`x-litellm-model-api-base`) that points at one of loadkit's upstream listeners is given as
that upstream's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from loadkit.scenario.model import Target

GATEWAY_PREFIX = "llm_provider-"  # LiteLLM: an upstream's own headers, passed on
UPSTREAM_HEADER = "x-loadkit-upstream"
FAULT_HEADER = "x-loadkit-fault"
MAX_VALUE = 200

Getter = Callable[[str], str | None]


def _either(get: Getter, name: str) -> str:
    return get(name) or get(GATEWAY_PREFIX + name) or ""


@dataclass(frozen=True)
class ResponseHeaders:
    served_by: tuple[str, ...] = ()
    record: tuple[str, ...] = ()
    # "host:port" of loadkit's upstream listeners -> the upstream's name
    listeners: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, target: Target) -> ResponseHeaders:
        return cls(
            served_by=tuple(target.served_by_headers),
            record=tuple(target.record_headers),
            listeners={f"127.0.0.1:{u.listen}": u.name for u in target.upstreams},
        )

    def served_by_of(self, get: Getter) -> str:
        own = _either(get, UPSTREAM_HEADER)
        if own:
            return own[:MAX_VALUE]
        for name in self.served_by:
            value = _either(get, name).strip()
            if value:
                return self._named(value)[:MAX_VALUE]
        return ""

    def _named(self, value: str) -> str:
        if "://" in value and self.listeners:
            netloc = urlsplit(value).netloc.lower().replace("localhost", "127.0.0.1")
            return self.listeners.get(netloc, value)
        return value

    def recorded(self, get: Getter) -> tuple[str, ...]:
        return tuple(_either(get, name)[:MAX_VALUE] for name in self.record)


def fault_tag(get: Getter) -> str:
    """The chaos proxy's tag, also when a gateway passed it on under its prefix."""
    return _either(get, FAULT_HEADER)
