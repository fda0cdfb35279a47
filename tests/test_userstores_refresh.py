"""A running process sees userstores another process added, changed or removed, within
about a second, on every system database backend."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import event

from core.errors import NotFound
from core.iam import Iam
from core.identity.events import Initiator
from core.userstores import router
from tests.conftest import FAST_ARGON2


def until(check: object, seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            assert callable(check) and check()
            return
        except (AssertionError, NotFound):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_a_userstore_added_elsewhere_is_seen_within_a_second(
        iam: Iam, admin: Initiator, tmp_path: Path, db_url: str) -> None:
    # another process of the same deployment (its home, its key), e.g. the CLI
    with Iam.open(home=str(tmp_path / "home"), db=db_url, argon2=FAST_ARGON2) as other:
        iam.stores.store("PRIMARY")  # the running process has looked at its stores
        other.save_userstore(admin, "SALES", "sql", {"url": f"sqlite:///{tmp_path}/s.db"})
        began = time.monotonic()
        until(lambda: iam.stores.store("SALES") is not None)
        assert time.monotonic() - began < 1.5
        iam.identity.add_user(admin, "SALES/pat", None, {})
        assert other.identity.get_user("SALES/pat").domain == "SALES"
        kept = iam.stores.store("PRIMARY")
        other.save_userstore(admin, "SALES", "sql", {"url": f"sqlite:///{tmp_path}/s.db"},
                             enabled=False)
        until(lambda: "SALES" not in iam.stores.domains)
        with pytest.raises(NotFound, match="userstore SALES is disabled"):
            iam.stores.store("SALES")
        assert iam.stores.store("PRIMARY") is kept  # an unchanged store stays open
        other.remove_userstore(admin, "SALES")
        until(lambda: "SALES" not in iam.stores.domains and "SALES" not in iam.stores.definitions)
        with pytest.raises(NotFound, match="known: PRIMARY"):
            iam.stores.store("SALES")


def test_the_version_is_read_at_most_once_a_second(sqlite_iam: Iam) -> None:
    statements: list[str] = []
    listen = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(sqlite_iam.db.engine, "before_cursor_execute", listen)
    try:
        began = time.monotonic()
        for _ in range(2000):
            sqlite_iam.stores.store("PRIMARY")
        elapsed = time.monotonic() - began
    finally:
        event.remove(sqlite_iam.db.engine, "before_cursor_execute", listen)
    reads = [s for s in statements if "config_versions" in s]
    assert len(reads) <= int(elapsed / router.REFRESH_SECONDS) + 1
