"""Users and roles as SCIM resources, and SCIM resources as claims.

A user's claims become attributes through the SCIM dialect mappings (the same table the SCIM
connector sends with), and back. ``meta.version`` is a digest of the resource's content, so
it changes exactly when something a client can read changes (group membership included).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

from pydantic import ValidationError
from scim2_models import Meta, Path, Resource, SCIMException
from scim2_server.utils import parametrize

from core.claims import ACTIVE, SCIM_CORE_USER, USERNAME
from core.errors import InvalidInput
from core.identity.service import RoleView, UserView
from core.inbound.schemas import MappedPath
from core.scim_paths import ensure_selected


def _version(body: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode())
    return f'W/"{digest.hexdigest()[:16]}"'


def _key(mapping: Mapping[str, Any], name: str) -> Any:
    """``mapping[name]``, the name compared as SCIM compares attribute names (any case)."""
    if name in mapping:
        return mapping[name]
    folded = name.casefold()
    for key, value in mapping.items():  # a loop: no generator made per absent attribute
        if key.casefold() == folded:
            return value
    return None


def _container(body: dict[str, Any], p: MappedPath, create: bool) -> dict[str, Any] | None:
    """Where a mapping's attribute lives: the body, or its extension's object."""
    if p.schema == SCIM_CORE_USER:
        return body
    if create:
        created: dict[str, Any] = body.setdefault(p.schema, {})
        return created
    found = body.get(p.schema)
    return found if isinstance(found, dict) else None


def _place(body: dict[str, Any], p: MappedPath, value: Any) -> None:
    """Write a claim's value where its mapping says, in a plain-data User body."""
    container = _container(body, p, create=True)
    assert container is not None
    if p.selector is not None:
        key, wanted = p.selector
        entries = container.setdefault(p.attribute, [])
        entry = next((e for e in entries if str(e.get(key, "")).lower() == wanted.lower()),
                     None)
        if entry is None:
            entry = {key: wanted}
            entries.append(entry)
        entry[p.sub_attribute or "value"] = value
    elif p.sub_attribute:
        container.setdefault(p.attribute, {})[p.sub_attribute] = value
    else:
        container[p.attribute] = value


