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
