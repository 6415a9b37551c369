"""Dashcam video: lane lines and vehicles by classical vision (files are read by
:mod:`mad_sim.data.camera_files`).

This is the real pose-extraction path for camera video that comes without
labels (the paired data of the appearance adapter): no learned detector is
available offline, so lanes and vehicles are found with edges, colour masks,
line fitting and tracking (numpy + OpenCV only).  Learned extractors plug in
through :mod:`mad_sim.model.appearance.pose_extract`.

Coordinates are *image pixels* of the source frame: ``u`` right, ``v`` down,
origin at the top-left pixel's corner.

Lane lines
----------
1. Region of interest: a trapezoid over the road ahead, from the bottom row
   up to ``roi_top * H`` (just below the horizon).
2. Marking mask: white (HLS lightness >= ``white_l``) or yellow (hue 10-40 in
   OpenCV's 0-180 scale, saturation >= ``yellow_s``) pixels, dilated, AND
   Canny edges of the blurred grey image.
3. Probabilistic Hough segments, split by the sign of ``du/dv`` into the
   ego lane's left boundary (``du/dv < 0``: leans right going up) and right
   boundary, steep segments only (``|dv/du| >= min_slope``).
4. Per side, points sampled along the segments (weighted by length) are fit
   with ``u = c0 t^2 + c1 t + c2``, ``t = (v - v_top) / (v_bottom - v_top)``
   (a line when the points span too little height for a curve), with one
   round of outlier rejection (residual > 3 x median absolute residual).
5. Tracking: each side's coefficients are smoothed with an exponential
   moving average; a fit that jumps more than ``gate`` (fraction of W) from
   the track at the top or bottom row is rejected as an outlier; a side with
   no accepted fit holds its last value for ``max_hold`` frames, then drops.

Vehicles (what classical vision can honestly give)
--------------------------------------------------
Cars on a grey asphalt road differ from it by their dark under-body shadow
and body colour.  Inside the road region (above the hood, below the horizon)
pixels much darker than the road's median grey, or strongly saturated, are
grouped into connected components; a component is a vehicle candidate when
its size fits a car at that image row (its width relative to the ego lane's
width at its bottom row, from the tracked lane lines).  Candidates are
tracked by box IoU and reported only after ``min_hits`` consecutive frames.

What it cannot do: no 3D heading (boxes are assumed to face along the road),
no separation of touching cars, no cars outside the road trapezoid or on the
horizon (a few pixels tall), grey cars on grey asphalt without a visible
shadow are missed, and no pedestrians at all.  A learned extractor fixes all
of these; see :class:`mad_sim.model.appearance.pose_extract.PoseExtractor`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, List, Optional, Tuple, cast

import cv2
import numpy as np

from mad_sim.data.camera_files import check_rgb_frame
from mad_sim.errors import ShapeError


# --- results -------------------------------------------------------------------------
@dataclass
class DashcamDetections:
    """What the classical extractor found in one frame (source-image pixels).

    Attributes:
      lanes: [2, K, 2] float32 polylines (u, v) of the ego lane's left and
        right boundary, K vertices from the bottom row up to the ROI top.
      lane_valid: [2] bool, whether each boundary is tracked in this frame.
      vehicles: [V, 4] float32 boxes (u0, v0, u1, v1).
      vehicle_ids: [V] int64 track ids (stable across frames).
      image_size: (width, height) of the source frame.
    """

    lanes: np.ndarray
    lane_valid: np.ndarray
    vehicles: np.ndarray
    vehicle_ids: np.ndarray
    image_size: Tuple[int, int]


@dataclass
class LaneConfig:
    """Tuning of the lane and vehicle finders, as fractions of the image size.

    The defaults fit forward-facing highway dashcams with the horizon a
    little above mid-height (the Udacity clips in ``shared/data/video``).
    """

    roi_top: float = 0.62
    roi_bottom: float = 0.98
    roi_top_halfwidth: float = 0.06
    roi_bottom_halfwidth: float = 0.48
    white_l: int = 190
    yellow_s: int = 90
    canny_low: int = 50
    canny_high: int = 150
    hough_threshold: int = 15
    hough_min_length: int = 12
    hough_max_gap: int = 60
    min_slope: float = 0.45
    ema: float = 0.35
    gate: float = 0.10
    max_hold: int = 12
    vertices: int = 8
    min_curve_span: float = 0.5
    dark_ratio: float = 0.55
    min_saturation: int = 110
    min_hits: int = 3
    vehicle_top_halfwidth: float = 0.35
    vehicle_bottom_halfwidth: float = 0.75
    vehicle_max_miss: int = 3


# --- lane finding --------------------------------------------------------------------
def _roi_polygon(w: int, h: int, cfg: LaneConfig) -> np.ndarray:
    top, bot = cfg.roi_top * h, cfg.roi_bottom * h
    cx = 0.5 * w
    return np.array(
        [
            [cx - cfg.roi_bottom_halfwidth * w, bot],
            [cx - cfg.roi_top_halfwidth * w, top],
            [cx + cfg.roi_top_halfwidth * w, top],
            [cx + cfg.roi_bottom_halfwidth * w, bot],
        ],
        np.int32,
    )


def marking_segments(frame: np.ndarray, cfg: LaneConfig) -> np.ndarray:
    """Hough segments ``[S, 4]`` (u0, v0, u1, v1) of lane-marking edges inside the road ROI."""
    h, w = frame.shape[:2]
    hls = cv2.cvtColor(frame, cv2.COLOR_RGB2HLS)
    white = hls[..., 1] >= cfg.white_l
    yellow = (hls[..., 0] >= 10) & (hls[..., 0] <= 40) & (hls[..., 2] >= cfg.yellow_s) & (hls[..., 1] >= 80)
    marks = (white | yellow).astype(np.uint8) * 255
    marks = cast(np.ndarray, cv2.dilate(marks, np.ones((5, 5), np.uint8)))  # cv2's stubs: integer | floating; it is uint8
    grey = cv2.GaussianBlur(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (5, 5), 0)
    edges = cast(np.ndarray, cv2.Canny(grey, cfg.canny_low, cfg.canny_high))  # uint8 (cv2's stubs: integer | floating)
    roi = np.zeros((h, w), np.uint8)
    cv2.fillPoly(roi, [_roi_polygon(w, h, cfg)], 255)
    edges &= marks & roi
    lines = cv2.HoughLinesP(
        edges, 1, np.pi / 180, cfg.hough_threshold, minLineLength=cfg.hough_min_length, maxLineGap=cfg.hough_max_gap
    )
    return np.zeros((0, 4), np.float64) if lines is None else lines[:, 0, :].astype(np.float64)


def _fit_side(seg: np.ndarray, v_top: float, v_bot: float, cfg: LaneConfig) -> Optional[np.ndarray]:
    """Fit ``u = c0 t^2 + c1 t + c2`` to the segments of one side; None if too few points."""
    if len(seg) == 0:
        return None
    length = np.hypot(seg[:, 2] - seg[:, 0], seg[:, 3] - seg[:, 1])
    n = np.maximum(2, (length / 5.0).astype(int))
    idx = np.repeat(np.arange(len(seg)), n)
    frac = np.concatenate([np.linspace(0.0, 1.0, k) for k in n])
    u = seg[idx, 0] + frac * (seg[idx, 2] - seg[idx, 0])
    v = seg[idx, 1] + frac * (seg[idx, 3] - seg[idx, 1])
    if len(u) < 6:
        return None
    t = (v - v_top) / (v_bot - v_top)
    coeffs = None
    for _ in range(2):
        deg = 2 if (t.max() - t.min()) >= cfg.min_curve_span and len(u) >= 12 else 1
        c = np.polyfit(t, u, deg)
        coeffs = np.concatenate([np.zeros(3 - len(c)), c])
        resid = np.abs(np.polyval(coeffs, t) - u)
        keep = resid <= max(3.0 * float(np.median(resid)), 2.0)
        if keep.all() or keep.sum() < 6:
            break
        t, u = t[keep], u[keep]
    return coeffs


def fit_lane_boundaries(frame: np.ndarray, cfg: LaneConfig) -> List[Optional[np.ndarray]]:
    """Untracked fits ``[left, right]`` of the ego lane's boundaries in one frame (None if not found)."""
    h, w = frame.shape[:2]
    seg = marking_segments(frame, cfg)
    v_top, v_bot = cfg.roi_top * h, cfg.roi_bottom * h
    du = seg[:, 2] - seg[:, 0]
    dv = seg[:, 3] - seg[:, 1]
    steep = np.abs(dv) >= cfg.min_slope * np.abs(du)
    dudv = np.divide(du, dv, out=np.zeros_like(du), where=dv != 0)
    mid_u = 0.5 * (seg[:, 0] + seg[:, 2])
    left = steep & (dudv < 0) & (mid_u < 0.55 * w)
    right = steep & (dudv > 0) & (mid_u > 0.45 * w)
    return [_fit_side(seg[left], v_top, v_bot, cfg), _fit_side(seg[right], v_top, v_bot, cfg)]


