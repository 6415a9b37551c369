"""Tiny backbone: VAE shapes, shape errors, weights files, the tokenizer."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from mad_sim.errors import CheckpointError, ShapeError
from mad_sim.model import backbone as backbone_mod
from mad_sim.model import load_backbone, uint8_to_video, video_to_uint8
from mad_sim.model.presets import get_preset
from mad_sim.model.text import encode_prompts

TINY_VAE = get_preset("tiny").vae
C = TINY_VAE["latent_channels"]  # latent channels, time and space compression of the tiny VAE
T = TINY_VAE["temporal_compression_ratio"]
S = TINY_VAE["spatial_compression_ratio"]


def _dashcam_clip(path, frames: int = 9, size: int = 64) -> torch.Tensor:
    import cv2

    out = []
    for i, frame in enumerate(iio.imiter(path)):
        if i >= frames:
            break
        out.append(cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA))
    return uint8_to_video(torch.from_numpy(np.stack(out))).unsqueeze(0)


def test_encode_decode_shapes_on_real_video(tiny_backbone, dashcam_path):
    video = _dashcam_clip(dashcam_path)
    assert video.shape == (1, 3, 9, 64, 64) and -1 <= video.min() < video.max() <= 1
    with torch.no_grad():
        z = tiny_backbone.encode_video(video)
        y = tiny_backbone.decode_latents(z)
    assert z.shape == (1, C, 8 // T + 1, 64 // S, 64 // S)
    assert y.shape == video.shape
    assert torch.isfinite(y).all()
    assert tiny_backbone.latent_shape(17, 128, 96) == (C, 16 // T + 1, 128 // S, 96 // S)


def test_uint8_roundtrip():
    frames = torch.randint(0, 256, (2, 9, 32, 32, 3), dtype=torch.uint8)
    assert torch.equal(video_to_uint8(uint8_to_video(frames)), frames)


@pytest.mark.parametrize(
    "shape, fix",
    [
        ((1, 3, 10, 64, 64), f"{T}k\\+1 frames \\(e.g. {9 // T * T + 1} or {9 // T * T + T + 1}\\)"),
        ((1, 3, 9, 100, 64), "divisible by 32 \\(e.g. 96x64\\)"),
        ((1, 9, 64, 64), "\\[B, 3, F, H, W\\]"),
    ],
)
def test_shape_errors_name_the_fix(tiny_backbone, shape, fix):
    with pytest.raises(ShapeError, match=fix):
        tiny_backbone.encode_video(torch.zeros(shape))


def test_nan_and_uint8_inputs_rejected(tiny_backbone):
    v = torch.zeros(1, 3, 9, 64, 64)
    v[0, 0, 3, 5, 5] = float("nan")
    with pytest.raises(ShapeError, match="NaN"):
        tiny_backbone.encode_video(v)
    with pytest.raises(ShapeError, match="uint8_to_video"):
        tiny_backbone.encode_video(torch.zeros(1, 3, 9, 64, 64, dtype=torch.uint8))


def test_single_file_roundtrip_and_errors(tiny_backbone, tmp_path):
    path = tiny_backbone.save_file(tmp_path / "tiny.safetensors")
    other = load_backbone("tiny", weights=path, device="cpu", seed=123)
    for a, b in zip(tiny_backbone.transformer.state_dict().values(), other.transformer.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(tiny_backbone.vae.state_dict().values(), other.vae.state_dict().values()):
        assert torch.equal(a, b)
    fresh = load_backbone("tiny", weights="random", device="cpu", seed=123)
    assert not torch.equal(fresh.transformer.proj_in.weight, tiny_backbone.transformer.proj_in.weight)

    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt.safetensors"):
        load_backbone("tiny", weights=corrupt, device="cpu")
    with pytest.raises(CheckpointError, match="not found"):
        load_backbone("tiny", weights=tmp_path / "missing.safetensors", device="cpu")


def test_mismatched_checkpoint(tmp_path):
    from safetensors.torch import save_file

    bad = tmp_path / "bad.safetensors"
    save_file({"transformer.proj_in.weight": torch.zeros(3, 3)}, str(bad))
    with pytest.raises(CheckpointError, match="does not fit the tiny"):
        load_backbone("tiny", weights=bad, device="cpu")


def test_missing_shipped_weights_says_how_to_train(monkeypatch, tmp_path):
    monkeypatch.setattr(backbone_mod, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="mad-sim train"):
        load_backbone("tiny", device="cpu")


def test_latent_stats(tiny_backbone):
    bb = load_backbone("tiny", weights="random", device="cpu", seed=0)
    video = torch.rand(1, 3, 9, 64, 64) * 2 - 1
    with torch.no_grad():
        z0 = bb.encode_video(video)
        bb.set_latent_stats(torch.full((C,), 0.5), torch.full((C,), 2.0))
        z1 = bb.encode_video(video)
        assert torch.allclose(z1, (z0 - 0.5) / 2.0, atol=1e-6)
        assert torch.allclose(bb.decode_latents(z1), bb.decode_latents(z1.clone()))
    with pytest.raises(ShapeError):
        bb.set_latent_stats(torch.zeros(C), torch.zeros(C))


def test_tokenizer_knows_words_and_embeds(tiny_backbone):
    tok = tiny_backbone.tokenizer
    ids = tok(["A red car turns left at the intersection."]).input_ids[0]
    unk = tok.convert_tokens_to_ids("<unk>")
    assert unk not in ids and ids[-1] == tok.eos_token_id and len(ids) == 10
    assert tok(["zebra"]).input_ids[0][0] == unk
    e1, m1 = encode_prompts(tok, tiny_backbone.text_encoder, ["a red car", "a blue truck"], 16)
    assert e1.shape == (2, 16, 128) and m1.sum(1).tolist() == [4, 4]
    assert not torch.allclose(e1[0, :3], e1[1, :3])


@pytest.mark.slow
def test_diffusers_directory_round_trip(tiny_backbone, tmp_path):
    """save_pretrained writes an LTXPipeline folder; a path preset and diffusers both load it."""
    from diffusers import LTXPipeline

    folder = tiny_backbone.save_pretrained(tmp_path / "ltx")
    assert (folder / "model_index.json").is_file() and (folder / "transformer" / "config.json").is_file()
    loaded = load_backbone("ltx-2b", path=folder, device="cpu")  # a path preset reads the folder's own configs
    for a, b in zip(tiny_backbone.transformer.state_dict().values(), loaded.transformer.state_dict().values()):
        assert torch.equal(a, b)
    e1, _ = encode_prompts(tiny_backbone.tokenizer, tiny_backbone.text_encoder, ["a red car"], 16)
    e2, _ = encode_prompts(loaded.tokenizer, loaded.text_encoder, ["a red car"], 16)
    assert torch.equal(e1, e2)  # same tokenizer vocabulary and encoder weights
    pipe = LTXPipeline.from_pretrained(folder)
    assert torch.equal(pipe.transformer.proj_in.weight, tiny_backbone.transformer.proj_in.weight)
