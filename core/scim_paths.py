"""SCIM attribute paths with a value selection, shared by the SCIM connector and server.

``emails[type eq "work"].value`` names the value of the work email. Setting it when the
resource has no work email must create that entry first; scim2-models (rightly, for a
general filter) refuses to guess. An equality on a plain sub-attribute is unambiguous, so
both faces create the entry it describes.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from scim2_models import Path
from scim2_models.path import CompareOperator, Comparison


def plain_selection(value_filter: Any) -> TypeGuard[Comparison]:
    """``attr eq "value"`` on a sub-attribute of the selected entries: a selection that
    describes the entry it would create."""
    return (isinstance(value_filter, Comparison) and value_filter.op is CompareOperator.eq
            and value_filter.attr_path.sub_attr is None and value_filter.attr_path.uri is None)


def ensure_selected(resource: Any, path: Path[Any]) -> None:
    """Make sure the entry ``path``'s value filter selects exists in ``resource``.

    :raises ValueError: when the filter is not an equality that can describe a new entry.
    """
    value_filter = path.value_filter
    if value_filter is None:
        return
    model = type(resource)
    head = f"{path.schema}:{path.parts[0]}" if path.schema else path.parts[0]
    if Path[model](f"{head}[{value_filter}]").get(resource):  # type: ignore[valid-type]
        return
    if not plain_selection(value_filter):
        raise ValueError(f"only a selection such as {path.parts[0]}[type eq \"work\"] "
                         f"can create an entry, not [{value_filter}]")
    entry = {value_filter.attr_path.attr: value_filter.value}
    Path[model](head).set(resource, [entry], is_add=True)  # type: ignore[valid-type]
