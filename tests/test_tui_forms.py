"""The schema-driven form (``tui.widgets.property_form``) and its modal (``FormScreen``).

The form is mounted in a tiny app of its own: these tests need no deployment. The save
functions here stand in for engine calls (they raise the engine's own ``InvalidInput``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Checkbox, Input, Select

from core.errors import InvalidInput
from core.properties import FieldError, PropertySpec, PropertyType
from tests.tui_helpers import settle
from tui.widgets.form_screen import FormScreen
from tui.widgets.property_form import (
    FormValues,
    PropertyForm,
    errors_from_message,
    field_error,
)

_P = PropertyType
SPECS = (
    PropertySpec("endpoint", "Endpoint", _P.URL, required=True, help="http://host/v2"),
    PropertySpec("mode", "Mode", _P.CHOICE, default="NONE", choices=("NONE", "BASIC")),
    PropertySpec("retries", "Retries", _P.INTEGER, default=3),
    PropertySpec("patch", "Use PATCH", _P.BOOLEAN, default=False),
    PropertySpec("pattern", "Pattern", _P.REGEX),
    PropertySpec("token", "Token", secret=True),
    PropertySpec("password", "Password", secret=True),
)


class FormApp(App[None]):
    """One PropertyForm, as a screen body."""

    def __init__(self, form: PropertyForm) -> None:
        super().__init__()
        self.form = form

    def compose(self) -> ComposeResult:
        yield self.form


def form_of(values: dict[str, Any] | None = None,
            stored: dict[str, str | None] | None = None) -> PropertyForm:
    return PropertyForm(SPECS, values, stored_secrets=stored, id="form")


def editor(form: PropertyForm, name: str) -> Any:
    return form.editor(name)


async def type_into(pilot: Pilot[None], widget: Input, text: str) -> None:
    # A blinking cursor would make a snapshot depend on when it was taken (seen under load).
    widget.cursor_blink = False
    widget.focus()
    widget.value = ""
    await pilot.press(*text)
    await pilot.pause()


# ---------------------------------------------------------------------- the widgets


async def test_each_type_gets_its_editor_and_secrets_start_empty() -> None:
    form = form_of({"endpoint": "http://peer/v2", "mode": "BASIC", "retries": 5,
                    "patch": True}, stored={"token": "${env:PEER_TOKEN}", "password": None})
    async with FormApp(form).run_test(size=(100, 30)):
        assert isinstance(editor(form, "mode"), Select)
        assert editor(form, "mode").value == "BASIC"
        assert isinstance(editor(form, "patch"), Checkbox)
        assert editor(form, "patch").value is True
        assert str(editor(form, "patch").label) == "yes"  # legible without colour
        retries = editor(form, "retries")
        assert isinstance(retries, Input) and retries.type == "integer"
        assert retries.value == "5"
        token, password = editor(form, "token"), editor(form, "password")
        assert token.password and token.value == "" and password.value == ""
        assert token.placeholder == "stored (${env:PEER_TOKEN}); empty keeps it"
        assert password.placeholder == "stored; empty keeps it"
        assert form.collect() == FormValues(
            {"endpoint": "http://peer/v2", "mode": "BASIC", "retries": "5", "patch": True,
             "pattern": ""}, {})


async def test_defaults_fill_a_new_form() -> None:
    form = form_of()
    async with FormApp(form).run_test(size=(100, 30)):
        values = form.collect().values
        assert values["mode"] == "NONE" and values["retries"] == "3" and values["patch"] is False
        assert editor(form, "endpoint").placeholder == "http://host/v2"  # the help


async def test_fields_are_checked_as_you_type() -> None:
    form = form_of({"endpoint": "http://peer/v2"})
    async with FormApp(form).run_test(size=(100, 30)) as pilot:
        endpoint = editor(form, "endpoint")
        await type_into(pilot, endpoint, "not a url")
        assert endpoint.value == "not a url"
        assert "expected a URL" in (form.error_of("endpoint") or "")

        await type_into(pilot, endpoint, "http://ok/v2")
        assert form.error_of("endpoint") is None

        pattern = editor(form, "pattern")
        await type_into(pilot, pattern, "([a-z")
        assert "not a valid regular expression" in (form.error_of("pattern") or "")

        await type_into(pilot, endpoint, "")
        assert form.error_of("endpoint") == "✗ Endpoint is required"


async def test_an_integer_field_takes_digits_only() -> None:
    form = form_of()
    async with FormApp(form).run_test(size=(100, 30)) as pilot:
        retries = editor(form, "retries")
        await type_into(pilot, retries, "1x2")
        assert retries.value == "12"


async def test_a_checkbox_says_its_state_in_words() -> None:
    form = form_of()
    async with FormApp(form).run_test(size=(100, 30)) as pilot:
        patch = editor(form, "patch")
        patch.focus()
        await pilot.press("space")
        assert patch.value is True and str(patch.label) == "yes"
        assert form.collect().values["patch"] is True


async def test_only_typed_secrets_are_collected_and_a_stored_one_is_not_required() -> None:
    required_secret = PropertySpec("key", "Key", required=True, secret=True)
    form = PropertyForm([required_secret], stored_secrets={"key": None})
    async with FormApp(form).run_test(size=(100, 30)) as pilot:
        assert form.errors() == []  # empty keeps the stored key
        await type_into(pilot, form.editor("key"), "n3w")
        assert form.collect() == FormValues({}, {"key": "n3w"})

    fresh = PropertyForm([required_secret])
    async with FormApp(fresh).run_test(size=(100, 30)):
        assert fresh.errors() == [FieldError("key", "Key is required")]


async def test_show_errors_marks_fields_focuses_the_first_and_keeps_values() -> None:
    form = form_of({"endpoint": "http://peer/v2", "pattern": "x"})
    async with FormApp(form).run_test(size=(100, 30)) as pilot:
        unplaced = form.show_errors([FieldError("pattern", "too loose"),
                                     FieldError("elsewhere", "not a field")])
        await pilot.pause()
        assert unplaced == [FieldError("elsewhere", "not a field")]
        assert form.error_of("pattern") == "✗ too loose"
        assert form.error_of("endpoint") is None
        assert editor(form, "pattern").has_focus
        assert editor(form, "pattern").value == "x"
        form.clear_errors()
        assert form.error_of("pattern") is None


def test_field_error_uses_the_engine_check_and_extra_checks() -> None:
    url = SPECS[0]
    assert field_error(url, "http://x/v2") is None
    assert "expected a URL" in (field_error(url, "nope") or "")
    assert field_error(url, "") == "Endpoint is required"
    assert field_error(SPECS[5], "", stored_secret=True) is None
    assert field_error(SPECS[0], "http://x", extra=lambda v: "no x" if "x" in v else None) \
        == "no x"


def test_engine_messages_are_placed_on_the_fields_they_name() -> None:
    message = ("userstore EXTRA: pattern: 'x(' is not valid: bad; retries: 'q' is not valid: "
               "expected a whole number")
    assert errors_from_message(message, SPECS) == [
        FieldError("retries", "retries: 'q' is not valid: expected a whole number"),
        FieldError("pattern", "userstore EXTRA: pattern: 'x(' is not valid: bad"),
    ]
    # a name inside a longer word is not that field
    assert errors_from_message("endpoints are down", SPECS) == []


# ---------------------------------------------------------------------- the modal


class ModalApp(App[None]):
    def __init__(self, screen: FormScreen[Any]) -> None:
        super().__init__()
        self.form_screen = screen
        self.results: list[Any] = []

    def on_mount(self) -> None:
        self.push_screen(self.form_screen, self.results.append)


def modal(submit: Callable[[FormValues], Any], **kw: Any) -> FormScreen[Any]:
    return FormScreen("Connector", SPECS, submit, values={"endpoint": "http://peer/v2"}, **kw)


async def test_a_clean_form_is_submitted_and_returns_the_result() -> None:
    seen: list[FormValues] = []

    def submit(values: FormValues) -> str:
        seen.append(values)
        return "saved"

    app = ModalApp(modal(submit))
    async with app.run_test(size=(100, 30)) as pilot:
        await type_into(pilot, app.form_screen.form.editor("token"), "t0ken")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.results == ["saved"]
        assert seen[0].secrets == {"token": "t0ken"}
        assert seen[0].values["endpoint"] == "http://peer/v2"


async def test_local_errors_stop_the_save_before_the_engine() -> None:
    calls: list[FormValues] = []
    screen = modal(lambda v: calls.append(v),
                   precheck=lambda v: [FieldError("password", "needs a user")]
                   if v.secrets.get("password") else [])
    app = ModalApp(screen)
    async with app.run_test(size=(100, 30)) as pilot:
        await type_into(pilot, screen.form.editor("endpoint"), "nope")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not calls and app.screen is screen
        assert "expected a URL" in (screen.form.error_of("endpoint") or "")
        assert screen.general_error == "Not saved: check Endpoint (endpoint)."

        await type_into(pilot, screen.form.editor("endpoint"), "http://ok/v2")
        await type_into(pilot, screen.form.editor("password"), "pw")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not calls
        assert screen.form.error_of("password") == "✗ needs a user"


async def test_an_engine_refusal_keeps_everything_typed() -> None:
    def refuse(values: FormValues) -> None:
        raise InvalidInput("connector scim2: retries: '99' is too many")

    screen = modal(refuse)
    app = ModalApp(screen)
    async with app.run_test(size=(100, 30)) as pilot:
        await type_into(pilot, screen.form.editor("retries"), "99")
        await type_into(pilot, screen.form.editor("token"), "s3cret")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is screen and not app.results
        assert screen.general_error == \
            "Not saved: connector scim2: retries: '99' is too many"
        assert screen.form.error_of("retries") == \
            "✗ connector scim2: retries: '99' is too many"
        assert screen.form.editor("retries").value == "99"
        assert screen.form.collect().secrets == {"token": "s3cret"}
        assert not screen.saving


async def test_escape_cancels_with_none() -> None:
    app = ModalApp(modal(lambda v: "never"))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("escape")
        await settle(pilot)
        assert app.results == [None]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_snapshot_form_with_errors(snap_compare: Any, size: tuple[int, int]) -> None:
    def refuse(values: FormValues) -> None:
        raise InvalidInput("connector scim2: retries: '99' is too many")

    async def refused(pilot: Pilot[None]) -> None:
        screen = pilot.app.screen
        assert isinstance(screen, FormScreen)
        await type_into(pilot, screen.form.editor("endpoint"), "not a url")
        await type_into(pilot, screen.form.editor("retries"), "99")
        await pilot.press("ctrl+s")
        await settle(pilot)

    assert snap_compare(ModalApp(modal(refuse)), terminal_size=size, run_before=refused)
