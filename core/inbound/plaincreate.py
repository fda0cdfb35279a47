"""The common POST body of a User validated without scim2-models' request context.

scim2-models validates a creation in its request context: after pydantic's validation it
walks every attribute of every object again to drop the read-only ones sent, refuse a
missing required one and more than one ``primary`` value (about 80 us for a plain User,
against 17 us for the validation alone). :class:`PlainCreation` takes a body whose keys are
exactly the names of attributes a client may write (``schemas`` naming the User schema
alone, no extension, no other spelling), validates it plainly, and keeps the result only
when that walk would find nothing: no read-only attribute set at any level, every required
one there, at most one primary value. Anything else is validated by scim2-models, as before,
which also gives the errors. ``tests/test_inbound_plaincreate.py`` compares the two.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import ValidationError
from scim2_models import BaseModel, Mutability, Required, Resource


class PlainCreation:
    """The plain creation bodies of one resource model."""

    def __init__(self, model: type[Resource[Any]]) -> None:
        self.model = model
        self.schemas = [model.__schema__]
        #: The keys a plain body may have (an extension's is its schema's URN).
        self.keys = frozenset(
            alias for name, field in model.model_fields.items()
            if model.get_field_annotation(name, Mutability) != Mutability.read_only
            and ":" not in (alias := field.serialization_alias or name))

    def read(self, data: Any) -> Resource[Any] | None:
        """``data`` (a decoded body) as the resource scim2-models' creation context
        validates it into, or None: then scim2-models validates it."""
        if not isinstance(data, dict) or data.get("schemas") != self.schemas or \
                not data.keys() <= self.keys:
            return None
        try:
            resource = self.model.model_validate(data)
        except ValidationError:
            return None
        return resource if _acceptable(resource) else None


def _acceptable(obj: BaseModel) -> bool:
    """Whether scim2-models' creation context leaves ``obj`` (and what it holds) as it
    is: no read-only attribute set, every required one assigned, at most one primary.

    Only the fields set and those ``_rules`` says to look at even when unset are looked
    at: any other holds its default, None, which none of the checks refuses."""
    fields_set = obj.model_fields_set
    rules, always = _rules(type(obj))
    for name in fields_set | always if always else fields_set:
        read_only, required, primary = rules[name]
        value = getattr(obj, name)
        if read_only and name in fields_set:
            return False
        if required and (value is None or (value == [] and name != "schemas")):
            return False
        values = value if isinstance(value, list) else [value]
        if primary and sum(getattr(v, "primary", None) is True for v in values) > 1:
            return False
        if not all(_acceptable(v) for v in values if isinstance(v, BaseModel)):
            return False
    return True


@cache
def _rules(model: type[BaseModel]
           ) -> tuple[dict[str, tuple[bool, bool, bool]], frozenset[str]]:
    """Each field of a model by name: whether it is read-only, whether it is required,
    and whether it holds values that may be marked primary; and the fields to look at
    even when unset (the required ones, and those whose default is not None)."""
    rules = {}
    always = set()
    for name, field in model.model_fields.items():
        kind = model.get_field_root_type(name)
        required = model.get_field_annotation(name, Required) == Required.true
        rules[name] = (
            model.get_field_annotation(name, Mutability) == Mutability.read_only, required,
            isinstance(kind, type) and issubclass(kind, BaseModel)
            and "primary" in kind.model_fields)
        if required or field.default_factory is not None or field.default is not None:
            always.add(name)
    return rules, frozenset(always)
