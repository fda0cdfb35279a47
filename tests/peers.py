"""Real peers for connector tests; the machinery lives in ``connectors.sandbox.peers``
(``mware-iam demo`` uses it too)."""

from connectors.sandbox.peers import (
    LOOPBACK,
    MAX_DELAY_SECONDS,
    MAX_FAULTS,
    PASS,
    SCIM2_SERVER,
    Fault,
    FaultProxy,
    PeerUnavailable,
    ScimServer,
    Seen,
    fault_proxy,
    free_port,
    scim_server,
)

__all__ = ["LOOPBACK", "MAX_DELAY_SECONDS", "MAX_FAULTS", "PASS", "SCIM2_SERVER", "Fault",
           "FaultProxy", "PeerUnavailable", "ScimServer", "Seen", "fault_proxy", "free_port",
           "scim_server"]
