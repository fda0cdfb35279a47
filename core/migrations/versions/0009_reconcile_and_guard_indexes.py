"""indexes for reconciliation and the mass-deletion guard

Revision ID: 0009
Revises: 0008

``prov_mappings(target, entity_type, remote_id)``: reconciliation matches each page of a
target's listing to our mappings by remote id (a prefix of 255 characters of the remote id
on MariaDB, whose keys hold at most 3072 bytes). ``prov_jobs(target, operation, state,
updated)``: the guard counts a target's deprovisionings done in the last hour and in flight.
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("prov_mappings") as batch:
        batch.create_index(
            "ix_prov_mappings_target_type_remote_id",
            ["target", "entity_type", "remote_id"],
            mariadb_length={"remote_id": 255},
            mysql_length={"remote_id": 255},
        )
    with op.batch_alter_table("prov_jobs") as batch:
        batch.create_index(
            "ix_prov_jobs_target_operation_state_updated",
            ["target", "operation", "state", "updated"],
        )


def downgrade() -> None:
    with op.batch_alter_table("prov_jobs") as batch:
        batch.drop_index("ix_prov_jobs_target_operation_state_updated")
    with op.batch_alter_table("prov_mappings") as batch:
        batch.drop_index("ix_prov_mappings_target_type_remote_id")
