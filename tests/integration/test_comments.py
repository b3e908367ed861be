"""Every table, column, view and function of the schema explains itself in the catalog (``COMMENT ON``:
units, sources, keys), so ``\\d+`` in psql and the column lists of DBeaver or Grafana say what the
data is. The catalog is read live: a table or column added by any later migration must bring its
comment. Migration 0009's downgrade removes what it wrote; its upgrade writes it again."""

from __future__ import annotations

from sqlalchemy import Engine, text

from collector.store.comments import FUNCTIONS, TABLES, VIEWS
from collector.store.migrate import alembic_config, upgrade

# Every relation of public (tables, partitioned parents, views) and its columns, partitions excepted:
# a partition is the parent's storage, commented on the parent.
RELATIONS = """
SELECT c.oid, c.relname, c.relkind
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
  AND c.relname <> 'alembic_version'
"""

MISSING = f"""
WITH rel AS ({RELATIONS})
SELECT rel.relname AS what FROM rel WHERE obj_description(rel.oid, 'pg_class') IS NULL
UNION ALL
SELECT rel.relname || '.' || a.attname FROM rel
JOIN pg_attribute a ON a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE col_description(rel.oid, a.attnum) IS NULL
UNION ALL
SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' AND obj_description(p.oid, 'pg_proc') IS NULL
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
ORDER BY 1
"""

COMMENTS = f"""
WITH rel AS ({RELATIONS})
SELECT rel.relname, NULL AS column, obj_description(rel.oid, 'pg_class') FROM rel
UNION ALL
SELECT rel.relname, a.attname, col_description(rel.oid, a.attnum) FROM rel
JOIN pg_attribute a ON a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped
"""


def comments(engine: Engine) -> dict[tuple[str, str | None], str | None]:
    with engine.connect() as conn:
        return {(r[0], r[1]): r[2] for r in conn.execute(text(COMMENTS))}


def test_every_table_column_view_and_function_has_a_comment(engine):
    with engine.connect() as conn:
        missing = conn.execute(text(MISSING)).scalars().all()
    assert missing == [], f"without COMMENT ON: {missing}"


def test_what_has_no_comment_is_listed_and_partitions_are_not(engine):
    """The check itself: a new table, column, view or function without a comment is found; the
    partitions of a commented parent are not asked for one."""
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE later_t (a int, b int) PARTITION BY RANGE (a)"))
        conn.execute(text("CREATE TABLE later_t_p0 PARTITION OF later_t FOR VALUES FROM (0) TO (10)"))
        conn.execute(text("COMMENT ON TABLE later_t IS 'x'; COMMENT ON COLUMN later_t.a IS 'x'"))
        conn.execute(text("CREATE VIEW later_v AS SELECT 1 AS one"))
        conn.execute(text("CREATE FUNCTION later_f() RETURNS int LANGUAGE sql AS 'SELECT 1'"))
        missing = conn.execute(text(MISSING)).scalars().all()
    assert missing == ["later_f()", "later_t.b", "later_v", "later_v.one"]


def test_views_and_functions_carry_the_current_text(engine):
    """Tables are compared with the models by test_migrations; views and functions are checked here."""
    found = comments(engine)
    for view, (comment, columns) in VIEWS.items():
        assert found[(view, None)] == comment, view
        assert {c: found[(view, c)] for c in columns} == columns, view
        assert {c for (v, c) in found if v == view and c is not None} == set(columns), view
    with engine.connect() as conn:
        for signature, comment in FUNCTIONS.items():
            assert conn.execute(text(f"SELECT obj_description('{signature}'::regprocedure)")).scalar() == comment


def test_the_unit_the_source_and_the_key_are_where_an_analyst_looks(engine):
    found = comments(engine)
    assert "quote asset" in found[("trades", "price")] and "contracts" in found[("trades", "qty")]
    assert "UTC" in found[("trades", "time")]
    assert "historicalTrades" in found[("trades", None)] and "Key: (symbol, trade_id, time)" in found[("trades", None)]
    assert "exertionPrice" in found[("option_symbols", "strike_price")]
    assert found[("klines", None)].startswith("Candlesticks") and "Partitioned by month" in found[("klines", None)]
    assert found[("checkpoints", None)].startswith("Bookkeeping:")


def test_downgrade_removes_the_comments_and_upgrade_writes_them_again(engine):
    from alembic import command

    before = comments(engine)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0008")
    after = comments(engine)
    for table, (_, columns) in TABLES.items():
        assert after[(table, None)] is None, table
        assert all(after[(table, c)] is None for c in columns), table
    for view, (_, columns) in VIEWS.items():
        assert after[(view, None)] is None and all(after[(view, c)] is None for c in columns), view
    upgrade(engine)
    assert comments(engine) == before
