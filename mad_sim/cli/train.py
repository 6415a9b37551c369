"""``mad-sim train vae|base|motion|appearance --config configs/train/NAME.yaml``.

Runs one training stage (see :mod:`mad_sim.model.training.loop`) and prints a JSON
summary (output folder, steps, final loss, seconds, exported weights). The
same command works under ``accelerate launch`` for several processes.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Dict

from mad_sim.registry import Registry

TRAINING_STAGES: Registry[Any] = Registry("training stage")
"""Stage name -> ``runner(args, overrides) -> (config, result)`` (the registry style of agent policies and planners)."""


def _train_loop(args: argparse.Namespace, overrides: Dict[str, Any]) -> Any:
    """The VAE, the base model and the motion LoRA: :func:`mad_sim.model.training.loop.train`."""
    from mad_sim.model.training.loop import load_train_config, train

    cfg = load_train_config(args.config, stage=args.stage, overrides=overrides)
    os.environ.setdefault("OMP_NUM_THREADS", str(cfg.threads))
    return cfg, train(cfg, resume=args.resume, progress=not args.no_progress, stop_after=args.stop_after)


def _train_appearance(args: argparse.Namespace, overrides: Dict[str, Any]) -> Any:
    """The appearance LoRA on paired RGB / pose clips of the shared dashcam data (an ``appearance:`` section)."""
    from mad_sim.model.training.appearance_train import load_appearance_config, train_appearance

    cfg, task = load_appearance_config(args.config, overrides=overrides)
    os.environ.setdefault("OMP_NUM_THREADS", str(cfg.threads))
    return cfg, train_appearance(cfg, task, resume=args.resume, progress=not args.no_progress, stop_after=args.stop_after)


for _stage in ("vae", "base", "motion"):
    TRAINING_STAGES.register(_stage, _train_loop)
TRAINING_STAGES.register("appearance", _train_appearance)
STAGES = tuple(TRAINING_STAGES.names())


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train the VAE, the base video model or a LoRA adapter",
        description="Train one stage of the MAD world model from a YAML config.",
    )
    p.add_argument("stage", choices=STAGES, help="what to train")
    p.add_argument("--config", required=True, help="YAML train config (configs/train/*.yaml)")
    p.add_argument("--resume", action="store_true", help="continue bit-exactly from the latest checkpoint")
    p.add_argument("--output", help="run folder (overrides output_dir)")
    p.add_argument("--steps", type=int, help="total steps (overrides steps)")
    p.add_argument("--cache", help="clip cache root (overrides data.cache_dir; default ~/.cache/mad-sim/clips)")
    p.add_argument("--threads", type=int, help="torch CPU threads (overrides threads)")
    p.add_argument("--init-vae", help="VAE safetensors to start from / encode with")
    p.add_argument("--init-transformer", help="transformer safetensors to start from")
    p.add_argument(
        "--stop-after",
        type=int,
        help="stop (with a checkpoint, no export) after this many total steps; the schedule still spans --steps",
    )
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mad_sim.config import read_yaml

    overrides: Dict[str, Any] = {}
    for key, attr in (
        ("output_dir", "output"),
        ("steps", "steps"),
        ("threads", "threads"),
        ("init_vae", "init_vae"),
        ("init_transformer", "init_transformer"),
    ):
        if getattr(args, attr) is not None:
            overrides[key] = getattr(args, attr)
    if args.cache is not None:
        data = dict(read_yaml(args.config).get("data") or {})
        data["cache_dir"] = args.cache
        overrides["data"] = data
    cfg, result = TRAINING_STAGES.make(args.stage, args, overrides)
    print(
        json.dumps(
            {
                "stage": cfg.stage,
                "output_dir": str(result.output_dir),
                "steps": result.steps,
                "final_loss": result.final_loss,
                "seconds": round(result.seconds, 1),
                "exported": result.exported,
            },
            indent=1,
        )
    )
    return 0
