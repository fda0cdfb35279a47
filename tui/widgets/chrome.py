"""What every screen shows around its body: the header, and the footer with the screen's
keys under a navigation line (``1 Dash  2 Jobs  3 Users ...``; a click switches too)."""

from __future__ import annotations

from rich.cells import cell_len
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static
from textual.widgets._footer import FooterKey

from tui.navigation import SECTIONS
from tui.widgets.header import AppHeader

__all__ = ["AppHeader", "ConsoleFooter", "NavigationLine"]


class NavigationLine(Static):
    """The sections by key; the current one in reverse video (legible without colour)."""

    def on_mount(self) -> None:
        self.update(render_navigation(type(self.screen).__name__))


def render_navigation(current_screen: str) -> Content:
    parts: list[Content] = []
    for section in SECTIONS:
        label = Content.assemble((section.key, "bold"), " ", section.short)
        style = "reverse" if section.screen == current_screen else ""
        action = f"app.go({section.mode!r})"
        parts.append(Content.assemble(" ", label, " ").stylize(style).stylize(
            f"@click={action}"))
    return Content("").join(parts)


class FittingFooter(Footer):
    """Textual's compact footer, but only the keys that fit: the screen's disabled and
    last keys give way first, the console's own (``q``, and ``?``, which lists them all)
    and the palette's stay. Textual's footer would slide them under the palette's key."""

    _composed_width = 0
    #: What the footer drew of the screen's bindings (``_keys``), None before it drew any.
    _composed_keys: tuple[object, ...] | None = None

    def compose(self) -> ComposeResult:
        self._composed_width = self.size.width
        self._composed_keys = self._keys() if self._bindings_ready else None
        widgets = list(super().compose())
        keys = [w for w in widgets if isinstance(w, FooterKey) and
                not w.has_class("-command-palette")]
        room = self.size.width - sum(_footer_width(w) for w in widgets if w not in keys)
        order = list(self.screen.active_bindings)
        kept = set(keys)
        for key in sorted(keys, key=lambda k: self._keep_order(k, order)):
            if sum(_footer_width(k) for k in kept) <= room:
                break
            kept.discard(key)
        yield from (w for w in widgets if w in kept or w not in keys)

    def _keep_order(self, key: FooterKey, order: list[str]) -> tuple[bool, bool, int]:
        """Sorts the first to give way first."""
        active = self.screen.active_bindings.get(key.key)
        console_key = active is not None and active.node is self.app
        position = order.index(key.key) if key.key in order else 0
        return console_key, not key.has_class("-disabled"), -position

    def on_resize(self, event: events.Resize) -> None:
        if event.size.width != self._composed_width:
            self.call_after_refresh(self.recompose)

    def bindings_changed(self, screen: Screen[object]) -> None:
        """Textual's footer is built anew (each key a new widget, then a layout of the
        screen) whenever the screen refreshes its bindings, as the list screens do at
        every move of the cursor, since a row may enable or disable keys; this one only
        when the keys it would draw differ from those it drew."""
        if self._composed_keys is None or screen is not self.screen or not self.app.app_focus:
            super().bindings_changed(screen)
        else:  # compared when Textual's would rebuild: the screen may still be composing
            self.call_after_refresh(self._rebuild_if_changed)

    async def _rebuild_if_changed(self) -> None:
        if self.is_attached and self._keys() != self._composed_keys:
            await self.recompose()

    def _keys(self) -> tuple[object, ...]:
        """The screen's bindings as the footer draws them: each with its state, the key
        shown for it (the keymap's, if it rebinds one) and whose it is (the console's own
        keys give way last)."""
        return tuple((active.binding, active.enabled, active.tooltip, active.node,
                      self.app.get_key_display(active.binding))
                     for active in self.screen.active_bindings.values())


def _footer_width(widget: Widget) -> int:
    """Cells a compact footer item takes: key, space, description, and its margin."""
    if isinstance(widget, FooterKey):
        text = widget.key_display + (f" {widget.description}" if widget.description else "")
        return cell_len(text) + 1 + (1 if widget.has_class("-command-palette") else 0)
    return 0


class ConsoleFooter(Vertical):
    """The navigation line above Textual's footer (the active screen's bindings)."""

    DEFAULT_CSS = """
    ConsoleFooter {
        dock: bottom;
        height: 2;
    }
    ConsoleFooter NavigationLine {
        height: 1;
        background: $panel;
        color: $text;
    }
    """

    def compose(self) -> ComposeResult:
        yield NavigationLine(id="navigation")
        yield FittingFooter(compact=True)
