"""The console keeps the chosen theme between starts, in console.json in the home (0600)."""

from __future__ import annotations

from pathlib import Path

from core.console_settings import FILE_NAME, saved_theme
from core.iam import Iam
from tests.tui_helpers import settle
from tui.app import MwareConsole


async def test_the_chosen_theme_is_kept_between_starts(sqlite_iam: Iam, tmp_path: Path
                                                       ) -> None:
    settings = tmp_path / FILE_NAME
    first = MwareConsole(sqlite_iam, workers=False, live=False, settings=settings)
    async with first.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        first.theme = "nord"  # what ctrl+p "theme" does
        await settle(pilot)
    assert saved_theme(settings) == "nord"
    assert settings.stat().st_mode & 0o777 == 0o600

    second = MwareConsole(sqlite_iam, workers=False, live=False, settings=settings)
    async with second.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert second.theme == "nord"


async def test_a_broken_settings_file_is_ignored(sqlite_iam: Iam, tmp_path: Path) -> None:
    settings = tmp_path / FILE_NAME
    settings.write_text('{"theme": "no-such-theme"}')  # (removed, or written by hand)
    app = MwareConsole(sqlite_iam, workers=False, live=False, settings=settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.theme == "textual-dark"
