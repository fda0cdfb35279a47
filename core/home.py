"""Where MWARE IAM keeps its state: the home directory and the system database URL."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "MWARE_IAM_HOME"
DB_ENV = "MWARE_IAM_DB"


def default_home() -> Path:
    """``$MWARE_IAM_HOME``, else ``$XDG_DATA_HOME/mware-iam``, else ``~/.local/share/mware-iam``."""
    if env := os.environ.get(HOME_ENV):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "mware-iam"


@dataclass(frozen=True)
class Home:
    """The home directory and the system database URL in force for one process."""

    path: Path
    db_url: str

    @classmethod
    def resolve(cls, home: str | os.PathLike[str] | None = None, db: str | None = None) -> Home:
        path = Path(home).expanduser() if home else default_home()
        url = db or os.environ.get(DB_ENV) or f"sqlite:///{path / 'mware-iam.db'}"
        return cls(path=path, db_url=url)

    @property
    def key_file(self) -> Path:
        return self.path / "secret.key"

    def ensure(self) -> None:
        """Create the home; it is 0700 and its files 0600 whatever existed before.

        The database and the key are secrets at rest: a home left 0755 by an older release
        or made by hand is tightened too (files of another owner are left alone).
        """
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        private(self.path, 0o700)
        for entry in self.path.iterdir():
            if entry.is_file() and not entry.is_symlink():
                private(entry, 0o600)


def private(path: Path, mode: int) -> None:
    """``chmod path mode`` when we own it and it is more open than ``mode``."""
    st = path.stat()
    if st.st_uid == os.getuid() and st.st_mode & 0o777 & ~mode:
        path.chmod(mode)
