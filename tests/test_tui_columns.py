"""Columns share a table's width: names and targets are served first, the others give way
first (the widest cut first), and a cut cell ends with an ellipsis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.iam import Iam
from core.identity.events import Initiator
from tests.conftest import FAST_ARGON2
from tests.provisioning_helpers import connect, drain
from tests.tui_helpers import settle
from tui.app import MwareConsole
from tui.screens.jobs import JobsTable
from tui.widgets.fitted_table import share_width

LONG_TARGET = "a-partner-directory-with-a-long-name"
LONG_USER = "margaret.hamilton.apollo"


def test_every_column_keeps_its_width_when_all_fit() -> None:
    assert share_width([4, 20, 9], [4, 8, 4], [False, True, False], 40) == [4, 20, 9]


def test_the_other_columns_give_way_first_the_widest_first() -> None:
    # 10 cells too many: the 30-wide error column gives them all; the name keeps its width
    assert share_width([20, 9, 30], [8, 4, 4], [True, False, False], 49) == [20, 9, 20]
    # when the widest is cut to the next one's width, both give way in turn
    assert share_width([20, 10, 12], [8, 4, 4], [True, False, False], 38) == [20, 9, 9]


def test_the_first_columns_give_way_last_and_keep_their_floor() -> None:
    assert share_width([30, 20, 9], [8, 8, 4], [True, True, False], 40) == [18, 18, 4]
    assert share_width([30, 20, 9], [8, 8, 4], [True, True, False], 10) == [8, 8, 4]


@pytest.fixture
def long_names_iam(tmp_path: Path, admin: Initiator) -> Iterator[Iam]:
    """A job whose target and user names are longer than the old fixed widths."""
    with Iam.open(home=str(tmp_path / "home"), argon2=FAST_ARGON2) as iam:
        connect(iam, "http://127.0.0.1:9/v2", idp=LONG_TARGET, **{"max-attempts": 1})
        iam.identity.add_user(admin, LONG_USER)
        drain(iam)
        yield iam


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_the_jobs_table_shows_names_and_targets_whole_and_never_scrolls_sideways(
        long_names_iam: Iam, size: tuple[int, int]) -> None:
    app = MwareConsole(long_names_iam, deployment="t", workers=False, live=False,
                       screen="jobs")
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        table = app.screen.query_one(JobsTable)
        widths = {str(c.label): c.width for c in table.ordered_columns}
        target, name = f"{LONG_TARGET}:scim2", f"PRIMARY/{LONG_USER}"
        assert table.virtual_size.width <= table.scrollable_content_region.width
        row = table.get_row_index(next(iter(table.jobs)))
        line = "".join(s.text for s in table.render_line(row + 1))  # + the header
        if size[0] == 120:  # room for both: whole, the others cut (with an ellipsis)
            assert widths["Target"] == len(target) and widths["Name"] == len(name)
            assert target in line and name in line
        else:  # not even that: the others are down to their floor before names are cut
            others = [w for label, w in widths.items() if label not in ("Target", "Name")]
            assert others == [1, 4, 4, 4, 4, 4]  # "#" needs one cell
            assert widths["Target"] > 8 and widths["Name"] > 8
        assert "…" in line and widths["Last error"] < 30
