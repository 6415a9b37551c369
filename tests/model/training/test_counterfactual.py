"""Counterfactual ego clips: the future along a perturbed ego path (real WOMD scene and a procedural one)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from mad_sim.config import from_dict
from mad_sim.data import load_scenario
from mad_sim.data.procedural import generate_scenario
from mad_sim.data.scenario import ObjectType, Scenario
from mad_sim.errors import ConfigError
from mad_sim.model.training.clips import ClipRef, ClipRenderer, ClipSpec, plan_clips
from mad_sim.model.training.counterfactual import (
    CounterfactualConfig,
    counterfactual_ego,
    counterfactual_scenario,
    with_counterfactuals,
)
from mad_sim.model.training.datasets import ClipCache, DatasetConfig, SourceConfig, build_clip_cache, cache_key

SPEC = ClipSpec(width=64, height=64, stride=40, max_viewpoints=2)
S = SPEC.future_frames
CF = CounterfactualConfig(enabled=True)


def _record(accel: float = 0.0, curvature: float = 0.0, idm: bool = False) -> dict:
    return {"accel_offset": [accel], "curvature_offset": [curvature], "idm": idm}


@pytest.fixture(scope="module")
def procedural() -> Scenario:
    return generate_scenario(np.random.default_rng(1), kind="straight")


@pytest.fixture
def scenes(womd_path, procedural):
    """(name, scenario, a moving clip whose viewpoint goes >= 4 m over the future) of the real and the procedural scene."""
    out = []
    for name, sc in (("womd", load_scenario(womd_path)), ("procedural", procedural)):
        for ref in plan_clips(sc, SPEC, np.random.default_rng(0)):
            p = ref.t0 + SPEC.present
            if ref.moving and _travel(sc, ref.viewpoint, p) >= 4.0:
                out.append((name, sc, ref))
                break
    assert len(out) == 2
    return out


def _travel(sc: Scenario, v: int, present: int) -> float:
    """Metres along the viewpoint's path over the future (sum of the step lengths)."""
    xy = sc.tracks.xy[v, present : present + S + 1]
    return float(np.hypot(*np.diff(xy, axis=0).T).sum())


def _render(sc: Scenario, ref: ClipRef):
    return ClipRenderer(SPEC).render(sc, ref, seed=7)


def test_zero_offset_reproduces_the_log_clip(scenes):
    """No offset: the viewpoint's track and both videos equal the log clip's bit for bit (the rollout
    difference C - F is exactly zero, see the module docstring), on a real and a procedural scene."""
    for name, sc, ref in scenes:
        cf = counterfactual_scenario(sc, ref, SPEC, _record(), CF)
        for f in ("xyz", "heading", "velocity", "valid"):
            assert np.array_equal(getattr(cf.tracks, f), getattr(sc.tracks, f)), (name, f)
        for a, b in zip(_render(cf, ref), _render(sc, ref)):
            assert np.array_equal(a, b), name


def test_braking_shortens_the_path_and_changes_only_the_future(scenes, capsys):
    for name, sc, ref in scenes:
        p = ref.t0 + SPEC.present
        cf = counterfactual_scenario(sc, ref, SPEC, _record(accel=-4.0), CF)
        log_m, cf_m = _travel(sc, ref.viewpoint, p), _travel(cf, ref.viewpoint, p)
        ego = counterfactual_ego(sc.tracks, ref.viewpoint, p, np.full(S, -4.0), np.zeros(S))
        v_log = float(sc.tracks.speed[ref.viewpoint, p + S])
        with capsys.disabled():
            print(
                f"\n{name}: viewpoint {ref.viewpoint} t0 {ref.t0}: log {log_m:.2f} m, braking -4 m/s^2 {cf_m:.2f} m; "
                f"speed at the end {v_log:.2f} -> {ego.speed[-1]:.2f} m/s"
            )
        assert cf_m < log_m - 2.0
        assert ego.speed[-1] < v_log - 2.0 and (ego.speed >= 0).all() and (ego.accel >= -8.0).all()
        # only the viewpoint's future moved
        ctx = slice(0, p + 1)
        assert np.array_equal(cf.tracks.xyz[:, ctx], sc.tracks.xyz[:, ctx])
        others = np.arange(sc.num_tracks) != ref.viewpoint
        assert np.array_equal(cf.tracks.xyz[others], sc.tracks.xyz[others])
        (pose_cf, ego_cf), (pose_log, ego_log) = _render(cf, ref), _render(sc, ref)
        c, f = SPEC.context_slice, SPEC.future_slice
        assert np.array_equal(pose_cf[c], pose_log[c]) and np.array_equal(ego_cf[c], ego_log[c])
        diff = np.abs(pose_cf[f].astype(int) - pose_log[f]).mean(axis=(1, 2, 3))
        assert diff[-1] > 0.5 and (diff > 0).sum() >= S - 2, (name, diff.round(2))
        assert np.abs(ego_cf[f].astype(int) - ego_log[f]).mean() > 0.5


