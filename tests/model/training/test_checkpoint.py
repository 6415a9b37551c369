"""Checkpoints: round trip, atomic layout, corrupt/missing files -> CheckpointError; config validation."""

from __future__ import annotations

import json

import pytest
import torch

from mad_sim.errors import CheckpointError, ConfigError
from mad_sim.model.training.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from mad_sim.model.training.loop import load_train_config


def _optimised(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    for _ in range(3):
        model(torch.randn(5, 4)).pow(2).mean().backward()
        opt.step()
        sched.step()
        opt.zero_grad()
    return model, opt, sched


def test_round_trip_restores_model_optimizer_and_scheduler(tmp_path):
    model, opt, sched = _optimised()
    path = save_checkpoint(
        tmp_path,
        3,
        model.state_dict(),
        optimizer=opt,
        scheduler=sched,
        config={"lr": 0.01},
        extra={"records": [{"step": 3, "loss": 0.5}]},
    )
    assert path.name == "step_0000003"
    ck = load_checkpoint(tmp_path)  # the run folder resolves to the latest checkpoint
    assert ck.step == 3 and ck.extra["records"][0]["loss"] == 0.5
    for k, v in model.state_dict().items():
        assert torch.equal(ck.model[k], v)
    model2, opt2, sched2 = _optimised(seed=1)
    model2.load_state_dict(ck.model)
    opt2.load_state_dict(ck.optimizer)
    sched2.load_state_dict(ck.scheduler)
    a, b = opt.state_dict(), opt2.state_dict()
    for pid in a["state"]:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(a["state"][pid][name], b["state"][pid][name])
    assert a["param_groups"][0]["lr"] == b["param_groups"][0]["lr"]
    assert sched2.last_epoch == sched.last_epoch == 3


def test_keeps_only_the_newest_and_leaves_no_temporary_folder(tmp_path):
    model, opt, sched = _optimised()
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, model.state_dict(), optimizer=opt, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_0000002", "step_0000003"]
    assert latest_checkpoint(tmp_path).name == "step_0000003"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_flipped_byte_is_reported_as_corrupt(tmp_path):
    model, opt, _ = _optimised()
    path = save_checkpoint(tmp_path, 1, model.state_dict(), optimizer=opt)
    blob = bytearray((path / "model.safetensors").read_bytes())
    blob[-3] ^= 0xFF
    (path / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="model.safetensors.*corrupt"):
        load_checkpoint(path)


def test_truncated_and_missing_files(tmp_path):
    model, opt, _ = _optimised()
    path = save_checkpoint(tmp_path, 1, model.state_dict(), optimizer=opt)
    data = (path / "optimizer.safetensors").read_bytes()
    (path / "optimizer.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="optimizer.safetensors"):
        load_checkpoint(path)
    (path / "optimizer.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(path)
    (path / "meta.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="meta.json"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope")


def test_unknown_config_key_names_key_and_file(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("stage: vae\noptim:\n  lr: 1.0e-3\n  warmupsteps: 5\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*'optim.warmupsteps'"):
        load_train_config(cfg)


@pytest.mark.parametrize(
    "text, match",
    [
        ("stage: vae\nframes: 10\n", "4k\\+1"),  # the tiny VAE compresses time 4x
        ("stage: vea\n", "vea"),
        ("stage: vae\nsteps: many\n", "steps"),
        ("stage: vae\ndata:\n  spec: {width: 100}\n", None),
    ],
)
def test_bad_values_are_config_errors(tmp_path, text, match):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    if match is None:  # the clip spec is checked when it is used
        c = load_train_config(cfg)
        with pytest.raises(ConfigError, match="multiple of 32"):
            c.data.clip_spec()
        return
    with pytest.raises(ConfigError, match=match):
        load_train_config(cfg)


def test_stage_on_command_line_must_match_the_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("stage: motion\n")
    with pytest.raises(ConfigError, match="stage 'motion'.*mad-sim train vae"):
        load_train_config(cfg, stage="vae")


def test_shipped_configs_validate():
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "configs" / "train"
    # the configs of `mad-sim train` (other entry points keep their own schemas in this folder)
    files = [root / f"tiny_{n}.yaml" for n in ("vae", "base", "motion")]  # (tiny_vae_decoder.yaml is gone with the 32x VAE)
    for f in files:
        cfg = load_train_config(f)
        cfg.data.clip_spec()
        json.dumps(cfg.data.spec)
