from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.iam import Iam
from core.identity.events import Initiator
from core.passwords import Argon2Params
from tests.servers import BACKENDS, database_url

#: Cheap argon2id for tests (the parameters are configurable; production uses the defaults).
FAST_ARGON2 = Argon2Params(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """An empty system database on SQLite, PostgreSQL and MariaDB in turn."""
    with database_url(request.param, str(tmp_path)) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/system.db"


@pytest.fixture
def iam(tmp_path, db_url: str) -> Iterator[Iam]:
    """A fresh deployment on each backend."""
    with Iam.open(home=str(tmp_path / "home"), db=db_url, argon2=FAST_ARGON2) as deployment:
        yield deployment


@pytest.fixture
def sqlite_iam(tmp_path) -> Iterator[Iam]:
    """A fresh deployment on SQLite only (for tests that are not about the backend)."""
    with Iam.open(home=str(tmp_path / "home"), argon2=FAST_ARGON2) as deployment:
        yield deployment


@pytest.fixture
def admin() -> Initiator:
    return Initiator.admin()
