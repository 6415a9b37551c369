"""Video files (mp4, gif) and side-by-side panels."""

import imageio.v2 as imageio
import numpy as np
import pytest

from mad_sim.errors import RenderError, ShapeError
from mad_sim.render.video import side_by_side, write_video


def _frames(f=6, h=48, w=64):
    # Smooth moving gradients: compress well, so decoded pixels stay close to the originals.
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.stack([np.stack([(xx * 4 + k * 10) % 256, (yy * 5) % 256, np.full_like(xx, 40 * k % 256)], -1) for k in range(f)])
    return out.astype(np.uint8)


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_write_video_roundtrip(tmp_path, suffix):
    frames = _frames()
    path = write_video(tmp_path / f"clip{suffix}", frames, fps=10)
    assert path.exists()
    assert [p.name for p in tmp_path.iterdir()] == [f"clip{suffix}"], "no temporary file left behind"
    back = np.stack([f[..., :3] for f in imageio.mimread(path)])
    assert back.shape == frames.shape
    err = np.abs(back.astype(int) - frames.astype(int)).mean()
    assert err < 12, err


def test_mp4_odd_sizes_are_padded(tmp_path):
    frames = _frames(h=45, w=63)
    back = imageio.mimread(write_video(tmp_path / "odd.mp4", frames))
    assert back[0].shape == (46, 64, 3)


def test_write_video_rejects_bad_input(tmp_path):
    with pytest.raises(RenderError):
        write_video(tmp_path / "x.avi", _frames())
    with pytest.raises(ShapeError):
        write_video(tmp_path / "x.mp4", _frames().astype(np.float32))
    with pytest.raises(ShapeError):
        write_video(tmp_path / "x.mp4", _frames()[0])
    assert not list(tmp_path.iterdir())


def test_side_by_side_layout_and_labels():
    a = np.zeros((3, 40, 60, 3), np.uint8)
    b = np.full((3, 20, 20, 3), 200, np.uint8)
    out = side_by_side([a, b], ["pose", "ego"], time_label=True)
    assert out.shape == (3, 40, 100, 3)
    # b was resized to 40x40 and sits right of a.
    assert (out[:, 20, 80] == 200).all()
    # Labels and the time stamp write white text into the black panel, and the stamp changes per frame.
    assert (out[0, :15, :40] > 100).any()
    assert (out[0, 25:, :40] != out[2, 25:, :40]).any()
    with pytest.raises(ShapeError):
        side_by_side([a, b[:2]])
