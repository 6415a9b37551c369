"""Reading a pose frame's pixels: colour classes, truncated distance maps, sub-pixel lookups.

Parsing (:mod:`mad_sim.model.parse.parser`) and lane odometry
(:mod:`mad_sim.model.parse.odometry`) compare geometry against a pose frame by
*chamfer distance*: a predicted stroke sample at pixel ``(u, v)`` that is
meant to have colour ``c`` costs the distance (pixels) from ``(u, v)`` to the
nearest frame pixel of colour class ``c``, truncated at ``tau``.  Distance
maps are computed once per frame (``cv2.distanceTransform``, exact L2), then
any number of candidate poses is scored by gathers.

Colour classes follow the renderer's palette (:mod:`mad_sim.render.skeleton`,
:class:`~mad_sim.render.draw.PoseStyle`):

* *hue-coded* skeleton colours (saturation >= 150 in OpenCV HSV units: the 28
  hue-cycling car edges, the OpenPose limb / joint colours, red tail lights,
  traffic-light poles) match frame pixels of saturation >= ``sat_min``,
  value >= ``val_min`` and hue within ``hue_tol`` (OpenCV hue units, 0..179,
  circular);
* pale colours (white car dots, the cyclist's pastels, grey boxes) match
  pixels whose chromaticity ``rgb / max(rgb)`` is within ``chroma_tol`` (L-inf)
  and whose value is at least half the colour's;
* the *generic agent* class is every saturated pixel (``S >= sat_min``,
  ``V >= val_min``): any skeleton, whatever its exact hue.  It keeps small,
  far agents (whose edges merge into a few pixels) scoreable.
* *map* pixels (lanes white, road lines / edges / crosswalks grey) are the
  unsaturated pixels (``S < sat_min``, ``V >= map_val_min``) farther than
  ``agent_margin`` pixels from any saturated pixel (so the white keypoint
  dots of cars and the white cyclist wheels are not taken for lane paint).

Thresholds tolerate what a generator does to a frame: noise, blur (which
darkens thin lines but keeps their hue and saturation on a black
background), small shifts and dropped pixels.  Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from mad_sim.errors import ShapeError
from mad_sim.render.skeleton import SPECS, SkeletonSpec


@dataclass(frozen=True)
class PixelThresholds:
    """Colour-class thresholds (OpenCV HSV units: H 0..179, S and V 0..255).

    Attributes:
      sat_min, val_min: a pixel is skeleton-coloured when S >= sat_min and V >= val_min.
      hue_tol: half-width of a hue-coded colour's class, hue units (the car edges are 6.4 apart).
      chroma_tol: L-inf chromaticity tolerance of pale colours.
      map_val_min: minimum V of an unsaturated map pixel (crosswalks are drawn at 60).
      agent_margin: map pixels within this many pixels of a saturated pixel are not map.
    """

    sat_min: int = 70
    val_min: int = 50
    hue_tol: int = 4
    chroma_tol: float = 0.15
    map_val_min: int = 45
    agent_margin: int = 2


def _hsv(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb.reshape(-1, 1, 3).astype(np.uint8)), cv2.COLOR_RGB2HSV).reshape(-1, 3)


def _build_palette() -> Tuple[np.ndarray, Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    colours: List[Tuple[int, int, int]] = []

    def index(c: np.ndarray) -> int:
        t = (int(c[0]), int(c[1]), int(c[2]))
        if t not in colours:
            colours.append(t)
        return colours.index(t)

    edge_map: Dict[str, np.ndarray] = {}
    dot_map: Dict[str, np.ndarray] = {}
    for spec in SPECS:
        edge_map[spec.name] = np.array([index(c) for c in spec.edge_colors], np.int64)
        dot_map[spec.name] = np.array([index(c) if spec.has_dot[k] else -1 for k, c in enumerate(spec.dot_colors)], np.int64)
    return np.array(colours, np.uint8), edge_map, dot_map


PALETTE, _EDGE_MAP, _DOT_MAP = _build_palette()
"""[P, 3] uint8: every colour a skeleton stroke is drawn with (edges and dots of all classes)."""
GENERIC = int(PALETTE.shape[0])
"""Index of the generic-agent distance map (any saturated pixel), after the palette's."""
_PAL_HSV = _hsv(PALETTE)


