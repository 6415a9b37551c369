"""``mad-sim eval sim-agents``: policies end to end (2 rollouts, 3 s), a submission scored, bad input in one line."""

import json
import subprocess
import sys


def _run(*args):
    return subprocess.run([sys.executable, "-m", "mad_sim", "eval", "sim-agents", "--no-progress", *args],
                          capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})


def test_policies_json(tmp_path, womd_still_path):
    out = tmp_path / "r.json"
    p = _run("--agents", "log,constant_velocity", "--data", str(womd_still_path), "--rollouts", "2", "--horizon", "3",
             "--json", str(out), "--export", str(tmp_path / "sub"))
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    assert set(doc["policies"]) == {"log", "constant_velocity"}
    assert doc["policies"]["log"]["aggregate"]["num_scenarios"] == 1
    assert (tmp_path / "sub" / "log" / "637f20cafde22ff8.binproto").is_file()


def test_submission_and_errors(submission_path, womd_still_path, womd_path):
    p = _run("--submission", str(submission_path), "--data", str(womd_still_path))
    assert p.returncode == 0 and "0.258" in p.stdout
    bad = _run("--submission", str(submission_path), "--data", str(womd_path))
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1 and "scenario" in bad.stderr
    bad = _run("--agents", "nope", "--data", str(womd_path))
    assert bad.returncode != 0 and "unknown agent policy 'nope'" in bad.stderr
    bad = _run("--ego", "nope", "--data", str(womd_path))
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1 and "--ego" in bad.stderr


def test_planner_ego(tmp_path, womd_still_path):
    out = tmp_path / "r.json"
    p = _run("--agents", "idm", "--ego", "cv", "--data", str(womd_still_path), "--rollouts", "2", "--horizon", "2",
             "--json", str(out))
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    assert doc["meta"]["ego"] == "cv" and doc["policies"]["idm"]["aggregate"]["num_scenarios"] == 1
