"""svd-tiny behind the shared interface: latents, channel-slot conditions, EDM<->flow wrapper, LoRA."""

from __future__ import annotations

import pytest
import torch

from mad_sim.errors import ShapeError
from mad_sim.model import Condition, MADModel, load_backbone
from mad_sim.model.ltx import LatentCondition
from mad_sim.model.svd import SVDDenoiser


@pytest.fixture(scope="module")
def svd_bb():
    return load_backbone("svd-tiny", weights="random", device="cpu", seed=0)


@pytest.mark.slow
def test_shapes_loss_sample_and_errors(svd_bb, make_gen, tmp_path):
    model = MADModel(svd_bb)
    video = torch.rand(1, 3, 5, 64, 64, generator=make_gen(0)) * 2 - 1
    with torch.no_grad():
        z = svd_bb.encode_video(video)
        assert z.shape == (1, 4, 5, 8, 8)  # 8x space, 1x time
        assert svd_bb.decode_latents(z).shape == video.shape
    hist = Condition(torch.rand(1, 3, 9, 64, 64, generator=make_gen(1)) * 2 - 1, "pose_history")
    ego = Condition(torch.rand(1, 3, 5, 64, 64, generator=make_gen(2)) * 2 - 1, "ego_motion")
    with torch.no_grad():
        a = model.training_loss(video, [hist, ego], generator=make_gen(3))
        b = model.training_loss(video, [hist], generator=make_gen(3))
    assert torch.isfinite(a) and not torch.equal(a, b)  # the ego-motion slot is read
    out = model.sample([hist], num_frames=5, height=64, width=64, steps=2, generator=make_gen(4))
    assert out.shape == (1, 3, 5, 64, 64) and out.abs().max() <= 1
    with pytest.raises(ShapeError, match="divisible by 16"):
        model.sample([], num_frames=5, height=72, width=64, steps=1)
    with pytest.raises(ShapeError, match="time-aligned"):
        model.training_loss(video, [Condition(torch.zeros(1, 3, 3, 64, 64), "ego_motion")], generator=make_gen(0))
    with pytest.raises(ShapeError, match="no text encoder"):
        model.sample([], num_frames=5, height=64, width=64, steps=1, prompts=["a car"])
    # single-file weights round trip
    path = svd_bb.save_file(tmp_path / "svd-tiny.safetensors")
    other = load_backbone("svd-tiny", weights=path, device="cpu", seed=9)
    assert all(torch.equal(x, y) for x, y in zip(svd_bb.denoiser.state_dict().values(), other.denoiser.state_dict().values()))


def test_flow_wrapper_is_consistent_with_edm(svd_bb, make_gen):
    """If the UNet predicted the exact v-target, the wrapper's velocity would be exactly eps - x0."""
    den = svd_bb.denoiser
    x0 = torch.randn(2, 4, 3, 8, 8, generator=make_gen(0))
    eps = torch.randn(2, 4, 3, 8, 8, generator=make_gen(1))
    s = torch.tensor([0.3, 0.8])
    xs = (1 - s.view(2, 1, 1, 1, 1)) * x0 + s.view(2, 1, 1, 1, 1) * eps
    sigma = (s / (1 - s)).view(2, 1, 1, 1, 1)
    x = xs / (1 - s.view(2, 1, 1, 1, 1))  # = x0 + sigma eps (EDM sample)
    # v-prediction target of EDM: F = (x0 / (sigma^2 + 1) ... solved so that x0_hat == x0
    f_star = (x / (sigma**2 + 1) - x0) * torch.sqrt(sigma**2 + 1) / sigma

    class Oracle(torch.nn.Module):
        config = den.model.config

        def forward(self, sample, t, emb, added, return_dict=False):
            return (f_star.permute(0, 2, 1, 3, 4),)

    wrapped = SVDDenoiser(Oracle(), latent_channels=4, scaling_factor=0.18215, frame_rate=10.0)
    v = wrapped(xs, s * 1000, [], None, None)
    assert torch.allclose(v, eps - x0, atol=1e-4)


def test_expand_slots_keeps_the_function(make_gen):
    from diffusers import UNetSpatioTemporalConditionModel

    from mad_sim.model.presets import SVD_TINY_UNET

    torch.manual_seed(0)
    unet = UNetSpatioTemporalConditionModel(**{**SVD_TINY_UNET, "in_channels": 8, "out_channels": 4}).eval()
    den = SVDDenoiser(unet, latent_channels=4, scaling_factor=0.18215, frame_rate=10.0)
    assert den.num_slots == 1
    x = torch.randn(1, 4, 3, 8, 8, generator=make_gen(0))
    img = LatentCondition(torch.randn(1, 4, 1, 8, 8, generator=make_gen(1)), "first_frame", 1000.0)
    with torch.no_grad():
        before = den(x, torch.tensor([500.0]), [img], None, None)
        with pytest.raises(ShapeError, match="expand_slots"):
            den(x, torch.tensor([500.0]), [img, LatentCondition(x, "ego_motion", 0.0)], None, None)
        den.expand_slots()
        assert den.num_slots == 4 and unet.config.in_channels == 20
        after = den(x, torch.tensor([500.0]), [img], None, None)
    assert torch.equal(before, after)


def test_svd_lora_isolation_and_file(svd_bb, make_gen, tmp_path):
    import copy

    model = MADModel(copy.deepcopy(svd_bb))
    model.add_adapter("motion", rank=4)
    model.add_adapter("appearance", rank=4)
    model.set_adapter("motion")
    opt = torch.optim.AdamW(model.adapter_parameters("motion"), lr=1e-2)
    lat = torch.randn(1, 4, 3, 8, 8, generator=make_gen(0))
    app = {k: v.clone() for k, v in model.adapter_state_dict("appearance").items()}
    for i in range(2):
        loss = model.training_loss(None, target_latents=lat, generator=make_gen(i))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.equal(v, app[k]) for k, v in model.adapter_state_dict("appearance").items())
    path = model.save_adapter("motion", tmp_path / "m.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        assert all(k.startswith("unet.") for k in f.keys())
    other = MADModel(copy.deepcopy(svd_bb))
    other.load_adapter("motion", path)
    for k, v in model.adapter_state_dict("motion").items():
        assert torch.equal(other.adapter_state_dict("motion")[k], v)
