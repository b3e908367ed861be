"""/metrics (Prometheus) and /healthz for the daemon, on a loopback port by default."""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from collector import metrics
from collector.daemon.context import LiveContext
from collector.errors import CollectorError, ConfigError
from collector.store.db import ping


def refresh_gauges(ctx: LiveContext) -> None:
    """Lag and staleness are ages: compute them when asked, not when rows arrive."""
    now = time.time()
    for (stream, symbol), at in list(ctx.caught_up.items()):
        metrics.STREAM_STALENESS.labels(*metrics.stream_labels(stream), symbol).set(max(0.0, now - at))
    for metric in metrics.NEWEST_ROW.collect():
        for sample in metric.samples:
            metrics.STREAM_LAG.labels(sample.labels["stream"], sample.labels["interval"], sample.labels["symbol"]).set(
                max(0.0, now - sample.value)
            )
    stats = ctx.client.governor.stats()
    metrics.WEIGHT_USED.set(stats.weight_used)
    metrics.WEIGHT_LAST_WINDOW.set(stats.weight_last_window)
    metrics.DB_UP.set(1 if ctx.db_ok else 0)


def health_problems(ctx: LiveContext, db_answers: bool) -> list[str]:
    problems = []
    if not db_answers:
        problems.append("database unreachable")
    limit = ctx.settings.health_max_lag_seconds
    now = time.time()
    active = set(ctx.with_history()) | set(ctx.trading())
    for (stream, symbol), at in ctx.caught_up.items():
        if symbol in active and now - at > limit:
            problems.append(f"{stream} {symbol} last caught up {now - at:.0f}s ago (limit {limit:g}s)")
    banned = ctx.client.governor.stats().banned_until
    if banned and banned > now:
        problems.append(f"IP banned by the exchange until {time.strftime('%H:%M:%S', time.gmtime(banned))} UTC")
    return problems


def make_app(ctx: LiveContext) -> web.Application:
    exposition = make_aiohttp_handler(metrics.REGISTRY)

    async def metrics_handler(request: web.Request) -> web.StreamResponse:
        refresh_gauges(ctx)
        return await exposition(request)  # prometheus-client's own: content negotiation, gzip

    async def healthz(_: web.Request) -> web.Response:
        problems = health_problems(ctx, await _db_answers(ctx))
        body = {
            "status": "unhealthy" if problems else "ok",
            "problems": problems,
            "symbols": len(ctx.trading()),
            "disabled": ctx.disabled,
            "weight_source": ctx.client.governor.stats().weight_source,
            "push": ctx.push.state() if ctx.push is not None else None,
        }
        return web.json_response(body, status=503 if problems else 200, dumps=json.dumps)

    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    return app


async def _db_answers(ctx: LiveContext) -> bool:
    try:
        await asyncio.wait_for(asyncio.to_thread(ping, ctx.engine), timeout=3)
        return True
    except (CollectorError, TimeoutError):
        return False


async def serve(ctx: LiveContext, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(make_app(ctx), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:  # port taken, address not local: the operator must choose another
        await runner.cleanup()
        raise ConfigError(
            f"cannot serve /metrics on {host}:{port}: {exc.strerror or exc} "
            "(set COLLECTOR_METRICS_PORT or --metrics-port)"
        ) from None
    return runner


def bound_port(runner: web.AppRunner) -> int:
    return runner.addresses[0][1]
