"""The common PATCH shapes applied without scim2-models' PATCH machinery.

Microsoft Entra, Okta and our own SCIM connector mostly PATCH a user with operations like
``{"op": "replace", "path": "name.givenName", "value": "Ada"}``: add, replace or remove one
single-valued attribute of the User schema. scim2-models validates such a PatchOp (about
250 us: the path resolved, the value checked against the schema in the request's context)
and applies it (about 500 us: a snapshot copy, the path resolved again per step, every field
compared after each operation), some 40 % of a PATCH's CPU on our server.

:class:`SimplePatches` recognises a body whose every operation is of that shape, with a
value of exactly the attribute's type (a string, or a boolean), on an attribute a client may
write and that has no constraint besides its type. Such a body is valid whatever resource it
applies to, and applying it is setting or unsetting fields. Anything else (a filter in the
path, a complex value, an extension's attribute, a value that needs coercion like Entra's
``"False"``, an unknown key) is left to scim2-models, whose reading and application are the
reference: ``tests/test_inbound_simplepatch.py`` compares the two on many shapes.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any, Union

from scim2_models import ComplexAttribute, Mutability, PatchOp, Required, Resource

#: The core User schema's URN, as a path may be prefixed with it (lower case, with ":").
_CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:user:"
_OPS = frozenset({"add", "replace", "remove"})
_OPERATION_KEYS = frozenset({"op", "path", "value"})


@dataclass(frozen=True)
class Slot:
    """Where a simple path writes: a field of the resource, or a field (``sub_field``) of
    the single-valued complex attribute ``field`` holds (a ``sub_model``)."""

    field: str
    sub_field: str | None
    sub_model: type[ComplexAttribute] | None
    kind: type  # str or bool: what a value must be exactly


@dataclass(frozen=True)
class SimplePatch:
    """A PatchOp of simple operations (op, where, value), applied by :meth:`patch` as
    scim2-models' ``PatchOp.patch`` would. It stands in for the PatchOp that scim2-server's
    handler hands from ``read_patch`` to ``apply_patch``, its only use of it."""

    operations: tuple[tuple[str, Slot, Any], ...]

    def patch(self, resource: Resource[Any]) -> bool:
        """Apply the operations to ``resource`` in place; whether it changed."""
        changed = False
        for op, slot, value in self.operations:
            changed = _apply(resource, op, slot, value) or changed
        return changed


class SimplePatches:
    """The simple PATCH shapes of one User model."""

    def __init__(self, model: type[Resource[Any]]) -> None:
        #: path (lower case, relative to the User schema) -> its slot.
        self.slots: dict[str, Slot] = {}
        for name in model.model_fields:
            kind = _plain(model, name)
            if kind is not None:
                self.slots[model._scim_name(name).lower()] = Slot(name, None, None, kind)
                continue
            sub_model = _complex(model, name)
            if sub_model is None:
                continue
            for sub in sub_model.model_fields:
                kind = _plain(sub_model, sub)
                if kind is not None:
                    path = f"{model._scim_name(name)}.{sub_model._scim_name(sub)}".lower()
                    self.slots[path] = Slot(name, sub, sub_model, kind)

    def read(self, data: Any) -> SimplePatch | None:
        """The PatchOp ``data`` (decoded JSON) as a simple patch, or None when it is not
        one: then scim2-models reads it (and refuses it, if it is wrong)."""
        if not isinstance(data, dict) or len(data) != 2 or \
                data.get("schemas") != [PatchOp.__schema__]:
            return None
        key = next((k for k in data if k.lower() == "operations"), None)
        operations = data[key] if key is not None else None
        if not isinstance(operations, list) or not operations:
            return None
        read = []
        for operation in operations:
            simple = self._operation(operation)
            if simple is None:
                return None
            read.append(simple)
        return SimplePatch(tuple(read))

    def _operation(self, operation: Any) -> tuple[str, Slot, Any] | None:
        if not isinstance(operation, dict) or not operation.keys() <= _OPERATION_KEYS:
            return None
        op, path = operation.get("op"), operation.get("path")
        if not isinstance(op, str) or op.lower() not in _OPS or not isinstance(path, str):
            return None
        folded = path.lower()
        slot = self.slots.get(folded.removeprefix(_CORE_USER) if
                              folded.startswith(_CORE_USER) else folded)
        if slot is None:
            return None
        op = op.lower()
        if op == "remove":
            return (op, slot, None) if "value" not in operation else None
        value = operation.get("value")
        return (op, slot, value) if type(value) is slot.kind else None


def _apply(resource: Resource[Any], op: str, slot: Slot, value: Any) -> bool:
    """One operation; whether it changed the resource."""
    if slot.sub_model is None:
        holder: Any = resource
    else:
        holder = getattr(resource, slot.field)
        if holder is None:
            if op == "remove":
                return False
            holder = slot.sub_model()
            setattr(resource, slot.field, holder)
    field = slot.field if slot.sub_field is None else slot.sub_field
    if getattr(holder, field) == value:
        return False
    setattr(holder, field, value)
    return True


def _plain(model: type[Any], name: str) -> type | None:
    """``str`` or ``bool`` when a field holds exactly that type (or nothing), may be
    written by a client and unassigned (not required); else None."""
    annotation = model.model_fields[name].annotation
    kind = next((k for k in (str, bool) if annotation in (k | None, Union[k, None])),  # noqa: UP007
                None)
    if kind is None or model.get_field_annotation(name, Mutability) != \
            Mutability.read_write or model.get_field_annotation(name, Required) == \
            Required.true:
        return None
    return kind


def _complex(model: type[Any], name: str) -> type[ComplexAttribute] | None:
    """The model of a single-valued complex attribute a client may write, else None."""
    annotation = model.model_fields[name].annotation
    if not isinstance(annotation, types.UnionType) and \
            getattr(annotation, "__origin__", None) is not Union:
        return None
    kinds = [a for a in annotation.__args__ if a is not type(None)]
    if len(kinds) != 1 or not isinstance(kinds[0], type) or \
            not issubclass(kinds[0], ComplexAttribute) or \
            model.get_field_annotation(name, Mutability) != Mutability.read_write:
        return None
    return kinds[0]
