"""Scene provenance and analysis inputs: each scene's product id, MGRS tile, relative orbit,
processing baseline and the radiometric offset taken off its pixels; each analysis' exact
scene versions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("scenes") as batch:
        batch.add_column(sa.Column("product_id", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("mgrs_tile", sa.String(length=5), nullable=True))
        batch.add_column(sa.Column("relative_orbit", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("processing_baseline", sa.String(length=5), nullable=True))
        batch.add_column(sa.Column("radiometric_offset", sa.Integer(), server_default="0", nullable=False))
        batch.create_index(batch.f("ix_scenes_mgrs_tile"), ["mgrs_tile"], unique=False)
    with op.batch_alter_table("analyses") as batch:
        batch.add_column(sa.Column("input_scenes", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("analyses") as batch:
        batch.drop_column("input_scenes")
    with op.batch_alter_table("scenes") as batch:
        batch.drop_index(batch.f("ix_scenes_mgrs_tile"))
        batch.drop_column("radiometric_offset")
        batch.drop_column("processing_baseline")
        batch.drop_column("relative_orbit")
        batch.drop_column("mgrs_tile")
        batch.drop_column("product_id")
