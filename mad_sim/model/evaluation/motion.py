"""Held-out evaluation of the motion adapter: denoising loss base vs adapted, and a forecast video.

**Denoising loss.** For every held-out clip and each fixed noise level
``s`` in ``sigmas`` the future pose latents are noised with noise drawn from a
fixed seed, ``x_s = (1 - s) x0 + s eps``, and the flow-matching loss
``|| v(x_s, 1000 s | conditions) - (eps - x0) ||^2`` is averaged. The base
model (every adapter disabled) and the adapted model (``motion`` active) see
identical inputs, so the difference is the adapter's. Reported per task:

- ``history``: pose history (``context_frames`` frames) as the condition;
- ``history_ego``: pose history + the ego-motion video of the future span.

**Ego sensitivity.** Whether a model reads its ego-motion condition at all:
``loss(history_ego with another clip's ego video) - loss(history_ego)`` on the
same clips and noise, the other clip being the one half the evaluated list
further on (cyclically).  Positive: the model's prediction depends on the ego
video it is given (the action conditioning works); about 0: it ignores it.

**Forecast video.** For one held-out clip, the log's future, the base
model's forecast and the adapted model's forecast (same noise seed, pose
history + ego-motion as conditions) are written side by side (``log |
base | motion``), with the context frames first so the hand-over is visible.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np
import torch

from mad_sim.errors import ConfigError

log = logging.getLogger(__name__)

TASKS = ("history", "history_ego")


@dataclass
class MotionEvalResult:
    """Held-out denoising losses (lower is better) and what they were measured on."""

    base: Dict[str, float] = field(default_factory=dict)
    adapted: Dict[str, float] = field(default_factory=dict)
    ego_sensitivity: Dict[str, float] = field(default_factory=dict)
    """``{"base": .., "adapted": ..}``: history_ego loss with another clip's ego video minus with its own."""
    num_clips: int = 0
    sigmas: Sequence[float] = ()
    seed: int = 0
    seconds: float = 0.0

    @property
    def relative_improvement(self) -> Dict[str, float]:
        """``1 - adapted / base`` per task (positive: the adapter helps)."""
        return {k: 1.0 - self.adapted[k] / self.base[k] for k in self.base if self.base[k] > 0}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sigmas"] = list(self.sigmas)
        d["relative_improvement"] = self.relative_improvement
        return d


def evaluate_motion(
    model,
    cache,
    *,
    adapter: str = "motion",
    split: str = "eval",
    max_clips: int = 64,
    sigmas: Sequence[float] = (0.2, 0.4, 0.6, 0.8),
    seed: int = 0,
    latents: Optional[Dict[str, torch.Tensor]] = None,
) -> MotionEvalResult:
    """Denoising loss on the ``split`` clips of ``cache``: base (adapters off) vs ``adapter``.

    Args:
      model: a :class:`~mad_sim.model.mad.MADModel` holding ``adapter``.
      cache: a :class:`~mad_sim.model.training.datasets.ClipCache`.
      latents: pre-encoded clip latents (default: encoded with the model's VAE, cached).
    """
    from mad_sim.model.training.denoiser_stage import encode_clip_latents, fixed_denoising_loss

    if adapter not in model.adapters:
        raise ConfigError(f"the model has no adapter {adapter!r} (have: {model.adapters})")
    index = cache.indices(split)[:max_clips]
    if index.size == 0:
        raise ConfigError(f"the clip cache has no {split!r} clip to evaluate on")
    t0 = time.perf_counter()
    bb = model.backbone
    lat = latents if latents is not None else encode_clip_latents(bb, cache, progress=False)
    text = lambda n: bb.encode_prompts(None, n)  # noqa: E731
    res = MotionEvalResult(num_clips=int(index.size), sigmas=tuple(sigmas), seed=seed)
    previous = model.active_adapter
    try:
        for name, active in (("base", None), ("adapted", adapter)):
            model.set_adapter(active)
            out = getattr(res, name)
            for task in TASKS:
                out[task] = fixed_denoising_loss(
                    model.denoiser, text, lat, index, task, cache.spec.context_frames, sigmas=sigmas, seed=seed, device=bb.device
                )
            swapped = fixed_denoising_loss(
                model.denoiser,
                text,
                other_clips_ego(lat, index),
                index,
                "history_ego",
                cache.spec.context_frames,
                sigmas=sigmas,
                seed=seed,
                device=bb.device,
            )
            res.ego_sensitivity[name] = swapped - out["history_ego"]
    finally:
        model.set_adapter(previous)
    res.seconds = time.perf_counter() - t0
    return res


