"""Databases this machine runs, for tests: each test gets its own schema or database.

A server that is absent makes its tests skip with the reason on a laptop, and fail under
``CI=true`` so that CI never passes by skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text

POSTGRES_ADMIN = os.environ.get("MWARE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_ADMIN = os.environ.get("MWARE_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/test")
BACKENDS = ("sqlite", "postgresql", "mariadb")


def unavailable(reason: str) -> None:
    """Skip on a laptop; fail under CI, which must never pass by skipping."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and a required server is missing: {reason}")
    pytest.skip(reason)


@contextmanager
def database_url(backend: str, tmp_dir: str) -> Iterator[str]:
    """A URL to an empty, private database on ``backend``; dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_dir}/system.db"
        return
    admin_url = POSTGRES_ADMIN if backend == "postgresql" else MARIADB_ADMIN
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if backend == "postgresql":
                conn.execute(text(f'CREATE SCHEMA "{name}"'))
            else:
                conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    except Exception as exc:  # server down, auth refused
        admin.dispose()
        unavailable(f"{backend} at {admin.url.render_as_string()} is not reachable: "
                    f"{str(exc).splitlines()[0]}")
    if backend == "postgresql":
        url = f"{admin_url}?options=-csearch_path%3D{name}"
    else:
        url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            if backend == "postgresql":
                conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
            else:
                conn.execute(text(f"DROP DATABASE `{name}`"))
        admin.dispose()
