"""YAML to plain Python, remembering where every value came from.

PyYAML's ``compose`` gives the node tree with a start mark on every node; this module walks
it into dicts, lists and scalars (the safe constructors build the scalars) and records the
position of every path. It also refuses what ``safe_load`` would silently accept: a key
given twice in one mapping, merge keys and recursive aliases; and what would exhaust the
process: nesting deeper than ``MAX_DEPTH`` (PyYAML's composer recurses per level) and
aliases that expand to more than ``ALIAS_BUDGET`` values beyond the file's own (a "billion
laughs" file of a few hundred bytes expands to gigabytes). The file's size is capped by
the caller (``MAX_BYTES``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from core.configfile.errors import Positions, Reporter, YamlPath

_MERGE_TAG = "tag:yaml.org,2002:merge"

#: Largest configuration file read (a deployment of thousands of users is well under it).
MAX_BYTES = 4 * 1024 * 1024
#: Deepest nesting of lists and mappings (the schema needs fewer than ten levels).
MAX_DEPTH = 64
#: Values that aliases may add to a document beyond those written in the file.
ALIAS_BUDGET = 10_000


class _Refused(yaml.MarkedYAMLError):
    """A document refused for its shape rather than its syntax (too deep)."""


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing nesting deeper than ``MAX_DEPTH`` before recursing into it."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(problem=f"nested more than {MAX_DEPTH} levels deep",
                               problem_mark=self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


@dataclass(frozen=True)
class Document:
    """The file's data and where each part of it is; ``data`` is None for an empty file."""

    data: Any
    positions: Positions


def _pos(mark: yaml.Mark) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    if exc.problem and exc.context and exc.problem.startswith("but "):
        return f"malformed YAML: {exc.context}, {exc.problem}"
    text = f"malformed YAML: {exc.problem or exc.context or 'cannot be read'}"
    if exc.problem and exc.context and exc.context_mark is not None:
        line, column = _pos(exc.context_mark)
        text += f" ({exc.context} at line {line}, column {column})"
    return text


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, report: Reporter) -> None:
        self.loader = loader
        self.report = report
        self.positions = report.positions
        self._open: set[int] = set()
        self._seen: set[int] = set()
        self._expanded = 0

    def build(self, node: Node, path: YamlPath) -> Any:
        self.positions.values[path] = _pos(node.start_mark)
        if id(node) in self._open:
            self.report.add(path, "an alias refers to a value that contains it (recursion)")
            return None
        if id(node) in self._seen:  # reached again through an alias
            self._expanded += 1
            if self._expanded > ALIAS_BUDGET:
                raise _Refused(problem=f"aliases expand to more than {ALIAS_BUDGET:,} values: "
                                       "write the values out", problem_mark=node.start_mark)
        else:
            self._seen.add(id(node))
        self._open.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            if isinstance(node, SequenceNode):
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            return self._scalar(node, path)
        finally:
            self._open.discard(id(node))

    def _scalar(self, node: Node, path: YamlPath) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            self.report.add(path, _yaml_problem(exc))
            return None
        except ValueError as exc:  # an integer of more digits than Python converts
            self.report.add(path, f"the value cannot be read: {exc}".split(";")[0])
            return None

    def _mapping(self, node: MappingNode, path: YamlPath) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key_pos = _pos(key_node.start_mark)
            if key_node.tag == _MERGE_TAG:
                self.report.add_at(*key_pos, "merge keys (<<) are not supported: write the "
                                            "values out")
                continue
            if not isinstance(key_node, ScalarNode):
                self.report.add_at(*key_pos, "a key must be a single value, not a list or "
                                            "mapping")
                continue
            key = self._scalar(key_node, path)
            child = (*path, key)
            if key in out:
                first_line, first_col = self.positions.keys[child]
                self.report.add_at(*key_pos, f"duplicate key {key!r} (first given at line "
                                            f"{first_line}, column {first_col})")
                continue
            self.positions.keys[child] = key_pos
            out[key] = self.build(value_node, child)
        return out


def load_text(text: str, report: Reporter) -> Document | None:
    """The document, or None when the YAML is malformed (the error is in ``report``)."""
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # checks every character first
        node = loader.get_single_node()
        data = None if node is None else _Builder(loader, report).build(node, ())
    except _Refused as exc:
        assert exc.problem_mark is not None
        report.add_at(*_pos(exc.problem_mark), f"refused: {exc.problem}")
        return None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = _pos(mark) if mark is not None else (1, 1)
        report.add_at(line, column, _yaml_problem(exc))
        return None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        report.add_at(line, column, f"malformed YAML: character #x{exc.character:04x} is not "
                                    f"allowed ({exc.reason})")
        return None
    finally:
        if loader is not None:
            loader.dispose()
    return Document(data, report.positions)
