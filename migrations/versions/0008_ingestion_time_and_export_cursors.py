"""ingestion time on market rows and the cursors of incremental exports

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 03:00:00+00:00

Every market table (``trades``, ``klines``, ``tickers_24hr``, ``depth_snapshots``, ``avg_prices``,
``book_tickers``) gains ``ingested_at timestamptz NOT NULL DEFAULT now()``: the start of the
transaction that wrote the row, or last changed it (the upserts set it again when a row's values
really change). ``trades`` and ``klines`` are partitioned: the column is added on the parent and
reaches every partition. ``now()`` is STABLE, so the default is evaluated once and stored as the
column's "missing value": no table is rewritten, and rows stored before this migration read as
ingested at the time of the migration. A BRIN index on each (tiny, cheap to keep: rows arrive in
ingestion order) lets an incremental export skip the blocks written before its cursor.

``export_cursors`` holds, per named export, the ingestion time up to which rows have been exported
(``collector export --since-last``). The design and its exactly-once guarantee are in
docs/analysis.md.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)
MARKET = ("trades", "klines", "tickers_24hr", "depth_snapshots", "avg_prices", "book_tickers")
INGESTED_AT = (
    "When the row was stored or last changed (UTC): the start time of the writing transaction. "
    "Incremental exports (collector export --since-last) select on it."
)


def upgrade() -> None:
    for table in MARKET:
        op.add_column(
            table, sa.Column("ingested_at", TZ, server_default=sa.text("now()"), nullable=False, comment=INGESTED_AT)
        )
        op.create_index(f"ix_{table}_ingested_at", table, ["ingested_at"], postgresql_using="brin")
    op.create_table(
        "export_cursors",
        sa.Column(
            "name",
            sa.Text(),
            nullable=False,
            comment="The export's name: --cursor NAME, else '<table> -> <absolute output path>'.",
        ),
        sa.Column("relation", sa.Text(), nullable=False, comment="What it exports (the --table value)."),
        sa.Column(
            "exported_until",
            TZ,
            nullable=True,
            comment="Ingestion time (UTC) below which every row has been exported; the next export takes rows "
            "with ingested_at at or after it. NULL until the first export completes.",
        ),
        sa.Column(
            "runs", sa.BigInteger(), server_default="0", nullable=False, comment="Exports completed under this name."
        ),
        sa.Column(
            "rows",
            sa.BigInteger(),
            server_default="0",
            nullable=False,
            comment="Rows exported under this name, all runs together.",
        ),
        sa.Column(
            "updated_at",
            TZ,
            server_default=sa.text("now()"),
            nullable=False,
            comment="When exported_until last moved (UTC).",
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_export_cursors")),
        comment="Where each incremental export (collector export --since-last) stands: rows with ingested_at "
        "below exported_until have been exported. Key: name.",
    )


def downgrade() -> None:
    op.drop_table("export_cursors")
    for table in reversed(MARKET):
        op.drop_index(f"ix_{table}_ingested_at", table_name=table)
        op.drop_column(table, "ingested_at")
