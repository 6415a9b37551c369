"""Imports point downward (the project's layering rule, stated here), checked on the source of every module.

Layers, lowest first: ``data`` and ``world`` < ``render`` < ``model`` < ``envs`` <
``planners`` < ``eval`` (the evaluators run planners) < ``cli``; only ``model``
and above may import torch.
Inside ``model``: the core modules of its folder import none of its
subpackages; ``parse`` and ``appearance`` build on the core only, ``agents`` also
on ``parse``, ``training`` also on ``appearance``, ``evaluation`` on all of these
but ``agents``.  The training stages report held-out scores, so ``training`` may
import the *score* modules of ``evaluation``: those that import nothing from
``training`` themselves (checked below).

No two modules import each other, directly or around a loop (a cycle that
"works" only thanks to an import inside a function is still a cycle).

Every ``import`` counts, also those inside functions (a lazy import is still a
dependency), and so do the modules named in a module-level ``_LAZY`` table
(PEP 562 lazy exports, as in ``mad_sim/model/__init__.py``); imports under
``if TYPE_CHECKING:`` do not.  ``envs/``, ``planners/`` and ``eval/`` are
installed as ``mad_sim.envs`` etc.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {
    "mad_sim": ROOT / "mad_sim",
    "mad_sim.envs": ROOT / "envs",
    "mad_sim.planners": ROOT / "planners",
    "mad_sim.eval": ROOT / "eval",
}
RANK = {"data": 0, "world": 0, "render": 1, "model": 2, "envs": 3, "planners": 4, "eval": 5, "cli": 6}
NO_TORCH = {"data", "world", "render"}
MODEL_ALLOWED = {
    "core": {"core"},
    "parse": {"core", "parse"},
    "appearance": {"core", "appearance"},
    "agents": {"core", "parse", "agents"},
    "training": {"core", "appearance", "training", "evaluation"},
    "evaluation": {"core", "parse", "appearance", "training", "evaluation"},
}


def _modules() -> Iterator[Tuple[str, Path]]:
    for package, folder in SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("")
            if "proto" in rel.parts or (package == "mad_sim" and rel.parts[0] in ("envs", "planners", "eval")):
                continue
            parts = [p for p in rel.parts if p != "__init__"]
            yield ".".join([package, *parts]), path


def _imports(path: Path) -> Set[str]:
    """Absolute module names ``path`` imports (``from m import a`` gives ``m.a`` too), TYPE_CHECKING blocks excluded."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and getattr(block.test, "id", getattr(block.test, "attr", "")) == "TYPE_CHECKING"
        for n in ast.walk(block)
    }
    out: Set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    for node in tree.body:  # a lazy-export table {name: "module"} is an import of each module
        targets = [node.target] if isinstance(node, ast.AnnAssign) else getattr(node, "targets", [])
        if [getattr(t, "id", None) for t in targets] == ["_LAZY"] and isinstance(node.value, ast.Dict):
            for key, value in zip(node.value.keys, node.value.values):
                if isinstance(key, ast.Constant) and isinstance(value, ast.Constant) and isinstance(value.value, str):
                    out.update((value.value, f"{value.value}.{key.value}"))
    return out


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else ""


def _model_group(module: str) -> str:
    parts = module.split(".")
    return parts[2] if len(parts) > 3 and parts[2] in MODEL_ALLOWED else "core"


MODULES: Dict[str, Set[str]] = {name: _imports(path) for name, path in _modules()}


def test_the_scan_sees_the_code() -> None:
    layers = {_layer(m) for m in MODULES}
    assert set(RANK) <= layers, f"layers without modules: {set(RANK) - layers}"
    assert "mad_sim.model.training.stages" in MODULES and "mad_sim.envs.drive" in MODULES
    assert "torch" in MODULES["mad_sim.model.backbone"]  # imports are read
    assert {"mad_sim.model.mad", "mad_sim.model.mad.MADModel"} <= MODULES["mad_sim.model"]  # and the lazy table


def test_layers_import_downward_only() -> None:
    bad: List[str] = []
    for name, imports in MODULES.items():
        mine = _layer(name)
        for target in imports:
            if not target.startswith("mad_sim."):
                continue
            theirs = _layer(target)
            if theirs and mine and RANK[theirs] > RANK[mine]:
                bad.append(f"{name} ({mine}) imports {target} ({theirs})")
            if theirs and mine and theirs != mine and RANK[theirs] == RANK[mine] and mine not in ("data", "world"):
                bad.append(f"{name} ({mine}) imports its sibling layer {target}")
    assert not bad, "\n".join(sorted(bad))


@pytest.mark.parametrize("layer", sorted(NO_TORCH))
def test_lower_layers_do_not_import_torch(layer: str) -> None:
    bad = sorted(
        f"{n} imports {t}"
        for n, imps in MODULES.items()
        if _layer(n) == layer
        for t in imps
        if t.split(".")[0] in ("torch", "diffusers", "peft", "accelerate", "transformers")
    )
    assert not bad, "\n".join(bad)


def test_model_subpackages_build_on_the_core_only() -> None:
    bad: List[str] = []
    for name, imports in MODULES.items():
        if _layer(name) != "model" or name == "mad_sim.model":
            continue
        mine = _model_group(name)
        for target in imports:
            if target.startswith("mad_sim.model.") and _model_group(target) not in MODEL_ALLOWED[mine]:
                bad.append(f"{name} ({mine}) imports {target} ({_model_group(target)})")
    assert not bad, "\n".join(sorted(bad))


def test_training_uses_only_the_score_modules_of_evaluation() -> None:
    """An evaluation module a training module imports is a score: it imports no training module."""
    used = {
        t
        for n, imps in MODULES.items()
        if _model_group(n) == "training"
        for t in imps
        if t in MODULES and _model_group(t) == "evaluation"
    }
    assert "mad_sim.model.evaluation.vae_metrics" in used  # the scan sees the use
    bad = sorted(
        f"{m} (imported by training) imports {t}"
        for m in used
        for t in MODULES[m]
        if t.startswith("mad_sim.model.") and _model_group(t) == "training"
    )
    assert not bad, "\n".join(bad)


def _cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_cycle_finder_finds_a_loop() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    edges = {m: {t for t in imps if t in MODULES and t != m} for m, imps in MODULES.items()}
    assert not _cycles(edges)
