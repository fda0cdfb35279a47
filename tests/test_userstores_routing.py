"""Several userstores in one deployment: PRIMARY, LDAP (slapd) and external SQL databases
(PostgreSQL, MariaDB, SQLite files). Routing by domain, lookup order, listings across
stores, groups within a store, disabled and unreachable stores, runtime changes (API and
YAML) and the secrets of store definitions."""

from __future__ import annotations

import base64
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import insert, inspect, select

from core.apps import Application
from core.configfile.errors import ConfigInvalid
from core.configfile.export import export_config
from core.configfile.files import apply_file
from core.db import make_engine
from core.errors import InvalidInput, NotFound, ReadOnlyStore, StoreUnavailable
from core.iam import Iam
from core.identity.events import Initiator
from core.schema import userstores as userstores_table
from core.secrets import SecretValue
from core.userstores.definitions import shown_properties
from core.userstores.ldap import LdapUserStore
from core.userstores.sql_external import ExternalSqlUserStore
from tests.conftest import FAST_ARGON2
from tests.ldap_server import SERVICE_PASSWORD, LdapTree, Slapd, free_port
from tests.servers import database_url

pytestmark = pytest.mark.server


@pytest.fixture(params=["postgresql", "mariadb", "sqlite"])
def external_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own for an external SQL store."""
    with database_url(request.param, str(tmp_path / "ext")) as url:
        yield url


@pytest.fixture
def iam(sqlite_iam: Iam, admin: Initiator, slapd_server: Slapd, ldap_tree: LdapTree,
        tmp_path: Path) -> Iam:
    """PRIMARY, then LDAP1 (slapd), then SALES (an SQLite file)."""
    sqlite_iam.save_userstore(admin, "LDAP1", "ldap", slapd_server.properties(ldap_tree))
    sqlite_iam.save_userstore(admin, "SALES", "sql", {"url": f"sqlite:///{tmp_path}/sales.db"})
    return sqlite_iam


def names(items: Any) -> list[str]:
    return [u.qualified_name for u in items]


def walk_all(iam: Iam, page_size: int, **kw: Any) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = iam.identity.list_users(None, page_size, cursor, **kw)
        pages.append(names(page.items))
        cursor = page.next_cursor
        if cursor is None:
            return pages


# ---------------------------------------------------------------- external SQL stores
def test_an_external_sql_store_creates_its_tables_on_first_use(
        sqlite_iam: Iam, admin: Initiator, external_url: str) -> None:
    sqlite_iam.save_userstore(admin, "EXT", "sql", {"url": external_url})
    store = sqlite_iam.stores.store("EXT")
    assert isinstance(store, ExternalSqlUserStore)
    engine = make_engine(external_url)
    try:
        assert "um_users" not in inspect(engine).get_table_names()  # nothing yet
        view = sqlite_iam.identity.add_user(admin, "EXT/zoe", "Correct-horse-9",
                                            {"emailaddress": "zoe@example.com"})
        assert "um_users" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    assert sqlite_iam.identity.get_user("EXT/zoe").id == view.id
    assert sqlite_iam.identity.verify_password("EXT/zoe", "Correct-horse-9") is not None
    sqlite_iam.identity.add_role(admin, "EXT/crew", ["EXT/zoe"])
    assert sqlite_iam.identity.roles_of("EXT/zoe") == ["EXT/crew"]
    assert sqlite_iam.stores.store("EXT").health().reachable


def test_a_read_only_sql_store_reads_and_never_writes(
        sqlite_iam: Iam, admin: Initiator, external_url: str) -> None:
    sqlite_iam.save_userstore(admin, "RO", "sql", {"url": external_url, "read_only": True})
    with pytest.raises(StoreUnavailable, match="has no um_users"):
        sqlite_iam.identity.get_user("RO/anyone")
    assert not sqlite_iam.stores.store("RO").health().reachable
    sqlite_iam.save_userstore(admin, "RW", "sql", {"url": external_url})
    sqlite_iam.identity.add_user(admin, "RW/yan")
    sqlite_iam.save_userstore(admin, "RO", "sql", {"url": external_url, "read_only": True})
    # the same database, as another domain: its rows are keyed by domain, so RO sees none
    assert sqlite_iam.identity.list_users("RO").items == []
    with pytest.raises(ReadOnlyStore):
        sqlite_iam.identity.add_user(admin, "RO/xia")


def test_a_sql_store_that_is_down_does_not_stop_the_deployment(
        tmp_path: Path, admin: Initiator) -> None:
    home = str(tmp_path / "home")
    dead = f"postgresql://nobody:Db-secret-1@127.0.0.1:{free_port()}/x"
    with Iam.open(home=home, argon2=FAST_ARGON2) as iam:
        iam.save_userstore(admin, "DEAD", "sql", {"url": dead})
    with Iam.open(home=home, argon2=FAST_ARGON2) as iam:  # opens although DEAD is down
        iam.identity.add_user(admin, "alive")
        with pytest.raises(StoreUnavailable, match="userstore DEAD is unreachable") as e:
            iam.identity.add_user(admin, "DEAD/xyz")
        assert "Db-secret-1" not in str(e.value)
        health = iam.stores.store("DEAD").health()
        assert not health.reachable and "Db-secret-1" not in health.detail


def test_the_sql_url_is_a_secret(sqlite_iam: Iam, admin: Initiator, tmp_path: Path) -> None:
    url = f"postgresql://app:Db-secret-1@127.0.0.1:{free_port()}/hr"
    sqlite_iam.save_userstore(admin, "HR", "sql", {"url": url})
    with sqlite_iam.db.transaction() as conn:
        row = conn.execute(select(userstores_table).where(
            userstores_table.c.domain == "HR")).mappings().one()
    assert "Db-secret-1" not in json.dumps(dict(row["properties"])) + json.dumps(row["secrets"])
    shown = shown_properties(sqlite_iam.stores.definitions["HR"])["url"]
    assert "Db-secret-1" not in shown and shown.startswith("postgresql://app:***@127.0.0.1")


# ---------------------------------------------------------------- routing
def test_names_route_to_their_store_and_bare_names_go_in_order(
        iam: Iam, admin: Initiator) -> None:
    for name in ("bob", "LDAP1/bob", "SALES/bob", "LDAP1/carol", "SALES/carol", "SALES/dina"):
        iam.identity.add_user(admin, name, "Correct-horse-9")
    assert iam.stores.domains == ["PRIMARY", "LDAP1", "SALES"]
    assert iam.identity.get_user("bob").domain == "PRIMARY"
    assert iam.identity.get_user("carol").domain == "LDAP1"  # before SALES
    assert iam.identity.get_user("dina").domain == "SALES"
    assert iam.identity.get_user("SALES/bob").domain == "SALES"
    assert iam.identity.get_user("ldap1/BOB").domain == "LDAP1"
    assert isinstance(iam.stores.store("LDAP1"), LdapUserStore)
    verified = iam.identity.verify_password("carol", "Correct-horse-9")
    assert verified is not None and verified.domain == "LDAP1"
    with pytest.raises(NotFound, match="does not exist"):
        iam.identity.get_user("LDAP2/bob")


def test_the_user_list_spans_every_store_or_filters_by_one(iam: Iam, admin: Initiator) -> None:
    wanted = ["PRIMARY/pp1", "PRIMARY/pp2", "LDAP1/ll1", "LDAP1/ll2", "LDAP1/ll3",
              "SALES/ss1"]
    for name in wanted:
        iam.identity.add_user(admin, name)
    pages = walk_all(iam, 4)
    assert [n for p in pages for n in p] == wanted  # stores in order, each store's order
    assert [len(p) for p in pages] == [4, 2]
    assert walk_all(iam, 6) == [wanted]
    assert [n for p in walk_all(iam, 1) for n in p] == wanted
    assert [n for p in walk_all(iam, 2, prefix="ll") for n in p] == wanted[2:5]
    assert names(iam.identity.list_users("LDAP1").items) == wanted[2:5]
    assert iam.identity.count_users(None) == 6 and iam.identity.count_users("SALES") == 1
    first = iam.identity.list_users(None, 3)
    assert json.loads(base64.urlsafe_b64decode(first.next_cursor or ""))["d"] == "LDAP1"
    with pytest.raises(InvalidInput, match="not valid"):
        iam.identity.list_users(None, 3, "garbage")


def test_groups_stay_in_their_store_and_internal_roles_span_all(
        iam: Iam, admin: Initiator) -> None:
    for name in ("amy", "LDAP1/amy", "SALES/ben"):
        iam.identity.add_user(admin, name)
    iam.identity.add_role(admin, "LDAP1/staff", ["LDAP1/amy"])
    with pytest.raises(InvalidInput, match="can only hold users of LDAP1"):
        iam.identity.assign(admin, "LDAP1/staff", ["SALES/ben"])
    with pytest.raises(InvalidInput, match="can only hold users of"):
        iam.identity.add_role(admin, "SALES/team", ["LDAP1/amy"])
    iam.identity.add_role(admin, "Internal/auditors", ["amy", "LDAP1/amy", "SALES/ben"])
    members = names(iam.identity.members_of("Internal/auditors"))
    assert sorted(members) == ["LDAP1/amy", "PRIMARY/amy", "SALES/ben"]
    assert iam.identity.roles_of("LDAP1/amy") == ["LDAP1/staff", "Internal/auditors"]
    roles = {r.qualified_name for r in iam.identity.list_roles()}
    assert {"LDAP1/staff", "Internal/auditors"} <= roles


def test_a_disabled_store_is_hidden_without_losing_data(iam: Iam, admin: Initiator) -> None:
    user = iam.identity.add_user(admin, "LDAP1/eve")
    iam.identity.add_role(admin, "Internal/ops", ["LDAP1/eve"])
    d = iam.stores.definitions["LDAP1"]
    iam.save_userstore(admin, "LDAP1", d.type, d.properties, enabled=False)
    assert iam.stores.domains == ["PRIMARY", "SALES"]
    with pytest.raises(NotFound, match="userstore LDAP1 is disabled"):
        iam.identity.get_user("LDAP1/eve")
    with pytest.raises(NotFound):
        iam.identity.get_user("eve")
    assert names(iam.identity.members_of("Internal/ops")) == []
    iam.save_userstore(admin, "LDAP1", d.type, d.properties, enabled=True)
    assert iam.identity.get_user("eve").id == user.id
    assert names(iam.identity.members_of("Internal/ops")) == ["LDAP1/eve"]


def test_a_store_that_is_down_gives_a_clear_error_and_the_others_keep_working(
        iam: Iam, admin: Initiator, slapd_server: Slapd, ldap_tree: LdapTree) -> None:
    iam.identity.add_user(admin, "pat")
    iam.identity.add_user(admin, "SALES/sam")
    iam.save_userstore(admin, "DOWN", "ldap", slapd_server.properties(
        ldap_tree, connection_url=f"ldap://127.0.0.1:{free_port()}",
        connection_retry_count=0))
    assert iam.stores.domains == ["PRIMARY", "LDAP1", "SALES", "DOWN"]
    with pytest.raises(StoreUnavailable, match="userstore DOWN is unreachable"):
        iam.identity.get_user("DOWN/xyz")
    with pytest.raises(StoreUnavailable, match="userstore DOWN"):
        iam.identity.add_user(admin, "DOWN/xyz")
    assert iam.identity.get_user("pat").domain == "PRIMARY"
    assert iam.identity.get_user("sam").domain == "SALES"  # SALES comes before DOWN
    with pytest.raises(StoreUnavailable, match="give it as DOMAIN/nobody"):
        iam.identity.get_user("nobody")
    iam.identity.add_user(admin, "LDAP1/lou")
    pages = []
    with pytest.raises(StoreUnavailable, match="userstore DOWN"):
        cursor = None
        while True:  # the listing serves the stores before DOWN, then says it is down
            page = iam.identity.list_users(None, 1, cursor)
            pages.append(names(page.items))
            cursor = page.next_cursor
            if cursor is None:
                break
    assert [n for p in pages for n in p] == ["PRIMARY/pat", "LDAP1/lou", "SALES/sam"]
    health = {d: iam.stores.store(d).health() for d in iam.stores.domains}
    assert [d for d, h in health.items() if not h.reachable] == ["DOWN"]


def test_a_definition_that_cannot_be_opened_breaks_only_its_store(
        iam: Iam, admin: Initiator) -> None:
    with iam.db.transaction() as conn:
        conn.execute(insert(userstores_table).values(
            domain="BROKEN", type="ldap", position=9, enabled=True, description="",
            properties={"connection_url": "ldap://x"}, secrets={}))
    iam.stores.load()
    with pytest.raises(StoreUnavailable, match="userstore BROKEN cannot be opened"):
        iam.identity.list_users("BROKEN")
    assert not iam.stores.store("BROKEN").health().reachable
    iam.identity.add_user(admin, "still-fine")


# ---------------------------------------------------------------- runtime changes
def test_a_change_takes_effect_at_once(iam: Iam, admin: Initiator, slapd_server: Slapd) -> None:
    iam.identity.add_user(admin, "LDAP1/gil")
    other = slapd_server.new_tree()
    iam.save_userstore(admin, "LDAP1", "ldap", slapd_server.properties(other))
    with pytest.raises(NotFound):
        iam.identity.get_user("LDAP1/gil")  # the new base holds nobody yet
    iam.identity.add_user(admin, "LDAP1/hugo")
    assert iam.identity.list_users("LDAP1").items[0].username == "hugo"


def test_removing_a_store_forgets_it_but_not_its_directory(
        iam: Iam, admin: Initiator, slapd_server: Slapd, ldap_tree: LdapTree) -> None:
    iam.identity.add_user(admin, "LDAP1/ida")
    iam.identity.add_role(admin, "Internal/ops", ["LDAP1/ida"])
    iam.save_claim(admin, "http://wso2.org/claims/telephone", "Telephone",
                   mappings={"LDAP1": "homePhone"})
    iam.save_app(admin, Application("portal", inbound_domain="LDAP1"))
    with pytest.raises(InvalidInput, match="used by application portal"):
        iam.remove_userstore(admin, "LDAP1")
    iam.save_app(admin, Application("portal"))
    iam.remove_userstore(admin, "ldap1")
    assert "LDAP1" not in iam.stores.definitions
    assert [d.domain for d in iam.userstore_definitions()] == ["PRIMARY", "SALES"]
    assert [d.position for d in iam.userstore_definitions()] == [0, 1]
    assert "LDAP1" not in iam.claims._mappings
    assert names(iam.identity.members_of("Internal/ops")) == []
    conn = slapd_server.admin()
    assert conn.search(ldap_tree.users, "(uid=ida)")  # the directory keeps its entry
    conn.unbind()
    with pytest.raises(InvalidInput, match="PRIMARY cannot be removed"):
        iam.remove_userstore(admin, "PRIMARY")
    with pytest.raises(NotFound):
        iam.remove_userstore(admin, "LDAP1")
    assert iam.audit_log(1)[0].action == "userstore.remove"


def test_primary_must_stay_the_sql_store(sqlite_iam: Iam, admin: Initiator,
                                         slapd_server: Slapd, ldap_tree: LdapTree) -> None:
    with pytest.raises(InvalidInput, match="PRIMARY is the SQL store"):
        sqlite_iam.save_userstore(admin, "PRIMARY", "ldap", slapd_server.properties(ldap_tree))
    with pytest.raises(InvalidInput, match="url is required"):
        sqlite_iam.save_userstore(admin, "OTHER", "sql", {})


# ---------------------------------------------------------------- configuration as code
def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "deployment.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_config_apply_adds_an_ldap_store_and_export_writes_only_references(
        sqlite_iam: Iam, admin: Initiator, slapd_server: Slapd, ldap_tree: LdapTree,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LDAP_BIND_PW", SERVICE_PASSWORD)
    sales = f"sqlite:///{tmp_path}/sales.db"
    props = slapd_server.properties(ldap_tree, bind_password="${env:LDAP_BIND_PW}")
    path = write(tmp_path, f"""
        userstores:
          - domain: ldap1
            type: ldap
            description: Staff directory
            properties: {json.dumps(props)}
          - domain: SALES
            properties: {{url: "{sales}"}}
        users:
          - username: LDAP1/olga
            claims: {{emailaddress: olga@example.com}}
        """)
    lines = apply_file(sqlite_iam, path, admin)
    assert lines[:2] == ["+ userstore LDAP1", "+ userstore SALES"]
    assert sqlite_iam.identity.get_user("LDAP1/olga").claims[
        "http://wso2.org/claims/emailaddress"] == "olga@example.com"
    assert apply_file(sqlite_iam, path, admin) == []  # idempotent
    exported = export_config(sqlite_iam)
    assert SERVICE_PASSWORD not in exported
    stores = {s["domain"]: s for s in yaml.safe_load(exported)["userstores"]}
    assert stores["LDAP1"]["properties"]["bind_password"] == "${env:LDAP_BIND_PW}"
    assert stores["SALES"]["properties"]["url"] == sales  # no password in it: as it is
    again = write(tmp_path, exported)
    assert apply_file(sqlite_iam, again, admin) == []  # the export applies back unchanged
    monkeypatch.delenv("LDAP_BIND_PW")
    assert apply_file(sqlite_iam, again, admin) == []  # the stored secret stands in


def test_a_literal_secret_in_a_file_is_exported_as_a_generated_reference(
        sqlite_iam: Iam, admin: Initiator, slapd_server: Slapd, ldap_tree: LdapTree,
        tmp_path: Path) -> None:
    with database_url("postgresql", str(tmp_path)) as private:  # trust: any password goes
        db_url = private.replace("postgres@", "postgres:Db-secret-1@", 1)
        assert "Db-secret-1" in db_url
        check_literal_secrets(sqlite_iam, admin, slapd_server, ldap_tree, tmp_path, db_url)


def check_literal_secrets(sqlite_iam: Iam, admin: Initiator, slapd_server: Slapd,
                          ldap_tree: LdapTree, tmp_path: Path, db_url: str) -> None:
    path = write(tmp_path, f"""
        userstores:
          - domain: LDAP1
            type: ldap
            properties: {json.dumps(slapd_server.properties(ldap_tree))}
          - domain: HR
            properties: {{url: "{db_url}"}}
        """)
    apply_file(sqlite_iam, path, admin)
    exported = export_config(sqlite_iam)
    assert SERVICE_PASSWORD not in exported and "Db-secret-1" not in exported
    stores = {s["domain"]: s for s in yaml.safe_load(exported)["userstores"]}
    assert stores["LDAP1"]["properties"]["bind_password"] == \
        "${env:MWARE_USERSTORE_LDAP1_BIND_PASSWORD}"
    assert stores["HR"]["properties"]["url"] == "${env:MWARE_USERSTORE_HR_URL}"
    assert sqlite_iam.stores.definitions["LDAP1"].properties["bind_password"] == \
        SecretValue(SERVICE_PASSWORD)
    assert apply_file(sqlite_iam, write(tmp_path, exported), admin) == []


def test_ldap_property_mistakes_are_reported_at_their_line(
        sqlite_iam: Iam, admin: Initiator, tmp_path: Path) -> None:
    path = write(tmp_path, """
        userstores:
          - domain: LDAP1
            type: ldap
            properties:
              connection_url: ldap://127.0.0.1:1
              bind_dn: cn=iam,dc=example,dc=org
              bind_password: ${env:NOT_SET_ANYWHERE}
              username_search_filter: (uid=nobody)
              max_list_length: lots
        """)
    with pytest.raises(ConfigInvalid) as e:
        apply_file(sqlite_iam, path, admin)
    found = {(err.line, err.message.split(":")[0]) for err in e.value.errors}
    assert (7, "bind_password") in found and (9, "max_list_length") in found
    assert "LDAP1" not in sqlite_iam.stores.definitions
