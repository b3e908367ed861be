"""`collector symbols` lists what the exchange lists, with optionInfo's type/expiry and the strike."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from collector.simulator import SimConfig, Simulator


async def test_symbols_json_matches_the_exchange(tmp_path):
    async with Simulator(SimConfig(seed=3, history_days=0.01, symbols=5), port=0) as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "collector",
            "--exchange-url",
            sim.base_url,
            "symbols",
            "--json",
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        rows = [json.loads(line) for line in out.decode().splitlines()]
        truth = sim.market.option_info(sim.clock.now_ms())
    assert [r["symbol"] for r in rows] == sorted(o["symbol"] for o in truth)
    by_name = {o["symbol"]: o for o in truth}
    for r in rows:
        assert r["type"] == {"LONGS": "CALL", "SHORTS": "PUT"}[by_name[r["symbol"]]["type"]]
        assert r["status"] == by_name[r["symbol"]]["status"]
        assert r["strike"] is not None and float(r["strike"]) > 0


def test_beside_the_demo_other_commands_find_its_simulator(db_url, tmp_path):
    """`run --simulate` listens on the default exchange port when it is free, else anywhere, and
    records where in the data directory: `collector symbols` with no exchange URL set just works,
    and the record goes when the demo stops."""
    import signal
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    env.update(COLLECTOR_DATA_DIR=str(tmp_path / "data"), COLLECTOR_DATABASE_URL=db_url, COLLECTOR_METRICS_PORT="0")
    with subprocess.Popen(
        [sys.executable, "-m", "collector", "run", "--simulate", "--sim-symbols", "6"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    ) as demo:
        try:
            for line in demo.stderr:
                if line.startswith("collecting "):
                    break
            record = json.loads((tmp_path / "data" / "simulator.json").read_text())
            assert record["pid"] == demo.pid and record["url"].startswith("http://127.0.0.1:")
            done = subprocess.run(
                [sys.executable, "-m", "collector", "symbols", "--json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
            assert len(done.stdout.splitlines()) >= 6
            if record["url"] != "http://127.0.0.1:8080":  # the default port was taken: the record led there
                assert f"the demo's simulator at {record['url']}" in done.stderr
        finally:
            demo.send_signal(signal.SIGTERM)
            assert demo.wait(30) == 0
    assert not (tmp_path / "data" / "simulator.json").exists()
