"""Pose-video reconstruction metrics (:mod:`mad_sim.model.evaluation.vae_metrics`) on synthetic line drawings."""

from __future__ import annotations

import numpy as np
import pytest

from mad_sim.errors import ShapeError
from mad_sim.model.evaluation.vae_metrics import line_metrics, psnr


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
                    x[i, t, p, a : b + 1] = c
                else:
                    x[i, t, a : b + 1, p] = c
    return x


def test_line_metrics_perfect_mean_and_shift() -> None:
    rng = np.random.default_rng(0)
    x = _pose_like(rng)
    perfect = line_metrics(x, x)
    assert perfect["recall"] == 1.0 and perfect["precision"] == 1.0
    # the mean image of other pose-like clips (the collapse mode) finds few of the lines
    other = _pose_like(np.random.default_rng(1), n=20)
    mean = np.round(other.reshape(-1, *other.shape[-3:]).astype(np.float64).mean(0)).astype(np.uint8)
    assert line_metrics(x, np.broadcast_to(mean, x.shape))["recall"] < 0.2
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
