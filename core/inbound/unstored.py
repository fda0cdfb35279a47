"""Standard attributes a deployment does not store, taken out of request bodies.

``/Schemas`` publishes only what this deployment stores (``schemas.py``), and the resource
models refuse anything else. Real clients send the SCIM core and enterprise attributes of
their default mappings whatever the server publishes (Microsoft Entra: ``name.formatted``,
``emails[].primary``, ``addresses[type eq "work"].formatted``; Okta alike), and fail a
whole provisioning run on a 400. So before validation, every attribute and sub-attribute
of those standard schemas that this deployment does not store is dropped from POST and PUT
bodies, PATCH operations (a PATCH of nothing stored changes nothing) and Bulk operations.
A name no standard schema defines is left in place: the models refuse it (400
``invalidSyntax``), as RFC 7644 §3.12 describes for a body that does not fit the schema.

``primary`` is honoured where the claim is stored: a value marked primary with no type
stands for the stored type (``emails[type eq "work"]``) when the body gives none of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from scim2_models import Schema
from scim2_server.utils import load_default_schemas

#: attribute (lower case) -> its sub-attributes (lower case).
Shape = dict[str, set[str]]
#: How many paths ``Unstored._split`` remembers.
SPLITS_KEPT = 4096


def _shape(schema: Schema) -> Shape:
    return {(a.name or "").lower(): {(s.name or "").lower() for s in a.sub_attributes or []}
            for a in schema.attributes or []}


@dataclass
class _Schema:
    standard: Shape
    stored: Shape
    #: Multi-valued attributes stored by type: the types, in mapping order.
    types: dict[str, list[str]] = field(default_factory=dict)

    def unstored(self, attribute: str, sub: str | None = None) -> bool:
        """Whether a standard (sub-)attribute is one this deployment does not store."""
        if attribute not in self.standard:
            return False  # not a standard name: validation decides
        if attribute not in self.stored:
            return True
        return sub is not None and sub in self.standard[attribute] \
            and sub not in self.stored[attribute]

    def prune_value(self, attribute: str, value: Any) -> Any:
        """A stored attribute's value without its unstored sub-attributes."""
        if isinstance(value, list):
            return [self.prune_value(attribute, v) for v in self._primary(attribute, value)]
        if isinstance(value, dict):
            return {k: v for k, v in value.items()
                    if not self.unstored(attribute, k.lower())}
        return value

    def _primary(self, attribute: str, entries: list[Any]) -> list[Any]:
        types = self.types.get(attribute)
        if not types:
            return entries
        given = {str(e.get("type", "")).lower() for e in entries if isinstance(e, dict)}
        if given & {t.lower() for t in types}:
            return entries
        for entry in entries:
            if isinstance(entry, dict) and entry.get("primary") in (True, "true", "True") \
                    and not entry.get("type"):
                return [{**entry, "type": types[0]} if e is entry else e for e in entries]
        return entries

    def prune_object(self, body: dict[str, Any]) -> dict[str, Any]:
        return {k: self.prune_value(k.lower(), v) for k, v in body.items()
                if not self.unstored(k.lower())}


