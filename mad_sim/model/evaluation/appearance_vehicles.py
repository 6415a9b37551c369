"""Are vehicles rendered where the pose video's vehicle skeletons are?  Metrics and the measurement.

The tiny appearance synthesizer should visibly follow the pose: lane
positions, and vehicles where the skeletons are.  This module measures the
vehicle half on the held-out dashcam clips, with the vehicle boxes of the
classical pose extraction that drew the skeletons in the first place
(:func:`~mad_sim.model.appearance.vehicle_masks.vehicle_clips`: per clip the
real frames, the pose frames with and without the vehicle skeletons, and the
box masks ``[F, H, W]`` bool).

Metrics (all on uint8 ``[..., H, W, 3]`` frames; errors in 0-255 grey levels,
averaged over channels and the pixels of a region, pooled over frames):

* :func:`masked_mae`: ``mean |a - b|`` over the pixels where ``mask``.
* ``removed = inpaint_vehicles(real, mask)``: the real frame with each box
  filled from its surroundings (OpenCV Telea inpainting) - the frame as it
  would look without the car.  ``d = real - removed`` is the car's signal.
* :func:`vehicle_gain` of an output pair ``(with, without)``:
  ``g = sum_mask <with - without, d> / sum_mask <d, d>`` - the least-squares
  coefficient of the car signal in the output's response: 1 = the response
  is the real car, 0 = no car-like response (noise or nothing), < 0 = the
  opposite contrast.
* :func:`response_locality`: ``mean |with - without|`` inside the masks and
  outside them, and their ratio (> 1: the response sits on the boxes).

What is measured (:func:`measure_vae`, :func:`measure_synthesizer`):

* VAE: ``r = D(E(real))`` and ``r0 = D(E(removed))``; in-box / out-of-box
  error of ``r`` against the real frames, the error a car-less frame
  (``removed``) has in the boxes, and ``vehicle_gain(r, r0)``: how much of
  the car survives encode -> decode.
* Synthesizer: ``s = synth(pose)`` and ``s0 = synth(pose without vehicles)``
  with the same noise, without and with the first real frame (frame 0, the
  given frame, excluded then); in-box error of both to the real frames,
  ``vehicle_gain(s, s0)`` and the response's locality.

Run ``python -m mad_sim.model.evaluation.appearance_vehicles --out runs/DIR [--vae-decoder FILE] [--lora FILE] [--vae FILE]``
(see :func:`main`): writes ``DIR/vehicles.json`` and ``DIR/vehicles.png``
(real | pose | synthesized | synthesized without vehicles).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from mad_sim.errors import ShapeError
from mad_sim.io import atomic_path, write_text_atomic
from mad_sim.model.appearance.vehicle_masks import VehicleClip, vehicle_clips

log = logging.getLogger(__name__)
PathLike = Union[str, os.PathLike]


# --- metrics ---------------------------------------------------------------------------------
def _check(frames: np.ndarray, masks: np.ndarray, what: str) -> Tuple[np.ndarray, np.ndarray]:
    frames, masks = np.asarray(frames), np.asarray(masks, bool)
    if frames.dtype != np.uint8 or frames.ndim < 3 or frames.shape[-1] != 3 or frames.shape[:-1] != masks.shape:
        raise ShapeError(
            f"{what}: expected uint8 [..., H, W, 3] frames and [..., H, W] masks of the same size, "
            f"got {frames.dtype} {frames.shape} and {masks.shape}"
        )
    return frames, masks


def inpaint_vehicles(frames: np.ndarray, masks: np.ndarray, radius: float = 3.0) -> np.ndarray:
    """Frames ``[..., H, W, 3]`` uint8 with the ``masks`` regions filled from their surroundings (Telea)."""
    frames, masks = _check(frames, masks, "inpaint_vehicles")
    flat_f = frames.reshape((-1,) + frames.shape[-3:])
    flat_m = masks.reshape((-1,) + masks.shape[-2:])
    out = np.stack(
        [
            cv2.inpaint(np.ascontiguousarray(f), m.astype(np.uint8), radius, cv2.INPAINT_TELEA) if m.any() else f
            for f, m in zip(flat_f, flat_m)
        ]
    )
    return out.reshape(frames.shape)


def masked_mae(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """``mean |a - b|`` (grey levels) over channels and the pixels where ``mask``; nan for an empty mask."""
    a, mask = _check(a, mask, "masked_mae")
    b, _ = _check(b, mask, "masked_mae")
    if not mask.any():
        return float("nan")
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64))[mask].mean())


def vehicle_gain(with_v: np.ndarray, without_v: np.ndarray, real: np.ndarray, removed: np.ndarray, mask: np.ndarray) -> float:
    """``sum_mask <with - without, real - removed> / sum_mask |real - removed|^2`` (module doc); nan if no signal."""
    arrs = [_check(x, mask, "vehicle_gain")[0].astype(np.float64) for x in (with_v, without_v, real, removed)]
    m = np.asarray(mask, bool)
    resp, sig = (arrs[0] - arrs[1])[m], (arrs[2] - arrs[3])[m]
    den = float((sig * sig).sum())
    return float((resp * sig).sum() / den) if den > 0 else float("nan")


def response_locality(with_v: np.ndarray, without_v: np.ndarray, mask: np.ndarray) -> Dict[str, float]:
    """``{"inside", "outside"}``: ``mean |with - without|`` in / out of ``mask``, and ``"ratio"`` inside / outside."""
    a, m = _check(with_v, mask, "response_locality")
    b, _ = _check(without_v, mask, "response_locality")
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    inside = float(diff[m].mean()) if m.any() else float("nan")
    outside = float(diff[~m].mean()) if (~m).any() else float("nan")
    return {"inside": inside, "outside": outside, "ratio": inside / max(outside, 1e-6)}


def _pooled(pairs: Sequence[Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> Dict[str, float]:
    """Pool ``(with, without, real, removed, mask)`` over clips: in-box errors, gain, locality."""
    cat = [np.concatenate([p[i] for p in pairs]) for i in range(5)]
    w, wo, real, removed, m = cat
    return {
        "mae_in_with": masked_mae(w, real, m),
        "mae_in_without": masked_mae(wo, real, m),
        "mae_out_with": masked_mae(w, real, ~m),
        "gain": vehicle_gain(w, wo, real, removed, m),
        **{f"response_{k}": v for k, v in response_locality(w, wo, m).items()},
    }


# --- measurements ----------------------------------------------------------------------------
def _recon(backbone, video: np.ndarray) -> np.ndarray:
    import torch

    from mad_sim.model.conditioning import video_to_uint8
    from mad_sim.model.training.stage_io import videos_to_tensor

    with torch.no_grad():
        lat = backbone.encode_video(videos_to_tensor(video[None], backbone.device))
        return video_to_uint8(backbone.decode_latents(lat).float().clamp(-1, 1).cpu()).numpy()[0]


def measure_vae(backbone, vclips: Sequence[VehicleClip]) -> Dict[str, float]:
    """VAE-only scores (module doc): ``mae_in`` / ``mae_out`` of ``D(E(real))`` against real, ``mae_in_removed``
    (car-less frames against real, in the boxes), ``gain`` of ``(D(E(real)), D(E(removed)))`` and its locality."""
    pairs = []
    for c in vclips:
        removed = inpaint_vehicles(c.rgb, c.masks)
        pairs.append((_recon(backbone, c.rgb), _recon(backbone, removed), c.rgb, removed, c.masks))
    p = _pooled(pairs)
    real = np.concatenate([c.rgb for c in vclips])
    masks = np.concatenate([c.masks for c in vclips])
    removed = np.concatenate([q[3] for q in pairs])
    return {
        "mae_in": p["mae_in_with"],
        "mae_out": p["mae_out_with"],
        "mae_in_removed": masked_mae(removed, real, masks),
        "mae_in_recon_removed": p["mae_in_without"],
        "gain": p["gain"],
        "response_inside": p["response_inside"],
        "response_outside": p["response_outside"],
        "response_ratio": p["response_ratio"],
        "box_pixel_fraction": float(masks.mean()),
        "clips": len(vclips),
    }


def measure_synthesizer(
    synth, vclips: Sequence[VehicleClip], first_frame: bool, steps: int = 8, seed: int = 0
) -> Tuple[Dict[str, float], List[Tuple[np.ndarray, np.ndarray]]]:
    """Synthesizer scores (module doc) and the ``(with, without)`` outputs per clip.

    Clip ``i`` draws its noise from ``torch.Generator`` seed ``seed + i`` for both pose videos.
    """
    import torch

    pairs, outs = [], []
    for i, c in enumerate(vclips):
        first = c.rgb[0] if first_frame else None
        s = [
            synth.synthesize(p, first_frame=first, steps=steps, generator=torch.Generator().manual_seed(seed + i))
            for p in (c.pose, c.pose_without)
        ]
        outs.append((s[0], s[1]))
        k = 1 if first_frame else 0  # the given frame is the real one, not synthesized
        pairs.append((s[0][k:], s[1][k:], c.rgb[k:], inpaint_vehicles(c.rgb[k:], c.masks[k:]), c.masks[k:]))
    return {**_pooled(pairs), "clips": len(vclips), "first_frame": bool(first_frame)}, outs


def vehicle_comparison_image(
    clip: VehicleClip,
    synthesized: np.ndarray,
    without: np.ndarray,
    path: PathLike,
    frames: Optional[Sequence[int]] = None,
    scale: int = 3,
) -> np.ndarray:
    """Write (atomically) and return a PNG grid, one row per frame: real | pose | synthesized | synthesized
    without vehicles, the vehicle boxes outlined in red on the real column."""
    real = clip.rgb.copy()
    for k in range(len(real)):
        for u0, v0, u1, v1 in clip.boxes[k]:
            cv2.rectangle(real[k], (int(u0), int(v0)), (int(np.ceil(u1)) - 1, int(np.ceil(v1)) - 1), (255, 0, 0), 1)
    f = len(real)
    rows_idx = list(frames) if frames is not None else sorted(set(np.linspace(0, f - 1, 4).round().astype(int)))
    sep = np.full((real.shape[1], 2, 3), 255, np.uint8)
    rows = [np.concatenate([real[k], sep, clip.pose[k], sep, synthesized[k], sep, without[k]], 1) for k in rows_idx]
    grid = np.repeat(np.repeat(np.concatenate(rows, 0), scale, 0), scale, 1)
    with atomic_path(path, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), grid[..., ::-1]):
            raise ShapeError(f"{path}: OpenCV could not write the image")
    return grid


# --- entry point -----------------------------------------------------------------------------
def _load(preset: str, weights: Optional[str], vae_decoder: Optional[str], lora: Optional[str]):
    from mad_sim.model.appearance.synthesizer import AppearanceSynthesizer
    from mad_sim.model.backbone import read_safetensors

    synth = AppearanceSynthesizer.from_pretrained(preset, lora=lora, device="cpu", weights=weights)
    if vae_decoder:
        p = Path(vae_decoder)
        sd = read_safetensors(p / "model.safetensors" if p.is_dir() else p)
        dec = {k[len("decoder.") :]: v for k, v in sd.items() if k.startswith("decoder.")}
        synth.backbone.vae.decoder.load_state_dict(dec, strict=True)
        log.info("decoder replaced from %s (%d tensors)", p, len(dec))
    return synth


def _vae_only(out: Path, preset: str, vae: str, vclips: List[VehicleClip]) -> Dict[str, object]:
    """:func:`measure_vae` of the VAE state dict ``vae`` in preset ``preset``'s architecture."""
    from mad_sim.model.backbone import read_safetensors
    from mad_sim.model.backbone_loading import load_backbone

    backbone = load_backbone(preset, weights="random", device="cpu")
    p = Path(vae)
    backbone.vae.load_state_dict(read_safetensors(p / "model.safetensors" if p.is_dir() else p), strict=True)
    res: Dict[str, object] = {
        "vae": measure_vae(backbone, vclips),
        "vae_weights": str(p),
        "clips": [c.index for c in vclips],
        "box_frames": int(sum(c.masks.any(axis=(1, 2)).sum() for c in vclips)),
    }
    write_text_atomic(out / "vehicles.json", json.dumps(res, indent=1))
    return res


