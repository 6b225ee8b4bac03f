"""Trust in a map: reference fields kept apart from training ones, labelled sample points of a
map's sample design, stored accuracy assessments, each analysis' input check, and the evidence
(gap-filled share of the season) behind each field prediction and class area.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("fields") as batch:
        batch.add_column(sa.Column("purpose", sa.String(length=16), nullable=False, server_default="training"))
        batch.add_column(sa.Column("reference_label", sa.String(length=100), nullable=True))
    with op.batch_alter_table("analyses") as batch:
        batch.add_column(sa.Column("input_check", sa.JSON(), nullable=True))
    with op.batch_alter_table("field_predictions") as batch:
        batch.add_column(sa.Column("gap_filled_share", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("insufficient_evidence", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("analysis_class_stats") as batch:
        batch.add_column(sa.Column("low_evidence_pixels", sa.BigInteger(), nullable=False, server_default="0"))
    op.create_table(
        "reference_samples",
        sa.Column("analysis_id", sa.Uuid(), nullable=False),
        sa.Column("point_id", sa.Integer(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("stratum_id", sa.Integer(), nullable=False),
        sa.Column("label_class_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["analysis_id"], ["analyses.id"], name=op.f("fk_reference_samples_analysis_id_analyses"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("analysis_id", "point_id", name=op.f("pk_reference_samples")),
    )
    op.create_table(
        "assessments",
        sa.Column("analysis_id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["analysis_id"], ["analyses.id"], name=op.f("fk_assessments_analysis_id_analyses"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("analysis_id", name=op.f("pk_assessments")),
    )


def downgrade() -> None:
    op.drop_table("assessments")
    op.drop_table("reference_samples")
    with op.batch_alter_table("analysis_class_stats") as batch:
        batch.drop_column("low_evidence_pixels")
    with op.batch_alter_table("field_predictions") as batch:
        batch.drop_column("insufficient_evidence")
        batch.drop_column("gap_filled_share")
    with op.batch_alter_table("analyses") as batch:
        batch.drop_column("input_check")
    with op.batch_alter_table("fields") as batch:
        batch.drop_column("reference_label")
        batch.drop_column("purpose")
