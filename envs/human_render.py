"""``render_mode="human"``: the BEV in a pygame window, Gymnasium's convention.

The env shows a frame after every ``reset`` and ``step`` (``render()`` then
returns None), paced to ``metadata["render_fps"]`` (10 Hz, the simulation's
rate).  pygame is an optional dependency (``pip install pygame``); asking for
``human`` without it is a :class:`~mad_sim.errors.ConfigError` at ``gym.make``.
Closing the window stops showing frames; the episode goes on.  Headless
machines (CI) run it with SDL's dummy video driver: ``SDL_VIDEODRIVER=dummy``.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Optional

import numpy as np

from mad_sim.errors import ConfigError

WINDOW_TITLE = "MADDrive-v0"


def require_pygame() -> None:
    """ConfigError unless pygame can be imported."""
    if importlib.util.find_spec("pygame") is None:
        raise ConfigError(
            "render_mode='human' needs pygame (pip install pygame); render_mode='bev' gives the same view as an array"
        )


class HumanWindow:
    """A window that shows ``[H, W, 3]`` uint8 frames at most ``fps`` times a second."""

    def __init__(self, fps: float) -> None:
        require_pygame()
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        self._pg: Any = pygame
        self.fps = float(fps)
        self._screen: Optional[Any] = None
        self._clock: Optional[Any] = None
        self.closed = False
        self.frames = 0

    def show(self, frame: np.ndarray) -> None:
        """Blit ``frame`` (RGB, rows top to bottom) and wait out the frame period; window events are handled."""
        if self.closed:
            return
        pg = self._pg
        h, w = frame.shape[:2]
        if self._screen is None:
            pg.display.init()
            pg.display.set_caption(WINDOW_TITLE)
            self._screen = pg.display.set_mode((w, h))
            self._clock = pg.time.Clock()
        for event in pg.event.get():
            if event.type == pg.QUIT:
                self.close()
                return
        surface = pg.surfarray.make_surface(np.ascontiguousarray(np.transpose(frame, (1, 0, 2))))
        self._screen.blit(surface, (0, 0))
        pg.display.flip()
        assert self._clock is not None
        self._clock.tick(self.fps)
        self.frames += 1

    def close(self) -> None:
        if self._screen is not None:
            self._pg.display.quit()
        self._screen = None
        self.closed = True
