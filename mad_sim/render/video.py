"""Video files and side-by-side panels.

:func:`write_video` writes ``[F, H, W, 3]`` uint8 RGB frames as mp4 (H.264
through imageio-ffmpeg, yuv420p, so odd sizes are padded by one black
row / column) or gif (imageio's pillow plugin), chosen by the suffix, and
atomically (a temporary file renamed into place).  :func:`side_by_side`
puts panels (pose | ego-motion | BEV | RGB) next to each other with labels
and a time stamp.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import List, Optional, Sequence, Union

import cv2
import numpy as np

from mad_sim.errors import RenderError, ShapeError
from mad_sim.io import atomic_path

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".gif")


def check_frames(frames: np.ndarray, what: str = "frames") -> np.ndarray:
    """Return ``frames`` if it is a non-empty [F, H, W, 3] uint8 array, else raise ShapeError."""
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3 or min(arr.shape[:3]) < 1:
        raise ShapeError(f"{what} must be [F, H, W, 3] with F, H, W >= 1, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ShapeError(f"{what} must be uint8, got {arr.dtype}")
    return arr


def write_video(path: Union[str, os.PathLike], frames: np.ndarray, fps: float = 10.0) -> Path:
    """Write RGB frames [F, H, W, 3] uint8 to ``path`` (.mp4 or .gif), atomically. Returns the path."""
    import imageio.v2 as imageio

    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise RenderError(f"{target}: unsupported video suffix {suffix!r} (use one of {', '.join(VIDEO_SUFFIXES)})")
    arr = check_frames(frames)
    if not fps > 0:
        raise RenderError(f"{target}: fps must be > 0, got {fps}")
    with atomic_path(target) as tmp:
        if suffix == ".mp4":
            f_, h, w, _ = arr.shape
            if h % 2 or w % 2:  # yuv420p needs even sizes
                arr = np.pad(arr, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
            writer = imageio.get_writer(
                tmp,
                format="FFMPEG",
                mode="I",
                fps=fps,
                codec="libx264",
                pixelformat="yuv420p",
                macro_block_size=1,
                quality=8,
                ffmpeg_log_level="error",
            )
            try:
                for frame in arr:
                    writer.append_data(frame)
            finally:
                writer.close()
        else:
            imageio.mimwrite(tmp, list(arr), format="GIF", duration=1000.0 / fps, loop=0)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; a video is an ordinary file
    log.info("wrote %s (%d frames, %dx%d, %.1f fps)", target, len(arr), arr.shape[2], arr.shape[1], fps)
    return target


def _label(img: np.ndarray, text: str, org: tuple, scale: float) -> None:
    thick = max(1, int(round(scale * 2)))
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)


def side_by_side(
    panels: Sequence[np.ndarray],
    labels: Optional[Sequence[str]] = None,
    time_label: bool = True,
    fps: float = 10.0,
    t0: float = 0.0,
) -> np.ndarray:
    """[F, H, sum(W_i), 3] uint8: panels [F, H_i, W_i, 3] next to each other.

    Panels of other heights are resized to the first panel's height (aspect
    kept).  ``labels`` are written in each panel's top-left corner; with
    ``time_label`` the first panel's bottom-left shows ``t = t0 + k / fps``
    seconds.  All panels must have the same number of frames.
    """
    if not panels:
        raise ShapeError("side_by_side needs at least one panel")
    arrs: List[np.ndarray] = [check_frames(p, f"panel {i}") for i, p in enumerate(panels)]
    n = arrs[0].shape[0]
    if any(a.shape[0] != n for a in arrs):
        raise ShapeError(f"panels have different frame counts: {[a.shape[0] for a in arrs]}")
    if labels is not None and len(labels) != len(arrs):
        raise ShapeError(f"{len(labels)} labels for {len(arrs)} panels")
    h = arrs[0].shape[1]
    fixed = []
    for a in arrs:
        if a.shape[1] != h:
            w = max(1, int(round(a.shape[2] * h / a.shape[1])))
            a = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in a])
        fixed.append(a)
    out = np.concatenate(fixed, axis=2)
    scale = max(0.3, h / 400.0)
    if labels is not None or time_label:
        x = 0
        offsets = []
        for a in fixed:
            offsets.append(x)
            x += a.shape[2]
        for k in range(n):
            if labels is not None:
                for off, text in zip(offsets, labels):
                    _label(out[k], str(text), (off + 3, int(14 * scale / 0.4)), scale)
            if time_label:
                _label(out[k], f"t={t0 + k / fps:.1f}s", (3, h - 4), scale)
    return out
