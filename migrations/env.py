"""Alembic environment. The URL comes from the collector's Settings, never from alembic.ini.

`collector db upgrade` hands over an open connection in ``config.attributes["connection"]``;
a plain `alembic upgrade head` builds Settings itself (and starts the embedded server if no URL
is configured).
"""

from alembic import context

from collector.store.comments import described
from collector.store.models import metadata
from collector.store.partitions import include_name

config = context.config
target_metadata = described(metadata)  # the models with the catalog's comments: compared too


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=False,
        include_schemas=False,
        include_name=include_name,  # monthly partitions are not tables of the models
        transaction_per_migration=True,
    )


def run_migrations_offline() -> None:
    from collector.config import load_settings

    settings = load_settings()
    url = settings.database_url or "postgresql+psycopg://"
    context.configure(
        url=url, target_metadata=target_metadata, literal_binds=True, dialect_opts={"paramstyle": "named"}
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    from collector.config import load_settings
    from collector.store.db import open_database

    settings = load_settings()
    db = open_database(settings.database_url, settings.data_dir)
    try:
        with db.engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
            conn.commit()
    finally:
        db.close()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
