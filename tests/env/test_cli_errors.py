"""A new user's mistakes end in one line on stderr and exit status 2, before any work or progress bar."""

from __future__ import annotations

import json

import pytest

from mad_sim.cli import main


@pytest.fixture()
def unwritable(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    return str(blocker / "dir" / "x.mp4")  # its folder cannot be made, not even by root


@pytest.mark.parametrize("cmd", ["render", "replay"])
def test_unwritable_out_is_one_line(cmd, womd_path, unwritable, capsys):
    """Defect 2: ``--out /unwritable/dir/x.mp4`` printed a traceback (rc 1)."""
    rc = main([cmd, str(womd_path), "--out", unwritable])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith(f"mad-sim {cmd}: error: --out ") and "cannot write" in err[0]
    assert "Traceback" not in "".join(err)


def test_demo_checks_out_before_driving(unwritable, capsys):
    rc = main(["demo", "--agents", "idm", "--out", unwritable])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == "" and len(captured.err.strip().splitlines()) == 1


def test_os_errors_are_one_line(monkeypatch, capsys):
    import mad_sim.cli.info as info

    def boom(args):
        raise PermissionError(13, "Permission denied", "/somewhere")

    monkeypatch.setattr(info, "run", boom)
    rc = main(["info", "x"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == ["mad-sim info: error: [Errno 13] Permission denied: '/somewhere'"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["open-loop", "--data", "/nonexistent/*.tfrecord"], "matches no file"),
        (["open-loop", "--k", "0"], "--k must be >= 1"),
        (["open-loop", "--horizon", "-1"], "--horizon must be > 0"),
        (["open-loop", "--planner", "cv,nope"], "--planner: unknown planner 'nope'"),
        (["closed-loop", "--agents", "nobody"], "unknown agent policy 'nobody'"),
        (["closed-loop", "--replan-every", "0"], "--replan-every must be >= 1"),
    ],
)
def test_eval_validates_before_the_progress_bar(argv, message, womd_path, capsys):
    """Defect 3: the bar was drawn around the one-line error."""
    if "--data" not in argv:
        argv = [*argv, "--data", str(womd_path)]
    rc = main(["eval", *argv])
    err = capsys.readouterr().err
    assert rc == 2 and message in err
    assert len(err.strip().splitlines()) == 1 and "scenario/s" not in err and "\r" not in err


def test_eval_corrupt_first_file_before_the_bar(tmp_path, capsys):
    bad = tmp_path / "bad.tfrecord"
    bad.write_bytes(b"this is not a tfrecord at all, just text")
    rc = main(["eval", "open-loop", "--data", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "scenario/s" not in err


def test_info_system(capsys):
    assert main(["info", "--system", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["system"]["precision_auto"] in ("float32", "bfloat16") and "why" in doc["system"]["onednn_conv3d"]
    assert main(["info"]) == 0
    assert capsys.readouterr().out.startswith("system: cpu ")
