"""The headline figures of the shipped model card, read back from ``mad_sim/weights/MODEL_CARD.md``.

The card is markdown written by :mod:`mad_sim.model.evaluation.model_card`
(no machine-readable copy is shipped), so this module reads the lines that
writer produces, in the wording it produces them:

- ``denoising_<task>``: the motion adapter's held-out flow-matching loss
  against its base, per task (``history``, ``history_ego``), from the table of
  the "Held-out evaluation" section (``| task | base | motion LoRA | relative |``);
  ``value`` is the relative improvement (0.056 = the loss is 5.6% lower);
- ``ego_sensitivity``: the history + ego loss with another clip's ego-motion
  video minus with its own, for the motion adapter (``value``, loss units; about
  0 means the model ignores the ego's action) and its base (``reference``);
- ``parseback_recall`` / ``parseback_position_m`` / ``parseback_lane_recall``:
  the representation section's targets within 30 m after the VAE
  (:func:`mad_sim.model.parse.vae_parseback_report.format_report`'s ``target ...``
  lines): vehicle recall, median position error (metres), lane-line recall,
  each with its target, whether it is met, and the clean-frame ceiling.

Every figure there was measured on held-out data (the corpus's ``val`` scenes,
never trained on), not on any run that reads them.  Nothing here imports torch.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Union

from mad_sim.errors import CheckpointError

PathLike = Union[str, os.PathLike]

CARD_PATH = Path(__file__).resolve().parents[2] / "weights" / "MODEL_CARD.md"
"""The shipped card of the tiny model (package data of ``mad_sim.weights``)."""

HEADLINE_KEYS = (
    "denoising_history",
    "denoising_history_ego",
    "ego_sensitivity",
    "parseback_recall",
    "parseback_position_m",
    "parseback_lane_recall",
)
"""Every figure :func:`read_card_figures` looks for, in the order :func:`format_headline` prints them."""

_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+|nan|inf)"
_EVAL_HEAD = re.compile(r"^## Held-out evaluation \(motion adapter vs its base\)\s*$", re.M)
_EVAL_CLIPS = re.compile(r"Held-out clips \(never trained on\):\s+(\d+)\s+clips")
_EVAL_ROW = re.compile(rf"^\|\s*(history|history_ego)\s*\|\s*({_NUM})\s*\|\s*({_NUM})\s*\|\s*({_NUM})%\s*\|\s*$", re.M)
_EGO = re.compile(rf"Ego sensitivity \(.*?\):\s+base\s+({_NUM}),\s+motion\s+LoRA\s+({_NUM})\.", re.S)
_PARSE_HEAD = re.compile(r"== parse-back [^\n]*?;\s*(\d+) scenes, (\d+) clips, (\d+) frames;")
_TARGET = re.compile(
    rf"^target (vehicle recall|median position error|lane-line recall) within 30 m(?: \(m\))? (>=|<=) ({_NUM}): "
    rf"after VAE ({_NUM}) (met|NOT MET); ceiling ({_NUM}) (met|NOT MET)\s*$",
    re.M,
)
_TARGET_KEYS = {
    "vehicle recall": "parseback_recall",
    "median position error": "parseback_position_m",
    "lane-line recall": "parseback_lane_recall",
}


@dataclass(frozen=True)
class CardFigure:
    """One figure of the model card.

    Attributes:
      key: one of :data:`HEADLINE_KEYS`.
      value: the figure (units in the module docstring).
      reference: what it is compared with on the card (the base's loss or ego sensitivity; the clean-frame
        ceiling of a parse-back target), or None.
      target: the card's target for it, or None; ``op`` says how it is met (``>=`` / ``<=``).
      met: whether the card says the target is met (None without a target).
      context: the held-out data it was measured on, as the card says (``"64 clips"``, ``"43 scenes, 408 frames"``).
      section: the card section it was read from.
    """

    key: str
    value: float
    reference: Optional[float] = None
    target: Optional[float] = None
    op: Optional[str] = None
    met: Optional[bool] = None
    context: str = ""
    section: str = ""


def read_card_figures(path: Optional[PathLike] = None) -> Dict[str, CardFigure]:
    """The figures of :data:`HEADLINE_KEYS` the card at ``path`` (default :data:`CARD_PATH`) holds, by key.

    A card written without an evaluation or parse-back report lacks those sections, and their keys are absent.
    Raises CheckpointError when the file is missing or holds none of them (not a card
    :mod:`~mad_sim.model.evaluation.model_card` wrote).
    """
    card = Path(path) if path is not None else CARD_PATH
    if not card.is_file():
        raise CheckpointError(
            f"{card}: model card not found (it ships with the weights in mad_sim/weights; "
            "python -m mad_sim.model.evaluation.model_card writes it)"
        )
    text = card.read_text(encoding="utf-8")
    out: Dict[str, CardFigure] = {}
    head = _EVAL_HEAD.search(text)
    if head is not None:
        rest = text[head.end() :]
        nxt = re.search(r"^## ", rest, re.M)
        section = rest[: nxt.start()] if nxt else rest
        clips = _EVAL_CLIPS.search(section)
        ctx = f"{clips.group(1)} held-out clips" if clips else "held-out clips"
        for m in _EVAL_ROW.finditer(section):
            task, base, rel = m.group(1), float(m.group(2)), float(m.group(4))
            out[f"denoising_{task}"] = CardFigure(
                f"denoising_{task}", round(rel / 100.0, 6), reference=base, context=ctx, section="Held-out evaluation"
            )
        ego = _EGO.search(section)
        if ego is not None:
            out["ego_sensitivity"] = CardFigure(
                "ego_sensitivity", float(ego.group(2)), reference=float(ego.group(1)), context=ctx, section="Held-out evaluation"
            )
    parse = _PARSE_HEAD.search(text)
    ctx = f"{parse.group(1)} scenes, {parse.group(3)} frames" if parse else "validation scenes"
    for m in _TARGET.finditer(text):
        key = _TARGET_KEYS[m.group(1)]
        out[key] = CardFigure(
            key,
            float(m.group(4)),
            reference=float(m.group(6)),
            target=float(m.group(3)),
            op=m.group(2),
            met=m.group(5) == "met",
            context=ctx,
            section="Representation (parse-back through the VAE)",
        )
    if not out:
        raise CheckpointError(
            f"{card}: holds none of the headline figures ({', '.join(HEADLINE_KEYS)}); "
            "was it written by mad_sim.model.evaluation.model_card with --evaluation and --parseback?"
        )
    return out


def _target(f: CardFigure, unit: str = "") -> str:
    if f.target is None:
        return ""
    return f" (target {f.op} {f.target:g}{unit}: {'met' if f.met else 'not met'})"


def format_headline(figures: Dict[str, CardFigure], path: Optional[PathLike] = None, keys: Iterable[str] = HEADLINE_KEYS) -> str:
    """The printed block: a header saying where the figures come from and that they were measured on
    held-out validation scenes, then one line per group of ``keys`` the card holds (missing ones are named)."""
    card = Path(path) if path is not None else CARD_PATH
    try:
        where = str(card.relative_to(CARD_PATH.parents[2]))
    except ValueError:
        where = str(card)
    keys = list(keys)
    lines: List[str] = [
        f"Headline figures of the shipped model, from {where}: measured on held-out validation scenes "
        "(never trained on), not on this run",
    ]
    d = {k: figures[k] for k in keys if k in figures}
    loss = [
        (d[k], name) for k, name in (("denoising_history", "history"), ("denoising_history_ego", "history + ego video")) if k in d
    ]
    if loss:
        parts = [f"{100 * f.value:.1f}% ({name})" for f, name in loss]
        lines.append(
            f"  motion adapter: held-out denoising loss lower than its base's by {' and '.join(parts)}; {loss[0][0].context}"
        )
    sens = d.get("ego_sensitivity")
    if sens:
        lines.append(
            f"  ego sensitivity: {sens.value:+.5f} (motion adapter; base {sens.reference:+.5f}): the loss change when "
            "another clip's ego motion is given; about 0 = the model ignores the ego's action"
        )
    parse = [
        (d[k], name, unit)
        for k, name, unit in (
            ("parseback_recall", "vehicle recall", ""),
            ("parseback_position_m", "median position error", " m"),
            ("parseback_lane_recall", "lane-line recall", ""),
        )
        if k in d
    ]
    if parse:
        parts = [f"{name} {f.value:.2f}{unit}{_target(f, unit)}" for f, name, unit in parse]
        lines.append(f"  parse-back through the VAE, within 30 m ({parse[0][0].context}): " + ", ".join(parts))
    missing = [k for k in keys if k not in figures]
    if missing:
        lines.append(f"  not on this card: {', '.join(missing)}")
    return "\n".join(lines)


__all__ = ["CARD_PATH", "HEADLINE_KEYS", "CardFigure", "format_headline", "read_card_figures"]
