"""Shipping helpers: float16 copies load back into the model, wall time across resumes."""

from __future__ import annotations

import torch

from mad_sim.model.evaluation.model_card import session_seconds, to_half


def test_float16_copy_loads_into_a_float32_backbone(tmp_path):
    from mad_sim.model import load_backbone

    bb = load_backbone("tiny", weights="random", device="cpu", seed=3)
    full = bb.save_file(tmp_path / "tiny.safetensors")
    half = to_half(full, tmp_path / "half.safetensors")
    assert half.stat().st_size < 0.55 * full.stat().st_size
    other = load_backbone("tiny", weights=str(half), device="cpu", seed=4)
    assert other.dtype == torch.float32
    a = bb.transformer.state_dict()
    b = other.transformer.state_dict()
    for k in a:
        assert torch.equal(a[k].half().float(), b[k]), k
    assert torch.equal(bb.vae.latents_std, other.vae.latents_std)


def test_session_seconds_adds_the_segments_of_a_resumed_run():
    recs = [{"time": 10.0}, {"time": 20.0}, {"time": 5.0}, {"time": 12.5}]
    assert session_seconds(recs) == 32.5


def test_card_reports_the_held_out_losses_and_the_ego_sensitivity(tmp_path):
    from mad_sim.model.evaluation.model_card import write_model_card

    weights = tmp_path / "tiny.safetensors"
    weights.write_bytes(b"\0" * 1000)
    ev = {
        "denoising_loss": {
            "num_clips": 64,
            "sigmas": [0.2, 0.4],
            "seed": 0,
            "base": {"history": 0.39, "history_ego": 0.40},
            "adapted": {"history": 0.24, "history_ego": 0.25},
            "relative_improvement": {"history": 1 - 0.24 / 0.39, "history_ego": 1 - 0.25 / 0.40},
            "ego_sensitivity": {"base": 0.0003, "adapted": 0.00009},
        }
    }
    text = write_model_card(tmp_path / "runs", tmp_path / "out", {"backbone": weights}, ev).read_text()
    assert "| history_ego | 0.4000 | 0.2500 | +37.5% |" in text
    assert "base +0.00030, motion LoRA +0.00009" in text
    del ev["denoising_loss"]["ego_sensitivity"]  # evaluations written before the figure existed
    assert "Ego sensitivity" not in write_model_card(tmp_path / "runs", tmp_path / "out2", {"backbone": weights}, ev).read_text()


def test_card_carries_the_parseback_table_of_the_shipped_vae_and_the_candidates(tmp_path, womd_path):
    import importlib.util
    from pathlib import Path

    from mad_sim.model.evaluation.model_card import write_model_card
    from mad_sim.model.evaluation.model_card_representation import CANDIDATES

    root = Path(__file__).resolve().parents[3]
    spec = importlib.util.spec_from_file_location("bench_vae_parseback", root / "bench" / "bench_vae_parseback.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = tmp_path / "pb.json"
    assert bench.main(["--data", str(womd_path), "--no-vae", "--seats", "0", "--max-clips", "1", "--json", str(report)]) == 0
    weights = tmp_path / "tiny.safetensors"
    weights.write_bytes(b"\0" * 1000)
    text = write_model_card(tmp_path / "runs", tmp_path / "out", {"backbone": weights}, parseback=report).read_text()
    assert "## Representation (parse-back through the VAE)" in text and "Shipped VAE:" in text
    assert "0-15 m" in text.split("Shipped VAE:")[1]  # the per-band table, not just a heading
    for c in CANDIDATES:
        assert f"| {c.name} | {c.vae} | {c.steps} | {c.recall:.2f} | {c.median_m:.2f} | {c.lane:.2f} |" in text
    without = write_model_card(tmp_path / "runs", tmp_path / "out2", {"backbone": weights}).read_text()
    assert "Shipped VAE:" not in without and "| candidate |" in without


def test_data_section_counts_the_clips_of_each_source_in_the_runs_own_cache(tmp_path):
    """Corpus, procedural and box-video sources: the counts come from the manifest of the cache the run used."""
    import json

    from mad_sim.model.evaluation.model_card_sections import data_section
    from mad_sim.model.training.clips import ClipSpec
    from mad_sim.model.training.datasets import BoxClipConfig, SourceConfig, cache_key

    raw = [{"kind": "procedural", "count": 3, "seed": 10, "split": "train"}, {"kind": "file", "path": "x.pkl", "split": "eval"}]
    spec = {"context_frames": 9, "future_frames": 17}
    cfg = {"data": {"spec": spec, "cache_dir": str(tmp_path), "boxes": {"enabled": True}, "sources": raw}}
    folder = tmp_path / cache_key(ClipSpec(**spec), [SourceConfig(**s) for s in raw], BoxClipConfig(enabled=True))
    folder.mkdir()
    clips = [{"source_index": 0, "split": "train"}] * 5 + [{"source_index": 1, "split": "eval"}] * 2
    (folder / "manifest.json").write_text(json.dumps({"clips": clips}))
    text = data_section(cfg)
    assert "- train: 3 procedural scenes (seeds 10..12): 5 clips" in text and "- eval: x.pkl: 2 clips" in text
