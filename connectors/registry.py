"""The connector registry: connector types by name, from the ``mware_iam.connectors`` entry points.

Every connector, built in or from a separate package, registers the same way, in its
distribution's ``pyproject.toml``::

    [project.entry-points."mware_iam.connectors"]
    scim2 = "connectors.scim2:Scim2Connector"

The entry's name is the connector type (what a configuration's ``type:`` says) and its value
the :class:`~connectors.base.Connector` subclass, whose ``spec.type`` must be that name.
A class is imported on first use and kept (the engine asks once per job); an entry point
that cannot be loaded, or loads something else, is an error naming it.
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points

from connectors.base import Connector, ConnectorSpec
from core.errors import IamError, InvalidInput

#: The entry-point group connectors register in.
GROUP = "mware_iam.connectors"


class BrokenConnector(IamError):
    """A registered connector cannot be loaded (its package is broken or mis-registered)."""


@functools.cache
def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for entry in entry_points(group=GROUP):
        known = found.setdefault(entry.name, entry)
        if known.value != entry.value:
            raise BrokenConnector(
                f"connector type {entry.name!r} is registered twice in the entry-point group "
                f"{GROUP!r}: {known.value!r} and {entry.value!r}")
    return dict(sorted(found.items()))


@functools.cache
def _load(connector_type: str) -> type[Connector]:
    entry = _entry_points()[connector_type]
    where = f"connector entry point {entry.name} = {entry.value!r} (group {GROUP!r})"
    try:
        loaded = entry.load()
    except Exception as exc:  # any import failure of a plug-in is reported the same way
        raise BrokenConnector(f"{where} cannot be loaded: {type(exc).__name__}: {exc}"
                              ) from exc
    if not (isinstance(loaded, type) and issubclass(loaded, Connector)):
        raise BrokenConnector(f"{where} is not a Connector subclass")
    spec = getattr(loaded, "spec", None)
    if not isinstance(spec, ConnectorSpec) or spec.type != connector_type:
        raise BrokenConnector(f"{where}: its spec.type must be {connector_type!r}")
    return loaded


def registry() -> dict[str, ConnectorSpec]:
    """Every registered connector type's spec, by type (all of them loaded).

    :raises BrokenConnector: when a registered connector cannot be loaded.
    """
    return {t: _load(t).spec for t in _entry_points()}


def connector_class(connector_type: str) -> type[Connector]:
    """The implementation of a connector type.

    :raises InvalidInput: when no connector of that type is registered.
    :raises BrokenConnector: when it is registered but cannot be loaded.
    """
    known = _entry_points()
    if connector_type not in known:
        raise InvalidInput(f"connector type {connector_type!r} is not known "
                           f"(known: {', '.join(known)})")
    return _load(connector_type)


def spec_for(connector_type: str) -> ConnectorSpec:
    """The spec of a connector type; raises like :func:`connector_class`."""
    return connector_class(connector_type).spec
