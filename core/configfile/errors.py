"""Errors of a configuration file, each at a file, line and column, and how to find them.

A YAML *path* names a place in the file the way the data is nested: ``("users", 2,
"claims", "givenname")``. The loader records where every path starts (its value, and for a
mapping entry its key too); everything later reports against a path and :class:`Reporter`
turns it into the nearest line and column it knows.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from core.errors import InvalidInput

YamlPath = tuple[Hashable, ...]
Pos = tuple[int, int]


@dataclass(frozen=True)
class ConfigError:
    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class ConfigInvalid(InvalidInput):
    """The file cannot be applied; ``errors`` holds every problem found, in file order."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


@dataclass
class Positions:
    """Where each path of a document starts (1-based line and column)."""

    values: dict[YamlPath, Pos] = field(default_factory=dict)
    keys: dict[YamlPath, Pos] = field(default_factory=dict)

    def at(self, path: YamlPath, at_key: bool = False) -> Pos:
        """The position of ``path`` (of its key if asked), else of its nearest ancestor."""
        if at_key and path in self.keys:
            return self.keys[path]
        while path and path not in self.values:
            path = path[:-1]
        return self.values.get(path, (1, 1))


class Reporter:
    """Collects errors (and warnings: valid, but probably not what was meant) of one file;
    every check reports here and carries on."""

    def __init__(self, file: str, positions: Positions | None = None) -> None:
        self.file = file
        self.positions = positions or Positions()
        self._errors: list[ConfigError] = []
        self._warnings: list[ConfigError] = []

    def warn(self, path: YamlPath, message: str) -> None:
        line, column = self.positions.at(path)
        self._warnings.append(ConfigError(self.file, line, column, f"warning: {message}"))

    @property
    def warnings(self) -> list[ConfigError]:
        return sorted(self._warnings, key=lambda e: (e.line, e.column))

    def add(self, path: YamlPath, message: str, at_key: bool = False) -> None:
        line, column = self.positions.at(path, at_key)
        self.add_at(line, column, message)

    def add_at(self, line: int, column: int, message: str) -> None:
        self._errors.append(ConfigError(self.file, line, column, message))

    @property
    def errors(self) -> list[ConfigError]:
        return sorted(self._errors, key=lambda e: (e.line, e.column))

    def raise_if_any(self) -> None:
        if self._errors:
            raise ConfigInvalid(self.errors)
