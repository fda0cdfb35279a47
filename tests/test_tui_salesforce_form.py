"""The console's connector form for ``salesforce``: rendered from the property schema and
checked by the connector's own rules before anything is saved."""

from __future__ import annotations

from typing import Any

from textual.app import App

from core.idps import IdentityProvider
from tests.tui_helpers import settle
from tui.screens.idps import ConnectorForm
from tui.widgets.property_form import FormValues


class FormApp(App[None]):
    def __init__(self, screen: ConnectorForm) -> None:
        super().__init__()
        self.form_screen = screen
        self.results: list[Any] = []

    def on_mount(self) -> None:
        self.push_screen(self.form_screen, self.results.append)


async def test_the_salesforce_form_renders_and_names_each_bad_field() -> None:
    saved: list[FormValues] = []
    screen = ConnectorForm(IdentityProvider(name="crm"), "salesforce",
                           lambda v: saved.append(v) or "saved")
    app = FormApp(screen)
    async with app.run_test(size=(120, 50)) as pilot:
        form = screen.form
        assert form.editor("sf-timezone").value == "America/Los_Angeles"  # defaults shown
        assert form.editor("sf-client-secret").value == ""
        for name, text in {"sf-domain-name": "http://acme.example.com",
                           "sf-clientid": "3MVGabc", "sf-profile-id": "00e123",
                           "sf-api-version": "61"}.items():
            form.editor(name).value = text
        form.editor("sf-client-secret").value = "s3cret"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not saved and app.screen is screen
        assert "https" in (form.error_of("sf-domain-name") or "")
        assert "15- or 18-character" in (form.error_of("sf-profile-id") or "")
        assert "vNN.N" in (form.error_of("sf-api-version") or "")
        form.editor("sf-domain-name").value = "https://acme.my.salesforce.com"
        form.editor("sf-profile-id").value = "00e5g000001AbCdEAF"
        form.editor("sf-api-version").value = "v61.0"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.results == ["saved"]
        assert saved[0].secrets == {"sf-client-secret": "s3cret"}
