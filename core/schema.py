"""Tables of the system database (SQLAlchemy Core).

The PRIMARY userstore tables (``um_*``) live here too so that a PRIMARY write and its audit
row (and, later, its outbox job) commit in one transaction. Alembic migrations in
``core/migrations`` create exactly these tables; ``tests/test_migrations.py`` checks that the
two never drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


def name_type(length: int) -> TypeEngine[str]:
    """A name column that compares byte-wise on every backend.

    Prefix search is a range scan (``>= p AND < p + U+FFFF``); that is only correct when the
    column collates by code point, so PostgreSQL gets ``C`` and MariaDB ``utf8mb4_bin``
    (its default collation would also make ``Alice`` and ``alice`` collide).
    """
    return (
        String(length)
        .with_variant(postgresql.VARCHAR(length, collation="C"), "postgresql")
        .with_variant(mysql.VARCHAR(length, collation="utf8mb4_bin"), "mysql", "mariadb")
    )


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back timezone-aware (SQLite drops the zone),
    to the microsecond on every backend (MariaDB's plain DATETIME keeps whole seconds, which
    would make a SCIM client's ``meta.lastModified gt`` miss changes within a second)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(name: str, nullable: bool = False) -> Column[datetime]:
    return Column(name, UtcDateTime(), nullable=nullable)


# ---------------------------------------------------------------- userstore (SQL schema)
# The same four tables serve PRIMARY (in the system DB) and any external SQL store.
um_users = Table(
    "um_users",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("store", name_type(64), nullable=False),
    Column("user_id", String(36), nullable=False, unique=True),
    Column("username", name_type(255), nullable=False),
    Column("username_key", name_type(255), nullable=False),
    Column("password_hash", String(255), nullable=True),
    _ts("created"),
    _ts("modified"),
    UniqueConstraint("store", "username_key"),
    # SCIM clients poll for changes (meta.lastModified gt ...): a range read, not a scan.
    Index("ix_um_users_store_modified", "store", "modified"),
)

um_user_attributes = Table(
    "um_user_attributes",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("user_pk", Integer, ForeignKey("um_users.pk", ondelete="CASCADE"), nullable=False),
    Column("name", name_type(128), nullable=False),
    Column("value", name_type(512), nullable=False),
    UniqueConstraint("user_pk", "name"),
    # user_pk last: an exact search reads matches already in user order, so a page of a
    # value shared by many users needs no sort of all of them.
    Index("ix_um_user_attributes_name_value_user", "name", "value", "user_pk"),
)

um_groups = Table(
    "um_groups",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("store", name_type(64), nullable=False),
    Column("group_id", String(36), nullable=False, unique=True),
    Column("name", name_type(255), nullable=False),
    Column("name_key", name_type(255), nullable=False),
    _ts("created"),
    _ts("modified"),
    UniqueConstraint("store", "name_key"),
)

um_memberships = Table(
    "um_memberships",
    metadata,
    Column("group_pk", Integer, ForeignKey("um_groups.pk", ondelete="CASCADE"), primary_key=True),
    Column("user_pk", Integer, ForeignKey("um_users.pk", ondelete="CASCADE"), primary_key=True),
    Index("ix_um_memberships_user_pk", "user_pk"),
)

# ---------------------------------------------------------------- userstore registry
#: Versions of configuration kinds (``userstores``) that running processes cache: a write
#: bumps the kind's version, and a process reloads when the version it read changed.
config_versions = Table(
    "config_versions",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("version", Integer, nullable=False),
)

userstores = Table(
    "userstores",
    metadata,
    Column("domain", name_type(64), primary_key=True),
    Column("type", String(32), nullable=False),
    Column("position", Integer, nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("description", Text, nullable=False, default=""),
    Column("properties", JSON, nullable=False),
    Column("secrets", JSON, nullable=False),
)

# ---------------------------------------------------------------- claims
local_claims = Table(
    "local_claims",
    metadata,
    Column("uri", name_type(255), primary_key=True),
    Column("display_name", String(255), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("required", Boolean, nullable=False, default=False),
    Column("read_only", Boolean, nullable=False, default=False),
    Column("regex", String(512), nullable=True),
)

claim_attribute_mappings = Table(
    "claim_attribute_mappings",
    metadata,
    Column("claim_uri", name_type(255), ForeignKey("local_claims.uri", ondelete="CASCADE"),
           primary_key=True),
    Column("domain", name_type(64), primary_key=True),
    Column("attribute", name_type(128), nullable=False),
)

external_claim_mappings = Table(
    "external_claim_mappings",
    metadata,
    Column("dialect", name_type(255), primary_key=True),
    Column("external_uri", name_type(255), primary_key=True),
    Column("claim_uri", name_type(255), ForeignKey("local_claims.uri", ondelete="CASCADE"),
           nullable=False),
)

# ---------------------------------------------------------------- internal roles
internal_roles = Table(
    "internal_roles",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("role_id", String(36), nullable=False, unique=True),
    Column("name", name_type(255), nullable=False, unique=True),
    _ts("created"),
)

internal_role_members = Table(
    "internal_role_members",
    metadata,
    Column("role_pk", Integer, ForeignKey("internal_roles.pk", ondelete="CASCADE"),
           primary_key=True),
    Column("domain", name_type(64), primary_key=True),
    Column("user_id", String(64), primary_key=True),
    Index("ix_internal_role_members_domain_user_id", "domain", "user_id"),
)

# ---------------------------------------------------------------- identity providers
identity_providers = Table(
    "identity_providers",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("name", name_type(255), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("claim_mappings", JSON, nullable=False),
    Column("role_mappings", JSON, nullable=False),
    Column("provisioning_roles", JSON, nullable=False),
    Column("jit", JSON, nullable=False),
    Column("federation", JSON, nullable=True),
)

#: A federated subject and the local user its JIT logins land on (core/jit).
jit_associations = Table(
    "jit_associations",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("idp", name_type(255), nullable=False),
    Column("subject", name_type(255), nullable=False),
    Column("domain", name_type(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    _ts("created"),
    UniqueConstraint("idp", "subject"),
    Index("ix_jit_associations_domain_user_id", "domain", "user_id"),
)

connector_configs = Table(
    "connector_configs",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("idp_pk", Integer, ForeignKey("identity_providers.pk", ondelete="CASCADE"),
           nullable=False),
    Column("type", String(64), nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("is_default", Boolean, nullable=False, default=False),
    Column("properties", JSON, nullable=False),
    # {property: {"cipher": <Fernet token>, "ref": "${env:NAME}" | null}}
    Column("secrets", JSON, nullable=False),
    UniqueConstraint("idp_pk", "type"),
)

# ---------------------------------------------------------------- applications
applications = Table(
    "applications",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("name", name_type(255), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("is_resident", Boolean, nullable=False, default=False),
    Column("inbound_domain", name_type(64), nullable=False, default="PRIMARY"),
    Column("proxy_mode", Boolean, nullable=False, default=False),
    Column("fail_on_blocking_failure", Boolean, nullable=False, default=False),
)

application_tokens = Table(
    "application_tokens",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("app_pk", Integer, ForeignKey("applications.pk", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("hint", String(16), nullable=False),
    _ts("created"),
    _ts("revoked", nullable=True),
)

application_targets = Table(
    "application_targets",
    metadata,
    Column("app_pk", Integer, ForeignKey("applications.pk", ondelete="CASCADE"),
           primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("idp_name", name_type(255), nullable=False),
    Column("connector_type", String(64), nullable=False),
    Column("blocking", Boolean, nullable=False, default=False),
    Column("jit", Boolean, nullable=False, default=False),
)

# ---------------------------------------------------------------- audit
# ---------------------------------------------------------------- inbound SCIM
#: SCIM attributes of groups that userstores do not hold (as the reference server's
#: ``IDN_SCIM_GROUP``): the ``externalId`` a client gave a group, by domain and group id.
scim_groups = Table(
    "scim_groups",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("domain", name_type(64), nullable=False),
    Column("group_id", String(64), nullable=False),
    Column("external_id", name_type(255), nullable=False),
    UniqueConstraint("domain", "group_id"),
    Index("ix_scim_groups_external_id", "domain", "external_id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    _ts("at"),
    Column("actor", String(255), nullable=False),
    Column("face", String(32), nullable=False),
    Column("application", String(255), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(512), nullable=False),
    Column("detail", JSON, nullable=False),
    Index("ix_audit_log_at", "at"),
)

# ---------------------------------------------------------------- outbound provisioning
# A target is one connector of one identity provider, keyed "idp:type" by name (not by the
# connector row), so that editing a connector never loses the mappings (reference #11343).
prov_jobs = Table(
    "prov_jobs",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("target", name_type(320), nullable=False),
    Column("entity_type", String(8), nullable=False),
    Column("entity_domain", name_type(64), nullable=False),
    Column("entity_id", String(64), nullable=False),
    Column("entity_name", String(512), nullable=False),
    #: "type:domain:id" — jobs of one key run one at a time, in pk order.
    Column("entity_key", name_type(160), nullable=False),
    Column("operation", String(32), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    #: A retry by hand starts a new round: its attempts and age count from here (the job's
    #: history keeps every attempt). ``round_started`` null: the round began at ``created``.
    Column("round_base", Integer, nullable=False, default=0, server_default="0"),
    _ts("round_started", nullable=True),
    _ts("next_attempt_at"),
    Column("lease_owner", String(64), nullable=True),
    _ts("lease_until", nullable=True),
    Column("application", String(255), nullable=False),
    Column("jit", Boolean, nullable=False, default=False),
    Column("blocking", Boolean, nullable=False, default=False),
    Column("last_error", Text, nullable=True),
    Column("last_status", Integer, nullable=True),
    _ts("created"),
    _ts("updated"),
    Index("ix_prov_jobs_state_next", "state", "next_attempt_at"),
    Index("ix_prov_jobs_target_key_state", "target", "entity_key", "state"),
    Index("ix_prov_jobs_target_state", "target", "state"),
    #: The mass-deletion guard counts a target's deprovisionings done in the last hour
    #: and in flight (``core.provisioning.guard``).
    Index("ix_prov_jobs_target_operation_state_updated", "target", "operation", "state",
          "updated"),
)

prov_attempts = Table(
    "prov_attempts",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("job_pk", Integer, ForeignKey("prov_jobs.pk", ondelete="CASCADE"), nullable=False),
    Column("target", name_type(320), nullable=False),
    _ts("at"),
    Column("duration_ms", Float, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("exchanges", JSON, nullable=False),
    Index("ix_prov_attempts_target_at", "target", "at"),
    Index("ix_prov_attempts_job_pk", "job_pk"),
)

prov_mappings = Table(
    "prov_mappings",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("target", name_type(320), nullable=False),
    Column("entity_type", String(8), nullable=False),
    Column("entity_domain", name_type(64), nullable=False),
    Column("entity_id", String(64), nullable=False),
    Column("remote_id", String(512), nullable=False),
    Column("remote_name", String(512), nullable=False),
    #: True when the object existed at the target before we adopted it: never delete it
    #: in a compensation.
    Column("adopted", Boolean, nullable=False, default=False),
    _ts("last_sync"),
    Column("last_outcome", String(16), nullable=False),
    Column("last_error", Text, nullable=True),
    UniqueConstraint("target", "entity_type", "entity_id"),
    Index("ix_prov_mappings_entity_id", "entity_id"),
    #: Reconciliation matches each page of a target's listing by remote id. MariaDB keys
    #: hold at most 3072 bytes (the three columns take 3360 in utf8mb4): a prefix of the
    #: remote id is indexed there.
    Index("ix_prov_mappings_target_type_remote_id", "target", "entity_type", "remote_id",
          mariadb_length={"remote_id": 255}, mysql_length={"remote_id": 255}),
)

prov_target_state = Table(
    "prov_target_state",
    metadata,
    Column("target", name_type(320), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    _ts("quarantined_until", nullable=True),
    #: Running totals, so status never counts the whole job history.
    Column("succeeded_total", Integer, nullable=False, default=0),
    Column("failed_total", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    _ts("updated"),
    #: What the target says about itself (``Connector.target_facts``, e.g. API usage).
    Column("facts", JSON, nullable=True),
)
