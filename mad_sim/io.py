"""Atomic file writes: write a temporary file beside the target, then rename.

An interrupted run therefore never leaves a half-written checkpoint, video or
result behind: the target either has its old content or the complete new one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Union


@contextlib.contextmanager
def atomic_path(target: Union[str, os.PathLike], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``target`` on success.

    ``suffix`` keeps the extension for writers that infer the format from it
    (e.g. ``.mp4``); by default the target's own suffix is used.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or target.suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(target: Union[str, os.PathLike], data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: Union[str, os.PathLike], text: str) -> None:
    write_bytes_atomic(target, text.encode())
