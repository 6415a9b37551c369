"""The pose frames of the WOMD scenario are pinned bit for bit.

The hashes were recorded from the renderer before its speed work
(vectorised splat gathers, block-sorted painter order, slice-wise bbox
reductions); the optimisations must not move a single pixel.  The pinned
values hold for this platform's numpy / OpenCV builds: if a library upgrade
changes rounding, re-record them from a commit known to be right and say so.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from mad_sim.data import load_scenario
from mad_sim.render.pose import PoseRenderer

# (width, height, viewpoint) -> (sha256 of the [91, H, W, 3] uint8 frames, number of non-black channel values)
PINNED = {
    (128, 128, 256): ("9e3df5ec4513143ac92dec496c10e0a67546af56bc934f8d9e84db43549abf2c", 269552),
    (128, 128, 7): ("9bdc4b2deeaf0ddbd7a5cba3be6f7f0f0e0bdf5f0478e580e58bc37f38630819", 398492),
    (128, 128, 13): ("6ec56dee766e1e87e0539f3db6e6756d9d861f9ef5ecf82af3e315999558fadf", 205207),
    (768, 512, 256): ("31b938a4ae42a947a9c052a017b699490640ba15760ca9558c7d14b544ddb2bc", 7095101),
    (768, 512, 8): ("0eeb7cbde38183a476c8dcd701376a3ef35c2f7b39356976335cc79144e474c2", 5253917),
}


_SCENARIOS = {}


@pytest.mark.parametrize("width,height,viewpoint", sorted(PINNED))
def test_pose_frames_match_pinned(womd_path, width: int, height: int, viewpoint: int) -> None:
    scenario = _SCENARIOS.get(womd_path) or _SCENARIOS.setdefault(womd_path, load_scenario(womd_path))
    frames = PoseRenderer(width, height).render_scenario(scenario, viewpoint, 0, scenario.num_steps)
    assert frames.shape == (91, height, width, 3) and frames.dtype == np.uint8
    digest, lit = PINNED[(width, height, viewpoint)]
    assert int(np.count_nonzero(frames)) == lit
    assert hashlib.sha256(frames.tobytes()).hexdigest() == digest
