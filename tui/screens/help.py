"""``?``: the keys that work where the administrator is, from the active bindings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

NAVIGATION = "↑ ↓ move · PgUp PgDn page · Tab next pane · mouse works too"


@dataclass(frozen=True)
class KeyHelp:
    key: str
    description: str
    tooltip: str = ""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "Close help", id="help.close"),
    ]

    def __init__(self, keys: Sequence[KeyHelp]) -> None:
        super().__init__()
        self._keys = keys

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help") as box:
            box.border_title = "Keys"
            box.border_subtitle = "esc closes"
            yield Static(render_keys(self._keys), id="help-keys")
            yield Static(NAVIGATION, id="help-navigation", markup=False)


def render_keys(keys: Sequence[KeyHelp]) -> Text:
    width = max((len(k.key) for k in keys), default=0)
    text = Text()
    for i, k in enumerate(keys):
        text.append(("\n" if i else "") + k.key.ljust(width) + "  ", style="bold")
        text.append(k.description)
        if k.tooltip:
            text.append(f" · {k.tooltip}", style="dim")
    return text
