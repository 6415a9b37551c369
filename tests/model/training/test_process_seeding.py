"""Every training process draws its own data: step seeds include the accelerate process index."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np

from mad_sim.model.training.loop import draw_batch, step_generators
from tests._torchrun import run_torchrun

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
    run_torchrun(script, timeout=300)
    ranks = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in range(2)]
    assert [r["world"] for r in ranks] == [2, 2] and [r["rank"] for r in ranks] == [0, 1]
    for s in range(5):
        assert ranks[0]["batches"][s] != ranks[1]["batches"][s]
        assert ranks[0]["batches"][s] == draw_batch(step_generators(0, s)[0], TRAIN_IDX, 8).tolist()
