"""Training runs: a request to train a model version on an owner's labelled fields (POST
/models), its flow run, status, and the version and held-out scores it registered.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "training_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "status",
            sa.Enum("queued", "running", "completed", "failed", name="trainingstatus", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("flow_run_id", sa.Uuid(), nullable=True),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("family", sa.String(length=32), nullable=False),
        sa.Column("model_ref", sa.String(length=160), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_training_runs_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_runs")),
    )
    op.create_index(op.f("ix_training_runs_flow_run_id"), "training_runs", ["flow_run_id"], unique=False)
    op.create_index("ix_training_runs_owner_id_created_at", "training_runs", ["owner_id", "created_at"], unique=False)
    op.create_index(op.f("ix_training_runs_status"), "training_runs", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_training_runs_status"), table_name="training_runs")
    op.drop_index("ix_training_runs_owner_id_created_at", table_name="training_runs")
    op.drop_index(op.f("ix_training_runs_flow_run_id"), table_name="training_runs")
    op.drop_table("training_runs")
