#!/usr/bin/env bash
# Build the separate virtual environment that runs Waymo's own sim-agents metrics
# (scripts/waymo_sim_agents_metrics.py; the opt-in test tests/eval/test_sim_agents_official.py).
#
#   scripts/make_waymo_venv.sh            (venv at $WAYMO_VENV, default ~/.cache/mad-sim/waymo-venv)
#
# Never the project's .venv: Waymo's package pins TensorFlow 2.13, numpy 1.23.5, jax 0.4.13,
# matplotlib 3.6.1 ... (its wheel's Requires-Dist), which the project's stack does not share.
# waymo-open-dataset-tf-2-12-0 1.6.7 (April 2025, the newest on PyPI) is the release that carries
# challenge_2025_sim_agents_config.textproto; its wheel is tagged py3-none but built and classified for
# Python 3.10, so the venv uses a 3.10 interpreter ($PYTHON310, default: the first python3.10 on PATH).
# About 2.5 GB on disk, mostly TensorFlow; CPU only.
set -euo pipefail
venv="${WAYMO_VENV:-$HOME/.cache/mad-sim/waymo-venv}"
py="${PYTHON310:-$(command -v python3.10 || true)}"
if [[ -z "$py" ]]; then
  echo "make_waymo_venv.sh: no python3.10 found (set PYTHON310=/path/to/python3.10)" >&2
  exit 1
fi
"$py" -m venv "$venv"
# in two steps: TensorFlow first, with a recent requests; in one `pip install` the resolver backtracked
# through dozens of requests / tensorboard-data-server versions for more than 15 minutes
"$venv/bin/pip" install "tensorflow==2.13.0" "requests>=2.31"
"$venv/bin/pip" install "waymo-open-dataset-tf-2-12-0==1.6.7"
"$venv/bin/python" - <<'PY'
from waymo_open_dataset.utils.sim_agents import submission_specs
from waymo_open_dataset.wdl_limited.sim_agents_metrics import metrics
print("waymo sim-agents metrics import fine:", metrics.__file__, submission_specs.ChallengeType.SIM_AGENTS)
PY
echo "built $venv"
