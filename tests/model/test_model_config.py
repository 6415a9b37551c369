"""configs/model/*.yaml load into ModelConfig; bad keys name the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from mad_sim.errors import ConfigError
from mad_sim.model.presets import LTX_LORA_TARGETS, load_model_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "model"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_model_configs_load(path):
    cfg = load_model_config(path)
    assert cfg.preset == path.stem
    assert set(cfg.adapters) == {"motion", "appearance"}
    for a in cfg.adapters.values():
        assert a.rank >= 1 and tuple(a.targets) == LTX_LORA_TARGETS
    if cfg.preset.startswith("ltx-"):
        assert cfg.adapters["motion"].rank == 512 and cfg.sampling.steps == 50 and cfg.sampling.guidance_scale == 3.5


def test_unknown_key_and_preset(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: tiny\nadapters:\n  motion:\n    rnak: 8\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*adapters.motion.rnak"):
        load_model_config(bad)
    bad.write_text("preset: ltx-7b\n")
    with pytest.raises(ConfigError, match="ltx-7b"):
        load_model_config(bad)


def test_from_config_builds_the_adapters(tmp_path):
    from mad_sim.model import MADModel

    path = tmp_path / "small.yaml"
    path.write_text("preset: tiny\nweights: random\nadapters:\n  motion: {rank: 4, alpha: 8}\n  appearance: {rank: 2}\n")
    model = MADModel.from_config(load_model_config(path), device="cpu")
    assert model.adapters == ["motion", "appearance"]
    assert model.adapter_parameters("motion")[0].shape[0] in (4, 512) and model.active_adapter is None
    a = [p for p in model.adapter_parameters("motion") if p.shape[0] == 4]
    assert len(a) == 80  # lora_A of the 80 target layers has rank rows
