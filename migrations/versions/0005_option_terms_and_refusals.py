"""option terms (underlying, weekly) and refusals on option_symbols

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 20:00:00+00:00

``underlying`` comes from optionInfo's ``releaseOption.assetMarginName`` where the exchange gives it,
else from the symbol's name (``underlying_source`` says which); ``weekly`` is what the name says.
``refused_at``/``refusal`` record that the exchange refused a symbol's market data for good
(-7012 option does not exist, -7013 past its exercise time, -1121 for a symbol it had listed), so
that no collector keeps asking. Adding nullable columns rewrites nothing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("option_symbols", sa.Column("underlying", sa.Text(), nullable=True))
    op.add_column("option_symbols", sa.Column("underlying_source", sa.Text(), nullable=True))
    op.add_column("option_symbols", sa.Column("weekly", sa.Boolean(), nullable=True))
    op.add_column("option_symbols", sa.Column("refused_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("option_symbols", sa.Column("refusal", sa.Text(), nullable=True))
    op.create_check_constraint(
        op.f("ck_option_symbols_underlying_source"), "option_symbols", "underlying_source IN ('optionInfo', 'name')"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_option_symbols_underlying_source"), "option_symbols", type_="check")
    for column in ("refusal", "refused_at", "weekly", "underlying_source", "underlying"):
        op.drop_column("option_symbols", column)
