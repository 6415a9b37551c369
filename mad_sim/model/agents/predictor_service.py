"""One motion predictor shared by many consumers, one diffusion call per batch of requests.

Learned agents (:mod:`mad_sim.model.agents.learned`) and the MAD planner do
not call the sampler themselves: they hand a :class:`ForecastRequest` (pose
history, optional ego-motion video, a noise seed) to a
:class:`PredictorService`, which stacks every request of the same geometry
into ONE batched :meth:`MADModel.sample <mad_sim.model.mad.MADModel.sample>`
call (given each request's initial noise).  A vector of envs therefore costs
one diffusion call per chunk, not one per env, when it is
:class:`mad_sim.envs.vector.MADVectorEnv` (``gymnasium.make_vec("MADDrive-v0",
num_envs=n, vectorization_mode="vector_entry_point", agents="mad")``).

Determinism: each request carries its own seed; its initial noise
``[C, f, h, w]`` is drawn from ``torch.Generator().manual_seed(seed)`` alone,
so a request gives the same frames whether it is sampled alone or inside a
batch (up to float rounding of batched matmuls, below one grey level).

Speed: a service that owns its model (:func:`shared_service`) merges the
motion LoRA into the base weights once (``W + (alpha / r) B A``, peft's
``merge``), so each linear layer runs one matmul instead of three; the result
equals the unmerged adapter up to float rounding (tests: below one grey
level).  The model must then not be used with another adapter.
``precision="bfloat16"`` runs the sampler call under
``torch.autocast("cpu", torch.bfloat16)``: about 1.6x less CPU time on CPUs
with AVX512-BF16, with frames that differ from float32 by about 0.5 grey
levels on average (measured on the random tiny model), but about 9x MORE on
an AVX2-only CPU, which emulates bf16.  ``precision="auto"`` (the default)
therefore picks bfloat16 only on CPUs with native bf16
(:func:`mad_sim.model.cpu_paths.resolve_precision`), float32 elsewhere; the
service reports its choice in :attr:`PredictorService.precision_why`.

Weights: :func:`load_predictor` loads the shipped weights
(``mad_sim/weights/<preset>.safetensors`` + ``<preset>_motion.safetensors``)
for ``weights="auto"`` / ``"shipped"`` and a base file for a path; a file
that is missing or unreadable (the shipped ones, a base path, a ``lora=``
path) is a :class:`~mad_sim.errors.CheckpointError`.  Random untrained
weights only when asked for: ``weights="random"``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from mad_sim.errors import CheckpointError, ConfigError, ShapeError

log = logging.getLogger(__name__)

PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16}
"""Sampler precision -> autocast dtype (None: plain float32); ``auto`` resolves to one of them."""


@dataclass
class ForecastRequest:
    """One forecast to run.

    Attributes:
      history: uint8 ``[F_h, H, W, 3]`` pose frames, oldest first, last = present.
      ego_motion: uint8 ``[F, H, W, 3]`` ego-motion video of the future span, or None
        (unconditional: the model imagines the ego's motion too).
      num_frames: ``F``, frames to generate (``tk+1``: 4k+1 for tiny, 8k+1 for LTX-Video).
      seed: seeds this request's initial noise.
      prior: uint8 ``[F, H, W, 3]`` pose frames of a prior future (e.g. every agent at constant
        velocity, seen from the ego's intended path), or None.
      prior_strength: with a prior, the share of the sampler's schedule that runs from the prior
        noised to that level (SDEdit, :func:`~mad_sim.model.sampling.denoise`): 1.0 ignores the prior,
        smaller values keep more of it.
    """

    history: np.ndarray
    ego_motion: Optional[np.ndarray]
    num_frames: int
    seed: int
    prior: Optional[np.ndarray] = None
    prior_strength: float = 1.0

    def key(self) -> Tuple:
        """Requests with equal keys are sampled in one batch."""
        uses_prior = self.prior is not None and self.prior_strength < 1.0
        return (
            tuple(self.history.shape),
            None if self.ego_motion is None else tuple(self.ego_motion.shape),
            int(self.num_frames),
            float(self.prior_strength) if uses_prior else None,
        )


@dataclass
class ServiceStats:
    """Counters: sampler calls, requests served, wall seconds inside the sampler."""

    calls: int = 0
    requests: int = 0
    seconds: float = 0.0
    batch_sizes: List[int] = field(default_factory=list)


def load_predictor(
    preset: str = "tiny", weights: str = "auto", lora: Optional[str] = None, device: Optional[str] = None, seed: int = 0
):
    """A :class:`~mad_sim.model.motion.MotionPredictor` and a description of the weights it runs.

    Args:
      preset: backbone preset (``tiny`` is the embedded one).
      weights: ``"auto"`` / ``"shipped"`` (the shipped base and motion LoRA),
        ``"random"`` (seeded random init: a no-op motion adapter, or ``lora`` when given),
        or a path to a base safetensors file.
      lora: motion LoRA file (default: the shipped ``<preset>_motion.safetensors``).

    Raises:
      CheckpointError: a named or shipped file is missing or unreadable; never a silent random model.
    """
    from mad_sim.model.backbone import WEIGHTS_DIR, shipped_weights
    from mad_sim.model.backbone_loading import load_backbone
    from mad_sim.model.mad import MADModel
    from mad_sim.model.motion import MotionPredictor

    if lora is not None and not Path(lora).is_file():
        raise CheckpointError(
            f"{lora}: motion LoRA file not found (lora=); train one with `mad-sim train motion` "
            f"or leave lora out for the shipped one"
        )
    if weights == "random":
        model = MADModel(load_backbone(preset, device=device, weights="random", seed=seed))
        if lora is None:
            model.add_adapter("motion", rank=8, alpha=8)
            return MotionPredictor(model, "motion"), "random"
        _load_lora(model, Path(lora))
        return MotionPredictor(model, "motion"), f"random + {lora}"
    lora_path = Path(lora) if lora is not None else WEIGHTS_DIR / f"{preset}_motion.safetensors"
    if weights in ("auto", "shipped"):
        missing = [str(p) for p in (shipped_weights(preset), lora_path) if not p.is_file()]
        if missing:
            raise CheckpointError(
                f"no shipped {preset} weights ({', '.join(missing)} missing): pass weights=PATH "
                f"and lora=PATH, or weights='random' for an untrained model"
            )
        base = None
    else:
        if not Path(weights).is_file():
            raise CheckpointError(f"{weights}: base weights file not found (weights=)")
        base = weights
    model = MADModel(load_backbone(preset, device=device, weights=base))
    if not lora_path.is_file():
        raise CheckpointError(
            f"{lora_path}: motion adapter not found; train it with `mad-sim train motion`, "
            f"pass lora=PATH, or use weights='random'"
        )
    _load_lora(model, lora_path)
    return MotionPredictor(model, "motion"), f"{base or shipped_weights(preset)} + {lora_path}"


def _load_lora(model, path: Path) -> None:
    """Load ``path`` as the motion adapter; an unreadable file is a CheckpointError naming it."""
    try:
        model.load_adapter("motion", path)
    except CheckpointError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{path}: cannot read the motion LoRA ({type(exc).__name__}: {exc})") from exc


class PredictorService:
    """Batched forecasts over one :class:`~mad_sim.model.motion.MotionPredictor`.

    Args:
      predictor: the motion predictor (its active adapter is used).
      steps: sampler steps per forecast.
      threads: torch intra-op threads to use while sampling (None: leave torch's setting).
      merge_lora: merge the adapter into the base weights for inference (only when the
        service owns the model: the model then serves this adapter alone).
      precision: ``auto`` (bfloat16 on CPUs with native bf16, else float32: module doc), ``float32`` or
        ``bfloat16`` (CPU autocast of the whole sampler call); :attr:`precision` holds the one used and
        :attr:`precision_why` why.
    """

    def __init__(
        self,
        predictor,
        steps: Optional[int] = None,
        threads: Optional[int] = None,
        weights_info: str = "",
        merge_lora: bool = False,
        precision: str = "auto",
    ) -> None:
        from mad_sim.model.cpu_paths import resolve_precision

        if precision != "auto" and precision not in PRECISIONS:
            raise ConfigError(f"predictor precision {precision!r} is not one of {['auto', *sorted(PRECISIONS)]}")
        self.precision, self.precision_why = resolve_precision(precision, predictor.model.backbone.device)
        self.predictor = predictor
        self.steps = int(steps) if steps is not None else predictor.model.backbone.config.sampler_steps
        self.threads = threads
        self.weights_info = weights_info
        self.stats = ServiceStats()
        self._lock = threading.Lock()
        self.merged = merge_adapter(predictor.model, predictor.adapter) if merge_lora else 0

    def forecast(self, requests: Sequence[ForecastRequest]) -> List[np.ndarray]:
        """Future frames ``[F, H, W, 3]`` uint8 for every request, in order; one sampler call per geometry."""
        out: List[Optional[np.ndarray]] = [None] * len(requests)
        groups: Dict[Tuple, List[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.key(), []).append(i)
        for idx in groups.values():
            frames = self._run([requests[i] for i in idx])
            for j, i in enumerate(idx):
                out[i] = frames[j]
        return out  # type: ignore[return-value]

    @torch.no_grad()
    def _run(self, reqs: List[ForecastRequest]) -> np.ndarray:
        from mad_sim.model.conditioning import Condition, uint8_to_video, video_to_uint8

        with self._lock:
            t0 = time.perf_counter()
            old_threads = torch.get_num_threads()
            if self.threads:
                torch.set_num_threads(int(self.threads))
            autocast = PRECISIONS[self.precision]
            try:
                model = self.predictor.model
                bb = model.backbone
                hist = np.stack([r.history for r in reqs])
                if hist.dtype != np.uint8 or hist.ndim != 5 or hist.shape[-1] != 3:
                    raise ShapeError(f"pose history must be uint8 [F_h, H, W, 3], got {hist.dtype} {hist.shape[1:]}")
                b, _, h, w, _ = hist.shape
                f = int(reqs[0].num_frames)
                bb.check_size(f, h, w, what="forecast")
                device = bb.device
                conds = [Condition(uint8_to_video(torch.from_numpy(hist)).to(device), "pose_history")]
                if reqs[0].ego_motion is not None:
                    ego = np.stack([r.ego_motion for r in reqs])
                    if ego.shape[1:4] != (f, h, w):
                        raise ShapeError(f"ego_motion: {ego.shape[1:4]} frames x size, expected ({f}, {h}, {w})")
                    conds.append(Condition(uint8_to_video(torch.from_numpy(ego)).to(device), "ego_motion"))
                init, strength = None, 1.0
                if reqs[0].prior is not None and reqs[0].prior_strength < 1.0:
                    prior = np.stack([r.prior for r in reqs])  # type: ignore[misc]
                    if prior.dtype != np.uint8 or prior.shape[1:4] != (f, h, w):
                        raise ShapeError(f"prior: {prior.dtype} {prior.shape[1:]}, expected uint8 ({f}, {h}, {w}, 3)")
                    init, strength = uint8_to_video(torch.from_numpy(prior)).to(device), float(reqs[0].prior_strength)
                if not self.merged:
                    model.set_adapter(self.predictor.adapter)
                shape = tuple(bb.latent_shape(f, h, w))
                noise = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(r.seed))) for r in reqs]).to(
                    device
                )
                with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                    video = model.sample(
                        conds,
                        num_frames=f,
                        height=h,
                        width=w,
                        steps=self.steps,
                        latents=noise,
                        init_video=init,
                        strength=strength,
                    )
                frames = video_to_uint8(video.cpu()).numpy()
            finally:
                if self.threads:
                    torch.set_num_threads(old_threads)
            dt = time.perf_counter() - t0
            self.stats.calls += 1
            self.stats.requests += b
            self.stats.seconds += dt
            self.stats.batch_sizes.append(b)
            log.debug("forecast batch %d x %d frames %dx%d in %.3f s", b, f, h, w, dt)
            return frames


def merge_adapter(model, name: str) -> int:
    """Merge LoRA adapter ``name`` of a :class:`~mad_sim.model.mad.MADModel` into its base weights; layers merged.

    Each LoRA linear ``y = W x + (alpha / r) B A x`` becomes ``y = W' x`` with
    ``W' = W + (alpha / r) B A`` (peft's ``LoraLayer.merge``); its forward then
    calls the base layer alone.  Irreversible for this service's purposes (the
    model serves ``name`` only afterwards).
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    model.set_adapter(name)
    n = 0
    for layer in model.denoiser.modules():
        if isinstance(layer, BaseTunerLayer) and name in getattr(layer, "lora_A", {}):
            layer.merge(adapter_names=[name])
            n += 1
    log.debug("merged adapter %r into %d layers", name, n)
    return n


_SHARED: Dict[Tuple, PredictorService] = {}


def shared_service(
    preset: str = "tiny",
    weights: str = "auto",
    lora: Optional[str] = None,
    device: Optional[str] = None,
    steps: Optional[int] = None,
    threads: Optional[int] = None,
    merge_lora: bool = True,
    precision: str = "auto",
) -> PredictorService:
    """The process-wide service for these settings (the model is loaded once and shared by every env).

    ``steps`` None: the preset's sampler steps (:attr:`~mad_sim.model.presets.Preset.sampler_steps`).
    """
    if precision != "auto" and precision not in PRECISIONS:
        raise ConfigError(f"predictor precision {precision!r} is not one of {['auto', *sorted(PRECISIONS)]}")
    key = (preset, str(weights), None if lora is None else str(lora), device, steps, threads, bool(merge_lora), precision)
    svc = _SHARED.get(key)
    if svc is None:
        predictor, info = load_predictor(preset, weights, lora, device)
        svc = PredictorService(
            predictor, steps=steps, threads=threads, weights_info=info, merge_lora=merge_lora, precision=precision
        )
        _SHARED[key] = svc
    return svc
