"""Presets: errors, the real LTX-Video configs on the meta device, the tiny preset's size."""

from __future__ import annotations

import pytest

from mad_sim.errors import CheckpointError, PresetError
from mad_sim.model import build_empty, get_preset, load_backbone
from mad_sim.model.presets import LTX_LORA_TARGETS


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _lora_targets(module, targets) -> int:
    return sum(1 for name, _ in module.named_modules() if any(name.endswith("." + t) for t in targets))


def test_unknown_preset_and_missing_path():
    with pytest.raises(PresetError, match="unknown model preset 'ltx-7b'"):
        get_preset("ltx-7b")
    for name in ("ltx-2b", "ltx-13b", "svd"):
        with pytest.raises(PresetError, match="--backbone PATH"):
            load_backbone(name)


def test_path_preset_with_a_bad_directory(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_backbone("ltx-2b", path=tmp_path / "nope")
    (tmp_path / "vae").mkdir()
    with pytest.raises(CheckpointError, match="no transformer/ folder"):
        load_backbone("ltx-2b", path=tmp_path)


@pytest.mark.parametrize("preset, low, high, layers", [("ltx-2b", 1.8e9, 2.1e9, 28), ("ltx-13b", 12.5e9, 13.5e9, 48)])
def test_real_ltx_configs_on_meta_device(preset, low, high, layers):
    parts = build_empty(preset)
    denoiser = parts["denoiser"]
    assert next(denoiser.parameters()).device.type == "meta"
    n = _count(denoiser)
    assert low < n < high, n
    # every block has the six paper targets in self- and cross-attention (4 + 4) and the MLP (2)
    assert _lora_targets(denoiser, LTX_LORA_TARGETS) == layers * 10
    assert parts["vae"].spatial_compression_ratio == 32 and parts["vae"].temporal_compression_ratio == 8


def test_svd_config_on_meta_device():
    unet = build_empty("svd")["denoiser"]
    assert 1.4e9 < _count(unet) < 1.6e9  # SVD-XT's UNet: 1.52B
    assert _lora_targets(unet, ("to_q", "to_k", "to_v", "to_out.0")) > 100


def test_tiny_sizes(tiny_backbone):
    n = _count(tiny_backbone.transformer)
    assert 30e6 < n < 40e6, n
    # VAE 8x space / 4x time, 16 channels; 4x4-cell tokens, so sizes are multiples of 32 px
    assert tiny_backbone.spatial_ratio == 8 and tiny_backbone.temporal_ratio == 4 and tiny_backbone.latent_channels == 16
    assert tiny_backbone.transformer.config.patch_size == 4 and tiny_backbone.size_multiple == 32
    assert _lora_targets(tiny_backbone.transformer, LTX_LORA_TARGETS) == 8 * 10
