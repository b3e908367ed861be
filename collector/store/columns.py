"""The columns of each table, described once (by the models) for whoever reads them whole: the
analyst's frames and exports take names, order and kinds from here."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Boolean, DateTime, Integer, Numeric, Text

from collector.store.models import Base

# Kept by the collector for itself, not data: left out of frames and exports.
BOOKKEEPING = frozenset({"updated_at", "ingested_at"})


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # text | time | num | int | bool
    nullable: bool = True
    expr: str | None = None  # SQL expression when not the column itself (a join, a view)

    @property
    def sql(self) -> str:
        return self.expr or self.name


def _kind(sql_type: object) -> str:
    if isinstance(sql_type, DateTime):
        return "time"
    if isinstance(sql_type, Numeric):
        return "num"
    if isinstance(sql_type, (BigInteger, Integer)):
        return "int"
    if isinstance(sql_type, Boolean):
        return "bool"
    if isinstance(sql_type, Text):
        return "text"
    raise TypeError(f"no kind for column type {sql_type!r}")


def columns(table: str, *, first: str | None = None, without: tuple[str, ...] = ()) -> tuple[Column, ...]:
    """The data columns of ``table`` in the table's order (``first``, e.g. the index, moved ahead)."""
    out = [
        Column(c.name, _kind(c.type), bool(c.nullable))
        for c in Base.metadata.tables[table].columns
        if c.name not in BOOKKEEPING and c.name not in without
    ]
    if first is not None:
        out.sort(key=lambda c: c.name != first)
    return tuple(out)
