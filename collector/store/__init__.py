"""The only way to the database: engines and connections (``db``, which maps every database error
to the collector's own), the tables (``models``, ``columns``, ``comments``: what the catalog says of
them), writes (``upsert``, ``write``, ``history``: rows with their checkpoint, ``account``),
``checkpoints``, ``coverage`` (what a backfill need not fetch), ``runs``, ``partitions``,
``coordination`` (leases, shared budget), ``exports`` (incremental export cursors), ``access`` and
``roles`` (URLs for other clients, the analyst role) and ``migrate``. Knows nothing of HTTP;
imports only the shared modules (config, errors, domain, logs, metrics).
"""
