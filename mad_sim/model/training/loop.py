"""The training loop (accelerate), its config, checkpoints, logs and loss plot.

``mad-sim train STAGE --config configs/train/NAME.yaml`` runs :func:`train`.
The stage (what is trained and its loss) comes from
:mod:`mad_sim.model.training.stages`; this module owns everything around it:

- an :class:`accelerate.Accelerator` (single CPU process by default; the same
  code under ``accelerate launch`` for several GPUs or nodes);
- AdamW on the stage's trainable parameters; an LR schedule from
  :func:`diffusers.optimization.get_scheduler` (``cosine``, ``linear``,
  ``constant_with_warmup``...) with linear warm-up; gradient-norm clipping;
- **deterministic data and noise**: the clips of step ``s`` are drawn by
  ``numpy.random.default_rng([seed, s])`` and the stage's noise by a
  ``torch.Generator`` seeded from ``(seed, s)``; under several processes each
  also seeds with its process index (:func:`step_generators`), so ranks draw
  different clips. No random state carries from
  one step to the next, so resuming from a checkpoint (model + AdamW moments +
  scheduler) continues *bit-exactly*: ``N`` straight steps and ``N/2`` steps,
  resume, ``N/2`` steps give identical parameters (tested);
- checkpoints every ``checkpoint_every`` steps and every
  ``checkpoint_minutes`` of wall time (:mod:`mad_sim.model.training.checkpoint`, atomic);
- ``losses.json`` (every logged step) and ``loss.png`` (matplotlib) beside
  the checkpoints; a tqdm bar with the running loss.  Under several processes
  a logged loss is the mean over all of them (``accelerator.gather``; each loss
  part over the processes that report it), and the main process saves,
  evaluates and exports the model itself (``accelerator.unwrap_model``);
- at the end, the stage's exportable weights in ``<output_dir>/final/``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Literal, Mapping, Optional, Tuple, Type, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from mad_sim.config import from_dict, read_yaml, to_dict
from mad_sim.errors import CheckpointError, ConfigError
from mad_sim.io import atomic_path, write_text_atomic
from mad_sim.model.training.appearance_task import AppearanceTaskConfig
from mad_sim.model.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from mad_sim.model.training.datasets import DatasetConfig

log = logging.getLogger(__name__)

Stage = Literal["vae", "base", "motion", "appearance"]


@dataclass
class OptimConfig:
    """AdamW + schedule.

    Attributes:
      lr: peak learning rate.
      weight_decay, betas, eps: AdamW's.
      schedule: a :func:`diffusers.optimization.get_scheduler` name.
      warmup_steps: linear warm-up from 0 to ``lr``.
      grad_clip: max global gradient norm (0 = off).
    """

    lr: float = 2e-4
    weight_decay: float = 0.01
    betas: Tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    schedule: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    warmup_steps: int = 100
    grad_clip: float = 1.0


@dataclass
class VaeLossConfig:
    """The ``vae`` stage's loss: edge-weighted reconstruction error + KL.

    Pose frames are mostly black with thin bright lines, so a plain L1 is
    minimised by a black image; pixels within 1 px of any non-black pixel of
    the target weigh ``1 + edge_weight`` instead of 1.

    Attributes:
      recon: the reconstruction error: ``l1``, ``l2`` or their sum. On
        sparse line drawings plain L1 is minimised by black and learned
        nothing in 600 steps of our runs; the squared error's gradient grows
        with the error and gets the lines started.
      edge_weight: extra weight of bright pixels and their 1-px neighbourhood.
      bright_threshold: a pixel is "bright" if any channel exceeds this (0-255).
      kl_weight: weight of the KL of the posterior to N(0, I) (per element mean).
      ego_fraction: fraction of samples drawn from the ego-motion videos
        (the VAE encodes those too), the rest from pose videos.
      posterior_noise: scale of the posterior sample's noise fed to the
        decoder (``z = mean + posterior_noise * std * eps``). At 1 (a plain
        VAE) the tiny VAE's decoder starts out seeing mostly noise (std 1 at
        init) and sat on the mean image for 600 steps in our runs; 0 trains a
        deterministic autoencoder (the KL term then only keeps the means
        small), which learns the line structure quickly.
      train_encoder: False trains the decoder only (the encoder, hence the
        latent space a trained transformer lives in, stays fixed).
      rgb_fraction: fraction of samples drawn from the paired dashcam RGB
        clips (train split) so that the one VAE also carries camera frames
        for the appearance adapter; 0 = pose and ego-motion videos only.
      rgb_clips: the RGB clips' :class:`~mad_sim.model.training.appearance_clips.AppearanceClipSpec`
        fields (the same spec as the appearance stage's reuses its cache).
      vehicle_weight: extra weight of RGB pixels inside the vehicle boxes of the
        pose extraction (:func:`mad_sim.model.appearance.vehicle_masks.clip_vehicle_masks`),
        on top of the edge weight; 0 = none. The dashcam's cars are ~10 px at 128x128.
      agent_weight: extra weight of the agents' coloured strokes in pose windows
        (:func:`~mad_sim.model.training.vae_stage.agent_pixel_mask`), on top of the
        edge weight; 0 = none. Lane lines outnumber vehicle pixels several times
        over in a pose frame, and an unweighted VAE keeps the lines and loses the cars.

    Collapse (measured on the preset's former LTX 0.9.0-style VAE, strided
    convs only): at lr 1e-3 the clip-to-clip difference of the encoder's third
    block output fell from 66% to 0.25% of its magnitude within 10 steps and
    the decoder emitted the mean image for every input from then on; at 3e-4
    it survived on 8 clips but collapsed again within 500 steps on the whole
    data set. The preset's VAE is now the 0.9.5 design, whose samplers carry a
    parameter-free space<->depth shortcut (see ``presets.TINY_VAE``).
    """

    recon: Literal["l1", "l2", "l1+l2"] = "l1+l2"
    edge_weight: float = 9.0
    bright_threshold: float = 20.0
    kl_weight: float = 1e-4
    ego_fraction: float = 0.25
    posterior_noise: float = 0.0
    train_encoder: bool = True
    rgb_fraction: float = 0.0
    rgb_clips: Dict[str, Any] = field(default_factory=dict)
    vehicle_weight: float = 0.0
    agent_weight: float = 0.0

    def __post_init__(self) -> None:
        if not (0.0 <= self.ego_fraction and 0.0 <= self.rgb_fraction and self.ego_fraction + self.rgb_fraction <= 1.0):
            raise ConfigError(
                f"vae_loss: ego_fraction={self.ego_fraction} and rgb_fraction={self.rgb_fraction} "
                "must be >= 0 and add up to at most 1"
            )


@dataclass
class MotionTaskConfig:
    """The ``motion`` (and ``base``) stage's tasks.

    Attributes:
      ego_condition_prob: probability a sample also gets the ego-motion video
        as a condition (paper: 50/50 between pose history only and pose
        history + ego-motion).
      history_dropout: probability (``base`` only) of dropping the pose
        history so the base model also learns unconditional video.
      p_boxes: probability (``motion`` only) a sample also gets the box video
        of its clip's controlled agents as a condition (object control, the
        "conditional forecaster"; :mod:`mad_sim.model.object_control`). Needs
        the clip cache built with box videos (``data.boxes: true``); 0 = off.
    """

    ego_condition_prob: float = 0.5
    history_dropout: float = 0.5
    p_boxes: float = 0.0

    def __post_init__(self) -> None:
        for name in ("ego_condition_prob", "history_dropout", "p_boxes"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"task.{name}={getattr(self, name)} must lie in [0, 1]")


TaskConfig = Union[MotionTaskConfig, AppearanceTaskConfig]
"""What ``TrainConfig.task`` holds: the task config of its stage (:data:`TASK_CONFIGS`)."""

TASK_CONFIGS: Dict[str, Type[TaskConfig]] = {
    "vae": MotionTaskConfig,  # the VAE stage reads no task knob; its task stays the plain default
    "base": MotionTaskConfig,
    "motion": MotionTaskConfig,
    "appearance": AppearanceTaskConfig,
}
"""Stage -> the class of its ``task`` (the YAML's ``task:``; for ``appearance``, its ``appearance:`` section)."""

# The default of ``TrainConfig.task``, replaced in ``__post_init__`` by a fresh default of the stage's own
# task class (a dataclass default cannot depend on another field); compared by identity, never kept.
_STAGE_DEFAULT_TASK = MotionTaskConfig()


@dataclass
class LoraConfig:
    """LoRA adapter size (paper: rank 512, alpha 512, on LTX-2B)."""

    rank: int = 32
    alpha: float = 32.0


@dataclass
class TrainConfig:
    """One training run (``configs/train/*.yaml``).

    Attributes:
      stage: ``vae``, ``base``, ``motion`` or ``appearance``.
      preset: backbone preset (``tiny`` for CPU).
      output_dir: run folder (checkpoints, logs, plot, final weights).
      seed: the run's seed (data order, noise).
      steps: optimizer steps in all.
      batch_size: clips per step (per process).
      frames: frames per sample for the ``vae`` stage (``tk + 1``, ``t`` the VAE's time compression).
      threads: torch CPU threads (1 leaves the other core free).
      mixed_precision: accelerate's ``no`` / ``bf16`` / ``fp16``.
      log_every: steps between two loss records.
      checkpoint_every / checkpoint_minutes: checkpoint period (steps / wall minutes; 0 = off).
      keep_checkpoints: how many recent checkpoints to keep.
      init_backbone: single-file backbone safetensors (``vae.*``, ``transformer.*``,
        ``text_encoder.*``) to start from; empty = random init.
      init_vae / init_transformer / init_lora: component safetensors loaded on top.
      eval_clips: held-out clips scored (fixed noise) at every checkpoint.
      fit_latent_stats: (base) set the VAE's per-channel latent mean/std from
        training clips before encoding (for a VAE that has none, e.g. random init).
      data: clips (see :class:`mad_sim.model.training.datasets.DatasetConfig`).
      task: the stage's task knobs, of the class :data:`TASK_CONFIGS` names for ``stage``
        (:class:`MotionTaskConfig`, or :class:`~mad_sim.model.training.appearance_task.AppearanceTaskConfig`
        for ``appearance``); not given, that class's defaults. :func:`~mad_sim.config.from_dict`
        builds a ``task:`` mapping as that class (:meth:`config_member`).
      optim, vae_loss, lora: see their classes.
    """

    stage: Stage = "vae"
    preset: str = "tiny"
    output_dir: str = "runs/train"
    seed: int = 0
    steps: int = 1000
    batch_size: int = 2
    frames: int = 9
    threads: int = 1
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    log_every: int = 10
    checkpoint_every: int = 500
    checkpoint_minutes: float = 5.0
    keep_checkpoints: int = 2
    init_backbone: str = ""
    init_vae: str = ""
    init_transformer: str = ""
    init_lora: str = ""
    eval_clips: int = 32
    fit_latent_stats: bool = False
    data: DatasetConfig = field(default_factory=DatasetConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    vae_loss: VaeLossConfig = field(default_factory=VaeLossConfig)
    task: TaskConfig = field(default_factory=lambda: _STAGE_DEFAULT_TASK)
    lora: LoraConfig = field(default_factory=LoraConfig)

    @classmethod
    def config_member(cls, name: str, data: Mapping[str, Any]) -> Optional[type]:
        """The member of a union-typed field that :func:`~mad_sim.config.from_dict` builds from mapping ``data``.

        ``task``: the class of the stage ``data`` names (:data:`TASK_CONFIGS`); None (try the members in
        order) for any other field or an unknown stage, which the stage's own check reports.
        """
        if name != "task":
            return None
        stage = data.get("stage", cls.stage)
        return TASK_CONFIGS.get(stage) if isinstance(stage, str) else None

    def __post_init__(self) -> None:
        want = TASK_CONFIGS.get(self.stage, MotionTaskConfig)
        if self.task is _STAGE_DEFAULT_TASK:
            self.task = want()
        elif not isinstance(self.task, want):
            raise ConfigError(f"stage {self.stage!r} takes a task of class {want.__name__}, got {type(self.task).__name__}")
        if self.steps < 1 or self.batch_size < 1 or self.log_every < 1:
            raise ConfigError("steps, batch_size and log_every must be >= 1")
        ratio = self._temporal_ratio()
        if self.frames < 1 or (self.frames - 1) % ratio:
            raise ConfigError(
                f"frames={self.frames} must be {ratio}k+1 ({', '.join(str(1 + ratio * k) for k in range(4))}"
                f"...): preset {self.preset!r}'s VAE compresses time {ratio}x after the first frame"
            )
        if self.threads < 1:
            raise ConfigError(f"threads={self.threads} must be >= 1")
        self._pose_camera_from_preset()

    def _pose_camera_from_preset(self) -> None:
        """The clips' pose camera is the preset's (what the env and the learned agents render with).

        ``data.spec``'s ``camera_height`` / ``camera_pitch_deg`` / ``camera_hfov_deg`` default to the
        preset's :attr:`~mad_sim.model.presets.Preset.camera`; given, they must equal it (ConfigError
        otherwise: a model trained from another seat would be run from the preset's). The appearance
        stage's clips are camera video, not pose renders, and are left alone.
        """
        from mad_sim.model.presets import PRESETS

        preset = PRESETS.get(self.preset)
        if preset is None or self.stage == "appearance":
            return
        mount = preset.camera
        want = {"camera_height": mount.mount_height, "camera_pitch_deg": mount.pitch_deg, "camera_hfov_deg": mount.hfov_deg}
        spec = self.data.spec
        for key, value in want.items():
            if key not in spec:
                spec[key] = value
            elif abs(float(spec[key]) - value) > 1e-9:
                raise ConfigError(
                    f"data.spec.{key}={spec[key]} differs from preset {self.preset!r}'s pose camera ({key}={value}): "
                    "the env and the learned agents render with the preset's camera; leave the key out or match it"
                )

    def _temporal_ratio(self) -> int:
        """The preset's VAE time compression: its config's ``temporal_compression_ratio``, else LTX's 8."""
        from mad_sim.model.presets import PRESETS

        preset = PRESETS.get(self.preset)
        return int(preset.vae.get("temporal_compression_ratio", 8)) if preset is not None else 8


def load_train_config(
    path: Union[str, os.PathLike], stage: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None
) -> TrainConfig:
    """Read a train YAML of any stage; ``stage`` (from the command line) must agree with the file's.

    ``overrides`` (top-level keys) win over the file.  The task knobs are the file's ``task:`` mapping;
    an ``appearance`` config gives them in its own ``appearance:`` section instead (unknown keys are
    named ``appearance.KEY``), one or the other.
    """
    data = read_yaml(path)
    if overrides:
        data = {**data, **overrides}
    section = data.pop("appearance", None)
    cfg = from_dict(data, TrainConfig, source=str(path))
    if section is not None:
        if cfg.stage != "appearance":
            raise ConfigError(f"{path}: an 'appearance:' section belongs to stage 'appearance', not {cfg.stage!r}")
        if "task" in data:
            raise ConfigError(f"{path}: give the appearance task's keys once: in 'appearance:' or in 'task:', not both")
        task = from_dict(section, AppearanceTaskConfig, source=str(path), prefix="appearance")
        cfg = dataclasses.replace(cfg, task=task)
    if stage is not None and cfg.stage != stage:
        raise ConfigError(
            f"{path}: config is for stage {cfg.stage!r} but `mad-sim train {stage}` was asked; "
            f"use the matching config or set stage: {stage}"
        )
    return cfg


# --- helpers ------------------------------------------------------------------------
def step_generators(seed: int, step: int, process: int = 0) -> Tuple[np.random.Generator, torch.Generator]:
    """The data RNG and noise generator of one step of one process (independent of every other step and process).

    Process 0 draws from ``(seed, step)`` exactly as a single-process run
    always has (so runs made before multi-process seeding reproduce); process
    ``k > 0`` from ``(seed, step, 2, k)``.  Without the process index every
    rank of an ``accelerate launch`` would train on the same samples.
    """
    key = [seed, step] if process == 0 else [seed, step, 2, process]
    rng = np.random.default_rng(key)
    gen = torch.Generator().manual_seed(int(np.random.default_rng([*key, 1]).integers(2**62)))
    return rng, gen


def draw_batch(rng: np.random.Generator, train_idx: np.ndarray, batch_size: int) -> np.ndarray:
    """``batch_size`` clip indices of ``train_idx`` (with replacement only when there are fewer clips)."""
    return rng.choice(train_idx, size=batch_size, replace=train_idx.size < batch_size)


def plot_losses(records: List[dict], path: Union[str, os.PathLike], title: str = "") -> None:
    """Write a loss-vs-step PNG (log y axis, raw points + moving average), atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not records:
        return
    steps = np.array([r["step"] for r in records])
    loss = np.array([r["loss"] for r in records])
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps, loss, ".", ms=2, alpha=0.4, label="loss")
    k = max(1, len(loss) // 30)
    if len(loss) >= k > 1:
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1 :], smooth, "-", lw=1.5, label=f"mean of {k}")
    evals = [r for r in records if "eval_loss" in r]
    if evals:
        ax.plot([r["step"] for r in evals], [r["eval_loss"] for r in evals], "o-", ms=3, label="held-out")
    if (loss > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    output_dir: Path
    steps: int
    final_loss: float
    seconds: float
    exported: Dict[str, str]


def mean_over_processes(accelerator: Any, value: float) -> float:
    """The mean of ``value`` over the accelerate processes (``accelerator.gather``; ``value`` on one process).

    float64, so that a single process logs exactly the value it computed.
    """
    t = torch.tensor([value], dtype=torch.float64, device=accelerator.device)
    return float(accelerator.gather(t).mean())


def parts_over_processes(parts: Dict[str, float]) -> Dict[str, float]:
    """Each loss part averaged over the processes that report it (the parts differ: a process's batch may
    hold no clip of a task); :func:`accelerate.utils.gather_object`, the parts themselves on one process."""
    from accelerate.utils import gather_object

    seen: Dict[str, List[float]] = {}
    for one in gather_object([{k: float(v) for k, v in parts.items()}]):
        for k, v in one.items():
            seen.setdefault(k, []).append(v)
    return {k: float(np.mean(v)) for k, v in seen.items()}


@contextmanager
def unwrapped(stage: Any, accelerator: Any) -> Iterator[None]:
    """``stage.module`` as the model itself (``accelerator.unwrap_model``) while the block runs.

    Training calls the module through the wrapper ``accelerator.prepare`` put around it (under several
    processes it synchronises the gradients); saving, evaluating and exporting use the model itself,
    so state names carry no wrapper prefix and an evaluation on the main process alone runs no
    collective that the other processes would have to join.
    """
    wrapped = stage.module
    stage.module = accelerator.unwrap_model(wrapped)
    try:
        yield
    finally:
        stage.module = wrapped


def train(
    cfg: TrainConfig, *, resume: bool = False, progress: bool = True, stop_after: Optional[int] = None, cache=None
) -> TrainResult:
    """Run (or resume) one training stage.

    Args:
      cfg: the run's config.
      resume: continue from the latest checkpoint in ``cfg.output_dir``
        (CheckpointError if there is none or it is corrupt).
      stop_after: stop (with a checkpoint) once this many total steps are done,
        without exporting: the schedule still spans ``cfg.steps`` (used to
        test that an interrupted run resumes bit-exactly).
      cache: an already opened :class:`~mad_sim.model.training.datasets.ClipCache`
        (default: build/open ``cfg.data``).
    """
    from accelerate import Accelerator
    from diffusers.optimization import get_scheduler

    from mad_sim.model.training.datasets import open_dataset
    from mad_sim.model.training.stages import build_stage

    torch.set_num_threads(cfg.threads)
    out = Path(cfg.output_dir)
    ckpt_dir = out / "checkpoints"
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available())
    if cache is None:
        cache = open_dataset(cfg.data, progress=progress and accelerator.is_main_process)
    stage = build_stage(cfg, cache, accelerator.device)
    params = [p for p in stage.module.parameters() if p.requires_grad]
    if not params:
        raise ConfigError(f"stage {cfg.stage!r} has no trainable parameter")
    optimizer = torch.optim.AdamW(
        params, lr=cfg.optim.lr, betas=cfg.optim.betas, eps=cfg.optim.eps, weight_decay=cfg.optim.weight_decay
    )
    scheduler = get_scheduler(
        cfg.optim.schedule, optimizer, num_warmup_steps=cfg.optim.warmup_steps, num_training_steps=cfg.steps
    )
    start, records = 0, []
    if resume:
        found = latest_checkpoint(ckpt_dir)
        if found is None:
            raise CheckpointError(f"{ckpt_dir}: --resume given but there is no checkpoint to resume from")
        ck = load_checkpoint(found)
        stage.load_trainable_state(ck.model)
        if ck.optimizer is None:
            raise CheckpointError(f"{found}: checkpoint holds no optimizer state, cannot resume exactly")
        optimizer.load_state_dict(ck.optimizer)
        if ck.scheduler is not None:
            scheduler.load_state_dict(ck.scheduler)
        start, records = ck.step, list(ck.extra.get("records", []))
        log.info("resumed from %s at step %d", found, start)
    # The scheduler is stepped by hand once per optimizer step (not prepared), so the
    # schedule means the same thing for one process or many.
    stage.module, optimizer = accelerator.prepare(stage.module, optimizer)
    stage.module.train()

    train_idx = cache.indices("train")
    if train_idx.size == 0:
        raise ConfigError("the dataset has no 'train' clip: add a source with split: train")
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    t_start, last_ckpt = time.monotonic(), time.monotonic()
    cfg_dict = to_dict(cfg)

    def checkpoint(step: int) -> None:
        with unwrapped(stage, accelerator):
            if hasattr(stage, "eval_loss") and records and records[-1]["step"] == step:
                records[-1].update(stage.eval_loss())
            state = stage.trainable_state()
        save_checkpoint(
            ckpt_dir,
            step,
            state,
            optimizer=optimizer,
            scheduler=scheduler,
            config=cfg_dict,
            extra={"records": records},
            keep=cfg.keep_checkpoints,
        )
        write_text_atomic(out / "losses.json", json.dumps({"stage": cfg.stage, "records": records}, indent=0))
        plot_losses(records, out / "loss.png", title=f"{cfg.preset} {cfg.stage}")

    bar = tqdm(
        range(start, end),
        initial=start,
        total=end,
        desc=f"train {cfg.stage}",
        disable=not (progress and accelerator.is_main_process),
    )
    loss_value = float("nan")
    window: List[float] = []
    for step in bar:
        rng, gen = step_generators(cfg.seed, step, accelerator.process_index)
        batch = draw_batch(rng, train_idx, cfg.batch_size)
        with accelerator.autocast():
            loss, parts = stage.loss(batch, rng, gen)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss.item()} at step {step}: lower optim.lr or check the data")
        accelerator.backward(loss)
        if cfg.optim.grad_clip > 0:
            accelerator.clip_grad_norm_(params, cfg.optim.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = float(loss.detach())
        window.append(loss_value)
        done = step + 1
        if done % cfg.log_every == 0 or done == end:  # every process gets here at the same steps
            rec = {
                "step": done,
                "loss": mean_over_processes(accelerator, float(np.mean(window))),
                "lr": scheduler.get_last_lr()[0],
                "time": round(time.monotonic() - t_start, 2),
            }
            rec.update(parts_over_processes(parts))
            records.append(rec)
            window = []
            bar.set_postfix(loss=f"{rec['loss']:.4f}")
            log.info("step %d loss %.5f %s", done, rec["loss"], {k: round(v, 5) for k, v in parts.items()})
        periodic = cfg.checkpoint_every and done % cfg.checkpoint_every == 0
        timed = cfg.checkpoint_minutes and time.monotonic() - last_ckpt > 60 * cfg.checkpoint_minutes
        if (periodic or timed or done == end) and accelerator.is_main_process:
            checkpoint(done)
            last_ckpt = time.monotonic()
    accelerator.wait_for_everyone()
    exported: Dict[str, str] = {}
    if end == cfg.steps and accelerator.is_main_process:
        with unwrapped(stage, accelerator):
            exported = {k: str(v) for k, v in stage.export(out / "final").items()}
    return TrainResult(output_dir=out, steps=end, final_loss=loss_value, seconds=time.monotonic() - t_start, exported=exported)
