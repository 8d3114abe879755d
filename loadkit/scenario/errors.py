"""The scenario loader's one error type: a single line naming file, line and key path."""

from __future__ import annotations

from dataclasses import dataclass

from loadkit.errors import UserError


@dataclass(frozen=True, slots=True)
class Loc:
    """Where a value was written: the file as the user named it and the 1-based line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line > 0 else self.file


class ScenarioError(UserError):
    """A scenario the user must fix. `str()` is `file:line: key.path: what was expected`."""

    def __init__(self, loc: Loc | None, path: str, message: str) -> None:
        self.loc = loc
        self.path = path
        self.message = message
        super().__init__(format_error(loc, path, message))


def format_error(loc: Loc | None, path: str, message: str) -> str:
    """One line, whatever the message holds (newlines from YAML errors are folded)."""
    text = " ".join(message.split())
    parts = [str(loc)] if loc is not None else []
    if path:
        parts.append(path)
    parts.append(text)
    line = ": ".join(parts)
    # Keys and file names are the user's text: never let them break the one-line promise.
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in line)
