"""Fixtures of the model tests: one random-init tiny backbone per session (fast, no shipped weights)."""

from __future__ import annotations

import copy

import pytest
import torch

from mad_sim.model import MADModel, load_backbone


@pytest.fixture(scope="session")
def tiny_backbone():
    return load_backbone("tiny", weights="random", device="cpu", seed=0)


@pytest.fixture
def fresh_backbone(tiny_backbone):
    """``fresh_backbone()`` -> a deep copy of the session backbone (adapters added to it never leak)."""
    return lambda: copy.deepcopy(tiny_backbone)


@pytest.fixture
def tiny_model(fresh_backbone):
    """A fresh MADModel over its own copy of the tiny backbone."""
    return MADModel(fresh_backbone())


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def make_gen():
    """``make_gen(seed) -> torch.Generator`` seeded on the CPU."""
    return gen
