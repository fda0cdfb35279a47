"""The header: product name, which deployment this console is on, and the READ-ONLY badge.

The deployment line is cut at the terminal's width; its tooltip, ``?`` and (for the demo)
the palette's "Show the demo's token file" give it in full.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label

if TYPE_CHECKING:
    from core.iam import Iam

PRODUCT = "MWARE IAM"


@dataclass(frozen=True)
class InboundAccess:
    """Where the deployment takes SCIM requests, and the file holding an application's
    token for them (``mware-iam demo`` writes one for the HR portal)."""

    url: str
    token_file: Path
    application: str

    def describe(self) -> str:
        """The full text: the file's path is never cut."""
        return (f"SCIM in: {self.url}\n"
                f"{self.application}'s token file: {self.token_file}\n"
                f'Try: curl -H "Authorization: Bearer $(cat {self.token_file})" '
                f"{self.url}/Users")


def describe_deployment(iam: Iam) -> str:
    """The home (``~`` for the user's home) and the system database, password hidden.

    The default SQLite file inside the home is named by its file name only, so the line stays
    short enough for an 80-column terminal.
    """
    home = iam.home.path
    url = iam.db.engine.url
    if url.get_backend_name() == "sqlite" and url.database and \
            Path(url.database).resolve().parent == home.resolve():
        database = f"SQLite {Path(url.database).name}"
    else:
        database = iam.db.safe_url
    return f"{_tilde(home)} · {database}"


def _tilde(path: Path) -> str:
    try:
        return f"~/{path.resolve().relative_to(Path.home().resolve())}"
    except ValueError:
        return str(path)


class AppHeader(Horizontal):
    """One line: ``MWARE IAM  <deployment>  [READ-ONLY]``.

    Without arguments it shows the app's ``deployment`` line and ``read_only`` flag.
    """

    def __init__(self, deployment: str | None = None, read_only: bool | None = None, *,
                 id: str | None = "header") -> None:
        super().__init__(id=id)
        self._deployment = deployment
        self._read_only = read_only

    def compose(self) -> ComposeResult:
        deployment = self._deployment if self._deployment is not None else \
            str(getattr(self.app, "deployment", ""))
        read_only = self._read_only if self._read_only is not None else \
            bool(getattr(self.app, "read_only", False))
        inbound: InboundAccess | None = getattr(self.app, "inbound", None)
        yield Label(PRODUCT, id="product")
        line = Label(deployment, id="deployment", markup=False)
        line.tooltip = deployment + (f"\n{inbound.describe()}" if inbound else "")
        yield line
        if read_only:
            yield Label("READ-ONLY", id="read-only")
