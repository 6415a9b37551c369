"""Camera video and image files read into RGB arrays, and the check of one RGB frame.

Frames are ``[H, W, 3]`` uint8 RGB (OpenCV's BGR is converted); a video is
``[F, H, W, 3]`` with its frame rate in Hz.  Missing files raise
:class:`~mad_sim.errors.DataNotFoundError`, undecodable ones
:class:`~mad_sim.errors.DataError`, both naming the path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, List, Optional, Tuple, Union, cast

import cv2
import numpy as np

from mad_sim.errors import DataError, DataNotFoundError, ShapeError

PathLike = Union[str, os.PathLike]

__all__ = ["read_video", "read_image", "check_rgb_frame"]


def read_video(path: PathLike, max_frames: Optional[int] = None) -> Tuple[np.ndarray, float]:
    """All frames of a video file as ``[F, H, W, 3]`` uint8 RGB, and its frame rate (Hz).

    Raises:
      DataNotFoundError: no such file.
      DataError: the file cannot be decoded as video or holds no frame.
    """
    import imageio.v2 as imageio  # local: only needed for files

    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError("no such video file", path=str(path))
    frames: List[np.ndarray] = []
    try:
        reader = imageio.get_reader(str(path))
        fps = float(reader.get_meta_data().get("fps", 0.0) or 0.0)
        # imageio's stub types Reader.__iter__ as returning one array; it yields the frames
        for i, frame in enumerate(cast(Iterable[np.ndarray], reader)):
            if max_frames is not None and i >= max_frames:
                break
            frames.append(np.asarray(frame)[..., :3])
        reader.close()
    except (OSError, RuntimeError, ValueError, IndexError) as exc:
        raise DataError(f"cannot decode as video ({exc})", path=str(path)) from exc
    if not frames:
        raise DataError("video holds no frame", path=str(path))
    return np.stack(frames).astype(np.uint8, copy=False), fps


def read_image(path: PathLike) -> np.ndarray:
    """One image file as ``[H, W, 3]`` uint8 RGB."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError("no such image file", path=str(path))
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError("cannot decode as an image", path=str(path))
    return np.ascontiguousarray(bgr[..., ::-1])


def check_rgb_frame(frame: np.ndarray, what: str = "frame") -> np.ndarray:
    """Raise :class:`ShapeError` unless ``frame`` is ``[H, W, 3]`` uint8."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ShapeError(f"{what}: expected an [H, W, 3] uint8 RGB image, got {frame.dtype} {frame.shape}")
    return frame
