"""The training loop under two real CPU processes (torchrun, gloo): logged losses are the mean over both.

Each process trains on its own draws (its process index seeds them); the main process writes
``losses.json``.  Every process also records the loss its own batch gave at each step, so the
test can check each logged loss against the mean of the two processes' losses, and that the
checkpoint holds the model's own parameter names (no wrapper prefix).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from mad_sim.model.training.checkpoint import load_checkpoint
from tests._torchrun import run_torchrun
from tests.model.training.test_resume import clip_cache  # noqa: F401  (fixture)


@pytest.mark.slow
def test_two_processes_log_the_mean_loss_and_save_the_unwrapped_model(clip_cache, tmp_path: Path) -> None:  # noqa: F811
    cfg = {
        "stage": "motion",
        "steps": 3,
        "batch_size": 1,
        "frames": 9,
        "output_dir": str(tmp_path / "run"),
        "log_every": 1,
        "checkpoint_every": 0,
        "checkpoint_minutes": 0,
        "eval_clips": 2,
        "lora": {"rank": 4, "alpha": 4.0},
        "optim": {"lr": 1e-3, "warmup_steps": 1},
        "threads": 1,
    }
    script = tmp_path / "train2.py"
    script.write_text(
        textwrap.dedent(f"""
        import json
        from accelerate import PartialState
        from mad_sim.config import from_dict
        from mad_sim.model.training import stages
        from mad_sim.model.training.datasets import ClipCache
        from mad_sim.model.training.loop import TrainConfig, train

        rank = PartialState(cpu=True).process_index
        mine = []
        build = stages.build_stage

        def recording_build(*a, **kw):
            stage = build(*a, **kw)
            loss = stage.loss

            def recorded(*la, **lkw):
                out = loss(*la, **lkw)
                mine.append(float(out[0].detach()))
                return out

            stage.loss = recorded
            return stage

        stages.build_stage = recording_build
        res = train(from_dict(json.loads({json.dumps(json.dumps(cfg))}), TrainConfig),
                    cache=ClipCache(r"{clip_cache.folder}"), progress=False)
        open(r"{tmp_path}" + f"/rank{{rank}}.json", "w").write(json.dumps({{"losses": mine, "steps": res.steps}}))
    """)
    )
    run_torchrun(script, timeout=600)
    ranks = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in range(2)]
    assert [r["steps"] for r in ranks] == [3, 3]
    assert ranks[0]["losses"] != ranks[1]["losses"]  # different draws
    logged = json.loads((tmp_path / "run" / "losses.json").read_text())["records"]
    assert [r["step"] for r in logged] == [1, 2, 3]
    for rec, a, b in zip(logged, ranks[0]["losses"], ranks[1]["losses"]):
        assert rec["loss"] == pytest.approx((a + b) / 2, rel=1e-6)
    ck = load_checkpoint(tmp_path / "run" / "checkpoints")
    assert ck.model and not any(k.startswith("module.") for k in ck.model)
    assert (tmp_path / "run" / "final").is_dir()
