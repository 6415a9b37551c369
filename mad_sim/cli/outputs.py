"""Output paths of the subcommands, checked before any work is done.

:func:`check_output` fails fast, with one line (a :class:`~mad_sim.errors.RenderError`
the CLI prints, exit 2), when ``--out`` cannot be written: its folder cannot
be made, is not writable, or the name is a folder or has an unsupported
suffix; so a long render or rollout never ends in a traceback at the write.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional, Sequence, Union

from mad_sim.errors import RenderError


def check_output(path: Union[str, os.PathLike], what: str = "--out", suffixes: Optional[Sequence[str]] = None) -> Path:
    """``path`` as a Path once a file can be written there (its folder is created); RenderError otherwise."""
    target = Path(path)
    if suffixes is not None and target.suffix.lower() not in suffixes:
        raise RenderError(f"{what} {target}: unsupported suffix {target.suffix!r} (use one of {', '.join(suffixes)})")
    if target.is_dir():
        raise RenderError(f"{what} {target}: is a folder, expected a file name")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise RenderError(f"{what} {target}: cannot write there ({exc.strerror or exc})") from None
    return target


__all__ = ["check_output"]
