"""Values a JSON column stores from text encoded already.

A worker records every attempt's exchanges (the request and answer bodies) as JSON. The
bodies were JSON text on the wire: the connector encoded the request and received the
answer as text, so encoding the decoded values again repeats work (a tenth of what the
engine adds to a job's CPU, with the walk that looks for secrets in them). An
:class:`EncodedJSON` carries that text beside the value: the engine's JSON serializer
(:func:`dumps`, ``core.db.make_engine``) stores the text as it is, and any other
serializer, seeing a plain list, encodes the items as usual. Either way the column holds
the same JSON value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


class EncodedJSON(list[Any]):
    """A list of JSON values, and ``text``: that list's JSON text."""

    def __init__(self, items: Iterable[Any], text: str) -> None:
        super().__init__(items)
        self.text = text


def dumps(value: Any) -> str:
    """``json.dumps``, except that an :class:`EncodedJSON` is its own text."""
    if type(value) is EncodedJSON:
        return value.text
    return json.dumps(value)
