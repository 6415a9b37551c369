"""Does object control work? Forecast held-out clips with and without their box video, compare follow IoU.

For each held-out clip that has controlled agents (a clip cache built with
``data.boxes.enabled``, :mod:`mad_sim.model.training.datasets`), the motion adapter
forecasts the clip's future twice from the same pose history (and, by
default, the same ego-motion video) with the **same noise**:

- *controlled*: plus the box video of the controlled agents' logged future;
- *uncontrolled*: without it.

Each forecast is scored with :func:`~mad_sim.model.object_control.follow_iou`
against the box video (mean over frames and controlled agents of the IoU of
an agent's drawn box and the forecast's skeleton pixels near it). The logged
future pose video scored the same way (``logged``) is the ceiling the
measure reaches on the truth. Object control works when ``controlled`` is
clearly above ``uncontrolled``.

    python -m mad_sim.model.evaluation.object_control --config configs/train/tiny_motion.yaml \\
        --lora runs/tiny/motion/final/tiny_motion.safetensors --weights runs/tiny/base/final/tiny.safetensors \\
        --clips 32 --out runs/tiny/motion/object_control.json

prints the report's summary line and writes the JSON (atomic).
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Sequence, Union

import numpy as np
import torch

from mad_sim.errors import DataError
from mad_sim.model.object_control import follow_iou

log = logging.getLogger(__name__)


@dataclass
class ClipScore:
    """Follow IoU of one clip: its cache index, number of controlled agents, and the three scores."""

    index: int
    agents: int
    controlled: float
    uncontrolled: float
    logged: float


@dataclass
class ObjectControlReport:
    """Means over clips (NaN-free clips only) and the per-clip scores."""

    num_clips: int
    controlled: float
    uncontrolled: float
    logged: float
    steps: int
    seed: int
    ego_motion: bool
    clips: List[ClipScore] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate_object_control(
    predictor,
    cache,
    index: Union[Sequence[int], np.ndarray],
    *,
    steps: int = 4,
    seed: int = 0,
    ego_motion: bool = True,
    batch_size: int = 4,
    margin_px: int = 4,
) -> ObjectControlReport:
    """Forecast clips ``index`` of ``cache`` with and without boxes (same noise) and score both.

    Args:
      predictor: a :class:`~mad_sim.model.motion.MotionPredictor` (its adapter trained with boxes).
      cache: a :class:`~mad_sim.model.training.datasets.ClipCache` with box videos.
      index: clip indices; clips without a controlled agent are skipped.
      steps: sampler steps; seed: noise of batch ``j`` is ``torch.Generator().manual_seed(seed * 100003 + j)``,
        identical for the two forecasts.
      ego_motion: also condition both forecasts on the clip's ego-motion video.
    """
    spec = cache.spec
    clips = np.asarray(index, np.int64)
    clips = clips[np.asarray(cache.num_box_agents)[clips] > 0]
    if clips.size == 0:
        raise DataError(
            "object-control evaluation: none of the given clips has a controlled agent "
            "(is the cache built with data.boxes.enabled?)",
            path=str(cache.folder),
        )
    scores: List[ClipScore] = []
    for j, start in enumerate(range(0, clips.size, batch_size)):
        idx = clips[start : start + batch_size]
        pose, ego = cache.batch(idx)
        boxes = cache.box_batch(idx)
        hist, truth = pose[:, spec.context_slice], pose[:, spec.future_slice]
        ego_f = ego[:, spec.future_slice] if ego_motion else None
        runs = {}
        for name, box in (("controlled", boxes), ("uncontrolled", None)):
            gen = torch.Generator().manual_seed(int(seed) * 100003 + j)
            runs[name] = predictor.forecast(
                hist, ego_motion=ego_f, boxes=box, num_frames=spec.future_frames, steps=steps, generator=gen
            )
        for b, k in enumerate(idx):
            n = int(cache.num_box_agents[k])
            scores.append(
                ClipScore(
                    int(k),
                    n,
                    follow_iou(runs["controlled"][b], boxes[b], n, margin_px),
                    follow_iou(runs["uncontrolled"][b], boxes[b], n, margin_px),
                    follow_iou(truth[b], boxes[b], n, margin_px),
                )
            )
        log.info("object control: %d/%d clips", len(scores), clips.size)
    ok = [s for s in scores if np.isfinite([s.controlled, s.uncontrolled, s.logged]).all()]

    def mean(a: str) -> float:
        return float(np.mean([getattr(s, a) for s in ok])) if ok else float("nan")

    return ObjectControlReport(len(ok), mean("controlled"), mean("uncontrolled"), mean("logged"), steps, seed, ego_motion, scores)


def main(argv: Optional[List[str]] = None) -> int:
    from mad_sim.io import write_text_atomic
    from mad_sim.model.motion import MotionPredictor
    from mad_sim.model.training.datasets import open_dataset
    from mad_sim.model.training.loop import load_train_config

    p = argparse.ArgumentParser(prog="python -m mad_sim.model.evaluation.object_control", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="motion train config (its data block, with data.boxes enabled)")
    p.add_argument("--lora", help="motion adapter (default: the shipped one of --preset)")
    p.add_argument("--weights", help="backbone weights (default: the shipped ones)")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--clips", type=int, default=32, help="held-out clips (with controlled agents) to score")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-ego", action="store_true", help="forecast without the ego-motion video")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="report JSON")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    cfg = load_train_config(args.config, "motion")
    cache = open_dataset(cfg.data)
    predictor = MotionPredictor.from_pretrained(args.preset, lora=args.lora, weights=args.weights, device="cpu")
    report = evaluate_object_control(
        predictor, cache, cache.box_indices("eval")[: args.clips], steps=args.steps, seed=args.seed, ego_motion=not args.no_ego
    )
    write_text_atomic(args.out, json.dumps(report.to_dict(), indent=1))
    print(json.dumps({k: v for k, v in report.to_dict().items() if k != "clips"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
