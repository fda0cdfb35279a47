"""what a target says about itself (e.g. its API usage), shown in the status

Revision ID: 0007
Revises: 0006

``prov_target_state.facts``: the labels and values a connector reports about its target
(``Connector.target_facts``), kept per target for ``provisioning status``, ``/status`` and
the dashboard.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("prov_target_state") as batch:
        batch.add_column(sa.Column("facts", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("prov_target_state") as batch:
        batch.drop_column("facts")
