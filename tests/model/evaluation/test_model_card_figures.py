"""The model card's headline figures read back: from the shipped card, from what the card writer writes, errors."""

from __future__ import annotations

import pytest

from mad_sim.errors import CheckpointError
from mad_sim.model.evaluation.model_card_figures import CARD_PATH, HEADLINE_KEYS, format_headline, read_card_figures


def test_shipped_card_holds_every_headline_figure():
    figures = read_card_figures()
    assert set(figures) == set(HEADLINE_KEYS)
    text = CARD_PATH.read_text()
    sens = figures["ego_sensitivity"]
    assert f"base {sens.reference:+.5f}, motion LoRA {sens.value:+.5f}." in text
    for task in ("history", "history_ego"):
        f = figures[f"denoising_{task}"]
        assert f"| {task} | {f.reference:.4f} |" in text and f"| {100 * f.value:+.1f}% |" in text
        assert f.context.endswith("held-out clips")
    for key in ("parseback_recall", "parseback_position_m", "parseback_lane_recall"):
        f = figures[key]
        assert f.target is not None and f.op in (">=", "<=") and f"after VAE {f.value:.3f}" in text
        assert f.met == (f.value >= f.target if f.op == ">=" else f.value <= f.target)
        assert "scenes" in f.context and "frames" in f.context
    block = format_headline(figures)
    assert "mad_sim/weights/MODEL_CARD.md" in block and "validation scenes" in block
    assert "not on this card" not in block and f"{figures['parseback_recall'].value:.2f}" in block


def test_figures_read_back_what_the_card_writer_wrote(tmp_path):
    from mad_sim.model.evaluation.model_card import write_model_card

    weights = tmp_path / "tiny.safetensors"
    weights.write_bytes(b"\0" * 1000)
    ev = {
        "denoising_loss": {
            "num_clips": 32,
            "sigmas": [0.2, 0.4],
            "seed": 0,
            "base": {"history": 0.39, "history_ego": 0.40},
            "adapted": {"history": 0.24, "history_ego": 0.25},
            "relative_improvement": {"history": 1 - 0.24 / 0.39, "history_ego": 1 - 0.25 / 0.40},
            "ego_sensitivity": {"base": 0.0003, "adapted": -0.00009},
        }
    }
    card = write_model_card(tmp_path / "runs", tmp_path / "out", {"backbone": weights}, ev)
    figures = read_card_figures(card)
    assert set(figures) == {"denoising_history", "denoising_history_ego", "ego_sensitivity"}  # no parse-back report
    assert figures["denoising_history_ego"].value == pytest.approx(0.375)
    assert figures["denoising_history"].value == pytest.approx(0.385)  # the card's one decimal of 38.46%
    assert figures["denoising_history"].reference == pytest.approx(0.39)
    assert figures["ego_sensitivity"].value == pytest.approx(-0.00009) and figures["ego_sensitivity"].reference == 0.0003
    assert figures["ego_sensitivity"].context == "32 held-out clips"
    block = format_headline(figures, card)
    assert "not on this card: parseback_recall, parseback_position_m, parseback_lane_recall" in block
    assert "38.5% (history) and 37.5% (history + ego video)" in block


def test_a_missing_or_foreign_card_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="model card not found"):
        read_card_figures(tmp_path / "MODEL_CARD.md")
    other = tmp_path / "README.md"
    other.write_text("# something else\n\n| task | base |\n|---|---|\n")
    with pytest.raises(CheckpointError, match="none of the headline figures"):
        read_card_figures(other)
