"""YAML text -> a tree of values that remember their file and line, with `extends:` merged.

PyYAML's composer keeps a mark on every node; we walk the node graph ourselves (SafeLoader
rules, no arbitrary tags) so that a value inherited from a parent file still reports the
parent's file:line after the merge. Aliases, merge keys (`<<`) and duplicate keys are handled
here too, with limits so that hostile input (alias bombs, deep nesting, huge files, endless
lists, devices and named pipes) ends in a `ScenarioError` rather than a hang or a traceback.
The limits are counted while the YAML is composed, so the time a file can take is bounded
by them (about a second or two on a busy machine), not by its size.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from loadkit.scenario import units
from loadkit.scenario.errors import Loc, ScenarioError

MAX_FILE_BYTES = 10_000_000  # 10 MB; large data belongs in a trace file
MAX_VALUES = 200_000  # values after alias expansion
MAX_NODES = 50_000  # values written in one file (the largest bundled scenario has ~300)
MAX_ITEMS = 10_000  # items of one list, keys of one mapping
MAX_DEPTH = 64
MAX_EXTENDS = 16

MERGE_TAG = "tag:yaml.org,2002:merge"
_PLAIN_TAGS = ("tag:yaml.org,2002:seq", "tag:yaml.org,2002:map", "tag:yaml.org,2002:omap")


@dataclass(slots=True)
class Value:
    """One YAML value and where it was written; maps keep where each key was written."""

    kind: Literal["map", "seq", "scalar"]
    data: Any
    loc: Loc
    key_locs: dict[str, Loc] = field(default_factory=dict)


def read_tree(path: str | os.PathLike[str]) -> Value:
    """The scenario file's top-level mapping, with every `extends:` parent merged in."""
    shown = str(path)
    return _load(shown, Path(path), stack=(), via=None)


def _load(shown: str, path: Path, stack: tuple[str, ...], via: Loc | None) -> Value:
    real = os.path.realpath(path)
    if real in stack:
        chain = " -> ".join([*(_short(p) for p in stack), _short(real)])
        raise ScenarioError(via, "extends", f"cycle: {chain}")
    if len(stack) >= MAX_EXTENDS:
        raise ScenarioError(via, "extends", f"more than {MAX_EXTENDS} levels of extends")
    text = _read_text(shown, path, via)
    root = _parse(shown, text)
    ext = root.data.get("extends")
    if ext is None:
        return root
    ext_loc = ext.loc
    if ext.kind != "scalar" or not isinstance(ext.data, str) or not ext.data.strip():
        raise ScenarioError(ext_loc, "extends", "expected a file name (relative to this file)")
    parent_shown = os.path.normpath(os.path.join(os.path.dirname(shown), ext.data.strip()))
    parent_path = path.parent / ext.data.strip()
    parent = _load(parent_shown, parent_path, (*stack, real), ext_loc)
    child = Value("map", dict(root.data), root.loc, dict(root.key_locs))
    del child.data["extends"]
    child.key_locs.pop("extends", None)
    return merge(parent, child)


def _short(real: str) -> str:
    try:
        rel = os.path.relpath(real)
    except ValueError:
        return real
    return real if rel.startswith("..") else rel


def merge(base: Value, over: Value) -> Value:
    """Deep merge: mappings merge key by key, anything else (lists too) is replaced."""
    if base.kind != "map" or over.kind != "map":
        return over
    data = dict(base.data)
    key_locs = dict(base.key_locs)
    for key, val in over.data.items():
        data[key] = merge(data[key], val) if key in data else val
        key_locs[key] = over.key_locs[key]
    return Value("map", data, over.loc, key_locs)


