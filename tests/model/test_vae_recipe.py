"""VAE rescue recipe: metrics, curriculum loss and a tiny training step (random data, tiny sizes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mad_sim.errors import ConfigError, ShapeError
from mad_sim.model.vae_metrics import line_metrics, psnr
from mad_sim.model.vae_recipe import (Curriculum, dilate_video, foreground_weights, gaussian_blur, mean_image_baseline,
                                      recipe_loss, to_tensor, to_uint8)


def _pose_like(rng: np.random.Generator, n: int = 6, f: int = 3, size: int = 32) -> np.ndarray:
    """Black frames with random 1-px white and coloured lines (horizontal / vertical), like pose frames."""
    x = np.zeros((n, f, size, size, 3), np.uint8)
    colours = np.array([[255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], np.uint8)
    for i in range(n):
        for t in range(f):
            for _ in range(3):
                c = colours[rng.integers(len(colours))]
                p, a, b = rng.integers(0, size), *sorted(rng.integers(0, size, 2))
                if rng.random() < 0.5:
                    x[i, t, p, a:b + 1] = c
                else:
                    x[i, t, a:b + 1, p] = c
    return x


def test_line_metrics_perfect_mean_and_shift() -> None:
    rng = np.random.default_rng(0)
    x = _pose_like(rng)
    perfect = line_metrics(x, x)
    assert perfect["recall"] == 1.0 and perfect["precision"] == 1.0
    mean = mean_image_baseline(_pose_like(np.random.default_rng(1), n=20), x)
    assert mean["recall"] < 0.2
    # a 1-px shift is within tolerance, a 3-px shift is not
    one = np.roll(x, 1, axis=-2)
    assert line_metrics(x, one)["recall"] > 0.95
    assert line_metrics(x, np.roll(x, 3, axis=-2))["recall"] < 0.5
    # the right place but the wrong hue: coloured pixels do not count
    wrong = x[..., [1, 2, 0]]
    coloured = (x.max(-1) > 60) & (x.min(-1) < 100)
    m = line_metrics(x, wrong)
    white_share = 1.0 - coloured.sum() / (x.max(-1) > 60).sum()
    # (a coloured pixel only counts where a crossing line of the right hue is within 1 px)
    assert white_share <= m["recall"] < white_share + 0.03
    # an all-white recon has full recall of white lines but terrible precision
    assert line_metrics(x, np.full_like(x, 255))["precision"] < 0.2
    assert psnr(x, x) == float("inf")
    with pytest.raises(ShapeError):
        line_metrics(x, x[:, :, :16])


def test_foreground_weights_share_and_mean() -> None:
    x = to_tensor(_pose_like(np.random.default_rng(2), n=3))
    w = foreground_weights(x, fg_share=0.5, grow=0)
    lit = (x.amax(1, keepdim=True) + 1) * 127.5 > 60
    for b in range(3):
        assert float(w[b].mean()) == pytest.approx(1.0, rel=1e-5)
        share = float((w[b] * lit[b]).sum() / w[b].sum())
        assert share == pytest.approx(0.5, rel=1e-5)
    blank = foreground_weights(torch.full((1, 3, 2, 8, 8), -1.0))
    assert torch.all(blank == 1.0)
    with pytest.raises(ConfigError):
        foreground_weights(x, fg_share=1.0)


def test_blur_and_dilate() -> None:
    x = torch.full((1, 3, 1, 21, 21), 0.0)
    x[..., 10, 10] = 1.0
    y = gaussian_blur(x, 2.0)
    assert float(y.sum()) == pytest.approx(3.0, rel=1e-4)  # mass kept (3 channels)
    assert float(y[0, 0, 0, 10, 12] / y[0, 0, 0, 10, 10]) == pytest.approx(np.exp(-0.5), rel=1e-3)
    assert torch.equal(gaussian_blur(x, 0.0), x)
    d = dilate_video(x, 1)
    assert int((d[0, 0, 0] > 0).sum()) == 9


def test_curriculum_loss_schedule_and_gradient() -> None:
    cur = Curriculum(sigma_start=2.0, sigma_end=0.0, anneal_steps=10, sharp_weight=0.5)
    assert cur.sigma(0) == 2.0 and cur.sigma(5) == pytest.approx(1.0) and cur.sigma(99) == 0.0
    x = to_tensor(_pose_like(np.random.default_rng(3), n=2))
    loss0, _ = recipe_loss(x, x, cur, step=20)
    assert float(loss0) == 0.0
    # a line shifted by 2 px: the blurred term sees it as "close", the gradient points to the target
    shifted = torch.roll(x, 2, dims=-1)
    r = shifted.clone().requires_grad_(True)
    loss, terms = recipe_loss(r, x, cur, step=0)
    assert "blur_l1" in terms and terms["sigma"] == 2.0
    loss.backward()
    step = r - 0.05 * r.grad / r.grad.abs().max()
    assert float(recipe_loss(step, x, cur, step=0)[0]) < float(loss)
    with pytest.raises(ShapeError):
        recipe_loss(x[:, :, :1], x, cur, 0)


def test_uint8_roundtrip() -> None:
    x = _pose_like(np.random.default_rng(4), n=1)
    assert np.array_equal(to_uint8(to_tensor(x)), x)


def test_one_training_step_reduces_loss_on_tiny_vae() -> None:
    from mad_sim.model.vae_recipe import autoencode, build_vae

    torch.manual_seed(0)
    torch.set_num_threads(1)
    vae = build_vae({"block_out_channels": [8, 8, 8, 8], "decoder_block_out_channels": [8, 8, 8, 8],
                     "latent_channels": 16})
    x = to_tensor(_pose_like(np.random.default_rng(5), n=1, f=1, size=32))
    opt = torch.optim.Adam(vae.parameters(), lr=1e-3)
    cur = Curriculum(sigma_start=2.0, anneal_steps=100)
    losses = []
    for s in range(4):
        recon, _, _ = autoencode(vae, x)
        assert recon.shape == x.shape
        loss, _ = recipe_loss(recon, x, cur, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    with pytest.raises(ConfigError):
        build_vae({"no_such_arg": 1})


def test_dilation_schedule_and_centring_penalty() -> None:
    from mad_sim.model.vae_recipe import CentringPenalty, build_vae, init_output_layer

    cur = Curriculum(dilate_radius=2, dilate_steps=100)
    assert [cur.radius(s) for s in (0, 49, 50, 99, 100, 500)] == [2, 2, 1, 1, 0, 0]
    torch.manual_seed(0)
    vae = build_vae({"block_out_channels": [8, 8, 8, 8], "decoder_block_out_channels": [8, 8, 8, 8],
                     "latent_channels": 16})
    init_output_layer(vae, bias=-0.9, scale=0.0)
    pen = CentringPenalty(vae)
    assert len(pen.handles) > 0
    x = to_tensor(_pose_like(np.random.default_rng(6), n=2, f=1, size=32))
    with torch.no_grad():
        out = vae.decode(vae.encode(x).latent_dist.mean).sample
    assert torch.allclose(out, torch.full_like(out, -0.9))  # zero output weights: exactly the bias
    assert float(pen.value()) == 0.0  # no terms recorded without grad
    out = vae.decode(vae.encode(x).latent_dist.mean).sample
    v = pen.value()
    assert v.requires_grad and float(v) > 0.0
    assert pen.terms == []