def other_clips_ego(latents: Dict[str, torch.Tensor], index: np.ndarray) -> Dict[str, torch.Tensor]:
    """``latents`` with clip ``index[i]``'s ego latent replaced by that of ``index[(i + n // 2) % n]``.

    Every other key is shared, not copied.  With one clip there is no other
    clip: ConfigError.
    """
    index = np.asarray(index)
    if index.size < 2:
        raise ConfigError("ego sensitivity needs at least two clips to swap ego videos between")
    ego = latents["ego"].clone()
    ego[torch.as_tensor(index)] = latents["ego"][torch.as_tensor(np.roll(index, -(index.size // 2)))]
    return {**latents, "ego": ego}


def forecast_comparison(
    model, cache, clip: int, *, adapter: str = "motion", steps: int = 8, seed: int = 0, use_ego: bool = True
) -> Dict[str, np.ndarray]:
    """``{"log", "base", "adapted"}``: ``[context + future, H, W, 3]`` uint8 videos of one clip.

    Each starts with the clip's logged context frames, then the future: the
    log's, the base model's forecast, the adapted model's forecast (same
    noise seed for both).
    """
    from mad_sim.model.motion import MotionPredictor

    spec = cache.spec
    pose, ego = cache.batch(np.array([clip]))
    history, future = pose[0, spec.context_slice], pose[0, spec.future_slice]
    ego_future = ego[0, spec.future_slice] if use_ego else None
    out = {"log": np.concatenate([history, future])}
    previous = model.active_adapter
    try:
        for name, active in (("base", None), ("adapted", adapter)):
            gen = torch.Generator().manual_seed(seed)
            pred = MotionPredictor(model, active).forecast(
                history, ego_future, num_frames=spec.future_frames, steps=steps, generator=gen
            )
            out[name] = np.concatenate([history, pred])
    finally:
        model.set_adapter(previous)
    return out


def write_forecast_video(videos: Dict[str, np.ndarray], path: Union[str, Path], fps: int = 5) -> Path:
    """Write ``log | base | adapted`` side by side (mp4 or gif by suffix, atomic)."""
    from mad_sim.render.video import side_by_side, write_video

    names = [k for k in ("log", "base", "adapted") if k in videos]
    labels = {"log": "log", "base": "base", "adapted": "motion LoRA"}
    frames = side_by_side([videos[k] for k in names], [labels[k] for k in names])
    write_video(path, frames, fps=fps)
    return Path(path)


def main_report(
    model, cache, out_dir: Union[str, Path], *, clips: Sequence[int] = (), steps: int = 8, seed: int = 0, max_clips: int = 64
) -> dict:
    """Run :func:`evaluate_motion`, write ``motion_eval.json`` and one forecast video per clip in ``out_dir``."""
    from mad_sim.io import write_text_atomic

    out_dir = Path(out_dir)
    res = evaluate_motion(model, cache, seed=seed, max_clips=max_clips)
    report: Dict[str, Any] = {"denoising_loss": res.to_dict(), "videos": []}
    for c in clips:
        path = write_forecast_video(
            forecast_comparison(model, cache, int(c), steps=steps, seed=seed), out_dir / f"forecast_clip{int(c)}.mp4"
        )
        report["videos"].append(
            {"clip": int(c), "path": str(path), **{k: cache.clips[int(c)][k] for k in ("scenario_id", "viewpoint", "t0")}}
        )
    write_text_atomic(out_dir / "motion_eval.json", json.dumps(report, indent=1))
    return report


def main(argv=None) -> int:
    """``python -m mad_sim.model.evaluation.motion --backbone FILE --lora FILE --config TRAIN.yaml --out DIR``."""
    import argparse

    from mad_sim.model import MADModel, load_backbone
    from mad_sim.model.training.datasets import open_dataset
    from mad_sim.model.training.loop import load_train_config

    p = argparse.ArgumentParser(description="Held-out denoising loss (base vs motion adapter) and forecast videos")
    p.add_argument("--backbone", required=True, help="single-file backbone safetensors")
    p.add_argument("--lora", required=True, help="motion adapter safetensors")
    p.add_argument("--config", required=True, help="train config whose data block defines the clips")
    p.add_argument("--out", required=True, help="folder for motion_eval.json and the videos")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--videos", type=int, default=2, help="forecast videos of moving held-out clips")
    p.add_argument("--steps", type=int, default=8, help="sampler steps of the forecasts")
    p.add_argument("--max-clips", type=int, default=64)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = load_train_config(a.config)
    cache = open_dataset(cfg.data, progress=False)
    model = MADModel(load_backbone(a.preset, weights=a.backbone, device="cpu"))
    model.load_adapter("motion", a.lora)
    moving = cache.indices("eval", moving_only=True)
    picks = moving[np.linspace(0, len(moving) - 1, a.videos).round().astype(int)] if a.videos and len(moving) else []
    report = main_report(model, cache, a.out, clips=[int(c) for c in picks], steps=a.steps, max_clips=a.max_clips)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
