"""Inbound provisioning: the SCIM 2.0 server (``app.py``) over the identity service.

Importing this package is cheap; the server itself (scim2-server, scim2-models) loads only
when ``core.inbound.app`` is imported.
"""

from dataclasses import dataclass

#: Where ``mware-iam serve`` mounts the SCIM API: the base URL is ``http://H:P/scim2``.
MOUNT = "/scim2"


@dataclass(frozen=True)
class Limits:
    """The limits the server announces and enforces (defaults as the reference server's
    ``charon-config.xml``, with sorting and ETags on since we support them)."""

    max_results: int = 200
    default_count: int = 100
    bulk_max_operations: int = 1000
    max_payload_bytes: int = 1_048_576
    #: Requests per second per application (token bucket), and the burst it allows.
    rate: float = 100.0
    burst: int = 200
    #: A filter's size: characters (checked before it is parsed), comparisons, and
    #: nesting (parentheses, ``not`` and ``[...]``). A filter is compiled into one store
    #: query, whose cost grows with its terms (issue 17: 20,000 ``or`` terms held a
    #: PostgreSQL backend at 5 GB for 77 s).
    max_filter_length: int = 16_384
    max_filter_terms: int = 100
    max_filter_depth: int = 10
