"""``mad-sim info``: JSON summaries and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from mad_sim.cli import main


def test_info_json_on_womd_and_scenarionet(womd_path, womd_still_path, scenarionet_path, capsys):
    assert main(["info", str(womd_path), str(womd_still_path), str(scenarionet_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    out = doc["scenes"]
    assert doc["aggregate"]["scenes"] == 3 and doc["aggregate"]["by_format"] == {"scenarionet": 1, "womd": 2}
    assert [o["format"] for o in out] == ["womd", "womd", "scenarionet"]
    assert [o["scenario_id"] for o in out] == ["ee519cf571686d19", "637f20cafde22ff8", "eb4b91b10ca94ff2"]
    first = out[0]
    assert (first["num_tracks"], first["num_steps"], first["current_index"], first["sdc_index"]) == (257, 91, 10, 256)
    assert first["tracks_to_predict"] == [18, 234, 229, 26]
    assert first["map_features"] == {
        "lane": 114,
        "road_line": 12,
        "road_edge": 75,
        "stop_sign": 4,
        "crosswalk": 4,
        "speed_bump": 6,
        "driveway": 0,
    }
    xy = np.array(first["sdc_xy"], dtype=float)
    assert xy.shape == (91, 2)
    assert abs(np.hypot(*(xy[-1] - xy[0])) - 24.5) < 0.1
    assert (out[1]["num_tracks"], out[2]["num_tracks"], out[2]["num_steps"]) == (83, 45, 199)


def test_info_glob_and_table(womd_path, capsys):
    assert main(["info", str(womd_path.parent / "*scenario*.tfrecord")]) == 0
    text = capsys.readouterr().out
    assert "ee519cf571686d19" in text and "637f20cafde22ff8" in text and "24.5" in text


def test_info_errors_are_one_line_exit_2(frame_path, tmp_path: Path):
    empty = tmp_path / "empty.tfrecord"
    empty.write_bytes(b"")
    for bad, needle in [(frame_path, "record 0"), (empty, "empty file"), (tmp_path / "missing.tfrecord", "no such file")]:
        proc = subprocess.run([sys.executable, "-m", "mad_sim", "info", str(bad), "--json"], capture_output=True, text=True)
        assert proc.returncode == 2, proc.stderr
        assert proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and str(bad) in lines[0] and needle in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr
