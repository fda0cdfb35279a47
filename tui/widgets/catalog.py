"""The side panel: the deployment's userstores, applications and identity providers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.message import Message
from textual.widgets import Tree

from core.iam import Iam
from core.userstores.router import StoreDefinition
from tui.workers import ReportsEngineErrors


class CatalogPanel(ReportsEngineErrors, Tree[None]):
    """A tree of the configuration objects, with a count per kind."""

    @dataclass
    class Loaded(Message):
        userstores: list[StoreDefinition]
        applications: list[str]
        identity_providers: list[str]

    def __init__(self, iam: Iam, *, id: str | None = None) -> None:
        super().__init__("Deployment", id=id)
        self.show_root = False
        self._iam = iam

    def load(self) -> None:
        self._fetch()

    @work(thread=True, exclusive=True, exit_on_error=False, group="catalog",
          description="Loading the deployment catalog")
    def _fetch(self) -> None:
        iam = self._iam
        self.post_message(self.Loaded(iam.userstore_definitions(), iam.app_names(),
                                      iam.idp_names()))

    @on(Loaded)
    def _fill(self, message: Loaded) -> None:
        self.clear()
        self._section("Userstores", [_store_label(d) for d in message.userstores])
        self._section("Applications", message.applications)
        self._section("Identity providers", message.identity_providers)

    def _section(self, title: str, items: Sequence[str]) -> None:
        # Text, not str: a name with "[" must not be read as console markup.
        node = self.root.add(Text(f"{title} ({len(items)})", style="bold"), expand=True)
        for item in items:
            node.add_leaf(Text(item))


def _store_label(store: StoreDefinition) -> str:
    state = "" if store.enabled else ", disabled"
    return f"{store.domain} ({store.type}{state})"
