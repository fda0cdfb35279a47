"""A minimal Django project serving django-scim2 at ``/scim/v2`` on SQLite.

A test and benchmark peer only (``bench/django_scim/django_peer.py`` starts it under
``gunicorn --workers 2 --preload``); nothing of ``core/``, ``connectors/`` or ``tui/``
imports Django. Configured by the environment:

- ``SCIMPEER_DB``: the SQLite database file (``django-admin migrate`` creates it).
- ``SCIMPEER_TOKEN_SHA256``: the hex SHA-256 of the one bearer token it accepts.
- ``SCIMPEER_NETLOC``: ``host:port`` of the ``meta.location`` URLs it answers.

Set to be a fair peer of ``mware-iam serve`` on SQLite, which keeps its connections,
runs SQLite in WAL mode with ``synchronous=NORMAL`` and checks a bearer token on every
request: the same pragmas here, connections kept for the life of a worker
(``CONN_MAX_AGE = None``), write transactions that take the lock when they begin
(``transaction_mode``: two worker processes write one file), no middleware but the token
check (``scimpeer.auth``), ``DEBUG`` off (it would keep every statement in memory).
"""

from __future__ import annotations

import os

# Signs nothing here (no sessions, no CSRF tokens, no password resets); Django wants one.
SECRET_KEY = "scimpeer-benchmark-peer-signs-nothing"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "scimpeer"]
MIDDLEWARE = ["scimpeer.auth.BearerTokenMiddleware"]
ROOT_URLCONF = "scimpeer.urls"
WSGI_APPLICATION = "scimpeer.wsgi.application"
AUTH_USER_MODEL = "scimpeer.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SCIMPEER_DB", "scimpeer.sqlite3"),
        "CONN_MAX_AGE": None,
        "OPTIONS": {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
        },
    }
}
SCIM_SERVICE_PROVIDER = {
    "SCHEME": "http",
    "NETLOC": os.environ.get("SCIMPEER_NETLOC", "127.0.0.1"),
    "AUTHENTICATION_SCHEMES": [{
        "type": "oauthbearertoken", "name": "Bearer token",
        "description": "One static token (SCIMPEER_TOKEN_SHA256)"}],
    "WWW_AUTHENTICATE_HEADER": 'Bearer realm="scimpeer"',
}
