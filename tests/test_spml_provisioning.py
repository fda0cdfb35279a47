"""SPML through the engine: provisioning to the sandbox provider, preview, configuration
checks, the sandbox command and the console form for the ``spml`` type."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from textual.app import App, ComposeResult

from connectors.registry import registry
from connectors.sandbox.spml import SpmlSandbox, spml_sandbox
from connectors.spml import SPEC
from connectors.wire import MASK
from core.apps import Application, OutboundTarget
from core.cli.main import cli
from core.configfile.files import validate_file
from core.iam import Iam
from core.identity.events import Initiator
from core.idps import ClaimMapping, ConnectorConfig, IdentityProvider
from core.secrets import SecretValue
from tests.provisioning_helpers import drain
from tests.tui_helpers import settle
from tui.widgets.property_form import PropertyForm

IDP = "spml-provider"
ROLE = "Internal/provisioned"
PASSWORD = "Provider-Basic-Pw-9"


@pytest.fixture
def sandbox() -> Iterator[SpmlSandbox]:
    with spml_sandbox(username="mware", password=PASSWORD) as peer:
        yield peer


def wire(iam: Iam, sandbox: SpmlSandbox, **props: Any) -> None:
    """The resident application provisions users holding ROLE to the sandbox."""
    admin = Initiator.admin()
    iam.identity.add_role(admin, ROLE)
    iam.save_idp(admin, IdentityProvider(
        name=IDP, provisioning_roles=(ROLE,),
        claim_mappings=(ClaimMapping("http://wso2.org/claims/givenname", "givenName"),
                        ClaimMapping("http://wso2.org/claims/emailaddress", "mail")),
        connectors=(ConnectorConfig("spml", properties={
            "spml-ep": sandbox.url, "spml-oc": "spml2Person", "spml-username": "mware",
            "retry-base-seconds": 1, **props},
            secrets={"spml-password": SecretValue(PASSWORD)}),)))
    app = iam.resident_app()
    iam.save_app(admin, Application(
        name=app.name, description=app.description, resident=app.resident,
        inbound_domain=app.inbound_domain, proxy_mode=app.proxy_mode,
        outbound=(OutboundTarget(IDP, "spml", False, False),)))


def only_pso(sandbox: SpmlSandbox) -> Any:
    [pso] = sandbox.provider.psos.values()
    return pso


def test_users_flow_to_the_provider_and_are_suspended_when_out_of_scope(
        sqlite_iam: Iam, admin: Initiator, sandbox: SpmlSandbox) -> None:
    wire(sqlite_iam, sandbox, **{"deprovision-action": "disable"})
    sqlite_iam.identity.add_user(admin, "ivy", None, {"givenname": "Ivy",
                                                      "emailaddress": "ivy@example.org"},
                                 roles=[ROLE])
    drain(sqlite_iam)
    pso = only_pso(sandbox)
    assert pso.attributes == {"objectclass": ["spml2Person"], "accountId": ["ivy"],
                              "givenName": ["Ivy"], "mail": ["ivy@example.org"]}
    sqlite_iam.identity.update_user(admin, "ivy", {"givenname": "Ivy-May"}, ["emailaddress"])
    drain(sqlite_iam)
    assert only_pso(sandbox) is pso and pso.attributes["givenName"] == ["Ivy-May"]
    assert "mail" not in pso.attributes  # the claim went: deleted at the provider
    sqlite_iam.identity.unassign(admin, ROLE, ["ivy"])
    drain(sqlite_iam)
    assert not pso.active and only_pso(sandbox) is pso
    sqlite_iam.identity.assign(admin, ROLE, ["ivy"])
    drain(sqlite_iam)
    assert pso.active  # back in scope: resumed


def test_an_existing_account_is_adopted_and_deleted_on_removal(
        sqlite_iam: Iam, admin: Initiator, sandbox: SpmlSandbox) -> None:
    existing = sandbox.seed_user("jay")
    wire(sqlite_iam, sandbox)
    sqlite_iam.identity.add_user(admin, "jay", None, {"givenname": "Jay"}, roles=[ROLE])
    drain(sqlite_iam)
    assert list(sandbox.provider.psos) == [existing]
    assert sandbox.provider.psos[existing].attributes["givenName"] == ["Jay"]
    sqlite_iam.identity.delete_user(admin, "jay")
    drain(sqlite_iam)
    assert sandbox.provider.psos == {}


def test_preview_shows_the_exact_envelopes_and_sends_nothing(
        sqlite_iam: Iam, admin: Initiator, sandbox: SpmlSandbox) -> None:
    wire(sqlite_iam, sandbox, **{"spml-enable-pwd-provisioning": True})
    sqlite_iam.identity.add_role(admin, "Internal/other")  # no plan for unrelated roles
    sqlite_iam.identity.add_user(admin, "kim", "Kim-Secret-Pw-1", {"givenname": "Kim"},
                                 roles=[ROLE])
    seen_before = len(sandbox.provider.received)
    [report] = sqlite_iam.provisioning.preview("kim")
    bodies = [r["request_body"] for r in report.requests]
    assert [r["method"] for r in report.requests] == ["POST"]
    assert bodies[0].startswith("<?xml version='1.0' encoding='utf-8'?>\n<soap:Envelope")
    assert "<spml:addRequest " in bodies[0] and 'returnData="identifier"' in bodies[0]
    assert '<dsml:attr name="accountId"><dsml:value>kim</dsml:value></dsml:attr>' in bodies[0]
    assert f"<dsml:value>{MASK}</dsml:value>" in bodies[0]
    # answered by the SPML preview peer (an accommodating provider), not the SCIM one
    assert '<spml:addResponse status="success"' in report.requests[0]["response_body"]
    assert report.remote_id is None and report.message is None
    assert "Kim-Secret-Pw-1" not in str(report) and PASSWORD not in str(report)
    assert len(sandbox.provider.received) == seen_before and sandbox.provider.psos == {}


def write(tmp_path: Path, endpoint: str | None) -> Path:
    line = f"spml-ep: {endpoint}\n" if endpoint else ""
    path = tmp_path / "deployment.yaml"
    path.write_text(textwrap.dedent("""
        identity_providers:
          - name: provider
            connectors:
              - type: spml
                properties:
                  spml-oc: spml2Person
        """).lstrip("\n") + (" " * 10 + line if line else ""), encoding="utf-8")
    return path


def test_config_validate_names_a_missing_or_non_http_endpoint(tmp_path: Path) -> None:
    [missing] = validate_file(write(tmp_path, None))
    assert "spml-ep: SOAP endpoint is required" in missing.message
    [ftp] = validate_file(write(tmp_path, "ftp://127.0.0.1/spml"))
    assert ftp.message == ("spml-ep: 'ftp://127.0.0.1/spml' is not valid: expected a URL "
                           "starting with http:// or https://")
    assert validate_file(write(tmp_path, "https://idm.example.org/spml")) == []


def test_the_sandbox_command_is_listed_and_described() -> None:
    result = CliRunner().invoke(cli, ["sandbox", "--help"])
    assert result.exit_code == 0 and "spml" in result.output
    result = CliRunner().invoke(cli, ["sandbox", "spml", "--help"])
    assert result.exit_code == 0 and "--port" in result.output
    assert "SPML 2.0 provider" in result.output


def test_spml_is_a_registered_connector_type() -> None:
    assert registry()["spml"] is SPEC and not SPEC.supports_groups
    assert SPEC.contract_peer == "connectors.sandbox.spml:contract_peer"


class FormApp(App[None]):
    def __init__(self, form: PropertyForm) -> None:
        super().__init__()
        self.form = form

    def compose(self) -> ComposeResult:
        yield self.form


async def test_the_console_form_for_spml_renders_and_validates() -> None:
    form = PropertyForm(SPEC.all_properties, None, id="form")
    async with FormApp(form).run_test(size=(100, 60)) as pilot:
        endpoint = form.editor("spml-ep")
        endpoint.focus()
        await pilot.press(*"ftp://host/spml")
        await settle(pilot)
        assert "http:// or https://" in (form.error_of("spml-ep") or "")
        assert form.editor("spml-password").password
        assert form.collect().values["spml-enable-pwd-provisioning"] is False


def test_the_demo_provisions_its_seeded_users_to_the_spml_sandbox_too() -> None:
    from core.demo.deployment import demo_deployment
    from core.provisioning.outbox import JobState
    from tests.conftest import FAST_ARGON2

    with demo_deployment(peer_port=None, argon2=FAST_ARGON2) as env:
        jobs = env.iam.provisioning.jobs(target="spml-provider:spml")
        assert {j.name for j in jobs} >= {"PRIMARY/alice", "PRIMARY/bob"}
        assert {j.state for j in jobs} == {JobState.SUCCEEDED}


async def test_the_sandbox_command_serves_a_provider(tmp_path: Path) -> None:
    import subprocess
    import sys

    import httpx

    from connectors.sandbox.peers import free_port, wait_until_answering
    from connectors.spml import SpmlConnector
    from core.properties import validate

    port = free_port()
    command = Path(sys.executable).with_name("mware-iam")
    with (tmp_path / "log").open("w+b") as log:
        process = subprocess.Popen([str(command), "sandbox", "spml", "--port", str(port)],
                                   stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}/spml"
            wait_until_answering(process, url, log, "mware-iam sandbox spml", 30.0)
            props = validate(SPEC.all_properties, {"spml-ep": url, "spml-oc": "x"}, "t")
            async with httpx.AsyncClient(timeout=5) as client:
                said = await SpmlConnector(props, client).test_connection()
            assert said.endswith("users (profile urn:oasis:names:tc:SPML:2:0:DSML; "
                                 "capabilities: suspend, search)")
        finally:
            process.terminate()
            process.wait(10)


def test_a_hostile_answer_is_a_clear_job_error(sqlite_iam: Iam, admin: Initiator,
                                               sandbox: SpmlSandbox) -> None:
    from connectors.sandbox.spml import Reply
    from core.provisioning.outbox import JobState

    wire(sqlite_iam, sandbox)
    sandbox.provider.script(Reply(200, b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aa">]>'
                                       b"<x>&a;</x>"))
    sqlite_iam.identity.add_user(admin, "lee", None, {}, roles=[ROLE])
    drain(sqlite_iam)
    [job] = sqlite_iam.provisioning.jobs()
    assert job.state is JobState.DEAD
    assert job.last_error == (
        f"add user 'lee': the provider's answer is not usable: the answer was refused: it "
        f"declares a DTD or entities (DTDForbidden), which SOAP forbids (POST {sandbox.url} "
        "addRequest)")
    assert sandbox.provider.psos == {}


async def test_the_console_opens_the_spml_connector_and_offers_a_choice_of_type(
        sqlite_iam: Iam, sandbox: SpmlSandbox) -> None:
    from textual.widgets import Select

    from tui.app import MwareConsole
    from tui.screens.idps import ConnectorForm
    from tui.widgets.form_screen import FormScreen

    wire(sqlite_iam, sandbox)
    app = MwareConsole(sqlite_iam, False, deployment="t", workers=False, live=False,
                       screen="idps")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await pilot.press("c")  # its one connector, straight away
        await settle(pilot)
        assert isinstance(app.screen, ConnectorForm) and app.screen.connector_type == "spml"
        assert app.screen.form.editor("spml-ep").value == sandbox.url
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("C")  # a connector of another type: the choice
        await settle(pilot)
        assert isinstance(app.screen, FormScreen)
        kind = app.screen.form.editor("type")
        assert isinstance(kind, Select)
        for offered in ("scim2", "spml"):  # a value that is not offered raises
            kind.value = offered
        await pilot.press("ctrl+s")  # "Open"
        await settle(pilot)
        assert isinstance(app.screen, ConnectorForm) and app.screen.connector_type == "spml"


@pytest.mark.parametrize("search", [True, False])
def test_reconcile_with_and_without_the_search_capability(
        sqlite_iam: Iam, admin: Initiator, search: bool) -> None:
    """With search, everything the provider holds is compared; without, the PSOs we have
    mappings for are looked up, so a stranger is not seen but a lost or changed user is."""
    target = f"{IDP}:spml"
    with spml_sandbox(username="mware", password=PASSWORD, search=search) as peer:
        wire(sqlite_iam, peer)
        for name in ("kim", "lou", "max"):
            sqlite_iam.identity.add_user(admin, name, None, {
                "givenname": name.title(), "emailaddress": f"{name}@example.org"},
                roles=[ROLE])
        drain(sqlite_iam)
        by_account = {p.account: p for p in peer.provider.psos.values()}
        peer.provider.drop(by_account["kim"].id)  # lost at the provider
        by_account["lou"].attributes["givenName"] = ["Changed"]  # edited there
        peer.seed_user("stranger")

        report = sqlite_iam.provisioning.reconcile(admin, target)
        assert report.missing_remote == ["PRIMARY/kim"]
        assert [(d.user, d.attributes) for d in report.drifted] == [("PRIMARY/lou",
                                                                     ["givenName"])]
        assert report.extra_remote == (["stranger"] if search else [])
        sent = {n.tag.rsplit("}", 1)[1] for n in peer.provider.received}
        assert ("searchRequest" in sent) is search and ("lookupRequest" in sent) is not search

        sqlite_iam.provisioning.reconcile(admin, target, repair=True)
        drain(sqlite_iam)
        after = sqlite_iam.provisioning.reconcile(admin, target)
        assert (after.missing_remote, after.drifted) == ([], [])
        assert {p.account for p in peer.provider.psos.values()} >= {"kim", "lou", "max"}
