"""``core.db.insert_rows`` (and ``insert_row``, one row): the rows a bulk import hands to
the driver land as
``conn.execute(insert(...))`` would put them, on every backend, converted by their
columns' types (UTC times, JSON) where those convert."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, insert, select

from core.db import InStatement, SystemDB, execute_compiled, insert_row, insert_rows
from core.schema import audit_log, um_user_attributes, um_users, userstores


def test_rows_land_whatever_the_column_order(db_url: str) -> None:
    db = SystemDB(db_url)
    db.migrate()
    try:
        now = datetime.now(UTC)
        with db.transaction() as conn:
            conn.execute(insert(um_users), [
                {"store": "PRIMARY", "user_id": f"id{i}", "username": f"u{i}",
                 "username_key": f"u{i}", "created": now, "modified": now} for i in range(2)])
            pks = dict(conn.execute(select(um_users.c.user_id, um_users.c.pk)).all())
            insert_rows(conn, um_user_attributes, ("user_pk", "name", "value"),
                         [(pks["id0"], "mail", "a@x.org"), (pks["id1"], "sn", "Ünal 100%")])
            insert_rows(conn, um_user_attributes, ("value", "user_pk", "name"),
                         [("Ann", pks["id0"], "givenName")])
            insert_row(conn, um_user_attributes, ("name", "value", "user_pk"),
                       ("cn", "Ben B", pks["id1"]))
            # columns that convert (a UTC time, JSON)
            insert_rows(conn, audit_log, ("at", "actor", "face", "application", "action",
                                           "target", "detail"),
                         [(now, "os:x", "cli", "resident", "user.add", "PRIMARY/u0",
                           {"import": True})])
            insert_row(conn, audit_log, ("detail", "at", "actor", "face", "application",
                                         "action", "target"),
                       ({"one": [1]}, now, "os:x", "cli", "resident", "user.add", "PRIMARY/u1"))
        with db.transaction() as conn:
            attrs = sorted(conn.execute(select(
                um_user_attributes.c.user_pk, um_user_attributes.c.name,
                um_user_attributes.c.value)).all())
            audited = conn.execute(select(audit_log.c.at, audit_log.c.detail)
                                   .order_by(audit_log.c.pk)).all()
        assert attrs == sorted([(pks["id0"], "mail", "a@x.org"), (pks["id1"], "sn", "Ünal 100%"),
                                (pks["id0"], "givenName", "Ann"), (pks["id1"], "cn", "Ben B")])
        assert audited == [(now, {"import": True}), (now, {"one": [1]})]
    finally:
        db.dispose()


def test_a_column_with_a_default_cannot_be_left_out(sqlite_url: str) -> None:
    db = SystemDB(sqlite_url)
    db.migrate()
    try:
        with db.transaction() as conn, pytest.raises(ValueError, match="a column with a"):
            insert_rows(conn, userstores, ("domain", "type", "position"), [("X", "sql", 9)])
    finally:
        db.dispose()


@pytest.mark.parametrize("rows", [1, 3])
def test_replacing_rows_update_the_taken_keys_and_add_the_others(db_url: str, rows: int
                                                                   ) -> None:
    """``replacing``: a row whose unique key is stored replaces that row's value, the
    others are added; one row, or several in one statement (a multi-row insert on
    PostgreSQL, an executemany elsewhere)."""
    db = SystemDB(db_url)
    db.migrate()
    columns, key = ("user_pk", "name", "value"), ("user_pk", "name")
    try:
        now = datetime.now(UTC)
        with db.transaction() as conn:
            conn.execute(insert(um_users), {"store": "PRIMARY", "user_id": "id0",
                                            "username": "u0", "username_key": "u0",
                                            "created": now, "modified": now})
            pk = conn.execute(select(um_users.c.pk)).scalar_one()
            insert_rows(conn, um_user_attributes, columns,
                        [(pk, "mail", "old@x.org"), (pk, "sn", "Old")])
        with db.transaction() as conn:
            insert_rows(conn, um_user_attributes, columns,
                        [(pk, "mail", "new@x.org"), (pk, "givenName", "Ann"),
                         (pk, "title", "Dr")][:rows], replacing=key)
        with db.transaction() as conn:
            attrs = dict(conn.execute(select(um_user_attributes.c.name,
                                             um_user_attributes.c.value)).all())
        assert attrs == {"mail": "new@x.org", "sn": "Old",
                         **({"givenName": "Ann", "title": "Dr"} if rows == 3 else {})}
    finally:
        db.dispose()


def test_a_compiled_statement_runs_as_core_runs_it(db_url: str) -> None:
    """``execute_compiled``: an insert that returns its key, its columns given in another
    order than the statement's, its times converted; what comes back is Core's."""
    db = SystemDB(db_url)
    db.migrate()
    columns = ("modified", "store", "user_id", "username", "username_key", "created")
    statement = insert(um_users).values({c: bindparam(c) for c in columns}) \
        .returning(um_users.c.pk)
    try:
        now = datetime.now(UTC)
        with db.transaction() as conn:
            by_core = conn.execute(statement, dict(zip(columns, (
                now, "PRIMARY", "id0", "u0", "u0", now), strict=True))).scalar()
            compiled = [execute_compiled(conn, statement, um_users, columns, (
                now, "PRIMARY", f"id{i}", f"u{i}", f"u{i}", now)).scalar() for i in (1, 2)]
            rows = conn.execute(select(um_users.c.pk, um_users.c.user_id, um_users.c.created,
                                       um_users.c.modified).order_by(um_users.c.pk)).all()
        assert [r.pk for r in rows] == [by_core, *compiled]
        assert [(r.user_id, r.created, r.modified) for r in rows] == [
            (f"id{i}", now, now) for i in range(3)]
    finally:
        db.dispose()


def test_an_in_statement_finds_the_same_rows_with_one_many_or_no_values(db_url: str) -> None:
    """``InStatement``: ``=`` for one value, an expanding list for many (a JSON list read
    with ``json_each`` on SQLite): the same rows, strings (any text) and integers alike."""
    db = SystemDB(db_url)
    db.migrate()
    try:
        now = datetime.now(UTC)
        ids = ["id0", "Ünal 100% \"q\"", "id'2", "id3"]
        by_id = InStatement(lambda c: select(um_users.c.user_id).where(c), um_users.c.user_id,
                            "ids")
        by_pk = InStatement(lambda c: select(um_users.c.user_id).where(c), um_users.c.pk,
                            "pks")
        with db.transaction() as conn:
            conn.execute(insert(um_users), [
                {"store": "PRIMARY", "user_id": i, "username": f"u{n}",
                 "username_key": f"u{n}", "created": now, "modified": now}
                for n, i in enumerate(ids)])
            pks = dict(conn.execute(select(um_users.c.user_id, um_users.c.pk)).all())

            def found(statement: InStatement, name: str, values: list[object]) -> set[str]:
                return set(statement.execute(conn, {name: values}).scalars())

            assert found(by_id, "ids", ids[1:3]) == set(ids[1:3])
            assert found(by_id, "ids", [ids[1]]) == {ids[1]}
            assert found(by_id, "ids", [ids[0], "nobody"]) == {ids[0]}
            assert found(by_id, "ids", []) == set()
            assert found(by_pk, "pks", [pks[i] for i in ids[:3]]) == set(ids[:3])
            assert found(by_pk, "pks", [pks[ids[3]]]) == {ids[3]}
    finally:
        db.dispose()
