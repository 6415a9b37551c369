"""One motion predictor shared by many consumers, one diffusion call per batch of requests.

Learned agents (:mod:`mad_sim.model.agents.learned`) and the MAD planner do
not call the sampler themselves: they hand a :class:`ForecastRequest` (pose
history, optional ego-motion video, a noise seed) to a
:class:`PredictorService`, which stacks every request of the same geometry
into ONE batched sampler call.  A vector of envs
therefore costs one diffusion call per chunk, not one per env, when it is this
module's ``MADVectorEnv`` (made on first access, so gymnasium is imported only
then; :func:`make_mad_vector_env` builds one); :func:`mad_sim.envs.make_vec`
gives a plain ``SyncVectorEnv`` that does not batch.

Determinism: each request carries its own seed; its initial noise
``[C, f, h, w]`` is drawn from ``torch.Generator().manual_seed(seed)`` alone,
so a request gives the same frames whether it is sampled alone or inside a
batch (up to float rounding of batched matmuls, below one grey level).

Speed: a service that owns its model (:func:`shared_service`) merges the
motion LoRA into the base weights once (``W + (alpha / r) B A``, peft's
``merge``), so each linear layer runs one matmul instead of three; the result
equals the unmerged adapter up to float rounding (tests: below one grey
level).  The model must then not be used with another adapter.
``precision="bfloat16"`` (opt-in, not the default) runs the sampler call
under ``torch.autocast("cpu", torch.bfloat16)``: about 1.6x less CPU time
on CPUs with AVX512-BF16, with frames that differ from float32 by about 0.5
grey levels on average (measured on the random tiny model; check it on
trained weights before relying on it).

Weights: :func:`load_predictor` picks the shipped tiny weights
(``mad_sim/weights/<preset>.safetensors`` + ``<preset>_motion.safetensors``)
when both exist (``weights="auto"``), else a seeded random init with a
warning; ``weights="random"`` forces the random init (tests), a path loads
that base file.
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
"""Sampler precision -> autocast dtype (None: plain float32)."""


@dataclass
class ForecastRequest:
    """One forecast to run.

    Attributes:
      history: uint8 ``[F_h, H, W, 3]`` pose frames, oldest first, last = present.
      ego_motion: uint8 ``[F, H, W, 3]`` ego-motion video of the future span, or None
        (unconditional: the model imagines the ego's motion too).
      num_frames: ``F``, frames to generate (8k+1 for LTX presets).
      seed: seeds this request's initial noise.
    """

    history: np.ndarray
    ego_motion: Optional[np.ndarray]
    num_frames: int
    seed: int

    def key(self) -> Tuple:
        """Requests with equal keys are sampled in one batch."""
        return (tuple(self.history.shape), None if self.ego_motion is None else tuple(self.ego_motion.shape),
                int(self.num_frames))


@dataclass
class ServiceStats:
    """Counters: sampler calls, requests served, wall seconds inside the sampler."""

    calls: int = 0
    requests: int = 0
    seconds: float = 0.0
    batch_sizes: List[int] = field(default_factory=list)


def load_predictor(preset: str = "tiny", weights: str = "auto", lora: Optional[str] = None,
                   device: Optional[str] = None, seed: int = 0):
    """A :class:`~mad_sim.model.motion.MotionPredictor` and a description of the weights it runs.

    Args:
      preset: backbone preset (``tiny`` is the embedded one).
      weights: ``"auto"`` (shipped weights if both the base and the motion LoRA
        files exist, else random), ``"shipped"`` (CheckpointError if missing),
        ``"random"`` (seeded random init with a no-op motion adapter), or a
        path to a base safetensors file.
      lora: motion LoRA file (default: the shipped ``<preset>_motion.safetensors``).
    """
    from mad_sim.model.backbone import WEIGHTS_DIR, shipped_weights
    from mad_sim.model.backbone_loading import load_backbone
    from mad_sim.model.mad import MADModel
    from mad_sim.model.motion import MotionPredictor

    lora_path = Path(lora) if lora is not None else WEIGHTS_DIR / f"{preset}_motion.safetensors"
    if weights == "auto":
        have = shipped_weights(preset).is_file() and lora_path.is_file()
        if not have:
            log.warning("no shipped %s weights (%s, %s): learned agents run a RANDOM untrained model", preset,
                        shipped_weights(preset), lora_path)
        weights = "shipped" if have else "random"
    if weights == "random":
        model = MADModel(load_backbone(preset, device=device, weights="random", seed=seed))
        model.add_adapter("motion", rank=8, alpha=8)
        return MotionPredictor(model, "motion"), "random"
    base = None if weights == "shipped" else weights
    model = MADModel(load_backbone(preset, device=device, weights=base))
    if not lora_path.is_file():
        raise CheckpointError(f"{lora_path}: motion adapter not found; train it with `mad-sim train motion`, "
                              f"pass lora=PATH, or use weights='random'")
    model.load_adapter("motion", lora_path)
    return MotionPredictor(model, "motion"), f"{base or shipped_weights(preset)} + {lora_path}"


class PredictorService:
    """Batched forecasts over one :class:`~mad_sim.model.motion.MotionPredictor`.

    Args:
      predictor: the motion predictor (its active adapter is used).
      steps: sampler steps per forecast.
      threads: torch intra-op threads to use while sampling (None: leave torch's setting).
      merge_lora: merge the adapter into the base weights for inference (only when the
        service owns the model: the model then serves this adapter alone).
      precision: ``float32`` or ``bfloat16`` (CPU autocast of the whole sampler call).
    """

    def __init__(self, predictor, steps: int = 4, threads: Optional[int] = None, weights_info: str = "",
                 merge_lora: bool = False, precision: str = "float32") -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"predictor precision {precision!r} is not one of {sorted(PRECISIONS)}")
        self.precision = precision
        self.predictor = predictor
        self.steps = int(steps)
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
        from mad_sim.model.sampling import denoise

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
                if not self.merged:
                    model.set_adapter(self.predictor.adapter)
                shape = tuple(bb.latent_shape(f, h, w))
                noise = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(r.seed)))
                                     for r in reqs]).to(device)
                with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                    lat_conds = model.encode_conditions(conds, batch=b)
                    embeds, mask = bb.encode_prompts(None, b)
                    latents = denoise(model.denoiser, bb.scheduler, (b,) + shape, lat_conds, embeds, mask,
                                      steps=self.steps, device=device, latents=noise)
                    video = bb.decode_latents(latents.to(bb.dtype)).float().clamp(-1.0, 1.0)
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


def shared_service(preset: str = "tiny", weights: str = "auto", lora: Optional[str] = None,
                   device: Optional[str] = None, steps: int = 4, threads: Optional[int] = None,
                   merge_lora: bool = True, precision: str = "float32") -> PredictorService:
    """The process-wide service for these settings (the model is loaded once and shared by every env)."""
    key = (preset, str(weights), None if lora is None else str(lora), device, int(steps), threads, bool(merge_lora),
           precision)
    svc = _SHARED.get(key)
    if svc is None:
        if precision not in PRECISIONS:
            raise ConfigError(f"predictor precision {precision!r} is not one of {sorted(PRECISIONS)}")
        predictor, info = load_predictor(preset, weights, lora, device)
        svc = PredictorService(predictor, steps=steps, threads=threads, weights_info=info, merge_lora=merge_lora,
                               precision=precision)
        _SHARED[key] = svc
    return svc


def make_mad_vector_env(num_envs: int, **env_kwargs):
    """``num_envs`` copies of ``gym.make("MADDrive-v0", agents="mad", **env_kwargs)`` as a :class:`MADVectorEnv`."""
    import gymnasium as gym

    import mad_sim  # noqa: F401  (registers the env)

    env_kwargs.setdefault("agents", "mad")
    return _vector_env_class()([(lambda: gym.make("MADDrive-v0", **env_kwargs)) for _ in range(int(num_envs))])


def _vector_env_class():
    import gymnasium as gym
    from gymnasium.vector.utils import iterate

    class _MADVectorEnv(gym.vector.SyncVectorEnv):
        """A ``SyncVectorEnv`` whose learned agents share ONE batched sampler call per step.

        Before the envs step, every env's learned-agent policy is asked
        whether this step needs a prediction (:meth:`LearnedAgents.prepare`,
        given the env's action and the ego step it produces); the requests
        of all envs go to their shared :class:`PredictorService` together,
        and each policy receives its frames.  The envs then step as usual
        (their own prediction is already there).  Envs whose agents are not
        learned are stepped unchanged.  Autoreset is Gymnasium's default
        (next step).
        """

        def step(self, actions):
            pending = []
            for i, (env, action) in enumerate(zip(self.envs, iterate(self.action_space, actions))):
                if self._autoreset_envs[i]:
                    continue
                base = env.unwrapped
                policy = getattr(getattr(base, "_stream", None), "policy", None)
                if base.state is None or not hasattr(policy, "prepare") or not hasattr(policy, "service"):
                    continue
                e = base.state.ego()
                nxt = base.adapter.step(e.xy[0].copy(), float(e.heading[0]), base._speed, action)
                req = policy.prepare(base.state, action, nxt)
                if req is not None:
                    pending.append((policy, req))
            by_service: Dict[int, List] = {}
            for policy, req in pending:
                by_service.setdefault(id(policy.service), []).append((policy, req))
            for group in by_service.values():
                frames = group[0][0].service.forecast([r for _, r in group])
                for (policy, _), f in zip(group, frames):
                    policy.accept(f)
            return super().step(actions)

    return _MADVectorEnv


def __getattr__(name: str):
    if name == "MADVectorEnv":
        cls = _vector_env_class()
        globals()["MADVectorEnv"] = cls
        return cls
    raise AttributeError(name)
