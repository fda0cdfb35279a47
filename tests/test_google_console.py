"""The console's connector form for Google Workspace: drawn from the property schema, with
the connector's own checks (RSA key, administrator at the domain, pattern) per field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import Input

from connectors.sandbox.google import GoogleSandbox
from core.iam import Iam
from core.idps import ConnectorConfig, IdentityProvider
from core.secrets import SecretValue
from tests.conftest import FAST_ARGON2
from tests.test_google_provisioning import KEY
from tests.test_google_provisioning import peer as peer  # the module's sandbox (a fixture)
from tests.test_tui_screens import ADMIN, console, open_connector, press, replace_text


async def test_the_google_form_renders_and_names_each_bad_field(tmp_path: Path,
                                                                peer: GoogleSandbox) -> None:
    with Iam.open(home=str(tmp_path / "home"), argon2=FAST_ARGON2) as iam:
        props = {k: v for k, v in peer.properties().items() if k != KEY}
        iam.save_idp(ADMIN, IdentityProvider("gws", connectors=(ConnectorConfig(
            "googleapps", properties=props, secrets={KEY: SecretValue(peer.private_key_pem)}),
        )))
        before = iam.get_idp("gws")
        app = console(iam, "idps")
        async with app.run_test(size=(100, 40)) as pilot:
            form = await open_connector(pilot, "googleapps")
            domain = form.form.editor("google_prov_domain_name")
            assert isinstance(domain, Input) and domain.value == "example.org"
            key: Any = form.form.editor(KEY)
            assert key.value == "" and "PRIVATE KEY" not in key.placeholder
            await replace_text(pilot, form.form.editor("google_prov_admin_email"),  # type: ignore[arg-type]
                               "boss@other.org")
            await replace_text(pilot, form.form.editor("google_prov_pattern"),  # type: ignore[arg-type]
                               "{UN, NAME}")
            await press(pilot, "ctrl+s")
            assert app.screen is form
            assert "not at the domain example.org" in (
                form.form.error_of("google_prov_admin_email") or "")
            assert "unknown placeholder 'NAME'" in (form.form.error_of("google_prov_pattern")
                                                    or "")
            assert iam.get_idp("gws") == before
