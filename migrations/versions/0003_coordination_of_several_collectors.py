"""coordination of several collectors

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 12:46:32.785726+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "collector_leases",
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("resource", name=op.f("pk_collector_leases")),
    )
    op.create_table(
        "collector_nodes",
        sa.Column("node", sa.Text(), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("egress", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("node", name=op.f("pk_collector_nodes")),
    )
    op.create_table(
        "weight_budget",
        sa.Column("egress", sa.Text(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("egress", "window_start", name=op.f("pk_weight_budget")),
    )


def downgrade() -> None:
    op.drop_table("weight_budget")
    op.drop_table("collector_nodes")
    op.drop_table("collector_leases")
