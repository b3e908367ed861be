"""The Alembic migrations. Shipped inside the package as ``collector.migrations`` (see pyproject.toml),
so an installed collector migrates with no source tree; alembic.ini beside it is for developers."""
