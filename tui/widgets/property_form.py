"""A form built from a property schema (``core.properties.PropertySpec``).

One declaration drives validation, YAML, the CLI and this form. Each property becomes one
line: its label, then an editor chosen by type (``Select`` for choices, ``Checkbox`` for
booleans, an integer-only ``Input`` for integers, a masked ``Input`` for secrets, a plain
``Input`` otherwise). Every keystroke is checked with the engine's own ``check`` (plus any
per-field check the caller adds) and the reason shows under the field, in words, so it
reads the same without colour.

Secrets never enter a widget: a secret field starts empty, says whether a value is stored,
and an empty secret field means "keep the stored one". :meth:`PropertyForm.show_errors`
names the faulty fields after a refused save; nothing typed is ever cleared by it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.validation import ValidationResult, Validator
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, Select, Static

from core.properties import FieldError, PropertySpec, PropertyType, check

#: An extra check of one field's text: the problem in words, or None when it is fine.
FieldCheck = Callable[[str], str | None]


@dataclass(frozen=True)
class FormValues:
    """What the form holds: raw values by property name, and the secrets typed anew.

    ``values`` keeps text as typed (strings), booleans as ``bool`` and an unset choice as
    ``None``; it never holds a secret. ``secrets`` holds only the secret fields that were
    typed in (an empty secret field keeps the stored value, so it is absent here);
    ``cleared`` names the stored secrets the administrator chose to remove
    (:meth:`PropertyForm.clear_secret`) and did not type anew.
    """

    values: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    cleared: set[str] = field(default_factory=set)

    def text(self, name: str) -> str:
        value = self.values.get(name)
        return "" if value is None else str(value)

    def filled(self) -> dict[str, Any]:
        """The values that were given (empty text and unset choices dropped)."""
        return {k: v for k, v in self.values.items() if v is not None and v != ""}


def field_error(spec: PropertySpec, raw: Any, stored_secret: bool = False,
                extra: FieldCheck | None = None) -> str | None:
    """Why ``raw`` is not a valid value of ``spec`` (the engine's words), or None."""
    if spec.secret and stored_secret and raw in (None, ""):
        return None  # empty keeps the stored secret
    _typed, errors = check([spec], {spec.name: raw})
    if errors:
        return errors[0].message
    if extra is not None and raw not in (None, ""):
        return extra(str(raw))
    return None


def errors_from_message(message: str, specs: Sequence[PropertySpec]) -> list[FieldError]:
    """The fields an engine message speaks of, each with the part of it that names it.

    Engine messages name properties by their key (``scim2-user-ep: 'x' is not valid``,
    ``claim emailaddress: ...``) or by their label in any case (``Username must be ...``);
    several problems are joined by ``; ``.
    """
    parts = [p.strip() for p in message.split("; ") if p.strip()]
    found: list[FieldError] = []
    for spec in specs:
        name = re.compile(rf"(?<![\w-]){re.escape(spec.name)}(?![\w-])")
        label = re.compile(rf"(?<![\w-]){re.escape(spec.label)}(?![\w-])", re.IGNORECASE)
        hits = [p for p in parts if name.search(p) or label.search(p)]
        if hits:
            found.append(FieldError(spec.name, "; ".join(hits)))
    return found


def _widget_id(name: str) -> str:
    return "field-" + re.sub(r"[^A-Za-z0-9_-]", "_", name)


class _SpecValidator(Validator):
    """Lets an ``Input`` judge itself with :func:`field_error` as the text changes."""

    def __init__(self, spec: PropertySpec, stored_secret: bool, extra: FieldCheck | None):
        super().__init__()
        self._spec, self._stored, self._extra = spec, stored_secret, extra

    def validate(self, value: str) -> ValidationResult:
        problem = field_error(self._spec, value, self._stored, self._extra)
        return self.failure(problem) if problem else self.success()

    def forget_stored(self) -> None:
        """The stored secret was cleared: an empty field no longer keeps anything."""
        self._stored = False


class PropertyForm(VerticalScroll):
    """The fields of one schema, in its order; read with :meth:`collect`."""

    DEFAULT_CSS = """
    PropertyForm {
        height: auto;
        max-height: 100%;
        padding: 0 1 0 0;
    }
    PropertyForm .field-row {
        height: 1;
    }
    PropertyForm .field-label {
        width: 28;
        padding-right: 1;
        text-overflow: ellipsis;
        text-wrap: nowrap;
    }
    PropertyForm .field-editor {
        width: 1fr;
    }
    PropertyForm .field-error {
        display: none;
        padding-left: 28;
        color: $text-error;
    }
    PropertyForm .field-error.-shown {
        display: block;
    }
    PropertyForm .field-row:focus-within .field-label {
        text-style: bold reverse;
    }
    """

    def __init__(
        self,
        specs: Sequence[PropertySpec],
        values: Mapping[str, Any] | None = None,
        *,
        stored_secrets: Mapping[str, str | None] | None = None,
        checks: Mapping[str, FieldCheck] | None = None,
        locked: Collection[str] = (),
        id: str | None = None,
    ) -> None:
        """``stored_secrets`` maps each secret that has a stored value to what may be shown
        of it (the reference it came from, ``${env:NAME}``, or a masked form) or None;
        ``locked`` fields show but cannot change."""
        super().__init__(id=id)
        self.specs = tuple(specs)
        self._values = dict(values or {})
        self._stored = dict(stored_secrets or {})
        self._cleared: set[str] = set()
        self._checks = dict(checks or {})
        self._locked = set(locked)
        self._editors: dict[str, Widget] = {}
        self._error_lines: dict[str, Static] = {}

    # ------------------------------------------------------------------ building
    def compose(self) -> ComposeResult:
        for spec in self.specs:
            editor = self._editor(spec)
            self._editors[spec.name] = editor
            error = Static("", classes="field-error", markup=False)
            self._error_lines[spec.name] = error
            with Vertical(classes="field") as box:
                box.styles.height = "auto"
                with Horizontal(classes="field-row"):
                    label = Label(spec.label + (" *" if spec.required else ""),
                                  classes="field-label", markup=False)
                    label.tooltip = spec.help or None
                    yield label
                    yield editor
                yield error

    def _editor(self, spec: PropertySpec) -> Widget:
        wid, locked = _widget_id(spec.name), spec.name in self._locked
        initial = self._values.get(spec.name, spec.default)
        editor: Widget
        if spec.type is PropertyType.BOOLEAN:
            on_ = _as_bool(initial)
            editor = Checkbox(_yes_no(on_), on_, id=wid, compact=True, disabled=locked)
        elif spec.type is PropertyType.CHOICE:
            options = [(c, c) for c in spec.choices]
            value = initial if initial in spec.choices else Select.NULL
            editor = Select(options, id=wid, value=value, compact=True, disabled=locked,
                            allow_blank=not spec.required and spec.default is None,
                            prompt="(not set)")
        else:
            stored = spec.name in self._stored
            validator = _SpecValidator(spec, stored, self._checks.get(spec.name))
            editor = Input(
                value="" if spec.secret or initial is None else str(initial),
                placeholder=self._placeholder(spec, stored),
                password=spec.secret,
                type="integer" if spec.type is PropertyType.INTEGER else "text",
                validators=[validator],
                validate_on=["changed"],
                id=wid, compact=True, disabled=locked,
            )
        editor.add_class("field-editor")
        editor.tooltip = spec.help or None
        return editor

    def _placeholder(self, spec: PropertySpec, stored: bool) -> str:
        if spec.secret:
            if spec.name in self._cleared:
                return "cleared: saving removes the stored value (or type a new one)"
            if not stored:
                return spec.help or "not set"
            shown = self._stored.get(spec.name)
            return f"stored ({shown}); empty keeps it" if shown else "stored; empty keeps it"
        return spec.help

    # ------------------------------------------------------------------ clearing a secret
    def stored_secret(self, name: str) -> bool:
        """Whether ``name`` is a secret field whose stored value saving would keep."""
        return name in self._stored

    def clear_secret(self, name: str) -> None:
        """Mark the stored secret ``name`` to be removed on save (typing a new value still
        replaces it instead); the field is then checked as if nothing were stored."""
        editor = self._editors[name]
        if not isinstance(editor, Input) or name not in self._stored:
            raise ValueError(f"{name} is not a stored secret of this form")
        del self._stored[name]
        self._cleared.add(name)
        for validator in editor.validators:  # before the value: emptying it validates
            if isinstance(validator, _SpecValidator):
                validator.forget_stored()
        editor.value = ""
        spec = next(s for s in self.specs if s.name == name)
        editor.placeholder = self._placeholder(spec, False)
        self._set_error(name, field_error(spec, None, False, self._checks.get(name)))

    # ------------------------------------------------------------------ reading
    def editor(self, name: str) -> Widget:
        return self._editors[name]

    def name_of(self, widget: Widget | None) -> str | None:
        """The field ``widget`` edits (None for any other widget)."""
        for name, editor in self._editors.items():
            if editor is widget:
                return name
        return None

    def collect(self) -> FormValues:
        out = FormValues()
        for spec in self.specs:
            editor = self._editors[spec.name]
            if isinstance(editor, Checkbox):
                out.values[spec.name] = editor.value
            elif isinstance(editor, Select):
                out.values[spec.name] = None if editor.is_blank() else editor.value
            elif isinstance(editor, Input):
                if spec.secret:
                    if editor.value:
                        out.secrets[spec.name] = editor.value
                    elif spec.name in self._cleared:
                        out.cleared.add(spec.name)
                else:
                    out.values[spec.name] = editor.value
        return out

    def errors(self) -> list[FieldError]:
        """Every field's problem, as the engine would see it (the form itself is unchanged)."""
        found = self.collect()
        problems = []
        for spec in self.specs:
            raw = found.secrets.get(spec.name) if spec.secret else found.values.get(spec.name)
            problem = field_error(spec, raw, spec.name in self._stored,
                                  self._checks.get(spec.name))
            if problem:
                problems.append(FieldError(spec.name, problem))
        return problems

    def label_of(self, name: str) -> str:
        for spec in self.specs:
            if spec.name == name:
                return spec.label
        return name

    # ------------------------------------------------------------------ errors
    def show_errors(self, errors: Sequence[FieldError]) -> list[FieldError]:
        """Show each error under its field and focus the first; returns the errors that
        name no field of this form (the caller shows those above or below it)."""
        by_field: dict[str, list[str]] = {}
        unplaced = []
        for error in errors:
            if error.field in self._error_lines:
                by_field.setdefault(error.field, []).append(error.message)
            else:
                unplaced.append(error)
        for name in self._error_lines:
            self._set_error(name, "; ".join(by_field.get(name, [])) or None)
        first = next((s.name for s in self.specs if s.name in by_field), None)
        if first is not None:
            editor = self._editors[first]
            editor.focus()
            self.scroll_to_widget(editor)
        return unplaced

    def clear_errors(self) -> None:
        for name in self._error_lines:
            self._set_error(name, None)

    def error_of(self, name: str) -> str | None:
        line = self._error_lines[name]
        return str(line.content) if line.has_class("-shown") else None

    def _set_error(self, name: str, message: str | None) -> None:
        line = self._error_lines[name]
        line.update(f"✗ {message}" if message else "")
        line.set_class(bool(message), "-shown")

    # ------------------------------------------------------------------ as you type
    @on(Input.Changed, ".field-editor")
    def _typed(self, event: Input.Changed) -> None:
        name = self.name_of(event.input)
        result = event.validation_result
        if name is not None and result is not None:
            problems = result.failure_descriptions
            self._set_error(name, problems[0] if problems else None)

    @on(Checkbox.Changed, ".field-editor")
    def _toggled(self, event: Checkbox.Changed) -> None:
        event.checkbox.label = _yes_no(event.value)

    @on(Select.Changed, ".field-editor")
    def _chosen(self, event: Select.Changed) -> None:
        name = self.name_of(event.select)
        if name is not None:
            self._set_error(name, None)



def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"true", "yes", "on", "1"}


def _yes_no(value: bool) -> str:
    """Booleans say their state in words (a checkbox mark alone is colour with NO_COLOR)."""
    return "yes" if value else "no"
