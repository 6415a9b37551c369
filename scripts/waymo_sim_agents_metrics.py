"""Score a SimAgentsChallengeSubmission with Waymo's own sim-agents metrics (their code, not mad-sim's).

Runs in the separate Waymo virtual environment (``scripts/make_waymo_venv.sh``), never the project's:
it imports ``waymo_open_dataset`` (TensorFlow 2.13) and nothing of mad-sim.

    ~/.cache/mad-sim/waymo-venv/bin/python scripts/waymo_sim_agents_metrics.py \\
        --scenarios womd/motion_data_one_scenario.tfrecord --submission womd/test_submission.binproto \\
        --json out.json [--features DIR]

For every ``ScenarioRollouts`` of the submission whose ``Scenario`` is in one of the ``--scenarios``
TFRecord files: ``metrics.compute_scenario_metrics_for_bundle`` with the 2025 sim-agents configuration
(``challenge_2025_sim_agents_config.textproto``, the file ``load_metrics_config(ChallengeType.SIM_AGENTS)``
reads).  The JSON maps scenario id to every field of the
returned ``SimAgentMetrics`` (likelihoods, metametric, ADE / minADE, rates) plus ``evaluated_ids``;
``--features DIR`` also writes ``DIR/SCENARIO_ID.npz``: the log's and the rollouts' metric features
(``log_<name>`` / ``sim_<name>``, Waymo's ``MetricFeatures`` fields) for a feature-by-feature comparison.
A scenario of the submission that no file holds is an error (exit 2).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", nargs="+", required=True, help="TFRecord files of WOMD Scenario protos")
    ap.add_argument("--submission", required=True, help="a SimAgentsChallengeSubmission binproto")
    ap.add_argument("--json", dest="json_out", required=True)
    ap.add_argument("--features", help="folder for the per-scenario feature arrays (npz)")
    ap.add_argument(
        "--no-validate",
        action="store_true",
        help="skip submission_specs.validate_scenario_rollouts (which demands exactly 32 rollouts), "
        "to score fewer; the metrics themselves take any number",
    )
    args = ap.parse_args()

    import numpy as np
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from google.protobuf import text_format
    from waymo_open_dataset.protos import scenario_pb2, sim_agents_metrics_pb2, sim_agents_submission_pb2
    from waymo_open_dataset.utils.sim_agents import submission_specs
    from waymo_open_dataset.wdl_limited.sim_agents_metrics import metric_features, metrics

    challenge = submission_specs.ChallengeType.SIM_AGENTS
    # metrics.load_metrics_config(challenge) opens the textproto by a path relative to the working directory
    # ('waymo_open_dataset/wdl_limited/...': FileNotFoundError outside a source checkout), so it is read
    # from the installed package here, exactly as that function parses it
    config = sim_agents_metrics_pb2.SimAgentMetricsConfig()
    with open(os.path.join(os.path.dirname(metrics.__file__), "challenge_2025_sim_agents_config.textproto")) as f:
        text_format.Parse(f.read(), config)
    sub = sim_agents_submission_pb2.SimAgentsChallengeSubmission()
    with open(args.submission, "rb") as f:
        sub.ParseFromString(f.read())
    want = {sr.scenario_id: sr for sr in sub.scenario_rollouts}
    scenarios = {}
    for path in args.scenarios:
        for rec in tf.data.TFRecordDataset(path):
            sc = scenario_pb2.Scenario.FromString(rec.numpy())
            if sc.scenario_id in want:
                scenarios[sc.scenario_id] = sc
    missing = sorted(set(want) - set(scenarios))
    if missing:
        print(f"waymo_sim_agents_metrics: no scenario file holds {missing[:3]}", file=sys.stderr)
        return 2
    out = {}
    for sid, sr in want.items():
        sc = scenarios[sid]
        if not args.no_validate:
            submission_specs.validate_scenario_rollouts(sr, sc, challenge)
        m = metrics.compute_scenario_metrics_for_bundle(config, sc, sr, challenge)
        row = {fd.name: getattr(m, fd.name) for fd in m.DESCRIPTOR.fields}
        row["evaluated_ids"] = [int(i) for i in submission_specs.get_evaluation_sim_agent_ids(sc, challenge)]
        out[sid] = row
        if args.features:
            log_f, sim_f = metric_features.compute_scenario_rollouts_features(sc, sr, challenge)
            arrays = {}
            for name in log_f.__dataclass_fields__:
                arrays[f"log_{name}"] = np.asarray(getattr(log_f, name))
                arrays[f"sim_{name}"] = np.asarray(getattr(sim_f, name))
            os.makedirs(args.features, exist_ok=True)
            np.savez(os.path.join(args.features, f"{sid}.npz"), **arrays)
    with open(args.json_out, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
