"""Evaluation sharding with accelerate: one process imports nothing heavy, two real CPU processes gather."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from mad_sim.eval.sharding import distributed_rank, gather_rows

from tests._torchrun import run_torchrun


def test_a_single_process_is_rank_zero_of_one_and_keeps_its_rows(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    rows = {"cv": [{"scenario": "a"}]}
    assert distributed_rank() == (0, 1)
    assert gather_rows(rows) is rows


def test_two_cpu_processes_shard_the_stream_and_gather_every_row(tmp_path: Path) -> None:
    """torchrun, 2 processes, gloo: each takes every other scenario of the stream, then both hold all rows."""
    script = tmp_path / "shard.py"
    script.write_text(
        textwrap.dedent(f"""
        import json
        from mad_sim.eval.sharding import distributed_rank, gather_rows
        rank, world = distributed_rank()
        mine = [i for i in range(7) if i % world == rank]
        rows = {{"cv": [{{"scenario": i, "rank": rank}} for i in mine]}}
        if rank == 0:
            rows["idm"] = [{{"scenario": 0}}]  # a planner only process 0 has rows for
        out = {{"rank": rank, "world": world, "rows": gather_rows(rows)}}
        open(r"{tmp_path}" + f"/rank{{rank}}.json", "w").write(json.dumps(out))
    """)
    )
    proc = run_torchrun(script, timeout=300)
    ranks = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in range(2)]
    assert [(r["rank"], r["world"]) for r in ranks] == [(0, 2), (1, 2)]
    for r in ranks:
        assert [row["scenario"] for row in r["rows"]["cv"]] == [0, 2, 4, 6, 1, 3, 5]  # process order
        assert [row["rank"] for row in r["rows"]["cv"]] == [0, 0, 0, 0, 1, 1, 1]
        assert r["rows"]["idm"] == [{"scenario": 0}]
    assert "Traceback" not in proc.stderr
