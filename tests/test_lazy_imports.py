"""Importing a numpy-only part of mad_sim does not import torch; the lazy ``mad_sim.model`` API still works.

``mad_sim/model/__init__.py`` resolves its public names on first access (PEP 562
``__getattr__`` over the table ``_LAZY``), so ``mad_sim.model.parse.*`` (pose
parsing, lane odometry), ``mad_sim.model.agents.settings`` / ``ego_intent`` and the
env with scripted agents run without torch / diffusers in the process.  Each
no-torch check runs in a fresh interpreter (this test process has torch loaded
by other tests).  Its ``TYPE_CHECKING`` block (what IDEs and type checkers
read), ``_LAZY`` and ``__all__`` must name the same objects.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import mad_sim.model

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "diffusers", "peft", "accelerate", "transformers")
NUMPY_ONLY = [
    "mad_sim.model",
    "mad_sim.model.parse",
    "mad_sim.model.agents",
    "mad_sim.model.appearance",
    "mad_sim.model.training",
    "mad_sim.model.evaluation",
    "mad_sim.model.evaluation.parse",
    "mad_sim.model.evaluation.vae_metrics",
    *sorted(f"mad_sim.model.parse.{p.stem}" for p in (ROOT / "mad_sim/model/parse").glob("*.py") if p.stem != "__init__"),
    "mad_sim.model.agents.settings",
    "mad_sim.model.agents.ego_intent",
]


def _run(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON object on its last line."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_numpy_only_modules_import_without_torch() -> None:
    code = f"""
import importlib, json, sys
first = None
for name in {NUMPY_ONLY!r}:
    importlib.import_module(name)
    heavy = [m for m in {HEAVY!r} if m in sys.modules]
    if heavy and first is None:
        first = [name, heavy]
print(json.dumps({{"first": first, "loaded": [m for m in {NUMPY_ONLY!r} if m in sys.modules]}}))
"""
    res = _run(code)
    assert res["loaded"] == NUMPY_ONLY
    assert res["first"] is None, f"importing {res['first'][0]} imported {res['first'][1]}"


def test_env_with_scripted_agents_runs_without_torch() -> None:
    code = """
import json, sys
import gymnasium as gym
import mad_sim
seen = {}
for agents in ("log", "idm"):
    env = gym.make("MADDrive-v0", agents=agents, pose_observation=True, render_mode="pose")
    obs, _ = env.reset(seed=3)
    for _ in range(3):
        obs, r, term, trunc, info = env.step(env.action_space.sample())
    frame = env.render()
    env.close()
    seen[agents] = [int(obs["pose"].shape[0]), int(frame.shape[0]), [m for m in HEAVY if m in sys.modules]]
print(json.dumps(seen))
""".replace("HEAVY", repr(HEAVY))
    res = _run(code)
    for agents in ("log", "idm"):
        pose_h, frame_h, heavy = res[agents]
        assert pose_h == 128 and frame_h > 0, res  # the env really rendered pose frames
        assert not heavy, f"MADDrive-v0 with agents={agents!r} imported {heavy}"


def test_public_names_resolve_lazily_in_a_fresh_process() -> None:
    code = """
import json, sys
import mad_sim.model as m
presets = m.presets.__name__  # a submodule nothing has imported yet, reached as an attribute
before = "torch" in sys.modules
listed = sorted(set(m.__all__) - set(dir(m)))
from mad_sim.model import load_backbone, MADModel
print(json.dumps({"presets": presets, "before": before, "after": "torch" in sys.modules, "missing_from_dir": listed,
                  "mad": MADModel.__module__, "load": load_backbone.__module__}))
"""
    res = _run(code)
    assert res["presets"] == "mad_sim.model.presets"
    assert res["before"] is False and res["after"] is True
    assert res["missing_from_dir"] == []
    assert (res["mad"], res["load"]) == ("mad_sim.model.mad", "mad_sim.model.backbone_loading")


def test_every_public_name_is_its_defining_modules_object() -> None:
    from mad_sim.model import MADModel, MotionPredictor, load_backbone  # noqa: F401  (the import form must work)

    for name in mad_sim.model.__all__:
        obj = getattr(mad_sim.model, name)
        assert obj is getattr(importlib.import_module(mad_sim.model._LAZY[name]), name), name
        assert name in dir(mad_sim.model)
    namespace: Dict[str, object] = {}
    exec("from mad_sim.model import *", namespace)
    assert set(mad_sim.model.__all__) <= set(namespace)
    assert load_backbone is mad_sim.model.backbone_loading.load_backbone


def test_unknown_names_raise_attribute_error() -> None:
    for bad in ("no_such_name", "__no_such_dunder__"):
        try:
            getattr(mad_sim.model, bad)
        except AttributeError as err:
            assert bad in str(err)
        else:
            raise AssertionError(f"mad_sim.model.{bad} did not raise AttributeError")


def _static_names() -> Dict[str, str]:
    """Name -> module of the ``if TYPE_CHECKING:`` imports of ``mad_sim/model/__init__.py``."""
    tree = ast.parse((ROOT / "mad_sim/model/__init__.py").read_text(encoding="utf-8"))
    blocks: List[ast.If] = [n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING"]
    assert len(blocks) == 1, "mad_sim/model/__init__.py needs one top-level `if TYPE_CHECKING:` import block"
    return {a.asname or a.name: n.module for n in blocks[0].body if isinstance(n, ast.ImportFrom) for a in n.names}


def test_type_checking_block_lazy_table_and_all_agree() -> None:
    static = _static_names()
    assert static == mad_sim.model._LAZY
    assert sorted(mad_sim.model.__all__) == sorted(static)
    assert len(set(mad_sim.model.__all__)) == len(mad_sim.model.__all__)
