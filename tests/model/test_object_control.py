"""Box-trajectory videos (object control) on the real WOMD scene, and the follow-IoU measure."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from mad_sim.data import load_scenario
from mad_sim.data.scenario import ObjectType
from mad_sim.errors import RenderError, ShapeError
from mad_sim.model.object_control import box_condition, box_video_from_trajectory, follow_iou, render_box_video, slot_colors
from mad_sim.render.pose import PoseRenderer, world_to_vehicle

T0, T1 = 40, 57


@pytest.fixture(scope="module")
def scene(womd_path_module):
    sc = load_scenario(womd_path_module)
    r = PoseRenderer(128, 128)
    sdc = int(sc.sdc_index)
    tr = sc.tracks
    m = world_to_vehicle(tr.xyz[sdc, T0], float(tr.heading[sdc, T0]), float(tr.size[sdc, T0, 2]))
    ego = tr.xyz[:, T0] @ m[:, :3].T + m[:, 3]
    ok = (
        (sc.object_types == ObjectType.VEHICLE)
        & tr.valid[:, T0:T1].all(1)
        & (ego[:, 0] > 4)
        & (ego[:, 0] < 40)
        & (np.abs(ego[:, 1]) < 0.8 * ego[:, 0])
    )
    ok[sdc] = False
    agents = np.flatnonzero(ok)[:1]  # track 34: a car alone on the left; the others stand in a dense queue
    return sc, r, sdc, agents


@pytest.fixture(scope="module")
def womd_path_module():
    from tests.conftest import data_file

    return data_file("womd/womd_scenario_input.tfrecord")


def test_box_video_lines_up_with_pose_video(scene):
    sc, r, sdc, agents = scene
    assert agents.tolist() == [34]
    boxes = box_video_from_trajectory(sc.tracks, sdc, agents, range(T0, T1), r.camera)
    pose = r.render_scenario(sc, sdc, T0, T1)
    assert boxes.shape == pose.shape == (T1 - T0, 128, 128, 3)
    colors = slot_colors()
    assert np.all(boxes == colors[0], -1).sum(axis=(1, 2)).min() > 20  # drawn in every frame
    logged = follow_iou(pose, boxes, 1)
    assert logged > 0.5
    # the same agents displaced 4 m sideways in the "forecast": they no longer follow their boxes
    moved = copy.deepcopy(sc)
    left = np.stack([-np.sin(moved.tracks.heading[agents]), np.cos(moved.tracks.heading[agents])], -1)
    moved.tracks.xyz[agents, :, :2] += 4.0 * left
    off = follow_iou(r.render_scenario(moved, sdc, T0, T1), boxes, 1)
    assert off < logged - 0.2, (off, logged)


def test_box_condition_and_errors(scene):
    sc, r, sdc, agents = scene
    boxes = box_video_from_trajectory(sc.tracks, sdc, agents, range(T0, T0 + 9), r.camera)
    cond = box_condition(boxes)
    assert cond.kind == "boxes" and tuple(cond.video.shape) == (1, 3, 9, 128, 128) and cond.offset == 0
    assert float(cond.video.min()) == -1.0
    with pytest.raises(ShapeError, match="at most"):
        render_box_video(r.camera, np.zeros((2, 9, 3)), np.zeros((2, 9)), np.ones((9, 3)), np.ones((2, 9), bool))
    with pytest.raises(RenderError, match="non-finite"):
        render_box_video(r.camera, np.full((1, 1, 3), np.nan), np.zeros((1, 1)), np.ones((1, 3)), np.ones((1, 1), bool))
    with pytest.raises(ShapeError, match="no controlled agent"):
        box_video_from_trajectory(sc.tracks, sdc, [], range(T0, T1), r.camera)
    with pytest.raises(ShapeError, match="must match"):
        follow_iou(boxes, boxes[:, :64], 2)


def test_boxes_task_hook_reaches_the_model(scene):
    """The conditional-forecaster training task: the box video changes the loss and trains the adapter."""
    import torch

    from mad_sim.model.object_control import choose_controlled_agents

    sc, _, sdc, _ = scene
    r = PoseRenderer(64, 64)
    hist_steps, fut_steps = range(T0 - 9, T0), range(T0, T0 + 9)
    agents = choose_controlled_agents(sc.tracks, sc.object_types, sdc, fut_steps, r.camera, np.random.default_rng(0))
    assert 1 <= len(agents) <= 2 and sdc not in agents
    boxes = box_video_from_trajectory(sc.tracks, sdc, agents, fut_steps, r.camera)[None]
    hist = r.render_scenario(sc, sdc, hist_steps[0], hist_steps[-1] + 1)[None]
    fut = r.render_scenario(sc, sdc, fut_steps[0], fut_steps[-1] + 1)[None]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a busy 2-core machine is far faster with one thread
    try:
        _check_boxes_loss(hist, fut, boxes)
    finally:
        torch.set_num_threads(threads)


def _check_boxes_loss(hist: np.ndarray, fut: np.ndarray, boxes: np.ndarray) -> None:
    import torch

    from mad_sim.model.backbone_loading import load_backbone
    from mad_sim.model.mad import MADModel
    from mad_sim.model.object_control import boxes_task_loss

    torch.manual_seed(0)
    model = MADModel(load_backbone("tiny", weights="random", device="cpu", seed=0))
    model.add_adapter("motion", rank=4, alpha=4)
    model.set_adapter("motion")
    sig, eps = (
        torch.tensor([0.5]),
        torch.randn((1,) + tuple(model.backbone.latent_shape(9, 64, 64)), generator=torch.Generator().manual_seed(1)),
    )
    loss = boxes_task_loss(model, hist, fut, boxes, sigmas=sig, noise=eps)
    blank = boxes_task_loss(model, hist, fut, np.zeros_like(boxes), sigmas=sig, noise=eps)
    moved = boxes_task_loss(model, hist, fut, np.roll(boxes, 12, axis=3), sigmas=sig, noise=eps)
    assert torch.isfinite(loss) and float(loss) != float(blank) and float(loss) != float(moved)
    loss.backward()
    grads = [p.grad for p in model.adapter_parameters("motion") if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)
    with pytest.raises(ShapeError, match="must span the target"):
        boxes_task_loss(model, hist, fut, boxes[:, :5])
