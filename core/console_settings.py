"""The console's settings kept between starts (the theme), in ``console.json`` in the home.

A small JSON file, 0600 like every file of the home; an unreadable or hand-broken file is
ignored (the console starts with its defaults) rather than stopping the console.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

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
    tmp = path.with_name(f".{FILE_NAME}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"theme": theme}, out)
    os.replace(tmp, path)
