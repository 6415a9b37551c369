"""Where the real data lives: the data root.

``$MAD_SIM_DATA`` when set, else ``../shared/data`` beside the checkout (the
folder next to the repository root).  The library (the corpus, the training
datasets, the appearance clips), the tests (``tests/conftest.py``) and the
scripts under ``bench/`` and ``scripts/`` all resolve data through
:func:`data_root`, so one variable moves every one of them.

Relative data paths written in config files are resolved by
:func:`resolve_data_path` (the data root first, then the config's folder,
then the working directory), so a config works from any working directory.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Union

ENV_VAR = "MAD_SIM_DATA"
"""The environment variable that names the data root."""


def data_root() -> Path:
    """``$MAD_SIM_DATA``, else ``../shared/data`` beside the checkout; the folder need not exist."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _present(path: Path) -> bool:
    """A file or folder at ``path``, or a glob pattern that matches something."""
    text = str(path)
    return path.exists() or (glob.has_magic(text) and bool(glob.glob(text, recursive=True)))


def resolve_data_path(path: str, *bases: Union[str, "os.PathLike[str]"]) -> str:
    """Where a data path from a config points (a file, a folder or a glob pattern), tried in this order:

    1. an absolute path (after ``~`` expansion): as it is;
    2. relative: under :func:`data_root` when something is there (a file, a folder, a glob match);
    3. else under each folder of ``bases`` in turn (e.g. the config file's folder) when something is there;
    4. else ``path`` unchanged: relative to the working directory, where a missing file is reported
       (specs that are no path, such as ``corpus:train``, land here too).
    """
    if not path.strip():
        return path
    p = Path(os.path.expanduser(path))
    if p.is_absolute():
        return str(p)
    for base in (data_root(), *bases):
        candidate = Path(base) / p
        if _present(candidate):
            return str(candidate)
    return path


WAYMAX_VALIDATION_SCENES = (
    "15ba624c7ff6b480",
    "2bd577a009790706",
    "48b0814dee9301a0",
    "5407aadfd6a7628c",
    "56612a38bbc5c44e",
    "641ead285b0c7516",
)
"""Six Waymax scenarios of the corpus's ``val`` split (never trained on): the default scenes of the
closed-loop, forecast parse-back and reaction benches."""


def waymax_validation_files() -> list[str]:
    """Paths of :data:`WAYMAX_VALIDATION_SCENES` under the data root (``corpus/waymax/waymax_scenario_<id>.pkl``)."""
    return [str(data_root() / "corpus" / "waymax" / f"waymax_scenario_{s}.pkl") for s in WAYMAX_VALIDATION_SCENES]
