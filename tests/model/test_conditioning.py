"""Conditions: pose patch masks, targeted noise, RoPE placement, token dropping, loss on target tokens."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mad_sim.errors import ShapeError
from mad_sim.model import Condition, uint8_to_video
from mad_sim.model.conditioning import pose_patch_mask
from mad_sim.model.losses import flow_matching_loss
from mad_sim.model.ltx import LatentCondition, latent_coords
from mad_sim.model.noise import sample_sigmas, sequence_shift, targeted_noise


@pytest.fixture
def womd_pose(womd_path):
    """9 real pose frames (steps 2..10, the SDC's camera) at 64x64, uint8 [9, 64, 64, 3]."""
    from mad_sim.data import load_scenario
    from mad_sim.render.pose import PoseRenderer

    sc = load_scenario(womd_path)
    return PoseRenderer(64, 64).render_scenario(sc, sc.sdc_index, 2, 11)


def _mask_reference(frames: np.ndarray, min_fraction=0.05, black=8) -> np.ndarray:
    """Loop-based reference of pose_patch_mask for one uint8 video [F, H, W, 3]."""
    lit = frames.max(axis=-1) > black
    F, H, W = lit.shape
    groups = [[0]] + [list(range(1 + 8 * k, 9 + 8 * k)) for k in range((F - 1) // 8)]
    out = np.zeros((len(groups), H // 32, W // 32), bool)
    for g, idx in enumerate(groups):
        for i in range(H // 32):
            for j in range(W // 32):
                out[g, i, j] = lit[idx, 32 * i : 32 * i + 32, 32 * j : 32 * j + 32].mean() >= min_fraction
    return out


def test_pose_patch_mask_hand_made():
    v = np.zeros((9, 64, 64, 3), np.uint8)
    v[0, 2:12, 2:12] = 255  # 100 / 1024 = 9.8% of cell (0,0) in latent frame 0 -> pose
    v[0, 40:45, 40:45] = 255  # 25 / 1024 = 2.4% of cell (1,1) -> not pose
    v[3, 2:12, 40:50] = 255  # one frame of 8: 100 / 8192 = 1.2% -> not pose
    v[1:9, 40:50, 2:12, 1] = 200  # all 8 frames, green only -> 9.8% -> pose
    mask = pose_patch_mask(uint8_to_video(torch.from_numpy(v)).unsqueeze(0))[0].numpy()
    assert mask.tolist() == [[[True, False], [False, False]], [[False, False], [True, False]]]
    assert np.array_equal(mask, _mask_reference(v))


def test_pose_patch_mask_on_real_pose_video(womd_pose):
    mask = pose_patch_mask(uint8_to_video(torch.from_numpy(womd_pose)).unsqueeze(0))[0].numpy()
    assert np.array_equal(mask, _mask_reference(womd_pose))
    assert 0 < mask.sum() < mask.size  # the real scene has both lit and empty patches
    with pytest.raises(ShapeError, match="8k\\+1|tile"):
        pose_patch_mask(uint8_to_video(torch.from_numpy(womd_pose[:8])).unsqueeze(0))


def test_targeted_noise_touches_pose_patches_only(make_gen):
    x = torch.randn(3, 128, 2, 2, 2, generator=make_gen(0))
    mask = torch.zeros(3, 2, 2, 2, dtype=torch.bool)
    mask[:, 1, 0, 1] = True
    mask[1, 0, 1, 1] = True
    y = targeted_noise(x, mask, make_gen(4), max_strength=0.3)
    keep = ~mask.unsqueeze(1).expand_as(x)
    assert torch.equal(y[keep], x[keep])
    assert (y != x)[~keep].all()
    # same draws as documented: s ~ U(0, 0.3) per sample, then eps
    g = make_gen(4)
    s = torch.rand(3, generator=g) * 0.3
    eps = torch.randn(x.shape, generator=g)
    ref = (1 - s.view(3, 1, 1, 1, 1)) * x + s.view(3, 1, 1, 1, 1) * eps
    assert torch.allclose(y[~keep], ref[~keep], atol=1e-6)
    assert (s >= 0).all() and (s <= 0.3).all()


def test_sigma_samplers(make_gen):
    s = sample_sigmas(20000, 1024, make_gen(0), "shifted_logit_normal")
    assert 0 < s.min() and s.max() < 1
    # median of sigmoid(N(0.95, 1)) is sigmoid(0.95)
    assert abs(float(s.median()) - float(torch.sigmoid(torch.tensor(0.95)))) < 0.01
    assert sequence_shift(4096) == pytest.approx(2.05) and sequence_shift(8) < 0.95
    u = sample_sigmas(20000, 8, make_gen(0), "uniform")
    assert abs(float(u.mean()) - 0.5) < 0.01


def test_condition_placement():
    hist = torch.zeros(1, 3, 9, 64, 64)
    assert Condition(hist, "pose_history").offset == -9
    assert Condition(hist[:, :, :1], "first_frame").offset == 1000
    assert Condition(hist, "ego_motion").offset == 0
    assert Condition(hist, "pose_history", frame_offset=-1).offset == -1
    with pytest.raises(ShapeError, match="kind"):
        Condition(hist, "lidar")
    c = latent_coords(1, 2, 2, 2, temporal_ratio=8, spatial_ratio=32, frame_rate=10.0, frame_offset=1000)
    assert c.shape == (1, 3, 8)
    assert torch.allclose(c[0, 0], torch.tensor([100.0] * 4 + [100.8] * 4))  # seconds: 1000 / 10 Hz, + 8 frames
    assert c[0, 1].tolist() == [0, 0, 32, 32] * 2 and c[0, 2].tolist() == [0, 32, 0, 32] * 2


def test_conditions_reach_the_target_and_only_target_is_supervised(tiny_backbone, womd_pose, make_gen):
    from mad_sim.model import MADModel

    model = MADModel(tiny_backbone)
    pose = uint8_to_video(torch.from_numpy(womd_pose)).unsqueeze(0)
    conds = model.encode_conditions([Condition(pose, "pose_history")], pose_masks=True)
    c, f, h, w = tiny_backbone.latent_shape(9, 64, 64)
    assert conds[0].latents.shape == (1, c, f, h, w) and conds[0].keep.shape == (1, f, h, w)
    x = torch.randn(1, c, f, h, w, generator=make_gen(1))
    e, m = tiny_backbone.encode_prompts(None, 1)
    den = tiny_backbone.denoiser
    with torch.no_grad():
        bare = den(x, torch.tensor([500.0]), [], e, m)
        with_hist = den(x, torch.tensor([500.0]), conds, e, m)
        moved = den(x, torch.tensor([500.0]), [LatentCondition(conds[0].latents, "pose_history", 1000.0)], e, m)
    assert with_hist.shape == bare.shape == x.shape
    assert (with_hist - bare).abs().max() > 1e-4  # the history is read
    assert (moved - with_hist).abs().max() > 1e-5  # its RoPE time coordinate matters
    # dropping empty pose patches shortens the sequence by the tokens none of whose p x p latent cells holds pose
    p, p_t = den.patch
    full, _ = den.condition_tokens(conds)
    kept, coords = den.condition_tokens(conds, drop_empty=True)
    lit_tokens = conds[0].keep.any(0).reshape(f // p_t, p_t, h // p, p, w // p, p).any(5).any(3).any(1)
    assert full.shape[1] == (f // p_t) * (h // p) * (w // p)
    assert kept.shape[1] == int(lit_tokens.sum()) and coords.shape[2] == kept.shape[1]
    # the loss is the MSE of the target tokens' velocity, nothing else
    sig = torch.tensor([0.4])
    eps = torch.randn(x.shape, generator=make_gen(2))
    with torch.no_grad():
        loss = flow_matching_loss(den, x, conds, e, m, sigmas=sig, noise=eps)
        pred = den(0.6 * x + 0.4 * eps, torch.tensor([400.0]), conds, e, m)
    assert torch.allclose(loss, ((pred - (eps - x)) ** 2).mean(), atol=1e-6)


def test_training_loss_targeted_noise_is_seeded(tiny_backbone, womd_pose, make_gen):
    from mad_sim.model import MADModel

    model = MADModel(tiny_backbone)
    pose = uint8_to_video(torch.from_numpy(womd_pose)).unsqueeze(0)
    target = torch.rand(1, 3, 9, 64, 64, generator=make_gen(9)) * 2 - 1
    args = dict(target_video=target, conditions=[Condition(pose, "pose")], targeted_noise_on_pose=True)
    with torch.no_grad():
        a = model.training_loss(**args, generator=make_gen(5))
        b = model.training_loss(**args, generator=make_gen(5))
        c = model.training_loss(target, [Condition(pose, "pose")], generator=make_gen(5))
    assert torch.equal(a, b) and a.ndim == 0
    assert not torch.equal(a, c)  # same sigma and eps draws differ once targeted noise consumes the generator
    with pytest.raises(ShapeError, match="batch"):
        model.training_loss(target, [Condition(torch.cat([pose, pose]), "pose")], generator=make_gen(5))
