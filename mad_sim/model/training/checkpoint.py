"""Training checkpoints: safetensors + JSON, written atomically, verified on load.

A checkpoint is a folder ``<run>/checkpoints/step_<NNNNNNN>/`` holding

- ``model.safetensors``: the trained tensors (the whole module for full
  training, only the adapter for LoRA training), float as trained;
- ``optimizer.safetensors`` + the optimizer's non-tensor state in
  ``meta.json`` (AdamW's ``exp_avg``/``exp_avg_sq``/``step`` per parameter,
  the param groups), so that a resumed run takes exactly the same steps;
- ``meta.json``: step, scheduler state, the run's config, free-form extras
  (e.g. the loss history) and the SHA-256 of every tensor file.

No pickle anywhere (the project's rule: weights and checkpoints are safetensors only, so loading
one runs no code).
The folder is first written under a hidden temporary name and renamed into
place, then ``latest.json`` (also written atomically) points at it, so an
interrupted run leaves either the previous checkpoint or the complete new one.
Loading re-hashes every file: a truncated or altered checkpoint raises
:class:`~mad_sim.errors.CheckpointError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mad_sim.errors import CheckpointError
from mad_sim.io import write_text_atomic

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
FORMAT_VERSION = 1
_MODEL = "model.safetensors"
_OPTIM = "optimizer.safetensors"
_META = "meta.json"
_LATEST = "latest.json"


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns.

    Attributes:
      path: the checkpoint folder.
      step: number of optimizer steps taken when it was written.
      model: the trained tensors by name.
      optimizer: a ``torch.optim.Optimizer.state_dict()`` rebuilt from the files.
      scheduler: the LR scheduler's ``state_dict()`` (JSON-able).
      extra: the free-form mapping given to :func:`save_checkpoint`.
    """

    path: Path
    step: int
    model: Dict[str, torch.Tensor]
    optimizer: Optional[dict] = None
    scheduler: Optional[dict] = None
    extra: Dict[str, Any] = field(default_factory=dict)


def sha256_file(path: PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- optimizer state <-> (tensors, json) -------------------------------------------
def _split_optimizer_state(state: dict) -> tuple[Dict[str, torch.Tensor], dict]:
    """Flatten ``optimizer.state_dict()`` into safetensors-able tensors and a JSON tree."""
    tensors: Dict[str, torch.Tensor] = {}
    plain_state: Dict[str, Dict[str, Any]] = {}
    for pid, entries in state["state"].items():
        plain: Dict[str, Any] = {}
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                plain[name] = value
        plain_state[str(pid)] = plain
    return tensors, {"state": plain_state, "param_groups": state["param_groups"]}


def _join_optimizer_state(tensors: Dict[str, torch.Tensor], tree: dict) -> dict:
    state: Dict[int, Dict[str, Any]] = {int(pid): dict(v) for pid, v in tree["state"].items()}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    groups = []
    for g in tree["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


# --- save / load -------------------------------------------------------------------
def save_checkpoint(
    directory: PathLike,
    step: int,
    model: Dict[str, torch.Tensor],
    *,
    optimizer: Optional[torch.optim.Optimizer] = None,
    scheduler: Any = None,
    config: Optional[dict] = None,
    extra: Optional[dict] = None,
    keep: int = 2,
) -> Path:
    """Write ``<directory>/step_<step>/`` atomically and point ``latest.json`` at it.

    Args:
      directory: the run's checkpoint folder (created if missing).
      step: optimizer steps taken so far.
      model: tensors to save (moved to CPU, made contiguous).
      optimizer / scheduler: their ``state_dict()`` is saved when given.
      config: the run's config as a plain dict (for the record).
      extra: any JSON-able mapping (loss history, data manifest hash...).
      keep: how many most recent checkpoints to keep (older ones are deleted).

    Returns:
      The path of the new checkpoint folder.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"step_{step:07d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=directory))
    try:
        files: Dict[str, str] = {}
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in model.items()},
            str(tmp / _MODEL),
            metadata={"format": "mad-sim-checkpoint", "step": str(step)},
        )
        files[_MODEL] = sha256_file(tmp / _MODEL)
        optim_tree = None
        if optimizer is not None:
            optim_tensors, optim_tree = _split_optimizer_state(optimizer.state_dict())
            save_file(optim_tensors, str(tmp / _OPTIM))
            files[_OPTIM] = sha256_file(tmp / _OPTIM)
        meta = {
            "format_version": FORMAT_VERSION,
            "step": int(step),
            "files": files,
            "optimizer": optim_tree,
            "scheduler": None if scheduler is None else scheduler.state_dict(),
            "config": config or {},
            "extra": extra or {},
        }
        (tmp / _META).write_text(json.dumps(meta, indent=1))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    write_text_atomic(directory / _LATEST, json.dumps({"step": int(step), "path": final.name}))
    _prune(directory, keep)
    log.info("checkpoint written: %s", final)
    return final


def list_checkpoints(directory: PathLike) -> List[Path]:
    """Complete checkpoint folders under ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("step_*") if p.is_dir() and (p / _META).is_file())


def _prune(directory: Path, keep: int) -> None:
    ckpts = list_checkpoints(directory)
    for old in ckpts[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(directory: PathLike) -> Optional[Path]:
    """The folder ``latest.json`` points at (or the newest complete one), None if there is none."""
    directory = Path(directory)
    pointer = directory / _LATEST
    if pointer.is_file():
        try:
            path = directory / json.loads(pointer.read_text())["path"]
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(
                f"{pointer}: not a valid checkpoint pointer ({exc}); delete it to fall back to the newest folder"
            ) from exc
        if (path / _META).is_file():
            return path
    ckpts = list_checkpoints(directory)
    return ckpts[-1] if ckpts else None


def _read_tensors(path: Path, want_sha: Optional[str]) -> Dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file is missing")
    if want_sha is not None and sha256_file(path) != want_sha:
        raise CheckpointError(f"{path}: checkpoint file is corrupt (SHA-256 differs from the one recorded in {_META})")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc


def load_checkpoint(path: PathLike) -> Checkpoint:
    """Read and verify a checkpoint folder (or a run folder: its latest checkpoint).

    Raises:
      CheckpointError: the folder, ``meta.json`` or a tensor file is missing,
        unreadable or fails its SHA-256 check.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.is_dir() and not (path / _META).exists():
        found = latest_checkpoint(path)
        if found is None:
            raise CheckpointError(f"{path}: no checkpoint (step_*/meta.json) in this folder")
        path = found
    meta_path = path / _META
    try:
        meta = json.loads(meta_path.read_text())
        files = meta["files"]
        step = int(meta["step"])
    except FileNotFoundError as exc:
        raise CheckpointError(f"{meta_path}: checkpoint metadata is missing") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{meta_path}: checkpoint metadata is corrupt ({exc})") from exc
    model = _read_tensors(path / _MODEL, files.get(_MODEL))
    optimizer = None
    if meta.get("optimizer") is not None:
        optimizer = _join_optimizer_state(_read_tensors(path / _OPTIM, files.get(_OPTIM)), meta["optimizer"])
    return Checkpoint(
        path=path, step=step, model=model, optimizer=optimizer, scheduler=meta.get("scheduler"), extra=meta.get("extra") or {}
    )