class Unstored:
    """The pruning of one deployment, from the schemas it publishes."""

    def __init__(self, published: Iterable[Schema], types: dict[str, dict[str, list[str]]]
                 ) -> None:
        defaults = load_default_schemas()
        self.schemas = {s.id: _Schema(_shape(defaults[s.id]), _shape(s), types.get(s.id, {}))
                        for s in published if s.id in defaults}
        self._by_lower = {uri.lower(): uri for uri in self.schemas}
        #: ``_split``'s answers by path and main schema (the keys of request bodies: a
        #: few dozen in practice; bounded, as clients choose them).
        self._splits: dict[tuple[str, str], tuple[str, str, str | None, bool]] = {}

    def _split(self, path: str, main: str) -> tuple[str, str, str | None, bool]:
        """A path's schema, attribute and sub-attribute (lower case), and whether it
        selects entries (``emails[type eq "work"]``)."""
        split = self._splits.get((path, main))
        if split is None:
            split = self._split_anew(path, main)
            if len(self._splits) < SPLITS_KEPT:
                self._splits[path, main] = split
        return split

    def _split_anew(self, path: str, main: str) -> tuple[str, str, str | None, bool]:
        lowered = path.lower()
        schema = main
        for uri in self._by_lower:
            if lowered.startswith(uri + ":"):
                schema, lowered = self._by_lower[uri], lowered[len(uri) + 1:]
                break
        head, bracket, rest = lowered.partition("[")
        if bracket:
            sub = rest.partition("]")[2].lstrip(".") or None
        else:
            head, _, tail = head.partition(".")
            sub = tail or None
        return schema, head, sub, bool(bracket)

    def resource(self, body: Any, main: str) -> Any:
        """A POST or PUT body without the standard attributes not stored."""
        if not isinstance(body, dict) or main not in self.schemas:
            return body
        out: dict[str, Any] = {}
        for key, value in body.items():
            uri = self._by_lower.get(key.lower())
            if uri is not None and uri != main:
                out[key] = self.schemas[uri].prune_object(value) \
                    if isinstance(value, dict) else value
                continue
            schema, attribute, sub, _ = self._split(key, main)
            if self.schemas[schema].unstored(attribute, sub):
                continue
            out[key] = self.schemas[schema].prune_value(attribute, value) \
                if sub is None else value
        return out

    def patch(self, body: Any, main: str) -> Any:
        """A PATCH body without the operations on standard attributes not stored (and
        path-less values without them)."""
        if not isinstance(body, dict) or main not in self.schemas:
            return body
        key = next((k for k in body if k.lower() == "operations"), None)
        operations = body.get(key) if key else None
        if not isinstance(operations, list):
            return body
        kept = []
        for operation in operations:
            if not isinstance(operation, dict):
                kept.append(operation)
                continue
            pruned = self._operation(operation, main)
            if pruned is not None:
                kept.append(pruned)
        return {**body, key: kept}

    def _operation(self, operation: dict[str, Any], main: str) -> dict[str, Any] | None:
        path = next((operation[k] for k in operation if k.lower() == "path"), None)
        value_key = next((k for k in operation if k.lower() == "value"), None)
        if not isinstance(path, str) or not path:
            if value_key is not None and isinstance(operation[value_key], dict):
                value = self.resource(operation[value_key], main)
                if not value:
                    return None
                return {**operation, value_key: value}
            return operation
        schema, attribute, sub, selects = self._split(path, main)
        known = self.schemas[schema]
        if known.unstored(attribute, sub):
            return None
        if value_key is None or sub is not None:
            return operation
        value = operation[value_key]
        if isinstance(value, str) and not selects and "value" in known.stored.get(
                attribute, set()) and attribute not in known.types:
            value = {"value": value}  # Entra: a manager's id where an object belongs
        return {**operation, value_key: known.prune_value(attribute, value)}

    def bulk(self, body: Any, resource_schema: dict[str, str]) -> Any:
        """A Bulk body with each operation's data pruned (by the endpoint it names)."""
        if not isinstance(body, dict):
            return body
        key = next((k for k in body if k.lower() == "operations"), None)
        operations = body.get(key) if key else None
        if not isinstance(operations, list):
            return body
        out = []
        for operation in operations:
            if isinstance(operation, dict) and isinstance(operation.get("data"), dict):
                endpoint = str(operation.get("path", "")).strip("/").split("/")[0]
                main = resource_schema.get(endpoint.lower())
                method = str(operation.get("method", "")).upper()
                if main is not None:
                    data = self.patch(operation["data"], main) if method == "PATCH" \
                        else self.resource(operation["data"], main)
                    operation = {**operation, "data": data}
            out.append(operation)
        return {**body, key: out}