@dataclass
class _SideTrack:
    coeffs: Optional[np.ndarray] = None
    missed: int = 0


class LaneTracker:
    """Temporal smoothing and outlier gating of the two ego-lane boundaries (see module doc)."""

    def __init__(self, width: int, height: int, cfg: LaneConfig) -> None:
        self.w, self.h, self.cfg = width, height, cfg
        self.sides = [_SideTrack(), _SideTrack()]

    def update(self, fits: List[Optional[np.ndarray]]) -> List[Optional[np.ndarray]]:
        ends = np.array([0.0, 1.0])
        for side, fit in zip(self.sides, fits):
            accepted = fit is not None
            if fit is not None and side.coeffs is not None:
                jump = np.abs(np.polyval(fit, ends) - np.polyval(side.coeffs, ends)).max()
                accepted = jump <= self.cfg.gate * self.w
            if fit is not None and accepted:
                side.coeffs = fit.copy() if side.coeffs is None else (1 - self.cfg.ema) * side.coeffs + self.cfg.ema * fit
                side.missed = 0
            else:
                side.missed += 1
                if side.missed > self.cfg.max_hold:
                    side.coeffs = None
        return [None if s.coeffs is None else s.coeffs.copy() for s in self.sides]


# --- vehicles ------------------------------------------------------------------------
def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix ``[A, B]`` of boxes (u0, v0, u1, v1)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), -1)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), -1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def vehicle_candidates(
    frame: np.ndarray, cfg: LaneConfig, lane_width_at: Optional[Callable[[np.ndarray], np.ndarray]] = None
) -> np.ndarray:
    """Boxes ``[V, 4]`` of dark-shadow / saturated blobs on the road that have a car's size.

    ``lane_width_at(v) -> pixels`` (from the tracked lanes) sets the expected
    car width at each row (about 0.4-1.1 lane widths); without it a
    perspective prior from the ROI trapezoid is used.
    """
    h, w = frame.shape[:2]
    top = int(cfg.roi_top * h) - int(0.04 * h)
    road = np.zeros((h, w), np.uint8)
    wide = LaneConfig(
        **{
            **cfg.__dict__,
            "roi_top_halfwidth": cfg.vehicle_top_halfwidth,
            "roi_bottom_halfwidth": cfg.vehicle_bottom_halfwidth,
            "roi_top": top / h,
        }
    )
    cv2.fillPoly(road, [_roi_polygon(w, h, wide)], 1)
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    sat = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)[..., 1]
    inside = road.astype(bool)
    median = float(np.median(grey[inside])) if inside.any() else 128.0
    mask = ((grey < cfg.dark_ratio * median) | (sat >= cfg.min_saturation)) & inside
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 9), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return np.zeros((0, 4), np.float32)
    x, y, bw, bh, area = stats[1:].T.astype(np.float64)
    v_bottom = y + bh
    if lane_width_at is None:
        frac = (v_bottom - cfg.roi_top * h) / ((cfg.roi_bottom - cfg.roi_top) * h)
        lane_w = 2 * w * (cfg.roi_top_halfwidth + frac * (cfg.roi_bottom_halfwidth - cfg.roi_top_halfwidth)) / 1.5
    else:
        lane_w = np.asarray(lane_width_at(v_bottom), np.float64)
    ok = (bw >= 0.35 * lane_w) & (bw <= 1.2 * lane_w) & (bw >= 6) & (bh >= 4) & (bh <= 1.2 * bw) & (area >= 0.25 * bw * bh)
    boxes = np.stack([x, y, x + bw, y + bh], -1)[ok]
    # a car's body rises above its shadow: extend thin shadow boxes to a car's height
    height = np.maximum(boxes[:, 3] - boxes[:, 1], 0.75 * (boxes[:, 2] - boxes[:, 0]))
    boxes[:, 1] = boxes[:, 3] - height
    return boxes.astype(np.float32)


