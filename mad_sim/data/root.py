"""Where the real data lives: the data root.

``$MAD_SIM_DATA`` when set, else ``../shared/data`` beside the checkout (the
folder next to the repository root).  The library (the corpus, the training
datasets, the appearance clips), the tests (``tests/conftest.py``) and the
scripts under ``bench/`` and ``scripts/`` all resolve data through
:func:`data_root`, so one variable moves every one of them.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "MAD_SIM_DATA"
"""The environment variable that names the data root."""


def data_root() -> Path:
    """``$MAD_SIM_DATA``, else ``../shared/data`` beside the checkout; the folder need not exist."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"
