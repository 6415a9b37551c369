"""``TrainConfig.task`` holds the task config of its stage, built by the one loader of every stage."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mad_sim.config import from_dict, to_dict
from mad_sim.errors import ConfigError
from mad_sim.model.training.appearance_task import AppearanceTaskConfig
from mad_sim.model.training.appearance_train import load_appearance_config
from mad_sim.model.training.loop import TASK_CONFIGS, MotionTaskConfig, TrainConfig, load_train_config

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "train"
APPEARANCE = CONFIGS / "tiny_appearance.yaml"
SHIPPED = sorted(CONFIGS.rglob("*.yaml"))


def test_the_config_folder_is_seen() -> None:
    assert APPEARANCE in SHIPPED and CONFIGS / "tiny_motion.yaml" in SHIPPED


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_train_config_loads_with_its_stage_task(path: Path) -> None:
    """Each YAML through what ``mad-sim train STAGE`` calls: ``load_train_config``, and for appearance
    ``load_appearance_config`` (which reads the file through it)."""
    stage = yaml.safe_load(path.read_text())["stage"]
    cfg = load_train_config(path, stage=stage)
    assert type(cfg.task) is TASK_CONFIGS[stage]
    if stage == "appearance":
        again, task = load_appearance_config(path)
        assert task is again.task and task == cfg.task
        assert isinstance(task, AppearanceTaskConfig)
        task.spec()
    else:
        assert isinstance(cfg.task, MotionTaskConfig)


def test_the_appearance_section_becomes_the_task() -> None:
    cfg = load_train_config(APPEARANCE)
    assert isinstance(cfg.task, AppearanceTaskConfig)
    assert cfg.task.p_first == 0.5 and cfg.task.targeted_noise and cfg.task.spec().frames == 17


@pytest.mark.parametrize("section", ["appearance", "task"])
def test_an_unknown_appearance_task_key_names_the_key(tmp_path: Path, section: str) -> None:
    bad = tmp_path / "bad.yaml"
    text = APPEARANCE.read_text().replace("p_first: 0.5", "p_frist: 0.5").replace("appearance:\n", f"{section}:\n")
    bad.write_text(text)
    with pytest.raises(ConfigError, match=rf"bad\.yaml.*unknown config key '{section}\.p_frist'"):
        load_train_config(bad)
    with pytest.raises(ConfigError, match="p_frist"):
        load_appearance_config(bad)


@pytest.mark.parametrize(
    "text, match",
    [
        ("stage: appearance\ntask: {ego_condition_prob: 0.5}\n", "unknown config key 'task.ego_condition_prob'"),
        ("stage: motion\ntask: {p_first: 0.5}\n", "unknown config key 'task.p_first'"),
        ("stage: appearance\ntask: {p_first: 0.5}\nappearance: {p_first: 0.5}\n", "not both"),
        ("stage: motion\nappearance: {p_first: 0.5}\n", "belongs to stage 'appearance'"),
    ],
)
def test_task_keys_belong_to_their_stage_and_are_given_once(tmp_path: Path, text: str, match: str) -> None:
    """A motion key is unknown to the appearance stage and back; the appearance section goes once, to its stage."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_train_config(bad)


def test_from_dict_picks_the_task_class_by_stage() -> None:
    assert isinstance(from_dict({"stage": "appearance", "task": {}}, TrainConfig).task, AppearanceTaskConfig)
    assert isinstance(from_dict({"task": {}, "stage": "motion"}, TrainConfig).task, MotionTaskConfig)
    assert isinstance(from_dict({"task": {}}, TrainConfig).task, MotionTaskConfig)  # the default stage, vae
    cfg = TrainConfig(stage="appearance", task=AppearanceTaskConfig(p_first=1.0, clips={"frames": 9}))
    back = from_dict(to_dict(cfg), TrainConfig)  # a checkpoint's config dict reads back
    assert back.task == cfg.task and isinstance(back.task, AppearanceTaskConfig)


def test_the_default_task_is_the_stages_own() -> None:
    assert isinstance(TrainConfig(stage="appearance").task, AppearanceTaskConfig)
    assert isinstance(TrainConfig(stage="motion").task, MotionTaskConfig)
    a, b = TrainConfig(), TrainConfig()
    assert a.task is not b.task  # a fresh default each
    with pytest.raises(ConfigError, match="stage 'motion' takes a task of class MotionTaskConfig"):
        TrainConfig(stage="motion", task=AppearanceTaskConfig())
