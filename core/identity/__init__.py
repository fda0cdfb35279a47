"""The identity service and its events: the one door for writes of users and roles.

Import from the modules (``core.identity.events``, ``core.identity.service``): this package
re-exports nothing, so that the event types load without the service and SQLAlchemy.
"""
