"""The boxes task of the motion stage (object control) on a real-log clip cache with box videos.

Tiny random models on 64x64 clips (9 + 9 frames) of a real WOMD log.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mad_sim.config import from_dict
from mad_sim.errors import ConfigError
from mad_sim.model.training.clips import ClipSpec
from mad_sim.model.training.datasets import BoxClipConfig, ClipCache, SourceConfig, build_clip_cache
from mad_sim.model.training.loop import TrainConfig, train

_BUILT: dict = {}
SPEC = dict(context_frames=9, future_frames=9, width=64, height=64, stride=30, max_viewpoints=2)


def _sources(womd_path):
    return [
        SourceConfig(kind="file", path=str(womd_path), split="train", seed=0),
        SourceConfig(kind="file", path=str(womd_path), split="eval", seed=1, t_range=[60, 91], max_clips=2),
    ]


@pytest.fixture
def box_cache(womd_path, tmp_path_factory) -> ClipCache:
    if "cache" not in _BUILT:
        folder = build_clip_cache(
            ClipSpec(**SPEC),
            _sources(womd_path),
            tmp_path_factory.mktemp("boxclips"),
            progress=False,
            boxes=BoxClipConfig(enabled=True, max_agents=2),
        )
        _BUILT["cache"] = ClipCache(folder)
    return _BUILT["cache"]


def _cfg(out, **kw) -> TrainConfig:
    base = {
        "stage": "motion",
        "steps": 2,
        "batch_size": 3,
        "frames": 9,
        "output_dir": str(out),
        "log_every": 1,
        "checkpoint_every": 0,
        "checkpoint_minutes": 0,
        "eval_clips": 2,
        "lora": {"rank": 4, "alpha": 4.0},
        "optim": {"lr": 1e-3, "warmup_steps": 1},
        "task": {"p_boxes": 1.0},
    }
    base.update(kw)
    return from_dict(base, TrainConfig)


def test_task_config_and_cache_checks(box_cache, womd_path, tmp_path):
    from mad_sim.model.training.denoiser_stage import DenoiserStage

    with pytest.raises(ConfigError, match="p_boxes"):
        _cfg(tmp_path, task={"p_boxes": 1.5})
    plain = ClipCache(build_clip_cache(ClipSpec(**SPEC), _sources(womd_path)[1:], tmp_path, progress=False))
    with pytest.raises(ConfigError, match="data.boxes"):
        DenoiserStage(_cfg(tmp_path), plain, torch.device("cpu"))
    with pytest.raises(ConfigError, match="motion stage"):
        DenoiserStage(_cfg(tmp_path, stage="base"), box_cache, torch.device("cpu"))


def test_boxes_task_draw_and_conditions(box_cache, tmp_path):
    """Only clips with controlled agents get the task; p_boxes = 0 draws exactly the old tasks; the box
    latents reach the transformer; the loss is the target tokens' flow-matching error alone."""
    from mad_sim.model.losses import flow_matching_loss
    from mad_sim.model.training.denoiser_stage import DenoiserStage, task_conditions

    torch.set_num_threads(1)
    stage = DenoiserStage(_cfg(tmp_path, task={"p_boxes": 0.5}), box_cache, torch.device("cpu"))
    assert stage.latents["boxes"].shape == stage.latents["future"].shape
    batch = np.arange(len(box_cache)).repeat(20)
    tasks = stage.draw_tasks(batch, np.random.default_rng(3))
    boxed = np.char.endswith(tasks.astype(str), "_boxes")
    has = box_cache.num_box_agents[batch] > 0
    assert not boxed[~has].any() and 0.35 < boxed[has].mean() < 0.65
    rng_old, rng_new = np.random.default_rng(4), np.random.default_rng(4)
    stage.p_boxes = 0.0
    old = np.where(rng_old.random(len(batch)) < 0.5, "history_ego", "history")
    assert np.array_equal(stage.draw_tasks(batch, rng_new), old)
    assert rng_old.random() == rng_new.random()  # same draws consumed
    k = int(box_cache.box_indices("train")[0])
    lat = {n: v[[k]] for n, v in stage.latents.items()}
    conds = task_conditions("history_ego_boxes", lat, 9)
    assert [c.kind for c in conds] == ["pose_history", "ego_motion", "boxes"] and conds[2].frame_offset == 0
    x0, text = lat["future"], stage.text(1)
    sig, eps = torch.tensor([0.6]), torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        loss = flow_matching_loss(stage.module, x0, conds, *text, sigmas=sig, noise=eps)
        pred = stage.module((1 - 0.6) * x0 + 0.6 * eps, sig * 1000, conds, *text)
        no_box = flow_matching_loss(stage.module, x0, conds[:2], *text, sigmas=sig, noise=eps)
        zeroed = task_conditions("history_ego_boxes", {**lat, "boxes": torch.zeros_like(lat["boxes"])}, 9)
        blank = flow_matching_loss(stage.module, x0, zeroed, *text, sigmas=sig, noise=eps)
    assert pred.shape == x0.shape
    assert torch.allclose(loss, torch.mean((pred - (eps - x0)) ** 2), rtol=1e-5)
    assert float(loss) != float(no_box) and float(loss) != float(blank)


def test_motion_training_with_boxes_records_the_task(box_cache, tmp_path):
    from mad_sim.model.training.denoiser_stage import BOXES_META_KEY, boxes_task_info

    torch.set_num_threads(1)
    res = train(_cfg(tmp_path / "run"), cache=box_cache, progress=False)
    records = json.loads((tmp_path / "run" / "losses.json").read_text())["records"]
    assert any(k.endswith("_boxes") for r in records for k in r)
    assert "eval_history_boxes_boxclips" in records[-1] and "eval_history_boxclips" in records[-1]
    info = boxes_task_info(res.exported["motion"])
    assert info == {"p_boxes": 1.0, "slots": 8, "max_agents": 2}
    from mad_sim.model.evaluation.model_card import to_half

    assert boxes_task_info(to_half(res.exported["motion"], tmp_path / "shipped.safetensors")) == info  # ship keeps it
    from mad_sim.model.lora import read_lora

    sd, cfg = read_lora(res.exported["motion"], "transformer")  # still a plain diffusers LoRA file
    assert cfg["r"] == 4 and sd
    plain = train(_cfg(tmp_path / "plain", task={"p_boxes": 0.0}), cache=box_cache, progress=False)
    assert boxes_task_info(plain.exported["motion"]) is None
    assert BOXES_META_KEY == "boxes_task"
