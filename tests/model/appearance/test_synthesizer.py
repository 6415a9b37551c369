"""AppearanceSynthesizer and RGBChunkCache on a random-init tiny backbone (shapes, conditioning, errors)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mad_sim.errors import ConfigError, PresetError, ShapeError
from mad_sim.model.appearance.synthesizer import AppearanceSynthesizer, RGBChunkCache, check_prompt
from mad_sim.model.conditioning import pose_patch_mask, uint8_to_video
from mad_sim.model.mad import MADModel

F, H, W = 9, 64, 64  # the adapter renders what it is built for; 64 px keeps the tests quick


@pytest.fixture(scope="module")
def synth():
    from mad_sim.model.backbone_loading import load_backbone

    model = MADModel(load_backbone("tiny", weights="random", device="cpu", seed=0))
    model.add_adapter("appearance", rank=8, alpha=8)
    return AppearanceSynthesizer(model, size=(H, W))


@pytest.fixture(scope="module")
def pose_clip():
    """A real pose clip: the classical extractor on the first frames of the dashcam video, at 10 Hz."""
    from mad_sim.data.camera_files import read_video
    from mad_sim.model.appearance.pose_extract import extract_pose_video, resize_frames
    from tests.conftest import data_file

    frames, _ = read_video(data_file("video/solidWhiteRight.mp4"), max_frames=2 + 5 * (F - 1) // 2)
    idx = np.round(np.arange(F) * 2.5).astype(int)
    return resize_frames(frames[idx], W, H), extract_pose_video(frames, width=W, height=H)[idx]


def test_synthesize_shapes_hard_first_frame_and_determinism(synth, pose_clip):
    rgb, pose = pose_clip
    out = synth.synthesize(pose, first_frame=rgb[0], prompt="sunny highway", steps=2, generator=torch.Generator().manual_seed(3))
    assert out.shape == (F, H, W, 3) and out.dtype == np.uint8
    assert np.array_equal(out[0], rgb[0])  # frame 0 is the hard condition
    again = synth.synthesize(
        pose, first_frame=rgb[0], prompt="sunny highway", steps=2, generator=torch.Generator().manual_seed(3)
    )
    assert np.array_equal(out, again)
    other = synth.synthesize(pose, first_frame=rgb[0], prompt="rainy night", steps=2, generator=torch.Generator().manual_seed(3))
    assert not np.array_equal(out[1:], other[1:])  # the prompt reaches the model
    moved = synth.synthesize(
        np.roll(pose, 8, axis=2), first_frame=rgb[0], prompt="sunny highway", steps=2, generator=torch.Generator().manual_seed(3)
    )
    assert not np.array_equal(out[1:], moved[1:])  # and so does the pose video


def test_batched_input(synth, pose_clip):
    _, pose = pose_clip
    out = synth.synthesize(np.stack([pose, pose]), steps=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, F, H, W, 3)


def test_steps_and_guidance_default_to_the_preset(synth, pose_clip, monkeypatch):
    """Without ``steps`` / ``guidance_scale`` the sampler runs the preset's ``sampler_steps`` / ``guidance_scale``
    (as ``MADModel.sample`` does), not a fixed 4 steps without guidance."""
    import dataclasses

    _, pose = pose_clip
    bb = synth.backbone
    monkeypatch.setattr(bb, "config", dataclasses.replace(bb.config, sampler_steps=3, guidance_scale=2.0))
    seen = []
    sample = synth._sample

    def spy(*args, **kwargs):
        seen.append((args[5], args[8]))  # (steps, guidance_scale), positional as synthesize passes them
        return sample(*args, **kwargs)

    monkeypatch.setattr(synth, "_sample", spy)
    out = synth.synthesize(pose, prompt="dusk", generator=torch.Generator().manual_seed(1))
    same = synth.synthesize(pose, prompt="dusk", steps=3, guidance_scale=2.0, generator=torch.Generator().manual_seed(1))
    given = synth.synthesize(pose, prompt="dusk", steps=2, guidance_scale=1.0, generator=torch.Generator().manual_seed(1))
    assert seen == [(3, 2.0), (3, 2.0), (2, 1.0)]
    assert np.array_equal(out, same) and not np.array_equal(out, given)


def test_bad_inputs(synth, pose_clip):
    rgb, pose = pose_clip
    with pytest.raises(ShapeError, match="first frame: 32x64"):
        synth.synthesize(pose, first_frame=np.zeros((32, 64, 3), np.uint8))
    with pytest.raises(ShapeError, match="first frame: expected uint8"):
        synth.synthesize(pose, first_frame=rgb[0].astype(np.float32))
    with pytest.raises(ShapeError, match="pose video: 10 frames"):
        synth.synthesize(np.concatenate([pose, pose[:1]]))
    with pytest.raises(ShapeError, match="pose video: 32x32 pixels"):
        synth.synthesize(pose[:, :32, :32])
    with pytest.raises(ShapeError, match="pose video: expected uint8"):
        synth.synthesize(pose.astype(np.float32))
    with pytest.raises(ConfigError, match="at least 2 steps"):
        synth.synthesize(pose, steps=1)
    with pytest.raises(ConfigError, match="prompt is empty"):
        synth.synthesize(pose, prompt="  ")
    assert check_prompt(None) is None


def test_preset_without_appearance_adapter(tmp_path):
    from mad_sim.model.backbone_loading import load_backbone

    with pytest.raises(PresetError, match="no appearance adapter"):
        AppearanceSynthesizer.from_pretrained("tiny", lora=tmp_path / "none.safetensors")
    model = MADModel(load_backbone("tiny", weights="random", device="cpu", seed=0))
    with pytest.raises(PresetError, match="has no 'appearance' adapter"):
        AppearanceSynthesizer(model)


def test_training_loss_targeted_noise_only_touches_pose_patches(synth, pose_clip):
    rgb, pose = pose_clip
    g = torch.Generator().manual_seed(0)
    synth.model.set_adapter("appearance")
    loss = synth.training_loss(rgb[None], pose[None], g)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    grads = [p.grad for p in synth.model.adapter_parameters("appearance") if p.grad is not None]
    assert grads and any(float(gr.abs().sum()) > 0 for gr in grads)
    # the pose clip is sparse: targeted noise has patches to corrupt and patches to leave alone
    mask = pose_patch_mask(uint8_to_video(torch.from_numpy(pose))[None])
    assert 0 < mask.float().mean() < 1
    with pytest.raises(ShapeError, match="differ"):
        synth.training_loss(rgb[None, :, :32], pose[None], g)


def test_chunk_cache_one_synthesis_per_chunk(synth, pose_clip):
    _, pose = pose_clip
    asked = []

    def lookahead(n: int) -> np.ndarray:
        asked.append(n)
        return pose[:n]

    cache = RGBChunkCache(synth, chunk_frames=F, steps=2, seed=5)
    frames = [cache.frame(t, lookahead) for t in range(2 * (F - 1) + 1)]
    # steps 0..8 from chunk 0, 9..16 from chunk 1 (which starts on frame 8 again)
    assert cache.stats.syntheses == 2 and cache.stats.hits == 2 * (F - 1) + 1 - 2
    assert asked == [F, F - 1]
    assert all(f.shape == (H, W, 3) and f.dtype == np.uint8 for f in frames)
    replay = RGBChunkCache(synth, chunk_frames=F, steps=2, seed=5)
    assert all(np.array_equal(replay.frame(t, lookahead), frames[t]) for t in range(len(frames)))
    with pytest.raises(ShapeError, match="returned"):
        RGBChunkCache(synth, chunk_frames=F).frame(0, lambda n: pose[:3])
    with pytest.raises(ShapeError, match="RGB chunk"):
        RGBChunkCache(synth, chunk_frames=10)


def test_drop_empty_pose_tokens_runs(synth, pose_clip):
    rgb, pose = pose_clip
    out = synth.synthesize(
        pose, first_frame=rgb[0], steps=2, drop_empty_pose_tokens=True, generator=torch.Generator().manual_seed(3)
    )
    assert out.shape == (F, H, W, 3) and np.array_equal(out[0], rgb[0])


def test_shipped_appearance_adapter_fits_the_shipped_backbone():
    """The shipped tiny adapter loads, records the backbone it was trained on, and that is the shipped one."""
    import hashlib

    from safetensors import safe_open

    from mad_sim.model.appearance.synthesizer import appearance_lora_path
    from mad_sim.model.backbone import shipped_weights

    lora = appearance_lora_path("tiny")
    if not lora.is_file():
        pytest.skip("no shipped tiny appearance adapter")
    with safe_open(str(lora), framework="pt") as f:
        meta = f.metadata()
        assert all(f.get_tensor(k).dtype == torch.float16 for k in f.keys())
    sha = hashlib.sha256(shipped_weights("tiny").read_bytes()).hexdigest()
    assert meta["trained_on_backbone_sha256"] == sha, "the shipped backbone changed: retrain the appearance adapter"
    synth = AppearanceSynthesizer.from_pretrained("tiny", device="cpu")
    assert synth.size == (128, 128) and synth.adapter == "appearance"
