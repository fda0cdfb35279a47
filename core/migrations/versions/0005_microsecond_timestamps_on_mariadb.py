"""microsecond timestamps on MariaDB

Revision ID: 0005
Revises: 0004

MariaDB's DATETIME keeps whole seconds; ``core.schema.UtcDateTime`` now asks for
DATETIME(6) there. Every DATETIME column becomes DATETIME(6), keeping its nullability (the
other backends already keep microseconds: nothing to do).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _datetime_columns() -> list[tuple[str, str, bool]]:
    inspector = sa.inspect(op.get_bind())
    return [(table, c["name"], bool(c["nullable"]))
            for table in inspector.get_table_names() if table != "alembic_version"
            for c in inspector.get_columns(table) if isinstance(c["type"], mysql.DATETIME)]


def _alter(fsp: int) -> None:
    if op.get_bind().dialect.name not in ("mysql", "mariadb"):
        return
    for table, column, nullable in _datetime_columns():
        op.alter_column(table, column, existing_nullable=nullable, nullable=nullable,
                        type_=mysql.DATETIME(fsp=fsp))


def upgrade() -> None:
    _alter(6)


def downgrade() -> None:
    _alter(0)
