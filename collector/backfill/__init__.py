"""``collector backfill``: history for a window, exactly once, resumable, at the weight limit.

``plan`` says what a backfill is (its window, symbols, streams) and checks it; ``tasks`` fetches
and stores one (symbol, stream, interval) window; ``run`` runs them all and records the run.
May import exchange, store and the shared modules (config, errors, domain, logs, metrics).
"""
