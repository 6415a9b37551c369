"""render_mode="human": the BEV in a pygame window, run headless on SDL's dummy video driver."""

import gymnasium as gym
import numpy as np
import pytest

import mad_sim  # noqa: F401
from mad_sim.errors import ConfigError


@pytest.fixture
def dummy_video(monkeypatch):
    pytest.importorskip("pygame", reason="pygame not installed (optional: pip install pygame)")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    yield
    import pygame

    pygame.display.quit()


def test_human_mode_shows_every_step(dummy_video, womd_path):
    import pygame

    env = gym.make("MADDrive-v0", scenario=str(womd_path), render_mode="human", bev_size=96)
    assert "human" in env.metadata["render_modes"] and env.metadata["render_fps"] == 10
    env.reset(seed=0)
    window = env.unwrapped._window
    assert window is not None and window.frames == 1
    for _ in range(3):
        env.step(np.zeros(2, np.float32))
    assert window.frames == 4 and env.render() is None
    shown = pygame.surfarray.array3d(pygame.display.get_surface()).transpose(1, 0, 2)
    np.testing.assert_array_equal(shown, env.unwrapped._render_bev())  # the window holds the last BEV frame
    assert shown.shape == (96, 96, 3)
    env.close()
    assert window.closed and not pygame.display.get_init()


def test_human_mode_without_pygame_is_a_config_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pygame" else real(name, *a))
    with pytest.raises(ConfigError, match="pygame"):
        gym.make("MADDrive-v0", render_mode="human")
