"""The console's JIT faces: the identity provider form edits ``federation`` and
``attribute_sync``; the user detail names a JIT user's federated subjects."""

from __future__ import annotations

import dataclasses

import pytest
from textual.widgets import Static

from core.iam import Iam
from core.identity.events import Initiator
from core.idps import ClaimMapping, JitConfig
from core.jit.intake import JitIntake
from core.jit.sandbox import SandboxIdp
from tests.provisioning_helpers import connect, drain
from tests.scim_api import application
from tests.test_tui_dashboard import console as dashboard
from tests.test_tui_screens import ADMIN, console, demo, press, replace_text  # noqa: F401
from tests.tui_helpers import settle
from tui.screens.dashboard import ActivityFeed
from tui.widgets.form_screen import FormScreen
from tui.widgets.user_detail import UserDetail


async def test_the_form_edits_federation_and_attribute_sync(demo: Iam) -> None:  # noqa: F811
    sso = SandboxIdp.create()
    app = console(demo, "idps")
    async with app.run_test(size=(100, 50)) as pilot:
        await settle(pilot)
        await press(pilot, "e")
        form = app.screen
        assert isinstance(form, FormScreen)
        form.form.editor("fed-protocol").value = "oidc"  # type: ignore[attr-defined]
        form.form.editor("jit-sync").value = "preserve_local"  # type: ignore[attr-defined]
        await replace_text(pilot, form.form.editor("fed-issuer"), "not a url")
        await replace_text(pilot, form.form.editor("fed-audience"), "hr-portal, wiki")
        await replace_text(pilot, form.form.editor("fed-keys"), sso.jwks())
        await press(pilot, "ctrl+s")
        assert app.screen is form and demo.get_idp("corp-scim").federation is None
        assert "issuer: 'not a url' is not valid: expected a URL" in (
            form.general_error or "")
        await replace_text(pilot, form.form.editor("fed-issuer"), "https://sso.example.test")
        await press(pilot, "ctrl+s")
        idp = demo.get_idp("corp-scim")
        assert idp.federation is not None and idp.federation.audience == ("hr-portal", "wiki")
        assert idp.federation.jwks == sso.jwks() and idp.jit.attribute_sync == "preserve_local"
        detail = str(app.screen.query_one("#idp-detail-body", Static).render())
        assert "Federation: oidc, issuer https://sso.example.test" in detail


async def test_the_user_detail_names_federated_subjects(demo: Iam) -> None:  # noqa: F811
    sso = SandboxIdp.create()
    idp = demo.get_idp("partner-sso")
    demo.save_idp(ADMIN, dataclasses.replace(
        idp, jit=JitConfig(True, "PRIMARY"), federation=sso.federation("oidc", "hr-portal")))
    JitIntake(demo).login("hr-portal", "partner-sso", {"id_token": sso.id_token(
        "hr-portal", {"sub": "p-42", "preferred_username": "zed"})})
    app = console(demo, "users")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        detail = app.screen.query_one(UserDetail)
        detail.show(demo.identity.get_user("PRIMARY/zed"))
        await settle(pilot)
        assert "Federated: partner-sso: p-42" in str(
            detail.query_one("#detail-body", Static).render())


@pytest.fixture
def jit_jobs(sqlite_iam: Iam, scim_peer: str) -> Iam:
    """hr-portal provisions to a JIT target; yan logged in through JIT, xena was added by
    hr-portal itself; both jobs have run."""
    application(sqlite_iam, "hr-portal")
    connect(sqlite_iam, scim_peer, app="hr-portal", jit=True)
    sso = SandboxIdp.create()
    sqlite_iam.save_idp(ADMIN, dataclasses.replace(
        sqlite_iam.get_idp("peer"), jit=JitConfig(True),
        federation=sso.federation("oidc", "hr-portal")))
    JitIntake(sqlite_iam).login("hr-portal", "peer", {"id_token": sso.id_token(
        "hr-portal", {"sub": "s", "preferred_username": "yan"})})
    sqlite_iam.identity.add_user(Initiator.application_client("hr-portal"), "PRIMARY/xena",
                                 None, {})
    drain(sqlite_iam)
    return sqlite_iam


async def test_the_dashboard_marks_the_jobs_of_jit_logins_and_shows_the_logins(
        jit_jobs: Iam) -> None:
    app = dashboard(jit_jobs, jit_jobs.provisioning)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        feed = app.screen.query_one(ActivityFeed)
        rows = {(str(feed.get_row(key)[3]), str(feed.get_row(key)[2])) for key in feed.rows}
        assert rows == {("PRIMARY/yan", "JIT upsert user"), ("PRIMARY/xena", "upsert user"),
                        ("PRIMARY/yan", "JIT login")}  # the login itself, from the audit


async def test_simulate_a_login_through_the_sandbox_idp(demo: Iam) -> None:  # noqa: F811
    sso = SandboxIdp.of_home(demo.home.path, "https://partner.example.test")
    demo.save_idp(ADMIN, dataclasses.replace(
        demo.get_idp("partner-sso"), jit=JitConfig(True, "PRIMARY"),
        federation=sso.federation("oidc", "hr-portal"),
        claim_mappings=(ClaimMapping(demo.claims.resolve("emailaddress"), "email"),)))
    app = console(demo, "idps")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "l")  # corp-scim: no federation, nothing opens
        assert not isinstance(app.screen, FormScreen)
        await press(pilot, "down", "l")
        form = app.screen
        assert isinstance(form, FormScreen)
        await replace_text(pilot, form.form.editor("username"), "quinn")
        await replace_text(pilot, form.form.editor("claims"), "email=q@example.com")
        await press(pilot, "ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, FormScreen)
    user = demo.identity.get_user("PRIMARY/quinn")
    assert demo.audit_log(action="jit.login")[0].target == "PRIMARY/quinn"
    assert user.claims.get(demo.claims.resolve("emailaddress")) == "q@example.com"
