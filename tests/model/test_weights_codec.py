"""Row-wise int8 storage of shipped weights: error bound, pass-through, and the backbone loader decodes it."""

import torch

from mad_sim.model.weights_codec import SCALE_SUFFIX, decode_state_dict, encode_state_dict


def test_round_trip_error_is_half_a_step_per_row():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 128, generator=g) * torch.logspace(-3, 1, 64)[:, None]  # rows of very different scale
    sd = {"w": w, "bias": torch.randn(64, generator=g), "idx": torch.arange(5)}
    enc = encode_state_dict(sd)
    assert enc["w"].dtype == torch.int8 and enc["w" + SCALE_SUFFIX].shape == (64,)
    assert enc["bias"].dtype == torch.float16 and torch.equal(enc["idx"], sd["idx"])
    dec = decode_state_dict(enc)
    assert set(dec) == set(sd)
    step = w.abs().amax(1) / 127
    assert ((dec["w"] - w).abs() <= 0.5 * step[:, None] * 1.01 + 1e-7).all()
    assert not torch.equal(dec["w"], w)  # it is lossy: the test would notice a silent float copy


def test_plain_files_pass_through_unchanged():
    sd = {"a": torch.ones(3, 3)}
    assert decode_state_dict(sd) is sd


def test_int8_backbone_file_loads_into_the_tiny_backbone(tmp_path):
    from safetensors.torch import save_file

    from mad_sim.model import load_backbone

    bb = load_backbone("tiny", weights="random", seed=0)
    path = tmp_path / "bb.safetensors"
    bb.save_file(path)
    from safetensors.torch import load_file

    save_file(encode_state_dict(load_file(str(path))), str(tmp_path / "q.safetensors"))
    q = load_backbone("tiny", weights=str(tmp_path / "q.safetensors"))
    ref = bb.transformer.state_dict()
    got = q.transformer.state_dict()
    k = next(k for k in ref if k.endswith("to_q.weight"))
    assert torch.allclose(got[k], ref[k], atol=float(ref[k].abs().max()) / 127)
    assert not torch.equal(got[k], ref[k])