def edge_colour_index(spec: SkeletonSpec) -> np.ndarray:
    """[E] palette index of each edge colour of a skeleton class."""
    return _EDGE_MAP[spec.name]


def dot_colour_index(spec: SkeletonSpec) -> np.ndarray:
    """[K] palette index of each keypoint's dot colour (-1: the keypoint has no dot)."""
    return _DOT_MAP[spec.name]


def check_frame(frame: np.ndarray, where: str = "frame") -> np.ndarray:
    """Return ``frame`` if it is an [H, W, 3] uint8 image, else raise ShapeError naming the problem."""
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        desc = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ShapeError(f"{where}: expected an [H, W, 3] uint8 RGB pose frame, got {desc}")
    return frame


def truncated_distance_map(mask: np.ndarray, tau: float) -> np.ndarray:
    """[H, W] float32 distance (pixels) to the nearest True pixel of ``mask``, capped at ``tau``."""
    if not mask.any():
        return np.full(mask.shape, tau, np.float32)
    d = cv2.distanceTransform(np.where(mask, 0, 255).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.minimum(d, tau)


@dataclass
class PixelMaps:
    """Per-frame colour classes and their truncated distance maps.

    Attributes:
      dist: [P + 1, H, W] float32, pixels to the nearest frame pixel of each
        palette colour (index :data:`GENERIC`: of any skeleton colour), capped at ``tau``.
      agent: [H, W] bool, skeleton-coloured (saturated) pixels.
      tau: truncation distance, pixels.
      present: [P + 1] bool, the colour class has pixels in the frame (its map is not all ``tau``); None: unknown.
    """

    dist: np.ndarray
    agent: np.ndarray
    tau: float
    present: Optional[np.ndarray] = None

    @property
    def height(self) -> int:
        return int(self.dist.shape[1])

    @property
    def width(self) -> int:
        return int(self.dist.shape[2])

    def lookup(self, index: np.ndarray, uv: np.ndarray) -> np.ndarray:
        """Bilinear distance-map values at sub-pixel ``uv [..., 2]`` of maps ``index [...]``.

        Samples outside the image (or NaN) return NaN; the caller decides what an unobserved sample costs.
        """
        return bilinear(self.dist, index, uv)


def bilinear(maps: np.ndarray, index: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup into a stack of maps ``[M, H, W]`` at ``uv [..., 2]`` (pixel centres at integers).

    Returns ``[...]`` float32, NaN where ``uv`` is outside ``[0, W-1] x [0, H-1]`` or not finite.
    """
    m, h, w = maps.shape
    u = uv[..., 0]
    v = uv[..., 1]
    with np.errstate(invalid="ignore"):
        inside = (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
    uu = np.where(inside, u, 0.0)
    vv = np.where(inside, v, 0.0)
    u0 = np.minimum(np.floor(uu).astype(np.int64), w - 2) if w > 1 else np.zeros(uu.shape, np.int64)
    v0 = np.minimum(np.floor(vv).astype(np.int64), h - 2) if h > 1 else np.zeros(vv.shape, np.int64)
    fu = (uu - u0).astype(np.float32)
    fv = (vv - v0).astype(np.float32)
    flat = maps.reshape(-1)
    base = (np.asarray(index, np.int64) * h + v0) * w + u0
    du = 1 if w > 1 else 0
    dv = w if h > 1 else 0
    top = flat[base] * (1 - fu) + flat[base + du] * fu
    bot = flat[base + dv] * (1 - fu) + flat[base + dv + du] * fu
    out = top * (1 - fv) + bot * fv
    return np.where(inside, out, np.float32(np.nan))


_HUE_CODED = np.flatnonzero(_PAL_HSV[:, 1] >= 150)
_PALE = np.flatnonzero(_PAL_HSV[:, 1] < 150)
_PALE_TARGET = PALETTE[_PALE].astype(np.float32) / np.maximum(PALETTE[_PALE].max(-1, keepdims=True), 1).astype(np.float32)


def _hue_lut(hue_tol: int) -> np.ndarray:
    """[180, len(_HUE_CODED)] bool: which hue-coded palette colours a pixel hue matches (circular, +-hue_tol)."""
    hues = np.arange(180, dtype=np.int16)[:, None]
    dh = np.abs(hues - _PAL_HSV[_HUE_CODED, 0].astype(np.int16)[None])
    return np.minimum(dh, 180 - dh) <= hue_tol


def colour_pixels(frame: np.ndarray, th: PixelThresholds = PixelThresholds()) -> Tuple[List[np.ndarray], np.ndarray]:
    """``(pixels, agent)``: per palette colour the flat indices of the frame pixels of that class, and the
    [H, W] bool saturated (generic agent) mask.

    The classes of the module docstring, computed on the few bright pixels
    only (a pose frame is mostly black): hue-coded colours by a hue lookup
    table on the saturated pixels, pale colours by chromaticity on the pixels
    with ``V >= val_min``.
    """
    hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)
    hue = hsv[..., 0].reshape(-1)
    sat = hsv[..., 1].reshape(-1)
    val = hsv[..., 2].reshape(-1)
    bright = val >= th.val_min
    agent = bright & (sat >= th.sat_min)
    pixels: List[np.ndarray] = [np.zeros(0, np.int64)] * PALETTE.shape[0]
    k = np.flatnonzero(agent)
    if k.size:
        memb = _hue_lut(th.hue_tol)[hue[k]]
        for j in np.flatnonzero(memb.any(0)):
            pixels[int(_HUE_CODED[j])] = k[memb[:, j]]
    b = np.flatnonzero(bright)
    if b.size:
        rgb = frame.reshape(-1, 3)[b].astype(np.float32)
        chroma = rgb / np.maximum(rgb.max(-1, keepdims=True), 1.0)
        vmin = np.maximum(0.5 * _PAL_HSV[_PALE, 2].astype(np.float32), th.val_min)
        close = (np.abs(chroma[:, None, :] - _PALE_TARGET[None]).max(-1) <= th.chroma_tol) & (val[b][:, None] >= vmin[None])
        for j in np.flatnonzero(close.any(0)):
            pixels[int(_PALE[j])] = b[close[:, j]]
    return pixels, agent.reshape(frame.shape[:2])


def colour_masks(frame: np.ndarray, th: PixelThresholds = PixelThresholds()) -> Tuple[np.ndarray, np.ndarray]:
    """``(masks [P, H, W] bool per palette colour, agent [H, W] bool)`` of an RGB pose frame."""
    pixels, agent = colour_pixels(frame, th)
    masks = np.zeros((PALETTE.shape[0], frame.shape[0] * frame.shape[1]), bool)
    for p, idx in enumerate(pixels):
        masks[p, idx] = True
    return masks.reshape((PALETTE.shape[0],) + frame.shape[:2]), agent


@lru_cache(maxsize=8)
def distance_stamp(tau: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dv, du, d)``: pixel offsets closer than ``tau`` and their Euclidean lengths (float32)."""
    r = int(np.ceil(tau))
    dv, du = np.mgrid[-r : r + 1, -r : r + 1]
    d = np.hypot(dv, du).ravel()
    keep = d < tau
    return dv.ravel()[keep], du.ravel()[keep], d[keep].astype(np.float32)


def truncated_distances(pixels: List[np.ndarray], shape: Tuple[int, int], tau: float) -> np.ndarray:
    """[M, H, W] float32 distance (pixels) to the nearest listed pixel of each map, capped at ``tau``.

    Args:
      pixels: M arrays of flat pixel indices (``v * W + u``).
      shape: ``(H, W)``.

    Exact Euclidean distance, the same as ``cv2.distanceTransform`` with
    ``DIST_MASK_PRECISE`` capped at ``tau``: every listed pixel stamps the
    offsets within ``tau`` of it (a disc of about ``pi tau^2`` pixels) with
    their lengths, and each map pixel keeps the smallest (``np.minimum.at``).
    A pose frame's coloured pixels are few, so this touches far fewer pixels
    than a full-image transform per colour.
    """
    h, w = shape
    out = np.full((len(pixels), h, w), np.float32(tau), np.float32)
    sizes = np.array([p.size for p in pixels], np.int64)
    if sizes.sum() == 0:
        return out
    flat = np.concatenate(pixels).astype(np.int64)
    m = np.repeat(np.arange(len(pixels), dtype=np.int64), sizes)
    v, u = np.divmod(flat, w)
    dv, du, d = distance_stamp(float(tau))
    vv = v[:, None] + dv[None]
    uu = u[:, None] + du[None]
    ok = (vv >= 0) & (vv < h) & (uu >= 0) & (uu < w)
    keys = (m[:, None] * h + vv) * w + uu
    np.minimum.at(out.reshape(-1), keys[ok], np.broadcast_to(d[None], ok.shape)[ok])
    return out


def pixel_maps(
    frame: np.ndarray, tau: float, th: PixelThresholds = PixelThresholds(), ignore: np.ndarray | None = None
) -> PixelMaps:
    """Distance maps of every palette colour and of the generic agent class.

    Args:
      frame: [H, W, 3] uint8 RGB pose frame.
      tau: truncation distance, pixels.
      ignore: optional [H, W] bool of pixels to treat as background (already explained).
    """
    check_frame(frame)
    pixels, agent = colour_pixels(frame, th)
    if ignore is not None:
        keep = ~np.asarray(ignore, bool).reshape(-1)
        pixels = [p[keep[p]] for p in pixels]
        agent = agent & ~ignore
    pixels = pixels + [np.flatnonzero(agent.reshape(-1))]
    dist = truncated_distances(pixels, frame.shape[:2], tau)
    present = np.array([p.size > 0 for p in pixels])
    return PixelMaps(dist=dist, agent=agent, tau=float(tau), present=present)


def map_pixels(frame: np.ndarray, th: PixelThresholds = PixelThresholds()) -> Tuple[np.ndarray, np.ndarray]:
    """``(lane [H, W] bool, grey [H, W] bool)``: static map pixels of a pose frame.

    ``lane`` are the bright unsaturated pixels (white lane centrelines and
    their dots, V >= 200), ``grey`` the dimmer ones (road lines, road edges,
    crosswalks); both exclude pixels within ``agent_margin`` of a skeleton.
    """
    check_frame(frame)
    hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)
    sat, val = hsv[..., 1], hsv[..., 2]
    agent = (sat >= th.sat_min) & (val >= th.val_min)
    k = 2 * th.agent_margin + 1
    near_agent = cv2.dilate(agent.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)
    plain = (sat < th.sat_min) & (val >= th.map_val_min) & ~near_agent
    return plain & (val >= 200), plain & (val < 200)


def explained_by(frame: np.ndarray, rendered: np.ndarray, grow: int = 1, th: PixelThresholds = PixelThresholds()) -> np.ndarray:
    """[H, W] bool: skeleton pixels of ``frame`` that a rendering of known skeletons accounts for.

    A saturated frame pixel is explained when a saturated pixel of
    ``rendered`` ([H, W, 3] uint8, the fitted agents drawn alone) lies within
    ``grow`` pixels (Chebyshev) and has the same hue within ``2 * hue_tol``.
    Matching by colour, not just by place, leaves the pixels of an unknown
    agent that overlaps a known one in the image unexplained.
    """
    f = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)
    r = cv2.cvtColor(rendered, cv2.COLOR_RGB2HSV)
    agent = (f[..., 1] >= th.sat_min) & (f[..., 2] >= th.val_min)
    r_sat = (r[..., 1] >= th.sat_min) & (r[..., 2] >= th.val_min)
    fh = f[..., 0].astype(np.int16)
    rh = np.where(r_sat, r[..., 0].astype(np.int16), np.int16(-1000))
    h, w = agent.shape
    pad = np.pad(rh, grow, constant_values=-1000)
    out = np.zeros_like(agent)
    for dy in range(-grow, grow + 1):
        for dx in range(-grow, grow + 1):
            sh = pad[grow + dy : grow + dy + h, grow + dx : grow + dx + w]
            dh = np.abs(fh - sh)
            out |= (sh >= 0) & (np.minimum(dh, 180 - dh) <= 2 * th.hue_tol)
    return out & agent