def test_steering_moves_the_ego_sideways(procedural):
    sc = procedural
    ref = next(r for r in plan_clips(sc, SPEC, np.random.default_rng(0)) if r.moving)
    p = ref.t0 + SPEC.present
    cf = counterfactual_scenario(sc, ref, SPEC, _record(curvature=0.02), CF)
    h = sc.tracks.heading[ref.viewpoint, p]
    normal = np.array([-np.sin(h), np.cos(h)])  # left of the ego at the present
    lateral = lambda tr: float((tr.xy[ref.viewpoint, p + S] - tr.xy[ref.viewpoint, p]) @ normal)  # noqa: E731
    assert lateral(cf.tracks) > lateral(sc.tracks) + 1.0


def _follower(sc: Scenario, present: int):
    """(viewpoint, follower): a moving vehicle and the vehicle 5-20 m behind it in its lane."""
    tr = sc.tracks
    veh = [
        i
        for i in range(sc.num_tracks)
        if sc.object_types[i] == ObjectType.VEHICLE and tr.valid[i, present : present + S + 1].all()
    ]
    for v in veh:
        h = tr.heading[v, present]
        for u in veh:
            d = tr.xy[u, present] - tr.xy[v, present]
            x, y = d @ [np.cos(h), np.sin(h)], d @ [-np.sin(h), np.cos(h)]
            if u != v and -20 < x < -5 and abs(y) < 1.0 and tr.speed[v, present] > 3 and tr.speed[u, present] > 2:
                return v, u
    raise AssertionError("no follower in the scene")


def test_idm_follower_slows_behind_a_braking_ego(procedural, capsys):
    sc, t0 = procedural, 0
    p, end = t0 + SPEC.present, t0 + SPEC.present + S
    v, u = _follower(sc, p)
    ref = ClipRef(v, t0, True)
    runs = {
        "log": sc,
        "idm, no offset": counterfactual_scenario(sc, ref, SPEC, _record(idm=True), CF),
        "idm, braking": counterfactual_scenario(sc, ref, SPEC, _record(accel=-4.0, idm=True), CF),
    }
    speed = {k: float(s.tracks.speed[u, end]) for k, s in runs.items()}
    gap = {k: float(np.hypot(*(s.tracks.xy[v, end] - s.tracks.xy[u, end]))) for k, s in runs.items()}
    with capsys.disabled():
        print(
            f"\nfollower {u} of viewpoint {v}, {np.hypot(*(sc.tracks.xy[v, p] - sc.tracks.xy[u, p])):.1f} m behind: "
            + ", ".join(f"{k}: {speed[k]:.2f} m/s at {gap[k]:.2f} m" for k in runs)
        )
    braking = "idm, braking"
    assert speed[braking] < min(speed["log"], speed["idm, no offset"]) - 1.0
    assert gap[braking] < min(gap["log"], gap["idm, no offset"]) - 1.0
    # the ego is the IDM's obstacle, not its driver: its counterfactual future is kept
    want = counterfactual_scenario(sc, ref, SPEC, _record(accel=-4.0), CF).tracks.xyz[v]
    assert np.array_equal(runs[braking].tracks.xyz[v], want)
    # pedestrians keep their logs
    peds = sc.object_types == ObjectType.PEDESTRIAN
    assert peds.any() and np.array_equal(runs[braking].tracks.xyz[peds], sc.tracks.xyz[peds])


def _plan(sc: Scenario, source: str):
    entry = {"split": "train", "source": source, "source_index": 0, "seed": 5}
    return [
        (sc, r, {**entry, "viewpoint": r.viewpoint, "t0": r.t0, "moving": r.moving})
        for r in plan_clips(sc, SPEC, np.random.default_rng(0))
    ]


def test_same_seed_same_clip(scenes):
    for name, sc, _ in scenes:
        plan = _plan(sc, "procedural" if name == "procedural" else "womd.tfrecord")
        cfg = CounterfactualConfig(enabled=True, fraction=0.4, segments=2)
        a, b = with_counterfactuals(plan, cfg, SPEC), with_counterfactuals(plan, cfg, SPEC)
        recs = [e["counterfactual"] for _, _, e in a[len(plan) :]]
        assert recs and recs == [e["counterfactual"] for _, _, e in b[len(plan) :]]
        assert [e["counterfactual"] for _, _, e in a[: len(plan)]] == [None] * len(plan)
        assert all(r["idm"] == (name == "procedural") for r in recs)  # default: IDM in procedural scenes only
        other = with_counterfactuals(plan, dataclasses.replace(cfg, seed=1), SPEC)
        assert [e["counterfactual"]["accel_offset"] for _, _, e in other[len(plan) :]] != [r["accel_offset"] for r in recs]
        _, ref, entry = a[len(plan)]
        one, two = (counterfactual_scenario(sc, ref, SPEC, entry["counterfactual"], cfg) for _ in range(2))
        for x, y in zip(_render(one, ref), _render(two, ref)):
            assert np.array_equal(x, y)


