"""Applications: inbound configuration, API tokens, and the ordered outbound targets.

The resident application stands for the console and the CLI. Tokens are random, shown
once, and stored as SHA-256 digests (they carry 256 bits of entropy, so a slow hash would
only slow every request down).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from core.errors import InvalidInput, NotFound
from core.identity.events import RESIDENT_APPLICATION
from core.names import proxy_domain
from core.schema import application_targets, application_tokens, applications

TOKEN_PREFIX = "mwi_"


@dataclass(frozen=True)
class OutboundTarget:
    idp: str
    connector: str
    blocking: bool = False
    jit: bool = False


@dataclass(frozen=True)
class Application:
    name: str
    description: str = ""
    resident: bool = False
    inbound_domain: str = "PRIMARY"
    proxy_mode: bool = False
    fail_on_blocking_failure: bool = False
    outbound: tuple[OutboundTarget, ...] = ()


@dataclass(frozen=True)
class TokenInfo:
    hint: str
    created: datetime
    revoked: datetime | None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def seed_resident(conn: Connection) -> bool:
    if conn.execute(select(applications.c.pk).where(applications.c.is_resident)).first():
        return False
    conn.execute(insert(applications).values(
        name=RESIDENT_APPLICATION, description="The console and the CLI", is_resident=True,
        inbound_domain="PRIMARY", proxy_mode=False, fail_on_blocking_failure=False))
    return True


def names(conn: Connection) -> list[str]:
    return list(conn.execute(select(applications.c.name).order_by(
        applications.c.is_resident.desc(), applications.c.name)).scalars())


def proxy_domain_owner(conn: Connection, domain: str, other_than: str) -> str | None:
    """The application in proxy mode, other than ``other_than``, that relays under
    ``domain`` (two names can fold to one relay domain: ``Shop`` and ``shop``)."""
    rows = conn.execute(select(applications.c.name).where(
        applications.c.proxy_mode, applications.c.name != other_than)).scalars()
    return next((n for n in rows if proxy_domain(n) == domain), None)


def _pk(conn: Connection, name: str) -> int:
    pk = conn.execute(select(applications.c.pk).where(applications.c.name == name)).scalar()
    if pk is None:
        raise NotFound(f"application {name!r} does not exist")
    return int(pk)


def get(conn: Connection, name: str) -> Application:
    row = conn.execute(select(applications).where(applications.c.name == name)).mappings().first()
    if row is None:
        raise NotFound(f"application {name!r} does not exist")
    targets = conn.execute(select(application_targets).where(
        application_targets.c.app_pk == row["pk"]).order_by(application_targets.c.position)
    ).mappings()
    return Application(
        name=row["name"], description=row["description"], resident=row["is_resident"],
        inbound_domain=row["inbound_domain"], proxy_mode=row["proxy_mode"],
        fail_on_blocking_failure=row["fail_on_blocking_failure"],
        outbound=tuple(OutboundTarget(t["idp_name"], t["connector_type"], t["blocking"],
                                      t["jit"]) for t in targets),
    )


def save(conn: Connection, app: Application) -> None:
    """Create or replace an application (tokens are kept)."""
    pairs = [(t.idp, t.connector) for t in app.outbound]
    if len(set(pairs)) != len(pairs):
        raise InvalidInput(f"application {app.name}: an outbound target is listed twice")
    values: dict[str, Any] = {
        "description": app.description, "inbound_domain": app.inbound_domain,
        "proxy_mode": app.proxy_mode, "fail_on_blocking_failure": app.fail_on_blocking_failure,
    }
    pk = conn.execute(select(applications.c.pk, applications.c.is_resident).where(
        applications.c.name == app.name)).first()
    if pk is None:
        if app.resident:
            raise InvalidInput(f"application {app.name}: only the built-in "
                               f"{RESIDENT_APPLICATION!r} application is resident")
        app_pk = conn.execute(insert(applications).values(
            name=app.name, is_resident=False, **values)).inserted_primary_key[0]  # type: ignore[index]
    else:
        app_pk = pk.pk
        conn.execute(update(applications).where(applications.c.pk == app_pk).values(**values))
    conn.execute(delete(application_targets).where(application_targets.c.app_pk == app_pk))
    if app.outbound:
        conn.execute(insert(application_targets), [
            {"app_pk": app_pk, "position": i, "idp_name": t.idp, "connector_type": t.connector,
             "blocking": t.blocking, "jit": t.jit} for i, t in enumerate(app.outbound)])


def remove(conn: Connection, name: str) -> None:
    app = get(conn, name)
    if app.resident:
        raise InvalidInput("the resident application cannot be removed")
    pk = _pk(conn, name)
    conn.execute(delete(application_tokens).where(application_tokens.c.app_pk == pk))
    conn.execute(delete(application_targets).where(application_targets.c.app_pk == pk))
    conn.execute(delete(applications).where(applications.c.pk == pk))


def issue_token(conn: Connection, name: str) -> str:
    """A new bearer token for the application; this is the only time it is visible."""
    app = get(conn, name)
    if app.resident:
        raise InvalidInput("the resident application stands for the console and CLI; "
                           "it takes no API tokens")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    conn.execute(insert(application_tokens).values(
        app_pk=_pk(conn, name), token_hash=_digest(token), hint=token[-4:],
        created=datetime.now(UTC)))
    return token


def tokens(conn: Connection, name: str) -> list[TokenInfo]:
    rows = conn.execute(select(application_tokens).where(
        application_tokens.c.app_pk == _pk(conn, name)).order_by(application_tokens.c.pk))
    return [TokenInfo(r.hint, r.created, r.revoked) for r in rows]


def revoke_token(conn: Connection, name: str, hint: str) -> int:
    """Revoke the live tokens of an application ending in ``hint``; returns how many."""
    result = conn.execute(update(application_tokens).where(
        application_tokens.c.app_pk == _pk(conn, name), application_tokens.c.hint == hint,
        application_tokens.c.revoked.is_(None)).values(revoked=datetime.now(UTC)))
    return int(result.rowcount)


def authenticate(conn: Connection, token: str) -> Application | None:
    row = conn.execute(
        select(applications.c.name).join(application_tokens,
                                         application_tokens.c.app_pk == applications.c.pk)
        .where(application_tokens.c.token_hash == _digest(token),
               application_tokens.c.revoked.is_(None))).first()
    return get(conn, row.name) if row else None