def _read_text(shown: str, path: Path, via: Loc | None) -> str:
    """The file's text; only a regular file under `MAX_FILE_BYTES` is read.

    A whole-file problem is reported on line 1 of the file, or, for an `extends:` target,
    on the extending file's `extends` line.
    """
    where = via if via is not None else Loc(shown, 1)
    what = "extends" if via is not None else ""
    prefix = f"{shown}: " if via is not None else ""

    def fail(message: str) -> ScenarioError:
        return ScenarioError(where, what, prefix + message)

    try:
        # stat before open: opening a named pipe for reading waits for a writer, and a
        # device such as /dev/zero never ends.
        problem = _not_a_file(os.stat(path))
        if problem:
            raise fail(problem)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as fh:
            problem = _not_a_file(os.fstat(fh.fileno()))  # swapped since the stat?
            if problem:
                raise fail(problem)
            raw = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise fail("file not found") from None
    except NotADirectoryError:
        raise fail("file not found (a folder on the way is a file)") from None
    except PermissionError:
        raise fail("permission denied") from None
    except OSError as exc:
        raise fail(f"cannot read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ScenarioError(
            Loc(shown, line),
            "",
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "is this a binary file?",
        ) from None


def _not_a_file(st: os.stat_result) -> str | None:
    """Why this is not a scenario file we read, or None for a regular file within the cap."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        if st.st_size > MAX_FILE_BYTES:
            return (
                f"file is {st.st_size:,} bytes; a scenario must be at most "
                f"{MAX_FILE_BYTES // 1_000_000} MB (keep large data in a trace file)"
            )
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not a scenario file"
    kind = next((k for test, k in _KINDS if test(mode)), "a special file")
    return f"is {kind}, not a regular file; a scenario must be a regular file"


_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _parse(shown: str, text: str) -> Value:
    try:
        node = _compose(text, shown)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise ScenarioError(Loc(shown, line), "", _yaml_problem(exc)) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        char = (
            exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
        )
        raise ScenarioError(
            Loc(shown, line),
            "",
            f"YAML: character #x{char:04x} is not allowed (control or binary data in the file?)",
        ) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(Loc(shown, 1), "", f"YAML: {exc}") from None
    except RecursionError:
        raise ScenarioError(Loc(shown, 1), "", "YAML: nested too deeply") from None
    if node is None:
        raise ScenarioError(
            Loc(shown, 1),
            "",
            "the file is empty; expected a mapping with name, duration, target, workloads "
            "and load (`loadkit init` writes a starter scenario)",
        )
    walker = _Walker(shown)
    value = walker.convert(node, depth=0)
    if value.kind != "map":
        what = "a list" if value.kind == "seq" else f"a single value ({_kind(value.data)})"
        raise ScenarioError(
            value.loc, "", f"expected a mapping of keys at the top level, got {what}"
        )
    return value


def _compose(text: str, shown: str) -> Node | None:
    loader = _BoundedLoader(text, shown)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe composer, counting as it goes: a file with more than `MAX_NODES`
    values, or a list or mapping with more than `MAX_ITEMS` entries, stops right there
    (with the key path), before the rest of it costs time and memory."""

    def __init__(self, text: str, shown: str) -> None:
        super().__init__(text)
        self.shown = shown
        self.nodes = 0
        self.keys: list[str] = []  # the key path to the node being composed

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        self.nodes += 1
        if isinstance(parent, SequenceNode):
            step = f"[{index}]"
            count = index
        elif isinstance(parent, MappingNode):
            step = f".{index.value}" if isinstance(index, ScalarNode) else ""
            count = len(parent.value)
        else:
            step, count = "", 0
        if count >= MAX_ITEMS:
            what = "items" if isinstance(parent, SequenceNode) else "keys"
            self.fail(f"more than {MAX_ITEMS:,} {what} (no scenario list or mapping is this long)")
        if self.nodes > MAX_NODES:
            self.keys.append(step)
            self.fail(f"more than {MAX_NODES:,} values in one file")
        self.keys.append(step)
        try:
            return super().compose_node(parent, index)
        finally:
            self.keys.pop()

    def fail(self, message: str) -> None:
        mark = self.peek_event().start_mark
        path = "".join(self.keys).lstrip(".")
        raise ScenarioError(Loc(self.shown, mark.line + 1), path, message)


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    problem = exc.problem or exc.context or "cannot parse"
    text = f"YAML syntax: {problem}"
    if exc.context and exc.problem:
        text = f"YAML syntax: {exc.context}, {problem}"
    if "'\\t'" in problem or "\t" in problem:
        text += "; indent with spaces, tabs are not allowed in YAML"
    return text


