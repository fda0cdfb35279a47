"""Store queries on SQL userstores (SQLite, PostgreSQL, MariaDB), and the SCIM filters that
become them: same answers on every backend, index reads rather than scans, values bound."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from scim2_models import ScimFilter

from core.claims import DEFAULT_SCIM_MAPPINGS, LOCAL_DIALECT
from core.iam import Iam
from core.identity.events import Initiator
from core.inbound.filters import FilterTranslator
from core.inbound.schemas import mapped_paths
from core.userstores import query as q
from core.userstores.sql_query import shape, user_statements

EMAIL = f"{LOCAL_DIALECT}/emailaddress"
TITLE = f"{LOCAL_DIALECT}/title"
ACTIVE = f"{LOCAL_DIALECT}/active"
PATHS = mapped_paths({ext: f"{LOCAL_DIALECT}/{short}" for ext, short in DEFAULT_SCIM_MAPPINGS})


def translate(scim_filter: str, resource: str = "User") -> q.Query:
    return FilterTranslator(resource, PATHS).translate(ScimFilter(scim_filter).ast)


@pytest.fixture
def people(iam: Iam, admin: Initiator) -> Iam:
    for name, title, email, active in [
            ("ann", "Engineer", "ann@example.com", None), ("bob", "engineer", None, "false"),
            ("cid", "Manager", "cid@example.org", "true"), ("Dee", None, "d%e@example.com",
                                                            None)]:
        claims = {k: v for k, v in {"title": title, "emailaddress": email,
                                    "active": active}.items() if v is not None}
        iam.identity.add_user(admin, name, None, claims)
    return iam


def names(iam: Iam, query: q.Query, sort: q.Sort | None = None, start: int = 0,
          count: int = 100) -> list[str]:
    page = iam.identity.search_users("PRIMARY", query, start, count, sort)
    return [u.username for u in page.items]


def test_every_operator_answers_alike_on_every_backend(people: Iam) -> None:
    by_name = q.Sort(q.NAME)
    assert names(people, q.Compare(q.NAME, q.Op.EQ, "bob")) == ["bob"]
    assert names(people, q.Compare(q.attribute(TITLE), q.Op.EQ, "Engineer")) == ["ann"]
    assert names(people, q.Compare(q.attribute(TITLE), q.Op.NE, "Engineer"), by_name) == \
        ["Dee", "bob", "cid"]  # NE includes users without the claim
    assert names(people, q.Compare(q.attribute(TITLE), q.Op.CO, "GINE"), by_name) == \
        ["ann", "bob"]  # co is case-insensitive everywhere (SCIM caseExact false)
    assert names(people, q.Compare(q.attribute(EMAIL), q.Op.EW, ".COM"), by_name) == \
        ["Dee", "ann"]
    assert names(people, q.Compare(q.attribute(EMAIL), q.Op.CO, "%"), by_name) == ["Dee"]
    assert names(people, q.Compare(q.attribute(EMAIL), q.Op.CO, "_"), by_name) == []
    assert names(people, q.Compare(q.NAME, q.Op.SW, "c")) == ["cid"]
    assert names(people, q.Compare(q.attribute(TITLE), q.Op.PR), by_name) == \
        ["ann", "bob", "cid"]
    assert names(people, q.Compare(q.attribute(TITLE), q.Op.GT, "Engineer"), by_name) == \
        ["bob", "cid"]  # code point order: "M" < "e"
    assert names(people, q.And((q.Compare(q.attribute(TITLE), q.Op.PR),
                                q.Not(q.Compare(q.attribute(ACTIVE), q.Op.EQ, "false")))),
                 by_name) == ["ann", "cid"]
    assert names(people, q.Or((q.Compare(q.NAME, q.Op.EQ, "ann"),
                               q.Compare(q.attribute(EMAIL), q.Op.EQ, "cid@example.org"))),
                 by_name) == ["ann", "cid"]
    assert names(people, q.Compare(q.attribute(f"{LOCAL_DIALECT}/nickname"), q.Op.PR)) == []


def test_sorting_paging_and_totals(people: Iam) -> None:
    page = people.identity.search_users("PRIMARY", q.TRUE, 1, 2, q.Sort(q.NAME))
    assert page.total == 4 and [u.username for u in page.items] == ["ann", "bob"]
    assert names(people, q.TRUE, q.Sort(q.attribute(TITLE), descending=True)) == \
        ["bob", "cid", "ann", "Dee"]  # without a title last, either way
    assert names(people, q.TRUE, q.Sort(q.attribute(TITLE))) == ["ann", "cid", "bob", "Dee"]
    assert people.identity.search_users("PRIMARY", q.TRUE, 10, 5).items == []
    assert people.identity.search_users("PRIMARY", q.TRUE, 0, 0).total == 4
    # The total is counted only when the page cannot tell it: the same on every page.
    engineers = q.Compare(q.attribute(TITLE), q.Op.EQ, "engineer")
    for query, total in ((q.TRUE, 4), (engineers, 1), (q.Compare(q.NAME, q.Op.EQ, "x"), 0)):
        assert len(people.identity.search_users("PRIMARY", query, 0, 100).items) == total
        for start in range(6):
            for count in range(6):
                page = people.identity.search_users("PRIMARY", query, start, count)
                assert page.total == total, (query, start, count)
                assert len(page.items) == max(0, min(count, total - start))


def test_times_compare_to_the_microsecond(people: Iam, admin: Initiator) -> None:
    """Within one second too (MariaDB keeps microseconds since migration 0005)."""
    before = datetime.now(UTC) - timedelta(seconds=2)
    assert len(names(people, q.Compare(q.MODIFIED, q.Op.GT, before))) == 4
    time.sleep(0.01)
    later = datetime.now(UTC)
    people.identity.update_user(admin, "bob", {"title": "Boss"})
    assert names(people, q.Compare(q.MODIFIED, q.Op.GE, later)) == ["bob"]
    assert names(people, q.Compare(q.CREATED, q.Op.LT, before)) == []
    assert len(names(people, q.Compare(q.CREATED, q.Op.LE, later))) == 4


def test_values_are_bound_never_spliced(people: Iam) -> None:
    for hostile in ("' OR '1'='1", "ann' --", '") OR 1=1 --', "\\", "%", "_"):
        assert names(people, q.Compare(q.NAME, q.Op.EQ, hostile)) == []
        assert names(people, q.Compare(q.attribute(TITLE), q.Op.SW, hostile)) == []
    assert people.identity.count_users("PRIMARY") == 4


def test_sqlite_reads_indexes_not_every_user(sqlite_iam: Iam) -> None:
    """The plan of each filtered search reads an index range: none scans um_users, nor
    walks the store's users by ``store = ?`` alone."""
    key = sqlite_iam.stores.store("PRIMARY").policies.key
    cases = [q.Compare(q.NAME, q.Op.EQ, "x"), q.Compare(q.attribute("mail"), q.Op.EQ, "x"),
             q.Compare(q.attribute("mail"), q.Op.SW, "x"),
             q.Compare(q.MODIFIED, q.Op.GT, datetime(2026, 1, 1, tzinfo=UTC)),
             q.Or((q.Compare(q.attribute("externalId"), q.Op.EQ, "e"),
                   q.Compare(q.NAME, q.Op.SW, "a")))]
    with sqlite_iam.db.engine.connect() as conn:
        for case in cases:
            query_shape, values = shape(case)
            statements = user_statements(query_shape, None)
            params = {**statements.params(values, "PRIMARY", key), "offset": 0, "limit": 10}
            for statement in (statements.page, statements.count):
                compiled = statement.compile(conn)
                bound = compiled.construct_params(params)
                plan = " | ".join(str(r[-1]) for r in conn.exec_driver_sql(
                    f"EXPLAIN QUERY PLAN {compiled}",
                    tuple(bound[name] for name in compiled.positiontup or ())))
                assert "SCAN um_users" not in plan, (case, plan)
                assert "um_users USING COVERING INDEX sqlite_autoindex_um_users_1 (store=?)" \
                    not in plan, (case, plan)


