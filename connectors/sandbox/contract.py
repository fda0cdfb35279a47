"""What a sandbox peer offers the connector contract suite (``tests/contracts/``).

Every connector type names a factory of its peer in :attr:`ConnectorSpec.contract_peer`
(``"module:function"``, a function returning a context manager of a :class:`ContractPeer`).
The suite starts the peer, builds the connector from :meth:`ContractPeer.properties` and
drives it: create, update, disable/enable, delete, adopt on conflict, groups where the
connector supports them, listing (users, and groups with their members, page by page; a
registered type without it fails), each injected failure and its typed error, and
redaction (no value of :meth:`ContractPeer.secrets`, no credential sent in a header, in
any exchange or error); ``tests/contracts/test_reconcile_contract.py`` runs a whole
reconciliation through the peer. A new connector is done
when it passes the suite against its peer.

A factory whose peer cannot start here (a program missing, a port taken) raises
:class:`connectors.sandbox.peers.PeerUnavailable`: the suite then skips that type on a
laptop and fails under ``CI=true``. The suite builds each connector with
``validate(spec.all_properties, peer.properties())`` and an ``httpx.AsyncClient`` whose
timeout is the properties' ``timeout-seconds`` (keep it small: a ``"timeout"`` fault waits
it out). Its test users are named like e-mail addresses (``ada.<hex>@example.org``) and
carry both the local claims (``http://wso2.org/claims/givenname``...) and their SCIM 2.0
attribute names (``name.givenName``...), so a connector can map from either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

#: A failure the peer can be told to give: an HTTP status the target answers (with the
#: target's own error body; ``"429"`` carries ``Retry-After: 1``), ``"timeout"`` (no answer
#: before the connector's ``timeout-seconds``) or ``"drop"`` (the connection is closed
#: without an answer).
Fault = Literal["400", "401", "403", "404", "409", "429", "500", "503", "timeout", "drop"]


@dataclass(frozen=True)
class RemoteUser:
    """A user as the peer holds it, for the suite's assertions."""

    id: str
    name: str
    active: bool
    attributes: Mapping[str, Any] = field(default_factory=dict)


class ContractPeer(Protocol):
    """A running sandbox peer of one connector type."""

    def properties(self) -> dict[str, Any]:
        """Connector properties (secrets as plain strings) that point a connector at the peer."""

    def refusing_properties(self) -> dict[str, Any]:
        """The same properties pointed at a loopback port where nothing listens."""

    def attribute_names(self) -> dict[str, str]:
        """The claim mappings a deployment gives this connector, as the suite's users carry
        them: local claim (``givenname``, ``lastname``, ``emailaddress``) -> the target's
        own name for it (a SCIM path, a DSML attribute, a Salesforce field). Empty: the
        connector reads the local claims itself (through properties naming them)."""

    def secrets(self) -> list[str]:
        """Every secret value the connector is given or receives (passwords, tokens, keys):
        none may appear in an exchange or an error message."""

    def fail_next(self, fault: Fault, count: int = 1) -> None:
        """The next ``count`` requests of the connector's operations meet ``fault``
        (token requests are not counted)."""

    def seed_user(self, username: str) -> str:
        """Create a user on the peer directly (not through the connector); its remote id."""

    def remote_user(self, remote_id: str) -> RemoteUser | None:
        """The user the peer holds under ``remote_id``; None when it has none."""

    def group_members(self, remote_id: str) -> set[str] | None:
        """The remote ids of a group's members; None when the peer has no such group
        (connectors without groups answer None always)."""