def _kind(data: Any) -> str:
    if data is None:
        return "null"
    return type(data).__name__


class _Walker:
    """Turns composed nodes into `Value`s, counting values to stop alias bombs."""

    def __init__(self, shown: str) -> None:
        self.shown = shown
        self.count = 0
        self.constructor = SafeConstructor()

    def loc(self, node: Node) -> Loc:
        return Loc(self.shown, node.start_mark.line + 1)

    def convert(self, node: Node, depth: int, path: str = "") -> Value:
        self.count += 1
        if self.count > MAX_VALUES:
            raise ScenarioError(
                self.loc(node), path, f"more than {MAX_VALUES:,} values (alias expansion?)"
            )
        if depth > MAX_DEPTH:
            raise ScenarioError(self.loc(node), path, f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, ScalarNode):
            return Value("scalar", self.scalar(node, path), self.loc(node))
        if not isinstance(node, ScalarNode) and node.tag not in _PLAIN_TAGS:
            raise ScenarioError(self.loc(node), path, f"YAML: unsupported tag {node.tag!r}")
        if isinstance(node, SequenceNode):
            items = [
                self.convert(item, depth + 1, f"{path}[{i}]") for i, item in enumerate(node.value)
            ]
            return Value("seq", items, self.loc(node))
        if isinstance(node, MappingNode):
            return self.mapping(node, depth, path)
        raise ScenarioError(self.loc(node), path, "YAML: unsupported node")  # pragma: no cover

    def scalar(self, node: ScalarNode, path: str) -> Any:
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            raise ScenarioError(self.loc(node), path, _yaml_problem(exc)) from None
        except (ValueError, OverflowError, TypeError) as exc:
            if node.tag == "tag:yaml.org,2002:int":
                digits = sum(ch.isdigit() for ch in node.value)
                if digits > 100:  # Python refuses int(text) past 4,300 digits
                    raise ScenarioError(
                        self.loc(node),
                        path,
                        f"number too large, got {units.shorten_digits(node.value)}",
                    ) from None
            raise ScenarioError(
                self.loc(node), path, f"YAML: bad value {units.describe(node.value)}: {exc}"
            ) from None

    def mapping(self, node: MappingNode, depth: int, path: str) -> Value:
        data: dict[str, Value] = {}
        key_locs: dict[str, Loc] = {}
        merged: list[Value] = []
        for key_node, val_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == MERGE_TAG:
                merged.extend(self.merge_sources(val_node, depth, path))
                continue
            if not isinstance(key_node, ScalarNode):
                raise ScenarioError(self.loc(key_node), path, "a key must be a plain word")
            key = self.scalar(key_node, path)
            if not isinstance(key, str):
                key = (
                    str(key) if isinstance(key, int | float) and not isinstance(key, bool) else key
                )
            if not isinstance(key, str):
                raise ScenarioError(
                    self.loc(key_node), path, f"a key must be text, got {units.describe(key)}"
                )
            sub = f"{path}.{key}" if path else key
            if key in data:
                raise ScenarioError(
                    self.loc(key_node),
                    sub,
                    f"duplicate key (first given on line {key_locs[key].line})",
                )
            key_locs[key] = self.loc(key_node)
            data[key] = self.convert(val_node, depth + 1, sub)
        for source in merged:
            for key, val in source.data.items():
                if key not in data:
                    data[key] = val
                    key_locs[key] = source.key_locs.get(key, source.loc)
        return Value("map", data, self.loc(node), key_locs)

    def merge_sources(self, node: Node, depth: int, path: str) -> list[Value]:
        value = self.convert(node, depth + 1, f"{path}.<<" if path else "<<")
        sources = [value] if value.kind != "seq" else value.data
        for src in sources:
            if src.kind != "map":
                raise ScenarioError(
                    src.loc,
                    f"{path}.<<" if path else "<<",
                    "a merge key takes a mapping or a list of them",
                )
        return list(sources)
