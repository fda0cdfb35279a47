"""Inbound provisioning: the SCIM 2.0 server (``app.py``) over the identity service.

Importing this package is cheap; the server itself (scim2-server, scim2-models) loads only
when ``core.inbound.app`` is imported.
"""

#: Where ``mware-iam serve`` mounts the SCIM API: the base URL is ``http://H:P/scim2``.
MOUNT = "/scim2"