def test_queries_of_one_shape_share_their_statements() -> None:
    """Only the values differ: one statement serves every query of a shape."""
    def statements(query: q.Query) -> object:
        return user_statements(shape(query)[0], None)

    ann, bob = (q.And((q.Compare(q.NAME, q.Op.SW, n), q.Compare(q.attribute(TITLE), q.Op.CO,
                                                                 n.upper()))) for n in
                ("ann", "bob"))
    assert statements(ann) is statements(bob)
    assert shape(ann)[1] == ["ann", "ANN"] and shape(bob)[1] == ["bob", "BOB"]
    assert statements(q.Compare(q.NAME, q.Op.SW, "ann")) is not statements(ann)


# ---------------------------------------------------------------- SCIM filters
def test_scim_filters_become_store_queries() -> None:
    email = q.attribute(EMAIL)
    assert translate('userName eq "ann"') == q.Compare(q.NAME, q.Op.EQ, "ann")
    assert translate('emails.value eq "a@x.com"') == q.Compare(email, q.Op.EQ, "a@x.com")
    assert translate('emails eq "a@x.com"') == q.Compare(email, q.Op.EQ, "a@x.com")
    assert translate('emails[type eq "work" and value co "x"]') == q.And((
        q.Compare(email, q.Op.PR), q.Compare(email, q.Op.CO, "x")))
    assert translate('emails[type eq "home"]') == q.FALSE
    assert translate('meta.lastModified gt "2026-01-02T03:04:05Z"') == q.Compare(
        q.MODIFIED, q.Op.GT, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert translate('active eq true') == q.Not(q.Compare(q.attribute(ACTIVE), q.Op.EQ,
                                                          "false"))
    assert translate('externalId eq "7"') == q.Compare(
        q.attribute(f"{LOCAL_DIALECT}/externalid"), q.Op.EQ, "7")
    assert translate('x509Certificates.value pr') == q.FALSE  # not stored: matches nothing
    assert translate('title pr or x509Certificates.value pr') == q.Compare(
        q.attribute(TITLE), q.Op.PR)
    assert translate('not (title eq null)') == q.Not(q.Not(q.Compare(q.attribute(TITLE),
                                                                     q.Op.PR)))
    assert translate('urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:'
                     'manager.value eq "m"') == q.Compare(
        q.attribute(f"{LOCAL_DIALECT}/manager"), q.Op.EQ, "m")
    assert translate('members[value eq "u1"]', "Group") == q.Compare(q.MEMBER, q.Op.EQ, "u1")
    assert translate('displayName sw "en"', "Group") == q.Compare(q.NAME, q.Op.SW, "en")
    assert translate('meta.created lt "2026-01-01T00:00:00Z"', "Group").field == q.CREATED


def test_group_searches_on_every_backend(iam: Iam, admin: Initiator) -> None:
    ann = iam.identity.add_user(admin, "ann")
    iam.identity.add_role(admin, "eng", ["ann"])
    iam.identity.add_role(admin, "ops")
    page = iam.identity.search_roles("PRIMARY", q.Compare(q.MEMBER, q.Op.EQ, ann.id), 0, 10)
    assert [r.name for r in page.items] == ["eng"]
    assert iam.identity.search_roles("PRIMARY", q.TRUE, 0, 10).total == 2
    assert [r.name for r in iam.identity.search_roles(
        "PRIMARY", q.Compare(q.NAME, q.Op.SW, "o"), 0, 10).items] == ["ops"]
