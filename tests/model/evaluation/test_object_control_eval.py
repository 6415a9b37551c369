"""Object-control evaluation: forecasts with vs without boxes on held-out clips (same noise), follow IoU."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mad_sim.errors import DataError
from mad_sim.model.training.clips import ClipSpec
from mad_sim.model.training.datasets import BoxClipConfig, ClipCache, SourceConfig, build_clip_cache

HELD_OUT = "womd/motion_data_one_scenario.tfrecord"  # never in a training split


def _held_out_cache(root, size: int, future: int, clips: int) -> ClipCache:
    from mad_sim.model.presets import get_preset
    from tests.conftest import data_file

    mount = get_preset("tiny").camera  # the pose camera the tiny model is trained and run with
    spec = ClipSpec(
        context_frames=9,
        future_frames=future,
        width=size,
        height=size,
        stride=20,
        max_viewpoints=2,
        camera_height=mount.mount_height,
        camera_pitch_deg=mount.pitch_deg,
        camera_hfov_deg=mount.hfov_deg,
    )
    src = [SourceConfig(kind="file", path=str(data_file(HELD_OUT)), split="eval", seed=3, max_clips=clips)]
    return ClipCache(build_clip_cache(spec, src, root, progress=False, boxes=BoxClipConfig(enabled=True)))


def test_evaluation_on_a_random_model(tmp_path, capsys):
    """Report structure, identical noise for both forecasts, the log's IoU as ceiling; the CLI writes the JSON."""
    from mad_sim.model import MADModel, MotionPredictor, load_backbone
    from mad_sim.model.evaluation.object_control import evaluate_object_control, main
    from mad_sim.model.lora import save_lora

    torch.set_num_threads(1)
    cache = _held_out_cache(tmp_path / "clips", 64, 9, 8)
    model = MADModel(load_backbone("tiny", weights="random", device="cpu", seed=0))
    model.add_adapter("motion", rank=4, alpha=4)
    mp = MotionPredictor(model)
    idx = cache.box_indices("eval")[:3]
    assert idx.size == 3
    rep = evaluate_object_control(mp, cache, idx, steps=2, seed=1, batch_size=2)
    again = evaluate_object_control(mp, cache, idx, steps=2, seed=1, batch_size=2)
    assert json.dumps(rep.to_dict()) == json.dumps(again.to_dict())  # same noise, same numbers (NaN included)
    assert len(rep.clips) == idx.size and 1 <= rep.num_clips <= idx.size
    assert all(1 <= c.agents <= 3 for c in rep.clips)
    assert rep.logged > 0.5  # the logged future follows its own boxes
    for c in rep.clips:
        assert np.isnan(c.logged) or 0.0 <= c.controlled <= 1.0 and 0.0 <= c.uncontrolled <= 1.0
    with pytest.raises(DataError, match="controlled agent"):
        evaluate_object_control(mp, cache, np.setdiff1d(cache.indices("eval"), idx)[:0], steps=2)
    # the CLI on a config whose data block is this cache
    lora = tmp_path / "m.safetensors"
    save_lora(model.backbone.transformer, "motion", lora, prefix="transformer")
    from tests.conftest import data_file

    cfg = tmp_path / "motion.yaml"
    cfg.write_text(f"""stage: motion
data:
  cache_dir: {tmp_path / "clips"}
  boxes: {{enabled: true}}
  spec: {{context_frames: 9, future_frames: 9, width: 64, height: 64, stride: 20, max_viewpoints: 2}}
  sources:
    - {{kind: file, path: {data_file(HELD_OUT)}, split: eval, seed: 3, max_clips: 8}}
""")
    out = tmp_path / "report.json"
    assert (
        main(
            [
                "--config",
                str(cfg),
                "--lora",
                str(lora),
                "--weights",
                "random",
                "--steps",
                "2",
                "--clips",
                "2",
                "--seed",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    written = json.loads(out.read_text())
    assert written["num_clips"] == 2 and set(written) >= {"controlled", "uncontrolled", "logged", "clips"}
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["num_clips"] == 2


@pytest.mark.slow
def test_shipped_adapter_follows_the_boxes(tmp_path):
    """The shipped motion adapter's forecasts follow given boxes better than unconditioned ones (held-out log)."""
    from mad_sim.model import MotionPredictor
    from mad_sim.model.backbone import WEIGHTS_DIR
    from mad_sim.model.evaluation.object_control import evaluate_object_control
    from mad_sim.model.training.denoiser_stage import boxes_task_info

    shipped = WEIGHTS_DIR / "tiny_motion.safetensors"
    if not shipped.is_file():
        pytest.skip(f"{shipped} is not shipped")
    if boxes_task_info(shipped) is None:
        pytest.skip(
            f"{shipped} was not trained with the boxes task (no 'boxes_task' in its safetensors metadata): "
            "retrain with configs/train/tiny_motion.yaml (task.p_boxes 0.3) and ship it"
        )
    torch.set_num_threads(1)
    cache = _held_out_cache(tmp_path, 128, 17, 16)
    rep = evaluate_object_control(
        MotionPredictor.from_pretrained("tiny", device="cpu"), cache, cache.box_indices("eval"), steps=4, seed=0
    )
    assert rep.num_clips >= 4
    assert rep.controlled > rep.uncontrolled, rep.to_dict()