def _folded(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """``mapping`` by its names case-folded, the first of names that fold alike kept: what
    ``_key`` finds for a name not in ``mapping`` as written."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        out.setdefault(key.casefold(), value)
    return out


def _within(value: Any, p: MappedPath) -> Any:
    """A claim's value in the value of its mapping's attribute (read from the attribute's
    container with ``_key``) in a dumped User body."""
    if p.selector is not None:
        key, wanted = p.selector
        if not isinstance(value, list):
            return None
        entry = next((e for e in value if isinstance(e, dict)
                      and str(_key(e, key) or "").lower() == wanted.lower()), None)
        return _key(entry, p.sub_attribute or "value") if entry is not None else None
    if p.sub_attribute:
        return _key(value, p.sub_attribute) if isinstance(value, dict) else None
    return value


def no_nul(text: str, what: str) -> str:
    """``text``, refused when it holds a NUL character: no store keeps one alike
    (PostgreSQL refuses it, SQLite compares up to it, LDAP ends the value there)."""
    if "\x00" in text:
        raise InvalidInput(f"{what}: a value cannot hold a NUL character")
    return text


def _text(value: Any) -> str | None:
    """A SCIM value as claim text (booleans as ``true``/``false``)."""
    if value is None or value == [] or value == "":
        return None
    if isinstance(value, list):
        return _text(value[0])
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


#: What a dumped User holds besides its content (``stored_user`` compares the rest).
_NOT_CONTENT = frozenset({"schemas", "meta", "id"})

#: The resource ``stored_user`` answered with last in this context, and the
#: ``model_dump()`` of its content (without ``id`` and ``meta``): see :func:`written_dump`.
_written: ContextVar[tuple[Resource[Any], dict[str, Any]] | None] = ContextVar(
    "mware_iam_scim_written", default=None)


def written_dump(resource: Resource[Any]) -> dict[str, Any] | None:
    """The ``model_dump()`` of what ``resource`` holds besides ``id`` and ``meta``, when
    ``resource`` is the one ``stored_user`` returned as written (None otherwise): the dump
    its claims were read from, which a response may reuse instead of dumping it again."""
    written = _written.get()
    return written[1] if written is not None and written[0] is resource else None


def _with_meta(resource: Resource[Any], meta: Meta, resource_id: str | None = None
               ) -> Resource[Any]:
    """``resource`` with ``meta`` (and ``resource_id`` as its id, if given): a copy with
    them set, rather than assignments, which the models validate: each would run the
    resource's model validators again over content that did not change."""
    update: dict[str, Any] = {"meta": meta}
    if resource_id is not None:
        update["id"] = resource_id
    return resource.model_copy(update=update)


def _meta(user: UserView, content: Mapping[str, Any]) -> Meta:
    return Meta(resource_type="User", created=user.created,
                last_modified=user.modified or user.created, version=_version(content))


class ResourceMapper:
    """Converts between the identity service's views and one provider's resource models."""

    def __init__(self, user_model: type[Resource[Any]], group_model: type[Resource[Any]],
                 paths: Sequence[MappedPath]) -> None:
        self.user_model = user_model
        self.group_model = group_model
        #: Each mapping with its path bound to the User model, built once: a path parses
        #: itself on first use and keeps what it parsed.
        self.paths = [(p, parametrize(Path, user_model)(f"{p.schema}:{p.path}"))
                      for p in paths if p.claim != USERNAME]
        #: Each mapping with its attribute's name case-folded (``_claims_of``).
        self._reads = [(p, p.attribute.casefold()) for p, _ in self.paths]

    # -------------------------------------------------------------- users
    def user_resource(self, user: UserView, groups: Iterable[RoleView]) -> Resource[Any]:
        """A User; ``groups`` are its userstore groups (Internal roles are no SCIM groups)."""
        return self._user_resource(user, groups)[0]

    def shown_user(self, user: UserView, groups: Iterable[RoleView]
                   ) -> tuple[Resource[Any], dict[str, str | None]]:
        """A User and its claims as the resource holds them (``claims_and_dump``), read
        from the plain data it was validated from rather than from a dump of it."""
        resource, content = self._user_resource(user, groups)
        return resource, self._claims_of(content)

    def stored_user(self, user: UserView, groups: Iterable[RoleView],
                    resource: Resource[Any], dumped: dict[str, Any]) -> Resource[Any]:
        """``user_resource(user, groups)``, as ``resource`` itself when it holds exactly
        that content: the resource a POST or PATCH wrote (``dumped``: its ``model_dump()``,
        see :meth:`claims_and_dump`), which spares validating what it holds once more.
        Anything the store did not keep as sent (a value no mapping holds, a password)
        makes the contents differ, and the stored state is built as for a read."""
        body = self._body(user, groups)
        held = {k: v for k, v in dumped.items() if k not in _NOT_CONTENT}
        if held != {k: v for k, v in body.items() if k != "id"} or \
                dumped.get("schemas") != [self.user_model.__schema__]:
            return self._validated(user, body)[0]
        written = _with_meta(resource, _meta(user, body), user.id)
        _written.set((written, dumped))
        return written

    def _user_resource(self, user: UserView, groups: Iterable[RoleView]
                       ) -> tuple[Resource[Any], dict[str, Any]]:
        """A User and the plain data it holds."""
        return self._validated(user, self._body(user, groups))

    def _body(self, user: UserView, groups: Iterable[RoleView]) -> dict[str, Any]:
        """A User as plain data, as its resource is validated from."""
        body: dict[str, Any] = {"id": user.id, "userName": user.username}
        for p, _ in self.paths:
            value = user.claims.get(p.claim)
            if value is not None:
                _place(body, p, (value.lower() != "false") if p.claim == ACTIVE else value)
        members = [{"value": g.id, "display": g.name, "$ref": f"Groups/{g.id}",
                    "type": "direct"} for g in groups]
        if members:
            body["groups"] = members
        return body

    def _validated(self, user: UserView, body: dict[str, Any]
                   ) -> tuple[Resource[Any], dict[str, Any]]:
        """``body`` validated once into a User, and the plain data the User holds. Only when
        a stored value is one the schema rejects (a malformed URL, say) is it built path by
        path, leaving that value out: it is hidden from the client rather than failing the
        whole user."""
        try:
            resource = self.user_model.model_validate(body)
            content = body  # what the resource holds: the same state digests the same
        except ValidationError:
            resource = self._user_path_by_path(user, body.get("groups", []))
            content = resource.model_dump(exclude={"meta"})
        return _with_meta(resource, _meta(user, content)), content

    def _user_path_by_path(self, user: UserView, members: list[dict[str, str]]
                           ) -> Resource[Any]:
        resource = self.user_model.model_validate({"id": user.id, "userName": user.username})
        for p, path in self.paths:
            value = user.claims.get(p.claim)
            if value is None:
                continue
            try:
                ensure_selected(resource, path)
                path.set(resource, (value.lower() != "false") if p.claim == ACTIVE else value)
            except (ValueError, SCIMException):
                continue  # a stored value the schema rejects is hidden
        if members:
            resource.groups = members  # type: ignore[attr-defined]
        return resource

    def claims_and_dump(self, resource: Resource[Any]
                        ) -> tuple[dict[str, str | None], dict[str, Any]]:
        """Every mapped claim of a User resource (its value, or None when it is absent), and
        the ``model_dump()`` they were read from."""
        dumped = resource.model_dump()
        return self._claims_of(dumped), dumped

    def _claims_of(self, body: dict[str, Any]) -> dict[str, str | None]:
        """Each mapping's claim as text, read where the mapping says in a dumped User body:
        ``_within(_key(container, p.attribute), p)``, each container (the body, an
        extension's object) case-folded once rather than at each absent attribute."""
        out: dict[str, str | None] = {}
        containers: dict[str, tuple[dict[str, Any], dict[str, Any]] | None] = {}
        for p, attribute in self._reads:
            if p.schema in containers:
                held = containers[p.schema]
            else:
                container = _container(body, p, create=False)
                held = containers[p.schema] = None if container is None else \
                    (container, _folded(container))
            value = None if held is None else held[0][p.attribute] \
                if p.attribute in held[0] else held[1].get(attribute)
            text = _text(_within(value, p))
            if text is not None and len(text) > 512:
                raise InvalidInput(f"{p.attribute}: a value is at most 512 characters")
            out[p.claim] = None if text is None else no_nul(text, p.path)
        return out

    # -------------------------------------------------------------- groups
    def group_resource(self, role: RoleView, members: Iterable[UserView] | None,
                       external_id: str | None = None) -> Resource[Any]:
        """A Group; ``members=None`` leaves them out (the response excludes them).

        The version digests the name, externalId and the store's modification time (which
        moves with every member change), so it is the same with or without members."""
        body: dict[str, Any] = {"id": role.id, "displayName": role.name}
        if external_id is not None:
            body["externalId"] = external_id
        version = _version({**body, "modified": role.modified})
        if members is not None:
            listed = [{"value": u.id, "$ref": f"Users/{u.id}", "type": "User"}
                      for u in members]
            if listed:
                body["members"] = listed
        return _with_meta(self.group_model.model_validate(body), Meta(
            resource_type="Group", created=role.created,
            last_modified=role.modified or role.created, version=version))


def member_ids(resource: Resource[Any]) -> list[str]:
    """The ids of the members of a Group resource (users only)."""
    out = []
    for m in getattr(resource, "members", None) or []:
        if m.value and (m.type in (None, "User")):
            out.append(str(m.value))
    return list(dict.fromkeys(out))

