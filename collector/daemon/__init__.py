"""``collector run``: the long-running daemon.

``run`` starts and stops it; ``scheduler`` is all the APScheduler wiring; ``planner`` fits the
schedule into the weight budget; ``context`` is what every job is given; one module per job
(``trades``, ``klines``, ``snapshots``, ``symbols``, ``sweep``, ``leases``, ``partitions``);
``health`` serves /metrics and /healthz. May import exchange, store and the shared modules; never
the simulator, the backfill or the analyst side.
"""
