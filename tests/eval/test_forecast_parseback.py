"""Forecast parse-back (:mod:`mad_sim.eval.forecast_parseback`) on one real Waymax validation scene.

A random-init tiny model with 2 sampler steps, one context (``t = 10``) plus one the log is too short
for (``t = 85``): the constant-velocity and logged futures are checked against what they must be
(the model's frames are noise here, so only its bookkeeping is); the bench's CLI writes its JSON.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from mad_sim.eval.forecast_parseback import ParsebackProtocol, measure, summarize

from mad_sim.data import load_scenario
from mad_sim.data.scenario import DT, ObjectType
from mad_sim.errors import ConfigError
from tests.conftest import REPO, data_file

SCENE = "corpus/waymax/waymax_scenario_15ba624c7ff6b480.pkl"
HORIZONS = (1, 5, 16)


@pytest.fixture(scope="module")
def scene():
    return load_scenario(data_file(SCENE))


@pytest.fixture(scope="module")
def agents():
    from mad_sim.model.agents.learned import LearnedAgents
    from mad_sim.model.agents.settings import LearnedAgentSettings

    # Raw parses (no tracking filter): the ceilings below are the parser's, not the filter's, which would
    # pull a clean parse toward constant velocity (its measurement noise is the tiny model's, 2 m).
    return LearnedAgents(LearnedAgentSettings(weights="random", sampler_steps=2, threads=1, tracking=False))


@pytest.fixture(scope="module")
def run(scene, agents):
    return measure([scene], protocol=ParsebackProtocol(steps=(10, 85), horizons=HORIZONS), agents=agents, progress=False)


def _bench():
    spec = importlib.util.spec_from_file_location("bench_forecast_parseback", REPO / "bench" / "bench_forecast_parseback.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_scored_agents_and_the_raw_constant_velocity_future(run, scene) -> None:
    report, results = run
    assert report["num_contexts"] == 1 and report["skipped"] == [{"scene": scene.scenario_id, "t": 85}]
    (r,) = results
    tr, t, e = scene.tracks, 10, scene.sdc_index
    near = np.hypot(*(tr.xy[:, t] - tr.xy[e, t]).T) <= 30.0
    candidates = set(np.flatnonzero(tr.valid[:, t] & near & (scene.object_types == int(ObjectType.VEHICLE))))
    assert r.agents.size >= 2 and set(r.agents) <= candidates - {e}
    ks = np.array(HORIZONS)
    cv = tr.xy[r.agents, t][:, None] + tr.velocity[r.agents, t][:, None] * (ks[None, :, None] * DT)
    want = np.hypot(*np.moveaxis(cv - tr.xy[r.agents][:, t + ks], -1, 0))
    ok = tr.valid[r.agents][:, t + ks]
    np.testing.assert_allclose(r.errors("cv_raw")[ok], want[ok], atol=1e-9)
    assert np.isnan(r.errors("cv_raw")[~ok]).all()


def test_logged_future_parses_back_close_to_the_log(run) -> None:
    """Drawn along the logged camera path, the log's own future is read back within centimetres (measured
    0.04 m median, all 4 vehicles at 0.5 s): the render and the parse agree on where the camera is."""
    report, _ = run
    k5 = report["summary"]["log_parsed"]["5"]
    assert k5["counted"] >= 2 and k5["recall"] >= 0.75 and k5["median_m"] < 0.2


def test_vae_roundtrip_of_the_log_is_scored_between_the_log_and_noise(run) -> None:
    """The representation's ceiling is reported, for every context, and it is parsed from decoded frames
    (not the clean ones: with the random VAE they hold no skeleton, so fewer fits than ``log_parsed``)."""
    report, results = run
    assert "vae_log" in report["summary"] and all("vae_log" in r.futures for r in results)
    assert report["parser"]["vae_log"]["fitted"] < report["parser"]["log_parsed"]["fitted"]


def test_constant_velocity_future_parses_back_to_itself(run) -> None:
    (r,) = run[1]
    cvp, raw = r.futures["cv_parsed"], r.futures["cv_raw"]
    assert cvp.fit[:, 1].sum() >= 2  # k = 5
    gap = np.hypot(*(cvp.xy - raw.xy)[cvp.fit].T)
    assert np.median(gap) < 0.3 and gap.max() < 1.0


def test_counts_are_consistent_and_the_report_is_strict_json(run) -> None:
    from mad_sim.model.parse.vae_parseback_report import json_safe

    report, _ = run
    counted = {src: [v["counted"] for v in per_k.values()] for src, per_k in report["summary"].items()}
    assert set(counted) == {"model", "cv_parsed", "cv_raw", "log_parsed", "vae_log"}
    assert len({tuple(c) for c in counted.values()}) == 1  # every source scored on the same agents
    for per_k in report["summary"].values():
        for v in per_k.values():
            assert v["fit_matched"] <= v["matched"] <= v["found"] <= v["counted"] and v["fit"] <= v["found"]
    assert report["summary"]["cv_raw"]["1"]["found"] == report["summary"]["cv_raw"]["1"]["counted"]
    (r,) = run[1]
    moving = int((r.log_valid[:, 0] & (r.speed >= 1.0)).sum())
    assert report["summary_moving"]["model"]["1"]["counted"] == moving <= report["summary"]["model"]["1"]["counted"]
    slow = r.speed.min() + 1e-6  # a threshold above the slowest scored vehicle leaves it out
    assert summarize(run[1], ParsebackProtocol(horizons=HORIZONS), slow)["cv_raw"]["1"]["counted"] == r.log_valid[:, 0].sum() - 1
    assert report["parser"]["model"]["fitted"] + report["parser"]["model"]["lost"] > 0
    json.dumps(json_safe(report), allow_nan=False)


def test_horizon_beyond_the_chunk_is_refused(scene, agents) -> None:
    with pytest.raises(ConfigError, match="chunk"):
        measure([scene], protocol=ParsebackProtocol(steps=(10,), horizons=(agents.settings.chunk + 1,)), agents=agents)


def test_bench_writes_json_and_passes_agent_options(tmp_path, capsys) -> None:
    bench = _bench()
    out = tmp_path / "fp.json"
    args = ["--data", str(data_file(SCENE)), "--steps", "10", "--horizons", "5", "--weights", "random"]
    assert bench.main([*args, "--agent-option", "sampler_steps=2", "--out", str(out), "--no-progress"]) == 0
    report = json.loads(out.read_text())
    assert report["settings"]["sampler_steps"] == 2 and report["sampler_steps"] == 2
    assert set(report["summary"]["model"]) == {"5"}
    assert "cv_parsed" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="no_such_setting"):
        bench.main([*args, "--agent-option", "no_such_setting=1"])
