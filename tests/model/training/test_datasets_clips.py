"""Clip planning on real logs and the on-disk clip cache (real renderers, small clips)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from mad_sim.data import load_scenario
from mad_sim.data.scenario import ObjectType
from mad_sim.errors import ConfigError, DataError, DataNotFoundError
from mad_sim.model.training.clips import ClipSpec, plan_clips, viewpoint_poses
from mad_sim.model.training.datasets import ClipCache, SourceConfig, build_clip_cache

SMALL = dict(width=64, height=64, stride=40, max_viewpoints=2)


def test_spec_rejects_sizes_the_vae_cannot_take():
    with pytest.raises(ConfigError, match="8k\\+1"):
        ClipSpec(context_frames=8)
    with pytest.raises(ConfigError, match="multiple of 32"):
        ClipSpec(width=100)
    spec = ClipSpec()
    assert (spec.total_frames, spec.present) == (26, 8)
    assert spec.future_slice == slice(9, 26)


def test_plan_uses_any_valid_vehicle_as_viewpoint(womd_path):
    sc = load_scenario(womd_path)
    spec = ClipSpec()
    refs = plan_clips(sc, spec, np.random.default_rng(0))
    assert refs == plan_clips(sc, spec, np.random.default_rng(0))  # same seed, same clips
    assert len(refs) > 20
    assert len({r.viewpoint for r in refs}) > 10
    assert any(r.viewpoint != sc.sdc_index for r in refs)
    for r in refs:
        window = slice(r.t0, r.t0 + spec.total_frames)
        assert sc.tracks.valid[r.viewpoint, window].all()
        assert sc.object_types[r.viewpoint] == ObjectType.VEHICLE
        poses = viewpoint_poses(sc, r, spec)
        travel = np.hypot(*(poses[-1, :2] - poses[0, :2]))
        assert (travel >= spec.min_travel_m) == r.moving
    t0s = sorted({r.t0 for r in refs})
    assert t0s[0] == 0 and np.all(np.diff(t0s) % spec.stride == 0)
    # at most max_viewpoints moving + ceil(static_fraction * max_viewpoints) still ones per window
    per_window = np.bincount([r.t0 for r in refs])
    assert per_window.max() <= spec.max_viewpoints + 2


def test_t_range_holds_a_time_span_out(womd_path):
    sc = load_scenario(womd_path)
    spec = ClipSpec(stride=5)
    refs = plan_clips(sc, spec, np.random.default_rng(0), t_range=(30, 70))
    assert refs and all(30 <= r.t0 and r.t0 + spec.total_frames <= 70 for r in refs)


_BUILT: dict = {}


@pytest.fixture
def small_cache(womd_path, womd_still_path, tmp_path_factory):
    """A tiny cache (64x64 clips) of two real logs, built once per module."""
    if "cache" not in _BUILT:
        root = tmp_path_factory.mktemp("clips")
        spec = ClipSpec(**SMALL)
        sources = [
            SourceConfig(kind="file", path=str(womd_path), split="train", seed=1),
            SourceConfig(kind="file", path=str(womd_still_path), split="eval", seed=2, max_clips=2),
        ]
        _BUILT["cache"] = (build_clip_cache(spec, sources, root, progress=False), spec, sources, root)
    return _BUILT["cache"]


def test_cache_holds_rendered_pose_and_ego_videos(small_cache):
    folder, spec, _, _ = small_cache
    cache = ClipCache(folder)
    assert len(cache) == len(cache.clips) > 2
    assert cache.pose.shape == (len(cache), 26, 64, 64, 3) and cache.pose.dtype == np.uint8
    train, held = cache.indices("train"), cache.indices("eval")
    assert len(held) == 2 and len(train) == len(cache) - 2
    sc = load_scenario(cache.clips[0]["source"])
    for c in cache.clips:
        assert c["present"] == c["t0"] + spec.present
    pose, ego = cache.batch(train)
    lit = (pose.max(-1) > 20).mean(axis=(2, 3))  # [B, F] fraction of lit pixels
    assert (lit > 0.002).all() and (lit < 0.5).all()  # thin lines on black, in every frame
    # a moving viewpoint's ego-motion video changes from frame to frame; the texture differs between clips
    moving = [i for i, k in enumerate(train) if cache.clips[k]["moving"]]
    assert moving
    diff = np.abs(ego[moving, 1:].astype(int) - ego[moving, :-1]).mean()
    assert diff > 1.0
    # the first clip re-rendered by hand matches the cache bit for bit
    from mad_sim.render.pose import PoseRenderer

    c = cache.clips[0]
    again = PoseRenderer(64, 64).render_scenario(sc, c["viewpoint"], c["t0"], c["t0"] + spec.total_frames)
    assert np.array_equal(again, cache.pose[0])


def test_same_spec_and_sources_reuse_the_cache(small_cache):
    folder, spec, sources, root = small_cache
    stamp = (folder / "pose.npy").stat().st_mtime_ns
    assert build_clip_cache(spec, sources, root, progress=False) == folder
    assert (folder / "pose.npy").stat().st_mtime_ns == stamp
    other = build_clip_cache(ClipSpec(**{**SMALL, "stride": 45}), sources[1:], root, progress=False)
    assert other != folder


def test_incomplete_or_inconsistent_cache_is_reported(small_cache, tmp_path):
    folder, _, _, _ = small_cache
    with pytest.raises(DataNotFoundError, match="manifest"):
        ClipCache(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["clips"] = manifest["clips"][:1]
    (broken / "manifest.json").write_text(json.dumps(manifest))
    for name in ("pose.npy", "ego.npy"):
        (broken / name).symlink_to(folder / name)
    with pytest.raises(DataError, match="pose.npy has shape"):
        ClipCache(broken)


def test_source_without_any_clip_is_an_error(womd_path, tmp_path):
    spec = ClipSpec(**SMALL)
    src = SourceConfig(kind="file", path=str(womd_path), t_range=[0, 20])  # shorter than one clip
    with pytest.raises(DataError, match="gave no clip"):
        build_clip_cache(spec, [src], tmp_path, progress=False)


def test_box_option_keeps_plain_cache_names(small_cache):
    """Enabling box videos changes the cache name; the disabled option leaves old caches valid."""
    import hashlib
    from dataclasses import asdict

    from mad_sim.model.training.datasets import CACHE_VERSION, BoxClipConfig, cache_key

    folder, spec, sources, _ = small_cache
    plain = {k: v for k, v in asdict(spec).items() if not k.startswith("camera_")}  # the spec before camera fields
    old = hashlib.sha256(
        json.dumps({"v": CACHE_VERSION, "spec": plain, "sources": [asdict(s) for s in sources]}, sort_keys=True).encode()
    ).hexdigest()[:16]
    assert folder.name == old == cache_key(spec, sources, BoxClipConfig(enabled=False, max_agents=2))
    assert cache_key(spec, sources, BoxClipConfig(enabled=True)) != old
    assert ClipCache(folder).boxes is None and ClipCache(folder).box_indices("train").size == 0
    elevated = dataclasses.replace(spec, camera_height=12.0, camera_pitch_deg=35.0)
    assert cache_key(elevated, sources) != old  # another camera is another cache
    with pytest.raises(DataError, match="no box videos"):
        ClipCache(folder).box_batch([0])
    with pytest.raises(ConfigError, match="max_agents"):
        BoxClipConfig(enabled=True, max_agents=9)


def test_box_cache_matches_box_videos_of_the_log(womd_path, tmp_path):
    """Box videos stored per clip equal render_box_video of the logged future of the stored agents."""
    from mad_sim.model.object_control import box_video_from_trajectory, slot_colors
    from mad_sim.model.training.clips import ClipRenderer
    from mad_sim.model.training.datasets import BoxClipConfig, box_seed

    spec = ClipSpec(**{**SMALL, "stride": 25})
    src = [SourceConfig(kind="file", path=str(womd_path), split="train", seed=1, max_clips=6)]
    folder = build_clip_cache(spec, src, tmp_path, progress=False, boxes=BoxClipConfig(enabled=True, max_agents=3))
    cache = ClipCache(folder)
    assert cache.boxes.shape == (len(cache), spec.future_frames, 64, 64, 3)
    n = cache.num_box_agents
    assert n.max() <= 3 and (n > 0).sum() >= 4 and len(set(n.tolist())) >= 2  # 1..3 agents, drawn per clip
    sc = load_scenario(womd_path)
    cam = ClipRenderer(spec).pose.camera
    for k in cache.box_indices("train"):
        c = cache.clips[k]
        agents = c["box_agents"]
        assert c["viewpoint"] not in agents and all(sc.object_types[a] == ObjectType.VEHICLE for a in agents)
        steps = range(c["present"] + 1, c["present"] + 1 + spec.future_frames)
        want = box_video_from_trajectory(sc.tracks, c["viewpoint"], agents, steps, cam)
        assert np.array_equal(cache.box_batch([k])[0], want)
        for a in agents:  # each controlled agent's box alone is visible in every future frame
            alone = box_video_from_trajectory(sc.tracks, c["viewpoint"], [a], steps, cam)
            assert np.all(alone == slot_colors()[0], -1).sum(axis=(1, 2)).min() >= 8  # filled (min_pixels default)
    # the draw is reproducible from the manifest entry's seed
    c = cache.clips[0]
    from mad_sim.model.training.clips import ClipRef

    _, again = ClipRenderer(spec).render_boxes(
        sc, ClipRef(c["viewpoint"], c["t0"], c["moving"]), np.random.default_rng(box_seed(c)), 3
    )
    assert again.tolist() == c["box_agents"]


def test_manifest_names_each_clips_source_kind() -> None:
    """Corpus clips are not labelled procedural (the counterfactual twins re-simulate by IDM only procedural ones)."""
    from mad_sim.model.training.datasets import SourceConfig, source_label

    assert source_label(SourceConfig(kind="corpus", path="train")) == "corpus:train"
    assert source_label(SourceConfig(kind="procedural", count=2)) == "procedural"
    assert source_label(SourceConfig(kind="file", path="womd/a.tfrecord")) == "womd/a.tfrecord"
