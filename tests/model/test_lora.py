"""Two adapters on one backbone: isolation, exact base, files, diffusers interop, the authors' layout."""

from __future__ import annotations

import pytest
import torch

from mad_sim.errors import CheckpointError, ConfigError
from mad_sim.model.presets import LTX_LORA_TARGETS


def _probe(model, make_gen):
    """Denoiser output on a fixed input (adapter-sensitive)."""
    g = make_gen(3)
    x = torch.randn(1, *model.backbone.latent_shape(9, 64, 64), generator=g)
    e, m = model.backbone.encode_prompts(None, 1)
    with torch.no_grad():
        return model.denoiser(x, torch.tensor([600.0]), [], e, m)


def _train(model, name, make_gen, steps=2):
    model.set_adapter(name)
    opt = torch.optim.AdamW(model.adapter_parameters(name), lr=1e-2)
    # pre-encoded target of a 9-frame 64x64 clip (VAE tested elsewhere)
    latents = torch.randn(1, *model.backbone.latent_shape(9, 64, 64), generator=make_gen(11))
    for i in range(steps):
        loss = model.training_loss(None, [], generator=make_gen(i), target_latents=latents)
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_training_one_adapter_leaves_the_other_and_the_base(tiny_model, make_gen):
    model = tiny_model
    base_before = {k: v.clone() for k, v in model.denoiser.model.state_dict().items() if "lora_" not in k}
    y_base = _probe(model, make_gen)
    model.add_adapter("motion", rank=8, alpha=8)
    model.add_adapter("appearance", rank=8, alpha=16)
    assert model.adapters == ["motion", "appearance"]
    _train(model, "appearance", make_gen)  # make appearance non-trivial first
    app_before = {k: v.clone() for k, v in model.adapter_state_dict("appearance").items()}
    motion_before = {k: v.clone() for k, v in model.adapter_state_dict("motion").items()}
    _train(model, "motion", make_gen)
    for k, v in model.adapter_state_dict("appearance").items():
        assert torch.equal(v, app_before[k]), k
    changed = sum(not torch.equal(v, motion_before[k]) for k, v in model.adapter_state_dict("motion").items())
    assert changed == len(motion_before)  # every A and B of the trained adapter moved
    for k, v in model.denoiser.model.state_dict().items():
        if "lora_" not in k:
            assert torch.equal(v, base_before[k.replace(".base_layer", "")]), k
    # adapters change the output; disabling both gives the base model exactly
    model.set_adapter("motion")
    y_motion = _probe(model, make_gen)
    model.set_adapter("appearance")
    y_app = _probe(model, make_gen)
    model.set_adapter(None)
    assert model.active_adapter is None
    assert torch.equal(_probe(model, make_gen), y_base)
    assert (y_motion - y_base).abs().max() > 1e-4 and (y_app - y_motion).abs().max() > 1e-4
    # only the active adapter is trainable
    model.set_adapter("motion")
    assert all(p.requires_grad for p in model.adapter_parameters("motion"))
    assert not any(p.requires_grad for p in model.adapter_parameters("appearance"))


@pytest.mark.slow
def test_save_load_and_diffusers_interop(tiny_model, make_gen, tmp_path, fresh_backbone):
    from mad_sim.model import MADModel

    model = tiny_model
    model.add_adapter("motion", rank=4, alpha=8)
    _train(model, "motion", make_gen, steps=1)
    y = _probe(model, make_gen)
    path = model.save_adapter("motion", tmp_path / "motion.safetensors")

    other = MADModel(fresh_backbone())
    other.load_adapter("motion", path)
    other.set_adapter("motion")
    assert torch.equal(_probe(other, make_gen), y)

    # diffusers reads the same file (weight_name= is needed for a safetensors file name)
    plain = fresh_backbone()
    plain.transformer.load_lora_adapter(
        str(tmp_path), weight_name="motion.safetensors", adapter_name="motion", prefix="transformer"
    )
    plain.transformer.set_adapters(["motion"])
    assert torch.allclose(_probe(MADModel(plain), make_gen), y, atol=1e-6)

    # a LoRA of another rank cannot be loaded into an existing adapter
    third = MADModel(fresh_backbone())
    third.add_adapter("motion", rank=2)
    with pytest.raises(CheckpointError, match="shape"):
        third.load_adapter("motion", path)
    with pytest.raises(CheckpointError, match="not found"):
        third.load_adapter("appearance", tmp_path / "none.safetensors")


def test_adapter_errors(tiny_model):
    tiny_model.add_adapter("motion", rank=2)
    with pytest.raises(ConfigError, match="already exists"):
        tiny_model.add_adapter("motion", rank=2)
    with pytest.raises(ConfigError, match="no adapter named 'appearance'"):
        tiny_model.set_adapter("appearance")
    with pytest.raises(ConfigError, match="match no module"):
        tiny_model.add_adapter("x", rank=2, targets=["no_such_layer"])


def test_authors_lora_layout(tiny_model, make_gen):
    """A synthetic LTX-Video-Trainer state dict (diffusion_model. prefix, lora_down/up, alpha) maps onto ours."""
    model = tiny_model
    g = make_gen(5)
    rank, alpha = 4, 2.0
    sd = {}
    expected_delta = {}
    for name, mod in model.denoiser.model.named_modules():
        if (
            isinstance(mod, torch.nn.Linear)
            and any(name.endswith("." + t) for t in LTX_LORA_TARGETS)
            and name.startswith("transformer_blocks.")
        ):
            a = torch.randn(rank, mod.in_features, generator=g) * 0.05
            b = torch.randn(mod.out_features, rank, generator=g) * 0.05
            key = f"diffusion_model.{name}"
            sd[f"{key}.lora_down.weight"] = a
            sd[f"{key}.lora_up.weight"] = b
            sd[f"{key}.alpha"] = torch.tensor(alpha)
            expected_delta[name] = (alpha / rank) * b @ a
    assert len(expected_delta) == 80
    y_base = _probe(model, make_gen)
    model.load_authors_lora(sd, name="motion")
    model.set_adapter("motion")
    y_lora = _probe(model, make_gen)
    # merging the expected deltas into a copy of the base weights gives the same output
    merged = {}
    base = model.denoiser.model
    model.set_adapter(None)
    with torch.no_grad():
        for name, delta in expected_delta.items():
            lin = base.get_submodule(name).base_layer
            merged[name] = lin.weight.clone()
            lin.weight += delta
        y_merged = _probe(model, make_gen)
        for name, w in merged.items():
            base.get_submodule(name).base_layer.weight.copy_(w)
    assert (y_lora - y_base).abs().max() > 1e-3
    assert torch.allclose(y_lora, y_merged, atol=1e-4)
    with pytest.raises(CheckpointError, match="not a LoRA weight"):
        model.load_authors_lora({"diffusion_model.transformer_blocks.0.attn1.to_q.weight": torch.zeros(2, 2)}, "x")
