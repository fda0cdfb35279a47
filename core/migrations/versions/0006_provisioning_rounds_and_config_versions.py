"""provisioning job rounds; configuration versions

Revision ID: 0006
Revises: 0005

A job retried by hand keeps its attempt count (its history lists every attempt) and starts
a new round (``round_base``, ``round_started``). ``config_versions`` lets running processes
see configuration (userstores) written by another process.
"""

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _timestamp() -> sa.types.TypeEngine[datetime]:
    return sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mariadb") \
        .with_variant(mysql.DATETIME(fsp=6), "mysql")


def upgrade() -> None:
    op.create_table(
        "config_versions",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("kind", name=op.f("pk_config_versions")),
    )
    # the row exists from the start: two processes' first writes never race to insert it
    op.execute("INSERT INTO config_versions (kind, version) VALUES ('userstores', 0)")
    with op.batch_alter_table("prov_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("round_base", sa.Integer(), nullable=False,
                                      server_default="0"))
        batch_op.add_column(sa.Column("round_started", _timestamp(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("prov_jobs", schema=None) as batch_op:
        batch_op.drop_column("round_started")
        batch_op.drop_column("round_base")
    op.drop_table("config_versions")
