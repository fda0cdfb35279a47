"""The engine's HTTP face: the ASGI application ``mware-iam serve`` runs (``app.py``: the
SCIM API, ``/health``, ``/status``) and the helpers that serve it with the provisioning
workers (``server.py``). The CLI, the console, the demo and the SCIM thread all start it
from here.
"""