class VehicleTracker:
    """Greedy IoU tracking of vehicle boxes; reports tracks seen ``min_hits`` frames in a row."""

    def __init__(self, cfg: LaneConfig) -> None:
        self.cfg = cfg
        self.boxes = np.zeros((0, 4), np.float32)
        self.ids = np.zeros(0, np.int64)
        self.hits = np.zeros(0, np.int64)
        self.miss = np.zeros(0, np.int64)
        self._next = 0

    def update(self, det: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        matched_det = np.zeros(len(det), bool)
        matched_trk = np.zeros(len(self.boxes), bool)
        if len(det) and len(self.boxes):
            iou = _iou(self.boxes, det)
            for _ in range(min(iou.shape)):
                i, j = np.unravel_index(np.argmax(iou), iou.shape)
                if iou[i, j] < 0.2:
                    break
                self.boxes[i] = 0.5 * self.boxes[i] + 0.5 * det[j]
                self.hits[i] += 1
                self.miss[i] = 0
                matched_trk[i] = matched_det[j] = True
                iou[i, :] = -1
                iou[:, j] = -1
        self.miss[~matched_trk] += 1
        self.hits[~matched_trk] = 0
        new = det[~matched_det]
        self.boxes = np.concatenate([self.boxes, new]).astype(np.float32)
        self.ids = np.concatenate([self.ids, self._next + np.arange(len(new))])
        self._next += len(new)
        self.hits = np.concatenate([self.hits, np.ones(len(new), np.int64)])
        self.miss = np.concatenate([self.miss, np.zeros(len(new), np.int64)])
        alive = self.miss <= self.cfg.vehicle_max_miss
        self.boxes, self.ids, self.hits, self.miss = self.boxes[alive], self.ids[alive], self.hits[alive], self.miss[alive]
        show = (self.hits >= self.cfg.min_hits) & (self.miss == 0)
        return self.boxes[show].copy(), self.ids[show].copy()


# --- the extractor -------------------------------------------------------------------
@dataclass
class DashcamExtractor:
    """Stateful classical lane + vehicle extraction over the frames of one video.

    Call :meth:`update` frame by frame (tracking needs the order), or
    :meth:`run` on a whole ``[F, H, W, 3]`` video.  :meth:`reset` between videos.
    """

    config: LaneConfig = field(default_factory=LaneConfig)
    detect_vehicles: bool = True

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._lanes: Optional[LaneTracker] = None
        self._vehicles = VehicleTracker(self.config)
        self._size: Optional[Tuple[int, int]] = None

    def update(self, frame: np.ndarray) -> DashcamDetections:
        frame = check_rgb_frame(frame, "dashcam frame")
        h, w = frame.shape[:2]
        if self._size is None:
            self._size = (w, h)
            self._lanes = LaneTracker(w, h, self.config)
        elif self._size != (w, h):
            raise ShapeError(
                f"dashcam frame: size {w}x{h} differs from the video's {self._size[0]}x{self._size[1]}; "
                "call reset() between videos"
            )
        cfg = self.config
        assert self._lanes is not None  # made with _size on the first frame
        tracked = self._lanes.update(fit_lane_boundaries(frame, cfg))
        v_top, v_bot = cfg.roi_top * h, cfg.roi_bottom * h
        t = np.linspace(1.0, 0.0, cfg.vertices)
        lanes = np.zeros((2, cfg.vertices, 2), np.float32)
        valid = np.array([c is not None for c in tracked])
        for k, c in enumerate(tracked):
            if c is not None:
                lanes[k, :, 0] = np.polyval(c, t)
                lanes[k, :, 1] = v_top + t * (v_bot - v_top)
        boxes = np.zeros((0, 4), np.float32)
        ids = np.zeros(0, np.int64)
        if self.detect_vehicles:
            width_at = None
            if valid.all():
                cl, cr = cast(List[np.ndarray], tracked)  # valid.all(): neither side is None

                def width_at(v: np.ndarray) -> np.ndarray:
                    tt = (np.asarray(v) - v_top) / (v_bot - v_top)
                    return np.maximum(np.polyval(cr, tt) - np.polyval(cl, tt), 4.0)

            boxes, ids = self._vehicles.update(vehicle_candidates(frame, cfg, width_at))
        return DashcamDetections(lanes=lanes, lane_valid=valid, vehicles=boxes, vehicle_ids=ids, image_size=(w, h))

    def run(self, frames: np.ndarray) -> List[DashcamDetections]:
        """Reset, then :meth:`update` on every frame of ``[F, H, W, 3]``."""
        self.reset()
        return [self.update(f) for f in frames]

    def iter(self, frames) -> Iterator[DashcamDetections]:
        self.reset()
        for f in frames:
            yield self.update(f)
