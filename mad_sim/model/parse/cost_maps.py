"""Padded cost maps and occluder depths of one pose frame, the lookup tables of :mod:`mad_sim.model.parse.search`.

* :class:`CostMaps`: per palette colour, the blended chamfer cost
  ``alpha D_colour + (1 - alpha) D_generic`` (pixels, both truncated at
  ``tau``; :mod:`mad_sim.model.parse.pixels`) of one frame, stored with a
  border of ``PAD`` pixels holding the unobserved cost ``unobserved_cost *
  tau``, so a sample outside the image (clamped into the border) costs what
  :func:`~mad_sim.model.parse.skeleton_fit.score` charges an unobserved sample.
* :class:`Occlusion`: the depth (metres) of the nearest occluding agent at
  each pixel, padded the same way (inf: none), with cached min-filters that
  tell which agents can be occluded at all.

Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import cv2
import numpy as np

from mad_sim.model.parse.pixels import GENERIC, PixelMaps, distance_stamp, truncated_distances
from mad_sim.model.parse.skeleton_fit import ScoreParams

PAD = 2
"""Border (pixels) around the cost maps; two keep all four bilinear neighbours of a clamped sample in it."""


@dataclass
class CostMaps:
    """Per-frame combined cost maps, padded.

    Attributes:
      comb: [M, H + 2 PAD, W + 2 PAD] float32; map ``slot[c]`` of palette
        colour ``c`` is ``alpha D_c + (1 - alpha) D_generic`` inside, the
        unobserved cost on the border.  Colours absent from the frame share map 0;
        the last map is the unobserved cost everywhere (for occluded samples).
      slot: [P] int, map index of each palette colour.
      gen: [H + 2 PAD, W + 2 PAD] float32, ``D_generic`` (``tau`` on the border), for the inlier test.
      unobserved: cost of an unobserved sample, pixels.
      tau: truncation, pixels.
      height, width: the frame's size (without the border).
    """

    comb: np.ndarray
    slot: np.ndarray
    gen: np.ndarray
    unobserved: float
    tau: float
    height: int
    width: int

    @classmethod
    def from_pixels(cls, pixels: Sequence[np.ndarray], agent: np.ndarray, tau: float, params: ScoreParams) -> "CostMaps":
        """Cost maps straight from a frame's colour classes (:func:`~mad_sim.model.parse.pixels.colour_pixels`).

        With ``shared = alpha tau + (1 - alpha) D_generic`` (the map of a colour
        absent from the frame), a colour's map is
        ``shared + alpha (D_c - tau) = min(shared, min over its pixels q of shared + alpha (|p - q| - tau))``,
        so every colour pixel stamps its disc of radius ``tau`` once
        (``np.minimum.at``) and no per-colour distance map is ever built.
        """
        h, w = agent.shape
        hp, wp = h + 2 * PAD, w + 2 * PAD
        a = np.float32(params.alpha)
        tau32 = np.float32(tau)
        gen = truncated_distances([np.flatnonzero(agent.reshape(-1))], (h, w), tau)[0]
        gen_pad = np.pad(gen, PAD, constant_values=tau32)
        unobs = float(params.unobserved_cost * tau)
        p = len(pixels)
        cols = np.array([i for i in range(p) if pixels[i].size], np.int64)
        slot = np.zeros(p, np.int64)
        slot[cols] = np.arange(1, cols.size + 1)
        shared = (np.float32(1.0) - a) * gen + a * tau32
        comb = np.full((cols.size + 2, hp, wp), np.float32(unobs), np.float32)
        comb[:-1, PAD : PAD + h, PAD : PAD + w] = shared[None]
        if cols.size:
            flat = np.concatenate([pixels[i] for i in cols]).astype(np.int64)
            m = np.repeat(np.arange(1, cols.size + 1, dtype=np.int64), [pixels[i].size for i in cols])
            v, u = np.divmod(flat, w)
            dv, du, d = distance_stamp(float(tau))
            vv = v[:, None] + dv[None]
            uu = u[:, None] + du[None]
            ok = (vv >= 0) & (vv < h) & (uu >= 0) & (uu < w)
            vv, uu = vv[ok], uu[ok]
            mm = np.broadcast_to(m[:, None], ok.shape)[ok]
            val = shared[vv, uu] + a * (np.broadcast_to(d[None], ok.shape)[ok] - tau32)
            np.minimum.at(comb.reshape(-1), (mm * hp + vv + PAD) * wp + uu + PAD, val)
        return cls(comb=comb, slot=slot, gen=gen_pad, unobserved=unobs, tau=float(tau), height=h, width=w)

    @classmethod
    def build(cls, maps: PixelMaps, params: ScoreParams) -> "CostMaps":
        """Cost maps from a frame's dense :class:`~mad_sim.model.parse.pixels.PixelMaps`."""
        p = maps.dist.shape[0] - 1
        present = maps.present[:p] if maps.present is not None else np.ones(p, bool)
        cols = np.flatnonzero(present)
        slot = np.zeros(p, np.int64)
        slot[cols] = np.arange(1, cols.size + 1)
        h, w = maps.height, maps.width
        unobs = float(params.unobserved_cost * maps.tau)
        comb = np.full((cols.size + 2, h + 2 * PAD, w + 2 * PAD), np.float32(unobs), np.float32)
        a = np.float32(params.alpha)
        gen = (np.float32(1.0) - a) * maps.dist[GENERIC]
        inner = comb[:-1, PAD : PAD + h, PAD : PAD + w]
        inner[0] = gen + a * np.float32(maps.tau)
        np.multiply(maps.dist[cols], a, out=inner[1:])
        inner[1:] += gen[None]
        gen_pad = np.pad(maps.dist[GENERIC], PAD, constant_values=np.float32(maps.tau))
        return cls(comb=comb, slot=slot, gen=gen_pad, unobserved=unobs, tau=float(maps.tau), height=h, width=w)

    @property
    def unobserved_slot(self) -> int:
        """Index of the map holding the unobserved cost everywhere."""
        return int(self.comb.shape[0] - 1)

    @property
    def stride(self) -> Tuple[int, int]:
        """(map stride, row stride) of the flat ``comb`` array."""
        hp, wp = self.comb.shape[1:]
        return hp * wp, wp


class Occlusion:
    """Occluder depths padded like the cost maps: ``depth [H + 2 PAD, W + 2 PAD]`` float32 (inf: none).

    :meth:`near` gives the map min-filtered over a square of radius ``r``
    pixels (cached): if it is not nearer than an agent anywhere under the
    agent's samples, no candidate within ``r`` pixels of them can be occluded.
    """

    RADII = (4, 8, 16, 32)

    def __init__(self, depth: np.ndarray) -> None:
        self.depth = depth
        self._near: dict = {}

    @classmethod
    def build(cls, occluder_depth: np.ndarray) -> "Occlusion":
        return cls(np.pad(np.asarray(occluder_depth, np.float32), PAD, constant_values=np.inf))

    def near(self, radius: int) -> np.ndarray:
        r = next((x for x in self.RADII if x >= radius), self.RADII[-1])
        if r not in self._near:
            self._near[r] = cv2.erode(
                self.depth, np.ones((2 * r + 1, 2 * r + 1), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=np.inf
            )
        return self._near[r]


__all__ = ["PAD", "CostMaps", "Occlusion"]
