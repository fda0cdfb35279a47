"""The console's settings kept between starts (the theme), in ``console.json`` in the home.

A small JSON file, 0600 like every file of the home; an unreadable or hand-broken file is
ignored (the console starts with its defaults) rather than stopping the console.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.files import write_private

FILE_NAME = "console.json"


def saved_theme(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    theme = data.get("theme") if isinstance(data, dict) else None
    return theme if isinstance(theme, str) else None


def save_theme(path: Path, theme: str) -> None:
    """Write the file whole (renamed over the old one), mode 0600."""
    write_private(path, json.dumps({"theme": theme}))
