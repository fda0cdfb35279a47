"""The Alembic migrations build exactly ``core.schema.metadata``, on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, insert, inspect, select

from core.db import MIGRATIONS_DIR, SystemDB
from core.schema import metadata, userstores


def head_revision() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    heads = ScriptDirectory.from_config(cfg).get_heads()
    assert len(heads) == 1, f"the migrations must form one line, got heads {heads}"
    return heads[0]


def schema_diffs(db: SystemDB) -> list[object]:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def current_revision(db: SystemDB) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_migrating_an_empty_database_builds_exactly_the_schema(db_url: str) -> None:
    db = SystemDB(db_url)
    try:
        assert db.table_names() == set()
        db.migrate()
        assert db.table_names() == set(metadata.tables) | {"alembic_version"}
        assert schema_diffs(db) == []
        assert current_revision(db) == head_revision()
        # the indexes the listings rely on are there, by name
        indexes = {ix["name"] for ix in inspect(db.engine).get_indexes("um_user_attributes")}
        assert "ix_um_user_attributes_name_value_user" in indexes
    finally:
        db.dispose()


def test_migrating_twice_is_a_no_op(db_url: str) -> None:
    db = SystemDB(db_url)
    try:
        db.migrate()
        with db.engine.begin() as conn:
            conn.execute(insert(userstores).values(
                domain="KEEP", type="sql", position=5, enabled=True, description="kept",
                properties={}, secrets={}))
        before = {t: [c["name"] for c in inspect(db.engine).get_columns(t)]
                  for t in db.table_names()}
        db.migrate()
        after = {t: [c["name"] for c in inspect(db.engine).get_columns(t)]
                 for t in db.table_names()}
        assert after == before
        assert schema_diffs(db) == []
        assert current_revision(db) == head_revision()
        with db.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(userstores)).scalar() == 1
    finally:
        db.dispose()
