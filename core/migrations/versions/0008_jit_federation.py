"""JIT provisioning: identity provider federation settings; federated associations

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _name(length: int) -> sa.types.TypeEngine[str]:
    return (
        sa.String(length=length)
        .with_variant(mysql.VARCHAR(collation="utf8mb4_bin", length=length), "mariadb")
        .with_variant(mysql.VARCHAR(collation="utf8mb4_bin", length=length), "mysql")
        .with_variant(sa.VARCHAR(length=length, collation="C"), "postgresql")
    )


def upgrade() -> None:
    with op.batch_alter_table("identity_providers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("federation", sa.JSON(), nullable=True))
    op.create_table(
        "jit_associations",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("idp", _name(255), nullable=False),
        sa.Column("subject", _name(255), nullable=False),
        sa.Column("domain", _name(64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True).with_variant(
            mysql.DATETIME(fsp=6), "mariadb").with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_jit_associations")),
        sa.UniqueConstraint("idp", "subject", name=op.f("uq_jit_associations_idp_subject")),
    )
    with op.batch_alter_table("jit_associations", schema=None) as batch_op:
        batch_op.create_index("ix_jit_associations_domain_user_id", ["domain", "user_id"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jit_associations", schema=None) as batch_op:
        batch_op.drop_index("ix_jit_associations_domain_user_id")
    op.drop_table("jit_associations")
    with op.batch_alter_table("identity_providers", schema=None) as batch_op:
        batch_op.drop_column("federation")
