"""The real-scene corpus: every scene indexed, split by scene, stable, usable by name."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from mad_sim.cli import main
from mad_sim.data import load_scenario, load_scenarios
from mad_sim.data.corpus import aggregate, build_index, duplicate_groups, scene_positions, select, split_files, split_of
from mad_sim.data.womd import write_scenarios
from mad_sim.errors import ConfigError, DataNotFoundError
from tests.conftest import data_file, data_root


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    data_file("README.md")
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MAD_SIM_CACHE", str(cache))
        entries = build_index(data_root())
        again = build_index(data_root())  # from the cache file
        assert list(cache.glob("corpus/index-*.json"))
    assert again == entries
    return entries


def test_every_real_scene_is_indexed(index):
    total = aggregate(index)
    assert total["scenes"] >= 125
    assert total["by_format"].keys() == {"womd", "scenarionet", "waymax", "scene_json"}
    assert total["by_dataset"]["nuscenes"] == 10
    assert not any(e.path.endswith("valid_files.json") for e in index)
    assert not any("pvps" in e.path for e in index)  # a perception Frame file is not a scene
    assert len({e.key for e in index}) == len(index)
    assert total["hours"] > 0.3


def test_split_is_by_scene_and_large_enough(index):
    total = aggregate(index)
    assert total["val_womd_with_sdc"] >= 20
    assert 0 < total["by_split"]["val"] < total["by_split"]["train"]
    by_group = {}
    for e in index:
        by_group.setdefault(e.group, set()).add(e.split)
    assert all(len(s) == 1 for s in by_group.values()), "a duplicate group straddles the split"
    for e in index:  # the rule is a pure function of the group and stratum
        first = next(f for f in index if f.group == e.group)
        assert e.split == split_of(e.group, first.dataset, first.has_sdc)


def test_split_is_stable_when_scenes_are_added(index):
    extra = dataclasses.replace(index[0], key="new#0", group="new#0")
    keys = [e.key for e in index] + [extra.key]
    groups = duplicate_groups(keys, [set()] * len(keys))
    assert all(groups[e.key] == e.key for e in index)
    assert [split_of(e.key, e.dataset, e.has_sdc) for e in index if e.group == e.key] == [
        e.split for e in index if e.group == e.key
    ]


def test_corpus_split_by_name(index, tmp_path, monkeypatch):
    monkeypatch.setenv("MAD_SIM_CACHE", str(tmp_path))
    val = select(index, "val")
    files = split_files("val", data_root())
    assert len(files) == len({e.path for e in val})
    first = load_scenario("corpus:val")
    assert first.scenario_id == val[0].scene_id
    with pytest.raises(DataNotFoundError, match="unknown corpus split"):
        next(load_scenarios("corpus:test"))


def test_duplicates_across_formats_are_one_group(tmp_path):
    src = data_file("corpus/nocturne/noc_example_scenario.json")
    scenario = load_scenario(src)
    write_scenarios(tmp_path / "copy.tfrecord", scenario)
    copy = load_scenario(tmp_path / "copy.tfrecord")
    other = load_scenario(data_file("womd/womd_scenario_input.tfrecord"))
    groups = duplicate_groups(["a", "b", "c"], [scene_positions(scenario), scene_positions(copy), scene_positions(other)])
    assert groups == {"a": "a", "b": "a", "c": "c"}


def test_a_folder_without_scenes_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MAD_SIM_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(data_file("corpus/nocturne_maps50/valid_files.json"), folder / "valid_files.json")
    with pytest.raises(DataNotFoundError, match="holds no scene"):
        build_index(folder)
    with pytest.raises(DataNotFoundError, match="holds no scene"):
        next(load_scenarios(str(folder)))


def test_training_sources_take_the_corpus_by_name():
    from mad_sim.model.training.datasets import SourceConfig

    assert SourceConfig(kind="corpus", path="train").path == "train"
    with pytest.raises(ConfigError, match="val"):
        SourceConfig(kind="corpus", path="val", split="train")
    with pytest.raises(ConfigError, match="corpus"):
        SourceConfig(kind="corpus", path="everything")


def test_info_lists_the_whole_corpus_folder(capsys):
    folder = data_file("README.md").parent / "corpus"
    assert main(["info", str(folder / "nocturne"), str(folder / "nuscenes" / "*.pkl"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["aggregate"]["scenes"] == 14
    assert doc["aggregate"]["by_format"] == {"scene_json": 4, "scenarionet": 10}
    assert doc["aggregate"]["with_logged_sdc"] == 10
    assert {s["format"] for s in doc["scenes"]} == {"scene_json", "scenarionet"}
    assert Path(doc["scenes"][0]["source"]).name.startswith("noc_")


def test_info_on_the_corpus_folder_lists_every_scene(index, capsys):
    """A folder expands recursively; the aggregate is what the closing note and README quote."""
    assert main(["info", str(data_root() / "corpus"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    under = [e for e in index if e.path.startswith("corpus/")]
    assert doc["aggregate"]["scenes"] == len(under) == len(doc["scenes"])
    assert {s["scenario_id"] for s in doc["scenes"]} == {e.scene_id for e in under}
    assert doc["aggregate"]["agents"] == dict(sorted(sum((Counter(e.agents) for e in under), Counter()).items()))


def test_env_and_eval_take_a_corpus_split(index):
    import gymnasium as gym
    from mad_sim.eval.open_loop import iter_jobs

    import mad_sim  # noqa: F401  (registers MADDrive-v0)

    val_ids = {e.scene_id for e in select(index, "val")}
    env = gym.make("MADDrive-v0", scenario="corpus:val", agents="log")
    try:
        for seed in range(3):
            env.reset(seed=seed)
            assert env.unwrapped.scenario.scenario_id in val_ids
            env.step(env.action_space.sample())
    finally:
        env.close()
    jobs = list(iter_jobs("corpus:val"))
    assert len(jobs) == len(select(index, "val"))


def test_a_folder_reads_each_json_file_once(tmp_path, monkeypatch):
    """The file index beside the scenes is recognised while reading it, not by a second read."""
    import mad_sim.data.gpudrive_json as gj

    shutil.copy(data_file("corpus/nocturne_maps50/valid_files.json"), tmp_path / "valid_files.json")
    shutil.copy(data_file("corpus/nocturne/noc_example_scenario.json"), tmp_path / "a.json")
    reads = []
    real = gj.read_json
    monkeypatch.setattr(gj, "read_json", lambda path: reads.append(str(path)) or real(path))
    assert [s.source for s in load_scenarios(str(tmp_path))] == [str(tmp_path / "a.json")]
    assert sorted(reads) == sorted([str(tmp_path / "a.json"), str(tmp_path / "valid_files.json")])
