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

NAVIGATION = "↑ ↓ move · PgUp PgDn page · Tab next pane · ctrl+p commands · mouse works too"


@dataclass(frozen=True)
class KeyHelp:
    key: str
    description: str
    tooltip: str = ""


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen #help {
        width: 76;
        max-width: 90%;
        height: auto;
        max-height: 80%;
        padding: 0 1;
        border: round $accent;
        background: $surface;
    }
    HelpScreen #help-about {
        margin-bottom: 1;
        color: $text-muted;
    }
    HelpScreen #help-navigation {
        margin-top: 1;
        color: $text-muted;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "Close help", id="help.close"),
    ]

    def __init__(self, keys: Sequence[KeyHelp], everywhere: Sequence[KeyHelp] = (), *,
                 about: str = "") -> None:
        """``keys`` are the screen's own; ``everywhere`` the app's (navigation, quit);
        ``about`` the deployment in full (the header cuts it at the terminal's width)."""
        super().__init__()
        self._keys = keys
        self._everywhere = everywhere
        self._about = about

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help") as box:
            box.border_title = "Keys"
            box.border_subtitle = "esc closes"
            if self._about:
                yield Static(Text.assemble(("Deployment", "underline"), "\n", self._about),
                             id="help-about")
            yield Static(render_keys(self._keys, self._everywhere), id="help-keys")
            yield Static(NAVIGATION, id="help-navigation", markup=False)


def render_keys(keys: Sequence[KeyHelp], everywhere: Sequence[KeyHelp] = ()) -> Text:
    """One line per key; with both groups, each under its title."""
    groups = [(title, group) for title, group in (("On this screen", keys),
                                                  ("Everywhere", everywhere)) if group]
    width = max((len(k.key) for k in (*keys, *everywhere)), default=0)
    lines: list[Text] = []
    for n, (title, group) in enumerate(groups):
        if len(groups) > 1:
            lines += [Text()] if n else []
            lines.append(Text(title, style="underline"))
        lines += [Text.assemble((k.key.ljust(width) + "  ", "bold"), k.description,
                                (f" · {k.tooltip}" if k.tooltip else "", "dim"))
                  for k in group]
    return Text("\n").join(lines)
