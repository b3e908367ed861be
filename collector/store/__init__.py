"""The only way to the database: engines and connections (``db``, which maps every database error
to the collector's own), the tables (``models``, ``columns``), writes (``upsert``, ``write``,
``history``: rows with their checkpoint), ``checkpoints``, ``runs``, ``partitions``,
``coordination`` (leases, shared budget) and ``migrate``. Knows nothing of HTTP; imports only the
shared modules (config, errors, domain, logs, metrics).
"""
