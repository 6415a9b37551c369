"""Our compiled protos: wire-compatible with the official schema, coexisting with it."""

from __future__ import annotations

import numpy as np

from mad_sim.data.proto import dataset_pb2, map_pb2, scenario_pb2, sim_agents_submission_pb2

OURS = [map_pb2, scenario_pb2, sim_agents_submission_pb2, dataset_pb2]


def _messages(descriptor):
    for m in descriptor.message_types_by_name.values():
        yield from _nested(m)


def _nested(m):
    yield m
    for n in m.nested_types:
        yield from _nested(n)


def _official_message(official_protos, name: str):
    from google.protobuf import descriptor_pool

    pool = descriptor_pool.Default()
    return pool.FindMessageTypeByName("waymo.open_dataset." + name)


def test_every_field_matches_the_official_schema(official_protos):
    checked = 0
    for module in OURS:
        for ours in _messages(module.DESCRIPTOR):
            theirs = _official_message(official_protos, ours.full_name.removeprefix("mad_sim.womd."))
            for field in ours.fields:
                other = theirs.fields_by_number[field.number]
                assert other.name == field.name, ours.full_name
                assert other.type == field.type, f"{ours.full_name}.{field.name}"
                assert other.is_repeated == field.is_repeated, f"{ours.full_name}.{field.name}"
                if field.is_repeated:
                    assert other.is_packed == field.is_packed, f"{ours.full_name}.{field.name} packing"
                if field.enum_type is not None:
                    mine = {v.name: v.number for v in field.enum_type.values}
                    assert mine == {v.name: v.number for v in other.enum_type.values}
                checked += 1
    assert checked > 150


def test_generated_modules_declare_their_own_package():
    assert scenario_pb2.Scenario.DESCRIPTOR.full_name == "mad_sim.womd.Scenario"
    assert scenario_pb2.DESCRIPTOR.name == "mad_sim/data/proto/scenario.proto"


def test_submission_subset_reads_the_real_submission(submission_path, official_protos):
    data = submission_path.read_bytes()
    ours = sim_agents_submission_pb2.SimAgentsChallengeSubmission.FromString(data)
    theirs = official_protos.sim_agents_submission_pb2.SimAgentsChallengeSubmission.FromString(data)
    rollouts = ours.scenario_rollouts
    assert len(rollouts) == 1 and rollouts[0].scenario_id == "637f20cafde22ff8"
    scenes = rollouts[0].joint_scenes
    assert len(scenes) == 32 and len(scenes[0].simulated_trajectories) == 50
    assert len(scenes[0].simulated_trajectories[0].center_x) == 80
    a = np.array([[t.center_x for t in s.simulated_trajectories] for s in scenes])
    b = np.array([[t.center_x for t in s.simulated_trajectories] for s in theirs.scenario_rollouts[0].joint_scenes])
    np.testing.assert_array_equal(a, b)
    assert ours.SerializeToString() == data  # nothing dropped: the subset keeps unknown fields
