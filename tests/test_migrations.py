"""The Alembic migrations build exactly ``core.schema.metadata``, on every backend."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event, func, insert, inspect, select

from core.db import MIGRATIONS_DIR, SystemDB
from core.provisioning import guard, mapping
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
        # reconciliation's look-up by remote id, the deletion guard's count (issue 16)
        assert "ix_prov_mappings_target_type_remote_id" in {
            ix["name"] for ix in inspect(db.engine).get_indexes("prov_mappings")}
        assert "ix_prov_jobs_target_operation_state_updated" in {
            ix["name"] for ix in inspect(db.engine).get_indexes("prov_jobs")}
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


def _plan(db: SystemDB, run: Callable[[Connection], object]) -> str:
    """SQLite's plan of the one statement ``run`` sends."""
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    with db.engine.connect() as conn:
        event.listen(db.engine, "before_cursor_execute", record)
        try:
            run(conn)
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
        [(statement, parameters)] = sent
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        return " | ".join(str(r[-1]) for r in rows)


def test_reconcile_and_the_guard_read_through_their_indexes(sqlite_url: str) -> None:
    db = SystemDB(sqlite_url)
    try:
        db.migrate()
        by_remote = _plan(db, lambda c: mapping.by_remote_ids(c, "t:scim2", "user", ["r1"]))
        assert by_remote.startswith(
            "SEARCH prov_mappings USING INDEX ix_prov_mappings_target_type_remote_id "
            "(target=? AND entity_type=? AND remote_id=?)"), by_remote
        counted = _plan(db, lambda c: guard.deletions_counted(c, "t:scim2", [1, 2],
                                                              datetime.now(UTC)))
        assert counted.startswith("SEARCH prov_jobs USING COVERING INDEX "
                                  "ix_prov_jobs_target_operation_state_updated"), counted
    finally:
        db.dispose()
