"""Splitting an evaluation across processes and gathering its rows, with accelerate.

Launched with several processes (``accelerate launch`` or ``torchrun``, which set
``WORLD_SIZE`` > 1), the evaluators take accelerate's
:class:`accelerate.PartialState` (CPU, gloo: rows are Python objects, whatever
device the planners use) for this process's index and the number of processes;
scenario ``i`` of the stream goes to process ``i % num_processes``
(:func:`mad_sim.eval.open_loop.iter_jobs`), and
:func:`accelerate.utils.gather_object` hands every process the rows of all of
them, in process order (:func:`gather_rows` per planner, :func:`gather_list` for
any list of picklable items); :func:`wait_for_everyone` is the barrier.  One
process (no ``WORLD_SIZE``) imports neither torch nor accelerate: index 0 of 1,
gathering returns what it was given and the barrier does nothing.
"""

from __future__ import annotations

import atexit
import os
from typing import Any, Dict, List, Optional, Tuple, TypeVar

T = TypeVar("T")

Rows = Dict[str, List[Dict[str, Any]]]
"""Per-planner result rows: ``{planner name: [row, ...]}``."""


def process_state() -> Optional[Any]:
    """accelerate's :class:`~accelerate.PartialState` (CPU) when launched with several processes, else None.

    The first call also registers :func:`_close_process_group` to run at interpreter exit.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState

    global _CLOSE_REGISTERED
    if not _CLOSE_REGISTERED:
        atexit.register(_close_process_group)
        _CLOSE_REGISTERED = True
    return PartialState(cpu=True)


_CLOSE_REGISTERED = False


def _close_process_group() -> None:
    """Destroy the gloo process group before the interpreter tears down.

    Left to exit, gloo's worker threads can outlive the objects they use: about one
    two-process run in three aborted at exit ("terminate called without an active
    exception", exit -6) after finishing its work.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def distributed_rank() -> Tuple[int, int]:
    """``(process index, number of processes)``: ``(0, 1)`` for a single process."""
    state = process_state()
    return (0, 1) if state is None else (int(state.process_index), int(state.num_processes))


def gather_list(items: List[T]) -> List[T]:
    """Every process's ``items`` (picklable), concatenated in process order (``items`` itself on one process).

    Every process must call it (it is a collective).
    """
    state = process_state()
    if state is None or state.num_processes <= 1:
        return items
    from accelerate.utils import gather_object

    return list(gather_object(items))


def gather_rows(rows: Rows) -> Rows:
    """Every process's rows, concatenated per planner in process order (the rows themselves on one process).

    Every process must call it (it is a collective); planners a process saw no scenario for still
    appear, with the rows of the others.
    """
    parts = gather_list([rows])
    if len(parts) == 1:
        return rows
    merged: Rows = {k: [] for k in rows}
    for part in parts:
        for k, v in part.items():
            merged.setdefault(k, []).extend(v)
    return merged


def wait_for_everyone() -> None:
    """Block until every process gets here (accelerate's barrier); nothing to wait for on one process."""
    state = process_state()
    if state is not None:
        state.wait_for_everyone()