def test_disabled_knob_keeps_the_cache_key_and_files(tmp_path):
    spec = SPEC
    sources = [SourceConfig(kind="procedural", count=1, seed=3, scene_kind="straight", max_clips=3)]
    today = cache_key(spec, sources)
    off = CounterfactualConfig(enabled=False, fraction=0.4, accel_offset=(-3.0, -1.0))
    assert cache_key(spec, sources, None, off) == today
    assert cache_key(spec, sources, None, CounterfactualConfig(enabled=True)) != today
    assert cache_key(spec, sources, None, CounterfactualConfig(enabled=True, seed=1)) != cache_key(
        spec, sources, None, CounterfactualConfig(enabled=True)
    )
    plain = build_clip_cache(spec, sources, tmp_path / "a", progress=False)
    knob = build_clip_cache(spec, sources, tmp_path / "b", progress=False, counterfactual=off)
    assert plain.name == knob.name == today
    for f in ("manifest.json", "pose.npy", "ego.npy"):
        assert (plain / f).read_bytes() == (knob / f).read_bytes(), f
    # enabled: the log clips first, unchanged; the twins appended, re-renderable from their records
    on = CounterfactualConfig(enabled=True, fraction=0.4, accel_offset=(-4.0, -2.0))
    cache = ClipCache(build_clip_cache(spec, sources, tmp_path / "c", progress=False, counterfactual=on))
    base = ClipCache(plain)
    n = len(base)
    assert len(cache) > n and not cache.is_counterfactual[:n].any() and cache.is_counterfactual[n:].all()
    assert np.array_equal(cache.pose[:n], base.pose[:n]) and np.array_equal(cache.ego[:n], base.ego[:n])
    assert json.loads((tmp_path / "c" / cache.folder.name / "manifest.json").read_text())["counterfactual"]["fraction"] == 0.4
    sc = generate_scenario(np.random.default_rng(3), kind="straight")
    c, f = spec.context_slice, spec.future_slice
    for k in range(n, len(cache)):
        e = cache.clips[k]
        twin = e["counterfactual"]["of"]
        assert (e["viewpoint"], e["t0"], e["ego_seed"]) == tuple(cache.clips[twin][x] for x in ("viewpoint", "t0", "ego_seed"))
        assert np.array_equal(cache.pose[k, c], cache.pose[twin, c]) and not np.array_equal(cache.pose[k, f], cache.pose[twin, f])
        ref = ClipRef(e["viewpoint"], e["t0"], e["moving"])
        again = ClipRenderer(spec).render(counterfactual_scenario(sc, ref, spec, e["counterfactual"], on), ref, e["ego_seed"])
        assert np.array_equal(again[0], cache.pose[k]) and np.array_equal(again[1], cache.ego[k])


@pytest.mark.parametrize(
    "values, key",
    [
        ({"fraction": 0.5}, "data.counterfactual.fraction"),
        ({"fraction": -0.1}, "data.counterfactual.fraction"),
        ({"segments": 0}, "data.counterfactual.segments"),
        ({"accel_offset": [2.0, -1.0]}, "data.counterfactual.accel_offset"),
        ({"accel_offset": [-20.0, 0.0]}, "data.counterfactual.accel_offset"),
        ({"accel_offset": [1.0]}, "data.counterfactual.accel_offset"),
        ({"curvature_offset": [-1.0, 1.0]}, "data.counterfactual.curvature_offset"),
        ({"idm_agents": "sometimes"}, "data.counterfactual.idm_agents"),
        ({"splits": ["test"]}, "data.counterfactual.splits"),
        ({"limits": {"max_brake": 3.0}}, "data.counterfactual.limits"),
    ],
)
def test_bad_values_name_their_key(values, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        CounterfactualConfig(enabled=True, **values)


def test_yaml_block_loads_and_rejects_unknown_keys():
    block = {"enabled": True, "fraction": 0.3, "accel_offset": [-5, 1.5], "idm_agents": "all", "segments": 2}
    cfg = from_dict({"counterfactual": block}, DatasetConfig).counterfactual
    assert cfg.enabled and cfg.accel_offset == (-5.0, 1.5) and cfg.idm_agents == "all"
    with pytest.raises(ConfigError, match="counterfactual.fractoin"):
        from_dict({"counterfactual": {"fractoin": 0.1}}, DatasetConfig)
    with pytest.raises(ConfigError, match="segments=30 exceeds"):
        with_counterfactuals([], CounterfactualConfig(enabled=True, segments=30), SPEC)
