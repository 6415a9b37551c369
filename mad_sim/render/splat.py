"""Vectorised line rasterisation in painter's order (numpy, no per-segment Python).

A :class:`Strokes` list holds pixel segments for a batch of frames, already
sorted in drawing order.  :func:`splat` samples every segment with a DDA
(``n = ceil(max(|du|, |dv|)) + 1`` samples, so consecutive samples are at
most one pixel apart along the major axis: an 8-connected line like
Bresenham's), draws a stroke of width ``w`` as ``w`` parallel copies offset
by one pixel across its minor axis (the classic thick-DDA line; a dot is a
``w x w`` square), and writes all samples with one fancy-indexed assignment.  Writes happen in sample
order, so a later stroke covers an earlier one wherever they share a pixel:
that is how near agents occlude far ones.  A zero-length stroke is a dot.

Pixel ``(i, j)`` is covered by a sample at ``(u, v)`` when
``rint(u) = j`` and ``rint(v) = i`` (pixel centres at integer coordinates,
OpenCV's convention).
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np


@dataclass
class Strokes:
    """Segments to draw, in drawing order.

    Attributes:
      frame: [S] int64 frame index in the batch.
      a, b: [S, 2] float64 endpoints, pixels (equal for a dot).
      color: [S, 3] uint8 RGB.
      width: [S] int64 pixels (>= 1).
      label: [S] int64 value written by label (mask) rendering.
    """

    frame: np.ndarray
    a: np.ndarray
    b: np.ndarray
    color: np.ndarray
    width: np.ndarray
    label: np.ndarray

    @classmethod
    def empty(cls) -> "Strokes":
        return cls(np.zeros(0, np.int64), np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0, 3), np.uint8),
                   np.zeros(0, np.int64), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    def take(self, index) -> "Strokes":
        return Strokes(self.frame[index], self.a[index], self.b[index], self.color[index], self.width[index],
                       self.label[index])


def splat(target: np.ndarray, strokes: Strokes, colors: bool = True, max_samples: int = 4_000_000) -> None:
    """Draw ``strokes`` into ``target`` in place.

    Args:
      target: [F, H, W, 3] uint8 frames (``colors=True``: strokes write their
        colour) or [F, H, W] integer masks (``colors=False``: strokes write their label).
      strokes: the strokes, in drawing order; ``frame`` indexes ``target``.
      max_samples: pixels written per vectorised pass (bounds memory).
    """
    if len(strokes) == 0:
        return
    a, b = strokes.a.copy(), strokes.b.copy()
    # A dot of width w is a horizontal run of w samples, widened to w rows below: a w x w square.
    dot = (a == b).all(1) & (strokes.width > 1)
    half = 0.5 * (strokes.width[dot] - 1)
    a[dot, 0] -= half
    b[dot, 0] += half
    d = b - a
    n = np.ceil(np.abs(d).max(1)).astype(np.int64) + 1
    cost = n * strokes.width
    ends = np.cumsum(cost)
    start = 0
    while start < len(strokes):
        budget = (ends[start - 1] if start else 0) + max_samples
        stop = max(start + 1, int(np.searchsorted(ends, budget, side="right")))
        sl = slice(start, stop)
        _splat_chunk(target, strokes.frame[sl], a[sl], d[sl], n[sl], strokes.width[sl],
                     strokes.color[sl] if colors else strokes.label[sl])
        start = stop


def _splat_chunk(target: np.ndarray, frame: np.ndarray, a: np.ndarray, d: np.ndarray, n: np.ndarray,
                 width: np.ndarray, value: np.ndarray) -> None:
    """Sample ``n`` points along each segment, ``width`` parallel copies across its minor axis, and write them."""
    f_, h, w = target.shape[:3]
    if (width == 1).all():
        # Thin strokes (the common case at low resolution): one sample per step, no widening.
        # One repeat of a packed [S, 6] table (start, step, frame offset, stroke) instead of one per column.
        inv = 1.0 / np.maximum(n - 1, 1)
        table = np.stack([a[:, 0], a[:, 1], d[:, 0] * inv, d[:, 1] * inv, np.cumsum(n) - n,
                          np.arange(len(n), dtype=np.float64)], 1)
        rep = np.repeat(table, n, axis=0)
        along = np.arange(rep.shape[0], dtype=np.float64) - rep[:, 4]
        u = np.rint(rep[:, 0] + along * rep[:, 2]).astype(np.int64)
        v = np.rint(rep[:, 1] + along * rep[:, 3]).astype(np.int64)
        seg = rep[:, 5].astype(np.int64)
    else:
        reps = n * width
        seg = np.repeat(np.arange(len(n)), reps)
        local = np.arange(seg.size) - np.repeat(np.cumsum(reps) - reps, reps)
        wd = np.repeat(width, reps)
        along, across = np.divmod(local, wd)
        t = along * np.repeat(1.0 / np.maximum(n - 1, 1), reps)
        u = np.rint(np.repeat(a[:, 0], reps) + t * np.repeat(d[:, 0], reps)).astype(np.int64)
        v = np.rint(np.repeat(a[:, 1], reps) + t * np.repeat(d[:, 1], reps)).astype(np.int64)
        off = across - (wd - 1) // 2
        major_u = np.repeat(np.abs(d[:, 0]) >= np.abs(d[:, 1]), reps)
        v += np.where(major_u, off, 0)
        u += np.where(major_u, 0, off)
    ok = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    seg, u, v = seg[ok], u[ok], v[ok]
    flat = (frame[seg] * h + v) * w + u
    if target.ndim == 4:
        target.reshape(-1, target.shape[-1])[flat] = value[seg]
    else:
        target.reshape(-1)[flat] = value[seg]
