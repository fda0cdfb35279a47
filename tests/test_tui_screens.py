"""The console's object screens on a real deployment: journeys through Pilot (asserting the
engine's state, not only pixels) and pictures through snapshots.

Pictures are deterministic: fixed users and claims, a relative SQLite URL for the second
userstore (the test runs in its temporary directory), a pinned header, a fixed actor for
the seeded writes, audit timestamps pinned after seeding, no cursor blink, and every
worker finished before the picture is taken.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import Input, Static, TextArea

from core.apps import Application, OutboundTarget
from core.errors import NotFound
from core.iam import Iam
from core.identity.events import Face, Initiator
from core.identity.service import ImportRow
from core.idps import (
    ClaimMapping,
    ConnectorConfig,
    IdentityProvider,
    JitConfig,
    RoleMapping,
)
from core.schema import audit_log
from core.secrets import SecretValue
from tests.conftest import FAST_ARGON2
from tests.provisioning_helpers import connect, peer_users
from tests.tui_helpers import notices, settle, shown_keys
from tui.app import MwareConsole
from tui.screens.apps import ApplicationsScreen, moved, token_modal
from tui.screens.audit import AuditScreen
from tui.screens.idps import ConnectorForm, IdentityProvidersScreen, parse_pairs
from tui.screens.roles import RolesScreen
from tui.screens.users import UsersScreen, claim_changes, parse_search
from tui.screens.userstores import UserstoresScreen
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.form_screen import FormScreen
from tui.widgets.info_modal import InfoModal
from tui.widgets.lines_screen import LinesScreen
from tui.widgets.user_detail import UserDetail
from tui.widgets.users_table import UsersTable

ADMIN = Initiator("os:admin", Face.CLI)
PINNED = datetime(2025, 1, 6, 9, 30, tzinfo=UTC)
PEER = "http://127.0.0.1:9/v2"
TOKEN = "s3cret-bearer"

#: username, given name, last name (display name and email follow from them).
USERS = (("alice", "Alice", "Adams"), ("amir", "Amir", "Haddad"), ("bob", "Bob", "Brown"),
         ("carol", "Carol", "Chen"), ("dave", "Dave", "Dubois"), ("erin", "Erin", "Evans"))


def claims(username: str, given: str, last: str) -> dict[str, str]:
    return {"givenname": given, "lastname": last, "displayname": f"{given} {last}",
            "emailaddress": f"{username}@example.com"}


def seed(iam: Iam) -> None:
    iam.save_userstore(ADMIN, "PARTNERS", "sql", {"url": "sqlite:///partners.db"},
                       description="Partner accounts")
    for username, given, last in USERS:
        iam.identity.add_user(ADMIN, username, None, claims(username, given, last))
    iam.identity.add_user(ADMIN, "PARTNERS/paula", None, claims("paula", "Paula", "Pinto"))
    iam.identity.add_role(ADMIN, "admins", ["alice", "bob"])
    iam.identity.add_role(ADMIN, "engineers", ["carol", "dave"])
    iam.identity.add_role(ADMIN, "Internal/auditors", ["alice"])
    iam.save_idp(ADMIN, IdentityProvider(
        "corp-scim", "Corporate SCIM directory", provisioning_roles=("admins",),
        claim_mappings=(ClaimMapping("givenname", "name.givenName"),),
        role_mappings=(RoleMapping("admins", "Administrators"),),
        connectors=(ConnectorConfig(
            "scim2", default=True,
            properties={"scim2-user-ep": f"{PEER}/Users",
                        "scim2-authentication-mode": "BEARER"},
            secrets={"scim2-access-token": SecretValue(TOKEN)}),)))
    iam.save_idp(ADMIN, IdentityProvider("partner-sso", "Partner sign-in",
                                         jit=JitConfig(True, "PARTNERS")))
    iam.save_app(ADMIN, Application("hr-portal", "Human resources portal",
                                    outbound=(OutboundTarget("corp-scim", "scim2", True),)))
    with iam.db.transaction() as conn:
        conn.execute(update(audit_log).values(at=PINNED))


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Iam]:
    monkeypatch.chdir(tmp_path)  # PARTNERS' relative SQLite URL lands here
    with Iam.open(home=str(tmp_path / "home"), argon2=FAST_ARGON2) as iam:
        seed(iam)
        yield iam


def console(iam: Iam, screen: str, read_only: bool = False, **kw: Any) -> MwareConsole:
    return MwareConsole(iam, read_only, deployment="demo", workers=False, live=False,
                        screen=screen, **kw)


async def still(pilot: Pilot[Any]) -> None:
    """Settle, then stop every cursor blinking (for pictures)."""
    await settle(pilot)
    for widget in pilot.app.screen.query("Input, TextArea"):
        assert isinstance(widget, Input | TextArea)
        widget.cursor_blink = False
    await pilot.pause()


async def press(pilot: Pilot[Any], *keys: str) -> None:
    await pilot.press(*keys)
    await settle(pilot)


async def replace_text(pilot: Pilot[Any], widget: Input, text: str) -> None:
    widget.focus()
    widget.value = ""
    await pilot.press(*text)
    await pilot.pause()


def texts(app: MwareConsole) -> str:
    """Everything the active screen shows in its Static widgets and inputs."""
    shown = [str(s.content) for s in app.screen.query(Static)]
    shown += [i.value for i in app.screen.query(Input)]
    return "\n".join(shown)


# ====================================================================== users


async def test_add_a_user_through_the_form_and_find_it_in_the_engine(demo: Iam) -> None:
    app = console(demo, "users")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "a")
        form = app.screen
        assert isinstance(form, FormScreen)
        fields = form.form
        await pilot.press(*"zoe")
        await replace_text(pilot, fields.editor("password"), "Secret-123")
        await replace_text(pilot, fields.editor("password-again"), "Secret-123")
        await replace_text(pilot, fields.editor("givenname"), "Zoe")
        await replace_text(pilot, fields.editor("emailaddress"), "zoe@example.com")
        await press(pilot, "ctrl+s")

        assert isinstance(app.screen, UsersScreen)
        user = demo.identity.get_user("zoe")
        assert user.claims["http://wso2.org/claims/givenname"] == "Zoe"
        assert demo.identity.verify_password("zoe", "Secret-123") is not None
        table = app.screen.query_one(UsersTable)
        assert table.highlighted_user is not None
        assert table.highlighted_user.qualified_name == "PRIMARY/zoe"


async def test_a_refused_user_keeps_what_was_typed(demo: Iam) -> None:
    app = console(demo, "users")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "a")
        form = app.screen
        assert isinstance(form, FormScreen)
        await pilot.press(*"zo")  # the username policy wants 3 to 64 characters
        await replace_text(pilot, form.form.editor("password"), "Secret-123")
        await replace_text(pilot, form.form.editor("password-again"), "Secret-124")
        await press(pilot, "ctrl+s")
        assert form.form.error_of("password-again") == "✗ the two passwords differ"

        await replace_text(pilot, form.form.editor("password-again"), "Secret-123")
        await replace_text(pilot, form.form.editor("emailaddress"), "not-an-email")
        assert "does not match" in (form.form.error_of("emailaddress") or "")  # as typed
        await replace_text(pilot, form.form.editor("emailaddress"), "zo@example.com")
        await press(pilot, "ctrl+s")

        assert app.screen is form  # the engine refused: the form stays
        assert form.general_error is not None and form.general_error.startswith("Not saved:")
        assert form.form.error_of("username") is not None
        assert form.form.collect().values["username"] == "zo"
        assert form.form.collect().secrets == {"password": "Secret-123",
                                               "password-again": "Secret-123"}
        with pytest.raises(NotFound):
            demo.identity.get_user("zo")


async def test_the_users_table_holds_one_page_and_pages_on_demand(sqlite_iam: Iam) -> None:
    rows = [ImportRow(i, f"user{i:03d}", None, {"givenname": "Given"}) for i in range(120)]
    assert sqlite_iam.identity.import_users(ADMIN, rows).imported == 120
    app = console(sqlite_iam, "users", page_size=50)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(UsersTable)
        assert table.row_count == 50 and table.total == 120 and table.has_more
        await press(pilot, "end")
        assert table.row_count == 100
        await press(pilot, "end")
        assert table.row_count == 120 and not table.has_more


async def test_search_by_prefix_and_by_claim(demo: Iam) -> None:
    app = console(demo, "users")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(UsersTable)
        await press(pilot, "slash", *"a", "enter")
        assert list(table.users) == ["PRIMARY/alice", "PRIMARY/amir"]
        await press(pilot, "slash")
        app.screen.query_one("#filter", Input).value = ""
        await press(pilot, *"emailaddress=bob@example.com", "enter")
        assert list(table.users) == ["PRIMARY/bob"]
        assert table.claim == ("emailaddress", "bob@example.com")
        await press(pilot, "escape")
        assert len(table.users) == len(USERS)


async def test_the_domain_selector_lists_another_userstore(demo: Iam) -> None:
    app = console(demo, "users")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, UsersScreen)
        select = screen.query_one("#domain")
        select.value = "PARTNERS"  # type: ignore[attr-defined]
        await settle(pilot)
        assert screen.domain == "PARTNERS"
        assert list(screen.query_one(UsersTable).users) == ["PARTNERS/paula"]


async def test_edit_delete_and_set_password(demo: Iam) -> None:
    app = console(demo, "users")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)  # alice is highlighted
        await press(pilot, "e")
        form = app.screen
        assert isinstance(form, FormScreen)
        await replace_text(pilot, form.form.editor("lastname"), "")
        await replace_text(pilot, form.form.editor("title"), "CFO")
        await press(pilot, "ctrl+s")
        alice = demo.identity.get_user("alice").claims
        assert alice["http://wso2.org/claims/title"] == "CFO"
        assert "http://wso2.org/claims/lastname" not in alice

        await press(pilot, "p")
        form = app.screen
        assert isinstance(form, FormScreen)
        assert all(form.form.editor(n).password for n in ("password", "password-again"))
        await pilot.press(*"N3w-password")
        await replace_text(pilot, form.form.editor("password-again"), "N3w-password")
        await press(pilot, "ctrl+s")
        assert demo.identity.verify_password("alice", "N3w-password") is not None

        await press(pilot, "d")
        assert isinstance(app.screen, ConfirmScreen)
        await press(pilot, "y")
        with pytest.raises(NotFound):
            demo.identity.get_user("alice")
        assert "PRIMARY/alice" not in app.screen.query_one(UsersTable).users


async def test_choose_roles_from_the_users_screen(demo: Iam) -> None:
    app = console(demo, "users")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "down", "down")  # bob
        await press(pilot, "o")
        pick = app.screen
        assert isinstance(pick, FormScreen)
        assert pick.form.collect().values == {"Internal/auditors": False,
                                              "PRIMARY/admins": True,
                                              "PRIMARY/engineers": False}
        await press(pilot, "space")  # Internal/auditors has the focus
        await press(pilot, "tab", "space")
        await press(pilot, "ctrl+s")
        assert sorted(demo.identity.roles_of("bob")) == ["Internal/auditors"]
        assert "Roles (1): Internal/auditors" in str(
            app.screen.query_one("#detail-body", Static).content)


async def test_preview_shows_the_requests_and_sends_nothing(demo: Iam) -> None:
    connect(demo, PEER, idp="corp-scim", provisioning_roles=("admins",))
    app = console(demo, "users")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "v")
        assert isinstance(app.screen, InfoModal)
        shown = texts(app)
        assert "corp-scim:scim2" in shown and f"POST {PEER}/Users" in shown
        assert '"userName": "alice"' in shown
        assert demo.provisioning.mappings_of("alice") == []  # nothing was sent or stored


async def test_provision_now_reaches_the_peer_and_shows_the_remote_id(
        demo: Iam, scim_peer: str) -> None:
    connect(demo, scim_peer, idp="peer")
    app = console(demo, "users")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "s")
        assert isinstance(app.screen, InfoModal)
        assert "peer:scim2" in texts(app) and "succeeded" in texts(app)
        [remote] = peer_users(scim_peer, "alice")
        await press(pilot, "escape")
        detail = app.screen.query_one(UserDetail)
        assert detail.provisioning is not None
        assert [m.remote_id for m in detail.provisioning] == [remote["id"]]
        assert f"id {remote['id']} · succeeded" in str(
            app.screen.query_one("#detail-body", Static).content)


def test_search_and_claim_edits_parse() -> None:
    assert parse_search("al") == ("al", None)
    assert parse_search("emailaddress = a@b") == (None, ("emailaddress", "a@b"))
    assert parse_search("x=") == ("x=", None)
    assert claim_changes({"a": "1", "b": "2", "c": ""}, {"a": "1", "b": "", "c": "3"}) == (
        {"c": "3"}, ["b"])


# ====================================================================== read-only


#: Per section: its screen and the write keys that apply to what it highlights first.
READ_ONLY_WRITES = {"3": (UsersScreen, "aedpos"), "4": (RolesScreen, "andu"),
                    "5": (UserstoresScreen, "aex"), "6": (IdentityProvidersScreen, "aecmod"),
                    "7": (ApplicationsScreen, "aeo")}


async def test_read_only_keeps_the_write_keys_and_says_why_they_do_nothing(demo: Iam) -> None:
    app = console(demo, "users", read_only=True)
    seen: list[Message] = []
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await settle(pilot)
        for section, (screen_type, keys) in READ_ONLY_WRITES.items():
            await press(pilot, section)
            screen = app.screen
            assert isinstance(screen, screen_type)
            for key in keys:
                binding = screen.active_bindings[key]
                assert binding.enabled and binding.binding.show, (section, key)  # in the footer
                before = len(notices(seen))
                await press(pilot, key)
                assert app.screen is screen, (section, key)  # no form, no confirmation
                said = notices(seen)[before:]
                assert len(said) == 1 and said[0].startswith("Read-only session: cannot "), \
                    (section, key, said)


async def test_a_read_only_session_refuses_writes(demo: Iam) -> None:
    before = demo.userstore_definitions(), demo.identity.roles_of("carol")
    app = console(demo, "users", read_only=True)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "a", "d", "p", "o", "s")
        assert isinstance(app.screen, UsersScreen)  # no form, no confirmation
        app.screen.action_add()
        await pilot.pause()
        assert any("Read-only session: cannot add a user" in n.message
                   for n in app._notifications)
        for key, screen_type in (("4", RolesScreen), ("5", UserstoresScreen),
                                 ("6", IdentityProvidersScreen), ("7", ApplicationsScreen)):
            await press(pilot, key)
            assert isinstance(app.screen, screen_type)
            await press(pilot, "a", "e", "u", "c", "x", "i", "d")
            assert isinstance(app.screen, screen_type), key
        await press(pilot, "6")
        app.screen.action_connector()  # type: ignore[attr-defined]
        await pilot.pause()
        assert isinstance(app.screen, IdentityProvidersScreen)
    assert (demo.userstore_definitions(), demo.identity.roles_of("carol")) == before
    assert demo.idp_names() == ["corp-scim", "partner-sso"]
    assert demo.app_names() == ["resident", "hr-portal"]


# ====================================================================== roles


async def test_assign_and_remove_a_role_from_the_roles_screen(demo: Iam) -> None:
    app = console(demo, "roles")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RolesScreen)
        assert list(screen.roles) == ["Internal/auditors", "PRIMARY/admins",
                                      "PRIMARY/engineers"]
        assert screen.provisioning == {"PRIMARY/admins": ["corp-scim"]}
        await press(pilot, "down")
        assert screen.highlighted_role == "PRIMARY/admins"
        assert [u.username for u in screen.members] == ["alice", "bob"]

        await press(pilot, "u")
        assert isinstance(app.screen, FormScreen)
        await press(pilot, *"carol, erin", "enter")
        assert "PRIMARY/admins" in demo.identity.roles_of("carol")
        assert "PRIMARY/admins" in demo.identity.roles_of("erin")
        assert [u.username for u in screen.members] == ["alice", "bob", "carol", "erin"]

        await press(pilot, "tab")  # to the members
        await press(pilot, "down", "down")
        assert screen.highlighted_member == "PRIMARY/carol"
        await press(pilot, "x")
        assert isinstance(app.screen, ConfirmScreen)
        await press(pilot, "y")
        assert "PRIMARY/admins" not in demo.identity.roles_of("carol")


async def test_add_rename_and_delete_a_role(demo: Iam) -> None:
    app = console(demo, "roles")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RolesScreen)
        await press(pilot, "a")
        await press(pilot, *"Internal/ops", "enter")
        assert demo.identity.get_role("Internal/ops").name == "ops"
        assert screen.highlighted_role == "Internal/auditors"

        await press(pilot, "slash", *"op", "enter")
        assert list(screen.roles) == ["Internal/ops"]
        await press(pilot, "n")
        form = app.screen
        assert isinstance(form, FormScreen)
        await replace_text(pilot, form.form.editor("name"), "operators")
        await press(pilot, "ctrl+s")
        assert demo.identity.get_role("Internal/operators").name == "operators"

        await press(pilot, "escape")  # clear the filter
        await press(pilot, "slash", *"oper", "enter")
        await press(pilot, "d")
        assert isinstance(app.screen, ConfirmScreen)
        await press(pilot, "y")
        with pytest.raises(NotFound):
            demo.identity.get_role("Internal/operators")


async def test_role_members_are_read_a_page_at_a_time(demo: Iam) -> None:
    names = [f"m{n:02}" for n in range(12)]
    for name in names:
        demo.identity.add_user(ADMIN, name, None, {})
    demo.identity.add_role(ADMIN, "crowd", names)
    app = console(demo, "roles", page_size=5)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RolesScreen)
        screen.role_table.move_cursor(row=screen.role_table.get_row_index("PRIMARY/crowd"))
        await settle(pilot)
        status = screen.query_one("#members-status", Static)
        for shown in (5, 10):
            assert shown_keys(screen.member_table) == [f"PRIMARY/{n}" for n in names[:shown]]
            assert str(status.content) == f"{shown} members so far; the last one shown loads more"
            screen.member_table.focus()
            await press(pilot, "ctrl+end")  # the last member shown: the next page
        assert shown_keys(screen.member_table) == [f"PRIMARY/{n}" for n in names]
        assert str(status.content) == "12 members"
        await press(pilot, "ctrl+end")  # nothing more to read
        assert screen.member_table.row_count == 12


# ====================================================================== userstores


async def test_add_edit_and_disable_a_userstore(demo: Iam) -> None:
    app = console(demo, "userstores")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, UserstoresScreen)
        assert [s.users for s in screen.states.values()] == [len(USERS), 1]

        await press(pilot, "a")  # first the type
        chooser = app.screen
        assert isinstance(chooser, FormScreen)
        assert chooser.form.collect().values == {"type": "sql"}
        await press(pilot, "ctrl+s")
        form = app.screen
        assert isinstance(form, FormScreen) and form is not chooser
        await pilot.press(*"extra")
        await replace_text(pilot, form.form.editor("url"), "sqlite:///extra.db")
        await replace_text(pilot, form.form.editor("username_regex"), "([a-z")
        await press(pilot, "ctrl+s")
        assert "not a valid regular expression" in (form.form.error_of("username_regex") or "")
        await replace_text(pilot, form.form.editor("username_regex"), "^[a-z]{2,8}$")
        await press(pilot, "ctrl+s")
        assert app.screen is not form, (form.general_error, form.form.errors())
        extra = {d.domain: d for d in demo.userstore_definitions()}["EXTRA"]
        assert extra.properties["url"].value == "sqlite:///extra.db"
        assert extra.properties["username_regex"] == "^[a-z]{2,8}$"
        assert "EXTRA" in screen.stores and "EXTRA" in screen.states

        await press(pilot, "slash", *"EXTRA", "enter")
        await press(pilot, "e")
        form = app.screen
        assert isinstance(form, FormScreen)
        assert form.form.editor("domain").disabled
        url = form.form.editor("url")
        assert isinstance(url, Input) and url.value == "" and url.password
        assert url.placeholder == "stored (sqlite:///extra.db); empty keeps it"
        await replace_text(pilot, form.form.editor("description"), "Extra accounts")
        await press(pilot, "ctrl+s")
        await press(pilot, "x")
        assert isinstance(app.screen, ConfirmScreen)
        await press(pilot, "y")
        extra = {d.domain: d for d in demo.userstore_definitions()}["EXTRA"]
        assert extra.description == "Extra accounts" and not extra.enabled
        assert extra.properties["url"].value == "sqlite:///extra.db"  # kept
        assert "EXTRA" not in demo.stores.domains

        await press(pilot, "d")
        assert isinstance(app.screen, ConfirmScreen)
        await press(pilot, "y")
        assert "EXTRA" not in {d.domain for d in demo.userstore_definitions()}


# ====================================================================== identity providers


async def open_connector(pilot: Pilot[Any], connector_type: str = "scim2") -> ConnectorForm:
    await settle(pilot)
    await press(pilot, "c")
    chooser = pilot.app.screen
    if isinstance(chooser, FormScreen) and not isinstance(chooser, ConnectorForm):
        chooser.form.editor("type").value = connector_type  # type: ignore[attr-defined]
        await press(pilot, "ctrl+s")
    form = pilot.app.screen
    assert isinstance(form, ConnectorForm)
    return form


async def test_an_invalid_connector_value_names_the_field_and_keeps_the_text(
        demo: Iam) -> None:
    before = demo.get_idp("corp-scim")
    app = console(demo, "idps")
    async with app.run_test(size=(100, 40)) as pilot:
        form = await open_connector(pilot)
        endpoint = form.form.editor("scim2-user-ep")
        assert isinstance(endpoint, Input) and endpoint.value == f"{PEER}/Users"
        await replace_text(pilot, endpoint, "not a url")
        assert "expected a URL" in (form.form.error_of("scim2-user-ep") or "")  # as typed
        await press(pilot, "ctrl+s")
        assert app.screen is form
        assert endpoint.value == "not a url"
        assert "User endpoint (scim2-user-ep)" in (form.general_error or "")
        assert demo.get_idp("corp-scim") == before

        # a rule across fields (BEARER needs a token) is named too once the URL is fixed
        await replace_text(pilot, endpoint, f"{PEER}/Users")
        form.form.editor("scim2-authentication-mode").value = "BASIC"  # type: ignore[attr-defined]
        await press(pilot, "ctrl+s")
        assert "required when scim2-authentication-mode is BASIC" in (
            form.form.error_of("scim2-username") or "")
        assert app.screen is form and demo.get_idp("corp-scim") == before


async def test_secrets_never_enter_a_widget_and_empty_keeps_them(demo: Iam) -> None:
    app = console(demo, "idps")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        assert TOKEN not in texts(app)  # the detail pane masks it
        form = await open_connector(pilot)
        assert TOKEN not in texts(app)
        token = form.form.editor("scim2-access-token")
        assert isinstance(token, Input) and token.value == "" and token.password
        await replace_text(pilot, form.form.editor("scim2-group-ep"), f"{PEER}/Groups")
        await press(pilot, "ctrl+s")
        assert isinstance(app.screen, IdentityProvidersScreen)
        saved = demo.get_idp("corp-scim").connector("scim2")
        assert saved.secrets["scim2-access-token"].value == TOKEN
        assert saved.properties["scim2-group-ep"] == f"{PEER}/Groups"


async def test_a_stored_secret_is_cleared_only_by_asking_for_it(demo: Iam) -> None:
    app = console(demo, "idps")
    seen: list[Message] = []
    async with app.run_test(size=(100, 40), message_hook=seen.append) as pilot:
        form = await open_connector(pilot)
        await press(pilot, "ctrl+r")  # on the first field, which is no secret
        assert notices(seen)[-1] == "Move to a secret field that has a stored value first."
        token = form.form.editor("scim2-access-token")
        assert isinstance(token, Input)
        token.focus()
        await press(pilot, "ctrl+r")
        assert notices(seen)[-1] == "Access token: the stored value is removed when you save."
        assert token.value == "" and token.placeholder.startswith("cleared")
        assert TOKEN not in texts(app)

        # BEARER needs a token: refused, the field named, the stored token still there
        await press(pilot, "ctrl+s")
        assert app.screen is form
        assert "required when scim2-authentication-mode is BEARER" in (
            form.form.error_of("scim2-access-token") or "")
        assert demo.get_idp("corp-scim").connector("scim2").secrets[
            "scim2-access-token"].value == TOKEN

        form.form.editor("scim2-authentication-mode").value = "NONE"  # type: ignore[attr-defined]
        await press(pilot, "ctrl+s")
        assert isinstance(app.screen, IdentityProvidersScreen)
    saved = demo.get_idp("corp-scim").connector("scim2")
    assert "scim2-access-token" not in saved.secrets
    assert saved.properties["scim2-authentication-mode"] == "NONE"


async def test_a_typed_reference_is_resolved_and_kept(demo: Iam,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEER_TOKEN", "from-the-environment")
    app = console(demo, "idps")
    async with app.run_test(size=(100, 40)) as pilot:
        form = await open_connector(pilot)
        await replace_text(pilot, form.form.editor("scim2-access-token"), "${env:PEER_TOKEN}")
        await press(pilot, "ctrl+s")
        saved = demo.get_idp("corp-scim").connector("scim2").secrets["scim2-access-token"]
        assert (saved.value, saved.ref) == ("from-the-environment", "${env:PEER_TOKEN}")

        form = await open_connector(pilot)
        token = form.form.editor("scim2-access-token")
        assert isinstance(token, Input)
        assert token.placeholder == "stored (${env:PEER_TOKEN}); empty keeps it"
        await replace_text(pilot, token, "${env:UNSET_IN_THIS_TEST}")
        await press(pilot, "ctrl+s")
        assert "environment variable is not set" in (
            form.form.error_of("scim2-access-token") or "")


async def test_test_connection_reaches_the_typed_target(demo: Iam, scim_peer: str) -> None:
    app = console(demo, "idps")
    async with app.run_test(size=(100, 40)) as pilot:
        form = await open_connector(pilot)
        await replace_text(pilot, form.form.editor("scim2-user-ep"), f"{scim_peer}/Users")
        await press(pilot, "ctrl+t")
        assert form.tested is not None and form.tested.ok, form.tested
        assert (form.general_error or "").startswith("Test passed:")

        await replace_text(pilot, form.form.editor("scim2-user-ep"), f"{PEER}/Users")
        await press(pilot, "ctrl+t")  # nothing listens on port 9
        assert form.tested is not None and not form.tested.ok
        assert (form.general_error or "").startswith("Test failed:")
        assert demo.get_idp("corp-scim").connector("scim2").properties["scim2-user-ep"] == \
            f"{PEER}/Users"  # a test saves nothing


async def test_edit_provisioning_roles_jit_and_mappings(demo: Iam) -> None:
    app = console(demo, "idps")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "e")
        form = app.screen
        assert isinstance(form, FormScreen)
        await replace_text(pilot, form.form.editor("provisioning-roles"), "admins, engineers")
        form.form.editor("jit-enabled").value = True  # type: ignore[attr-defined]
        await press(pilot, "ctrl+s")
        idp = demo.get_idp("corp-scim")
        assert idp.provisioning_roles == ("admins", "engineers") and idp.jit.enabled
        assert idp.connector("scim2").secrets["scim2-access-token"].value == TOKEN

        await press(pilot, "m")
        lines = app.screen
        assert isinstance(lines, LinesScreen)
        lines.query_one(TextArea).text = "givenname = name.givenName\nbroken line"
        await press(pilot, "ctrl+s")
        assert lines.general_error == \
            "line 2: expected 'local = remote | default', got 'broken line'"
        lines.query_one(TextArea).text = "givenname = name.givenName | n/a\n# note\n"
        await press(pilot, "ctrl+s")
        assert demo.get_idp("corp-scim").claim_mappings == (
            ClaimMapping("givenname", "name.givenName", "n/a"),)

        await press(pilot, "o")
        lines = app.screen
        assert isinstance(lines, LinesScreen)
        lines.query_one(TextArea).text = "engineers = Engineering"
        await press(pilot, "ctrl+s")
        assert demo.get_idp("corp-scim").role_mappings == (
            RoleMapping("engineers", "Engineering"),)


async def test_add_and_delete_an_identity_provider(demo: Iam) -> None:
    app = console(demo, "idps")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "a")
        await press(pilot, *"wiki-sso", "ctrl+s")
        assert demo.get_idp("wiki-sso").enabled
        await press(pilot, "slash", *"wiki", "enter")
        await press(pilot, "d")
        await press(pilot, "y")
        assert "wiki-sso" not in demo.idp_names()


def test_mapping_lines_parse() -> None:
    assert parse_pairs("a = b | c\n\n# x\nd=e", True) == [("a", "b", "c"), ("d", "e", None)]
    assert parse_pairs("r = R|S", False) == [("r", "R|S", None)]


# ====================================================================== applications


async def test_issue_a_token_once_and_revoke_it(demo: Iam) -> None:
    app = console(demo, "apps")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "down")  # hr-portal (the resident app takes no tokens)
        await press(pilot, "i")
        modal = app.screen
        assert isinstance(modal, InfoModal)
        token = next(word for word in texts(app).split() if word.startswith("mwi_"))
        authenticated = demo.authenticate_token(token)
        assert authenticated is not None and authenticated.name == "hr-portal"
        await press(pilot, "escape")
        assert token not in texts(app)  # shown once, then only its hint

        await press(pilot, "x")
        form = app.screen
        assert isinstance(form, FormScreen)
        assert form.form.collect().values["hint"] == token[-4:]
        await press(pilot, "ctrl+s")
        assert isinstance(app.screen, ConfirmScreen)
        await press(pilot, "y")
        assert demo.authenticate_token(token) is None


async def test_edit_an_application_and_its_outbound_targets(demo: Iam) -> None:
    app = console(demo, "apps")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "down")
        await press(pilot, "e")
        form = app.screen
        assert isinstance(form, FormScreen)
        form.form.editor("inbound-domain").value = "PARTNERS"  # type: ignore[attr-defined]
        form.form.editor("proxy-mode").value = True  # type: ignore[attr-defined]
        await press(pilot, "ctrl+s")
        hr = demo.get_app("hr-portal")
        assert (hr.inbound_domain, hr.proxy_mode) == ("PARTNERS", True)

        await press(pilot, "o")
        form = app.screen
        assert isinstance(form, FormScreen)
        assert form.form.collect().values == {"corp-scim:scim2": "blocking"}
        form.form.editor("corp-scim:scim2").value = "jit"  # type: ignore[attr-defined]
        await press(pilot, "ctrl+s")
        assert demo.get_app("hr-portal").outbound == (
            OutboundTarget("corp-scim", "scim2", blocking=False, jit=True),)

        await press(pilot, "a")
        await press(pilot, *"wiki", "ctrl+s")
        assert demo.get_app("wiki").inbound_domain == "PRIMARY"
        await press(pilot, "slash", *"wiki", "enter", "d", "y")
        assert "wiki" not in demo.app_names()


def _two_targets(iam: Iam) -> tuple[OutboundTarget, OutboundTarget]:
    """hr-portal sends to corp-scim, then to a second connector of partner-sso."""
    partner = iam.get_idp("partner-sso")
    iam.save_idp(ADMIN, dataclasses.replace(partner, connectors=(ConnectorConfig(
        "scim2", default=True, properties={"scim2-user-ep": f"{PEER}/Users"}),)))
    first = OutboundTarget("corp-scim", "scim2", True)
    second = OutboundTarget("partner-sso", "scim2")
    iam.save_app(ADMIN, dataclasses.replace(iam.get_app("hr-portal"), outbound=(first, second)))
    return first, second


async def test_outbound_targets_move_up_and_down_and_the_order_is_saved(demo: Iam) -> None:
    first, second = _two_targets(demo)
    app = console(demo, "apps")
    seen: list[Message] = []
    async with app.run_test(size=(100, 40), message_hook=seen.append) as pilot:
        await settle(pilot)
        await press(pilot, "down")  # hr-portal
        screen = app.screen
        assert isinstance(screen, ApplicationsScreen)
        assert shown_keys(screen.targets_table) == ["corp-scim:scim2", "partner-sso:scim2"]
        assert "shift+up" not in screen.active_bindings  # only on the targets list
        screen.targets_table.focus()
        await press(pilot, "down", "shift+up")
        assert demo.get_app("hr-portal").outbound == (second, first)
        assert notices(seen)[-1] == "partner-sso:scim2 is now tried first for hr-portal"
        assert shown_keys(screen.targets_table) == ["partner-sso:scim2", "corp-scim:scim2"]
        assert screen.targets_table.highlighted_key == "partner-sso:scim2"  # it moved along
        await press(pilot, "shift+up")  # already first: stays
        assert demo.get_app("hr-portal").outbound == (second, first)
        await press(pilot, "shift+down")
        assert demo.get_app("hr-portal").outbound == (first, second)
        assert screen.targets_table.highlighted_key == "partner-sso:scim2"


async def test_a_read_only_session_does_not_reorder_outbound_targets(demo: Iam) -> None:
    first, second = _two_targets(demo)
    app = console(demo, "apps", read_only=True)
    seen: list[Message] = []
    async with app.run_test(size=(100, 40), message_hook=seen.append) as pilot:
        await settle(pilot)
        await press(pilot, "down")
        screen = app.screen
        assert isinstance(screen, ApplicationsScreen)
        screen.targets_table.focus()
        await press(pilot, "down", "shift+up")
        assert notices(seen)[-1] == "Read-only session: cannot reorder the outbound targets."
    assert demo.get_app("hr-portal").outbound == (first, second)


def test_moving_a_target_stays_in_bounds_and_names_a_vanished_one() -> None:
    a, b, c = (OutboundTarget(idp, "scim2") for idp in "abc")
    assert moved((a, b, c), "c:scim2", -1) == (a, c, b)
    assert moved((a, b, c), "a:scim2", -5) == (a, b, c)
    assert moved((a, b, c), "a:scim2", 9) == (b, c, a)
    with pytest.raises(NotFound, match="x:scim2"):
        moved((a, b), "x:scim2", 1)


# ====================================================================== sync everyone


def _queued(iam: Iam, target: str) -> list[str]:
    return sorted(j.name for j in iam.provisioning.jobs(states=["pending"], target=target))


async def _offered(pilot: Pilot[Any]) -> ConfirmScreen:
    """The offer, once the users in scope are counted (off the event loop)."""
    for _ in range(50):
        await settle(pilot)
        if isinstance(pilot.app.screen, ConfirmScreen):
            return pilot.app.screen
    raise AssertionError(f"no offer: {pilot.app.screen!r}")


async def test_a_new_connector_offers_to_sync_everyone_in_scope(demo: Iam) -> None:
    app = console(demo, "idps")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "down")  # partner-sso: no connector yet, no provisioning roles
        form = await open_connector(pilot)
        await replace_text(pilot, form.form.editor("scim2-user-ep"), f"{PEER}/Users")
        await press(pilot, "ctrl+s")
        offer = await _offered(pilot)
        assert offer.question == "Sync 7 users in scope to partner-sso:scim2 now?"
        assert "mware-iam provisioning sync --all partner-sso:scim2" in offer.detail
        await press(pilot, "y")
        await app.workers.wait_for_complete()
        await settle(pilot)
    assert _queued(demo, "partner-sso:scim2") == [
        "PARTNERS/paula", *sorted(f"PRIMARY/{u}" for u, _g, _l in USERS)]

    # editing the connector it has now offers nothing
    app = console(demo, "idps")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "down")
        form = await open_connector(pilot)
        await press(pilot, "ctrl+s")
        await app.workers.wait_for_complete()
        await settle(pilot)
        assert isinstance(app.screen, IdentityProvidersScreen)


async def test_an_application_gaining_a_target_offers_to_sync_its_scope(demo: Iam) -> None:
    demo.save_app(ADMIN, Application("wiki"))
    before = _queued(demo, "corp-scim:scim2")
    app = console(demo, "apps")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "slash", *"wiki", "enter", "o")
        form = app.screen
        assert isinstance(form, FormScreen)
        form.form.editor("corp-scim:scim2").value = "on"  # type: ignore[attr-defined]
        await press(pilot, "ctrl+s")
        offer = await _offered(pilot)  # corp-scim provisions the admins: alice and bob
        assert offer.question == "Sync 2 users in scope to corp-scim:scim2 now?"
        await press(pilot, "n")
        await app.workers.wait_for_complete()
        assert _queued(demo, "corp-scim:scim2") == before
        assert isinstance(app.screen, ApplicationsScreen)


def test_snapshot_sync_offer(snap_compare: Any, demo: Iam) -> None:
    demo.save_app(ADMIN, Application("wiki"))

    async def offer(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await press(pilot, "slash", *"wiki", "enter", "o")
        pilot.app.screen.form.editor("corp-scim:scim2").value = "on"  # type: ignore[attr-defined]
        # No "saved" toast: painted under the offer or not depending on timing (a screen
        # under a modal keeps the toast it last drew), it is not what this picture shows.
        pilot.app.notify = lambda *args, **kwargs: None  # type: ignore[method-assign]
        await press(pilot, "ctrl+s")
        await _offered(pilot)
        await still(pilot)

    assert snap_compare(console(demo, "apps"), terminal_size=(100, 30), run_before=offer)


# ====================================================================== audit


async def test_the_audit_log_filters(demo: Iam) -> None:
    app = console(demo, "audit")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AuditScreen)
        everything = len(screen.entries)
        await press(pilot, "slash", *"action=user.add", "enter")
        assert {e.action for e in screen.entries} == {"user.add"}
        assert len(screen.entries) == len(USERS) + 1
        await press(pilot, "slash")
        screen.query_one("#filter", Input).value = ""
        await press(pilot, *"role.add auditors", "enter")
        assert [e.target for e in screen.entries] == ["Internal/auditors"]
        await press(pilot, "escape")
        assert len(screen.entries) == everything


# ====================================================================== pictures

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("screen", ["users", "roles", "userstores", "idps", "apps", "audit"])
def test_snapshot_screen(snap_compare: Any, demo: Iam, screen: str,
                         size: tuple[int, int]) -> None:
    assert snap_compare(console(demo, screen), terminal_size=size, run_before=still)


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_users_read_only_no_color(snap_compare: Any, demo: Iam,
                                           monkeypatch: pytest.MonkeyPatch,
                                           size: tuple[int, int]) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = console(demo, "users", read_only=True)
    assert app.no_color
    assert snap_compare(app, terminal_size=size, run_before=still)


#: screen, keys that open the modal
MODALS = {
    "user-form": ("users", ["a"]),
    "password-form": ("users", ["p"]),
    "roles-pick": ("users", ["down", "down", "o"]),
    "delete-confirm": ("users", ["d"]),
    "connector-form": ("idps", ["c"]),  # the identity provider's one connector (scim2)
    "claim-mappings": ("idps", ["m"]),
    "idp-form": ("idps", ["e"]),
    "userstore-form": ("userstores", ["e"]),
    "outbound-form": ("apps", ["down", "o"]),
    "role-assign": ("roles", ["down", "u"]),
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("modal", list(MODALS))
def test_snapshot_modal(snap_compare: Any, demo: Iam, modal: str,
                        size: tuple[int, int]) -> None:
    screen, keys = MODALS[modal]

    async def open_it(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        if modal == "connector-form":
            await open_connector(pilot)  # the scim2 form, chosen among the types
        else:
            await press(pilot, *keys)
        await still(pilot)

    assert snap_compare(console(demo, screen), terminal_size=size, run_before=open_it)


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_token_shown_once(snap_compare: Any, demo: Iam,
                                   size: tuple[int, int]) -> None:
    async def show(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        pilot.app.push_screen(token_modal("hr-portal", "mwi_" + "x" * 43))
        await still(pilot)

    assert snap_compare(console(demo, "apps"), terminal_size=size, run_before=show)


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_preview(snap_compare: Any, demo: Iam, size: tuple[int, int]) -> None:
    connect(demo, PEER, idp="corp-scim", provisioning_roles=("admins",))

    async def preview(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await press(pilot, "v")
        await still(pilot)

    assert snap_compare(console(demo, "users"), terminal_size=size, run_before=preview)
