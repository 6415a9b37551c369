"""evaluation.motion.other_clips_ego: the counterfactual behind the ego-sensitivity figure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mad_sim.errors import ConfigError
from mad_sim.model.evaluation.motion import other_clips_ego


def _latents(n: int = 6) -> dict:
    g = torch.Generator().manual_seed(0)
    return {k: torch.randn(n, 4, 3, 2, 2, generator=g) for k in ("history", "future", "ego")}


def test_each_evaluated_clip_gets_another_evaluated_clips_ego() -> None:
    lat = _latents()
    index = np.array([1, 2, 4, 5])
    out = other_clips_ego(lat, index)
    partner = {1: 4, 2: 5, 4: 1, 5: 2}  # half the list further on, cyclically
    for i, j in partner.items():
        assert torch.equal(out["ego"][i], lat["ego"][j])
    for i in (0, 3):  # clips not evaluated keep their own
        assert torch.equal(out["ego"][i], lat["ego"][i])
    assert out["history"] is lat["history"] and out["future"] is lat["future"]
    assert not torch.equal(out["ego"], lat["ego"]) and lat["ego"] is not out["ego"]


def test_one_clip_has_no_other_to_swap_with() -> None:
    with pytest.raises(ConfigError, match="at least two clips"):
        other_clips_ego(_latents(), np.array([3]))
