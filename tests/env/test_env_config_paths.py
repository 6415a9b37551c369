"""Env config paths: relative ones resolve against the data root, then the config file's folder, then the cwd,
so a config file works from any working directory (envs/config.py, mad_sim.data.root.resolve_data_path)."""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
from mad_sim.envs import make_config
from mad_sim.envs.config import EnvConfig, resolve_paths

from mad_sim.data.root import ENV_VAR, data_root, resolve_data_path
from tests.conftest import REPO, data_file


def test_womd_idm_config_loads_from_another_working_directory(tmp_path, monkeypatch):
    log = data_file("womd/womd_scenario_input.tfrecord")
    monkeypatch.chdir(tmp_path)  # not the repo root
    path = REPO / "configs" / "env" / "womd_idm.yaml"
    cfg = make_config(str(path))
    assert cfg.agents == "idm" and Path(cfg.scenario).resolve() == log.resolve()
    env = gym.make("MADDrive-v0", config=str(path))
    try:
        env.reset(seed=0)
        assert env.unwrapped.scenario.scenario_id == "ee519cf571686d19"
    finally:
        env.close()


def test_resolution_order(tmp_path, monkeypatch):
    root, conf, work = tmp_path / "root", tmp_path / "conf", tmp_path / "work"
    for d in (root / "logs", conf / "logs", work / "logs"):
        d.mkdir(parents=True)
    monkeypatch.setenv(ENV_VAR, str(root))
    monkeypatch.chdir(work)
    assert data_root() == root
    yaml = conf / "env.yaml"
    yaml.write_text("scenario: logs/a.pkl\nappearance_weights: lora.safetensors\n")
    (work / "logs" / "a.pkl").write_bytes(b"w")
    assert make_config(str(yaml)).scenario == "logs/a.pkl"  # found nowhere else: relative to the cwd, as written
    (conf / "logs" / "a.pkl").write_bytes(b"c")
    (conf / "lora.safetensors").write_bytes(b"c")
    cfg = make_config(str(yaml))
    assert cfg.scenario == str(conf / "logs" / "a.pkl")  # beside the config file, before the cwd
    assert cfg.appearance_weights == str(conf / "lora.safetensors")
    (root / "logs" / "a.pkl").write_bytes(b"r")
    assert make_config(str(yaml)).scenario == str(root / "logs" / "a.pkl")  # the data root first
    # a keyword did not come from the file: data root, else the cwd (never the file's folder)
    (conf / "logs" / "b.pkl").write_bytes(b"c")
    assert make_config(str(yaml), scenario="logs/b.pkl").scenario == "logs/b.pkl"
    assert make_config(str(yaml), scenario="logs/*.pkl").scenario == str(root / "logs" / "*.pkl")  # a glob that matches
    # mappings, EnvConfig objects and plain keywords resolve against the data root too
    assert make_config({"scenario": "logs/a.pkl"}).scenario == str(root / "logs" / "a.pkl")
    assert make_config(EnvConfig(scenario="logs/a.pkl")).scenario == str(root / "logs" / "a.pkl")
    assert make_config(scenario="logs/a.pkl").scenario == str(root / "logs" / "a.pkl")
    # what is no relative path stays as it is
    absolute = str(work / "logs" / "a.pkl")
    for value in (absolute, "corpus:train", "logs/missing.pkl"):
        assert make_config(scenario=value).scenario == value
    assert resolve_data_path("") == ""
    assert resolve_data_path(os.path.join("~", "x.pkl")) == os.path.expanduser(os.path.join("~", "x.pkl"))
    for word in ("auto", "shipped", "random"):
        assert make_config(str(yaml), appearance_weights=word).appearance_weights == word
    same = EnvConfig()
    assert resolve_paths(same) is same


def test_every_env_preset_finds_its_scenario_from_anywhere(tmp_path, monkeypatch):
    data_file("womd/womd_scenario_input.tfrecord")  # the data root is there (else skip; under CI=true fail)
    monkeypatch.chdir(tmp_path)
    for path in sorted((REPO / "configs" / "env").glob("*.yaml")):
        cfg = make_config(str(path))
        if cfg.scenario is not None:
            assert Path(cfg.scenario).is_absolute() and Path(cfg.scenario).exists(), (path, cfg.scenario)