def run(
    out: PathLike,
    preset: str = "tiny",
    weights: Optional[str] = None,
    vae_decoder: Optional[str] = None,
    lora: Optional[str] = None,
    steps: int = 8,
    seed: int = 0,
    clip_for_image: int = 0,
    vae: Optional[str] = None,
) -> Dict[str, object]:
    """All measurements on the held-out dashcam clips; writes ``out/vehicles.json`` and ``out/vehicles.png``.

    ``vae``: a whole VAE state dict (a ``vae`` stage export or checkpoint folder): measure that VAE
    alone (the ``vae`` entry; no synthesizer, no image), e.g. a VAE no backbone has been trained on yet.
    """
    from mad_sim.model.training.appearance_clips import (
        AppearanceClips,
        AppearanceClipSpec,
        build_appearance_clips,
        shared_data_sources,
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clips = AppearanceClips(build_appearance_clips(**shared_data_sources(), spec=AppearanceClipSpec(), progress=False))
    vclips = vehicle_clips(clips, "eval")
    if vae:
        return _vae_only(out, preset, vae, vclips)
    synth = _load(preset, weights, vae_decoder, lora)
    res: Dict[str, object] = {
        "weights": weights or "shipped",
        "vae_decoder": vae_decoder,
        "lora": lora or "shipped",
        "steps": steps,
        "seed": seed,
        "clips": [c.index for c in vclips],
        "box_frames": int(sum(c.masks.any(axis=(1, 2)).sum() for c in vclips)),
        "vae": measure_vae(synth.backbone, vclips),
    }
    for first in (False, True):
        scores, outs = measure_synthesizer(synth, vclips, first, steps, seed)
        res["synth_first_frame" if first else "synth_no_first_frame"] = scores
        if not first:
            c = vclips[clip_for_image]
            vehicle_comparison_image(c, outs[clip_for_image][0], outs[clip_for_image][1], out / "vehicles.png")
    write_text_atomic(out / "vehicles.json", json.dumps(res, indent=1))
    return res


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description="Vehicles where the skeletons are: VAE and synthesizer on held-out clips")
    p.add_argument("--out", required=True)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--weights", help="backbone file (default: the shipped one)")
    p.add_argument("--vae-decoder", help="VAE state dict (file or checkpoint folder) whose decoder replaces the backbone's")
    p.add_argument("--lora", help="appearance adapter file (default: the shipped one)")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vae", help="measure this whole VAE state dict (file or checkpoint folder) alone: no synthesizer")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    res = run(a.out, a.preset, a.weights, a.vae_decoder, a.lora, a.steps, a.seed, vae=a.vae)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
