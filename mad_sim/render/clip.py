"""Liang-Barsky segment clipping from signed plane distances.

A segment ``p(s) = a + s (b - a)``, ``0 <= s <= 1``, is clipped against
planes given by the signed distances ``da[k]``, ``db[k]`` of its endpoints
(inside where ``>= 0``; any positive scale per plane).  Each plane the
segment crosses shrinks ``[s0, s1]``: entering (``da < 0 <= db``) raises
``s0`` to ``da / (da - db)``, leaving (``db < 0 <= da``) lowers ``s1`` to
the same ratio.  Segments with both ends outside one plane are rejected
before any division; segments with both ends inside every plane pass with
``[0, 1]``.  :class:`~mad_sim.render.camera.Camera` uses it with its five
frustum planes.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np


def clip_parameters(da: Sequence[np.ndarray], db: Sequence[np.ndarray]) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Clip [S] segments given their endpoints' distances to each plane (``len(da)`` arrays of [S]).

    Returns ``(keep [S] bool, cross [C] indices of kept segments that cross a plane, s0 [C], s1 [C])``:
    the visible part of segment ``cross[i]`` is ``a + s (b - a)`` for ``s0[i] <= s <= s1[i]``; kept
    segments not in ``cross`` are entirely inside.
    """
    planes = len(da)
    out = (da[0] < 0) & (db[0] < 0)
    for k in range(1, planes):
        out |= (da[k] < 0) & (db[k] < 0)
    keep = ~out
    inside = (da[0] >= 0) & (db[0] >= 0)
    for k in range(1, planes):
        inside &= (da[k] >= 0) & (db[k] >= 0)
    cross = np.flatnonzero(keep & ~inside)
    s0 = np.zeros(cross.size)
    s1 = np.ones(cross.size)
    if cross.size:
        with np.errstate(divide="ignore", invalid="ignore"):
            for k in range(planes):
                pa, pb = da[k][cross], db[k][cross]
                s = pa / (pa - pb)
                s0 = np.where((pa < 0) & (pb >= 0), np.maximum(s0, s), s0)
                s1 = np.where((pb < 0) & (pa >= 0), np.minimum(s1, s), s1)
        ok = s0 <= s1
        keep[cross[~ok]] = False
        cross, s0, s1 = cross[ok], s0[ok], s1[ok]
    return keep, cross, s0, s1
