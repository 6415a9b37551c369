"""Every training process draws its own data: step seeds include the accelerate process index."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from mad_sim.model.training.loop import draw_batch, step_generators

TRAIN_IDX = np.arange(1000)


def test_process_zero_draws_what_a_single_process_always_drew():
    rng, _ = step_generators(3, 7)
    want = np.random.default_rng([3, 7]).choice(TRAIN_IDX, size=8, replace=False)
    np.testing.assert_array_equal(draw_batch(rng, TRAIN_IDX, 8), want)
    np.testing.assert_array_equal(draw_batch(step_generators(3, 7, 0)[0], TRAIN_IDX, 8), want)


def test_processes_draw_different_batches_and_noise():
    for step in range(20):
        batches = [draw_batch(step_generators(0, step, k)[0], TRAIN_IDX, 8) for k in range(4)]
        assert len({b.tobytes() for b in batches}) == 4
        noise = [float(torch_randn(step_generators(0, step, k)[1])) for k in range(4)]
        assert len(set(noise)) == 4


def torch_randn(gen):
    import torch

    return torch.randn(1, generator=gen)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_cpu_processes_under_accelerate_draw_different_data(tmp_path: Path):
    """Two real processes (torchrun, gloo): each asks the Accelerator for its index, as the loop does."""
    script = tmp_path / "draw.py"
    script.write_text(
        textwrap.dedent(f"""
        import json, sys
        import numpy as np
        from accelerate import Accelerator
        from mad_sim.model.training.loop import draw_batch, step_generators
        acc = Accelerator(cpu=True)
        idx = np.arange(1000)
        batches = [draw_batch(step_generators(0, s, acc.process_index)[0], idx, 8).tolist() for s in range(5)]
        out = {{"rank": acc.process_index, "world": acc.num_processes, "batches": batches}}
        open(r"{tmp_path}" + f"/rank{{acc.process_index}}.json", "w").write(json.dumps(out))
    """)
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(_free_port()),
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    ranks = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in range(2)]
    assert [r["world"] for r in ranks] == [2, 2] and [r["rank"] for r in ranks] == [0, 1]
    for s in range(5):
        assert ranks[0]["batches"][s] != ranks[1]["batches"][s]
        assert ranks[0]["batches"][s] == draw_batch(step_generators(0, s)[0], TRAIN_IDX, 8).tolist()
