"""The migrations themselves, one revision per module (their names are not identifiers: Alembic loads
them by path)."""
