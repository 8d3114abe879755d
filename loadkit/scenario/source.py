"""YAML text -> a tree of values that remember their file and line, with `extends:` merged.

PyYAML's composer keeps a mark on every node; we walk the node graph ourselves (SafeLoader
rules, no arbitrary tags) so that a value inherited from a parent file still reports the
parent's file:line after the merge. Aliases, merge keys (`<<`) and duplicate keys are handled
here too, with limits so that hostile input (alias bombs, deep nesting, huge files) ends in
a `ScenarioError` rather than a hang or a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from loadkit.scenario.errors import Loc, ScenarioError

MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_VALUES = 200_000
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
    where = via if via is not None else Loc(shown, 0)
    what = "extends" if via is not None else ""
    prefix = f"{shown}: " if via is not None else ""
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise ScenarioError(where, what, f"{prefix}is a directory, not a scenario file")
        if size > MAX_FILE_BYTES:
            raise ScenarioError(
                Loc(shown, 0),
                "",
                f"file is {size / 1e6:.1f} MB; a scenario must be under "
                f"{MAX_FILE_BYTES // (1024 * 1024)} MB (keep large data in a trace file)",
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ScenarioError(where, what, f"{prefix}file not found") from None
    except PermissionError:
        raise ScenarioError(where, what, f"{prefix}permission denied") from None
    except OSError as exc:
        raise ScenarioError(where, what, f"{prefix}cannot read: {exc.strerror}") from None
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


def _parse(shown: str, text: str) -> Value:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
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

    def convert(self, node: Node, depth: int) -> Value:
        self.count += 1
        if self.count > MAX_VALUES:
            raise ScenarioError(
                self.loc(node), "", f"more than {MAX_VALUES:,} values (alias expansion?)"
            )
        if depth > MAX_DEPTH:
            raise ScenarioError(self.loc(node), "", f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, ScalarNode):
            return Value("scalar", self.scalar(node), self.loc(node))
        if not isinstance(node, ScalarNode) and node.tag not in _PLAIN_TAGS:
            raise ScenarioError(self.loc(node), "", f"YAML: unsupported tag {node.tag!r}")
        if isinstance(node, SequenceNode):
            items = [self.convert(item, depth + 1) for item in node.value]
            return Value("seq", items, self.loc(node))
        if isinstance(node, MappingNode):
            return self.mapping(node, depth)
        raise ScenarioError(self.loc(node), "", "YAML: unsupported node")  # pragma: no cover

    def scalar(self, node: ScalarNode) -> Any:
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            raise ScenarioError(self.loc(node), "", _yaml_problem(exc)) from None
        except (ValueError, OverflowError, TypeError) as exc:
            raise ScenarioError(
                self.loc(node), "", f"YAML: bad value {node.value!r}: {exc}"
            ) from None

    def mapping(self, node: MappingNode, depth: int) -> Value:
        data: dict[str, Value] = {}
        key_locs: dict[str, Loc] = {}
        merged: list[Value] = []
        for key_node, val_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == MERGE_TAG:
                merged.extend(self.merge_sources(val_node, depth))
                continue
            if not isinstance(key_node, ScalarNode):
                raise ScenarioError(self.loc(key_node), "", "a key must be a plain word")
            key = self.scalar(key_node)
            if not isinstance(key, str):
                key = (
                    str(key) if isinstance(key, int | float) and not isinstance(key, bool) else key
                )
            if not isinstance(key, str):
                raise ScenarioError(self.loc(key_node), "", f"a key must be text, got {key!r}")
            if key in data:
                raise ScenarioError(
                    self.loc(key_node),
                    key,
                    f"duplicate key (first given on line {key_locs[key].line})",
                )
            key_locs[key] = self.loc(key_node)
            data[key] = self.convert(val_node, depth + 1)
        for source in merged:
            for key, val in source.data.items():
                if key not in data:
                    data[key] = val
                    key_locs[key] = source.key_locs.get(key, source.loc)
        return Value("map", data, self.loc(node), key_locs)

    def merge_sources(self, node: Node, depth: int) -> list[Value]:
        value = self.convert(node, depth + 1)
        sources = [value] if value.kind != "seq" else value.data
        for src in sources:
            if src.kind != "map":
                raise ScenarioError(src.loc, "<<", "a merge key takes a mapping or a list of them")
        return list(sources)
