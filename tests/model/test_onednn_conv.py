"""OneDNNConv3d: same numbers as Conv3d, dispatched to oneDNN for batch-1 float32 CPU clips."""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from mad_sim.errors import ConfigError
from mad_sim.model.onednn_conv import OneDNNConv3d, onednn_available, use_onednn_conv3d

pytestmark = pytest.mark.skipif(not onednn_available(), reason="this PyTorch build has no oneDNN")


def _pair(cin: int = 16, cout: int = 16, **kw) -> tuple[torch.nn.Conv3d, torch.nn.Conv3d]:
    torch.manual_seed(0)
    plain = torch.nn.Conv3d(cin, cout, 3, **kw)
    fast = torch.nn.Conv3d(cin, cout, 3, **kw)
    fast.load_state_dict(plain.state_dict())
    assert use_onednn_conv3d(fast, "always") == 1
    return plain, fast


def _ops(fn) -> set[str]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.key for e in prof.key_averages()}


@pytest.mark.parametrize("kw", [{"padding": (0, 1, 1)}, {"padding": 1, "stride": 2}, {"padding": 0, "dilation": 2}])
def test_forward_matches_conv3d_and_runs_onednn(kw):
    plain, fast = _pair(**kw)
    x = torch.randn(1, 16, 9, 20, 20)
    with torch.no_grad():
        ref, out = plain(x), fast(x)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    ops = _ops(lambda: fast(x))
    assert "aten::mkldnn_convolution" in ops and "aten::slow_conv3d_forward" not in ops
    assert "aten::mkldnn_convolution" not in _ops(lambda: plain(x))  # the case the class exists for


def test_gradients_match_conv3d():
    plain, fast = _pair(8, 4, padding=1)
    x = torch.randn(1, 8, 5, 12, 12)
    grads = []
    for m in (plain, fast):
        xi = x.clone().requires_grad_(True)
        m(xi).square().sum().backward()
        grads.append((xi.grad, m.weight.grad, m.bias.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-5)


def test_autocast_and_other_dtypes_fall_back_to_conv3d():
    plain, fast = _pair(padding=1)
    x = torch.randn(1, 16, 5, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fast(x)
        ref = plain(x)
    assert out.dtype == torch.bfloat16  # autocast saw conv3d and cast it
    torch.testing.assert_close(out, ref)
    fast64, plain64 = fast.double(), plain.double()
    ops = _ops(lambda: fast64(x.double()))
    assert "aten::mkldnn_convolution" not in ops
    torch.testing.assert_close(fast64(x.double()), plain64(x.double()))


def test_only_plain_zero_padded_conv3d_is_swapped():
    net = torch.nn.Sequential(
        torch.nn.Conv3d(3, 4, 3, padding=1),
        torch.nn.Conv3d(4, 4, 3, padding=1, padding_mode="replicate"),
        torch.nn.Conv3d(4, 4, 3, padding="same"),
        torch.nn.Conv2d(4, 4, 3),
    )
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    assert use_onednn_conv3d(net, "always") == 1
    assert [type(m) for m in net] == [OneDNNConv3d, torch.nn.Conv3d, torch.nn.Conv3d, torch.nn.Conv2d]
    assert use_onednn_conv3d(net, "always") == 0  # idempotent
    assert all(torch.equal(sd[k], v) for k, v in net.state_dict().items())


def test_modes_never_and_auto_follow_the_choice(monkeypatch):
    monkeypatch.setenv("MAD_SIM_ONEDNN_CONV", "0")
    conv = torch.nn.Conv3d(2, 2, 3)
    assert use_onednn_conv3d(conv) == 0 and type(conv) is torch.nn.Conv3d
    monkeypatch.setenv("MAD_SIM_ONEDNN_CONV", "1")
    assert use_onednn_conv3d(conv, "never") == 0 and use_onednn_conv3d(conv) == 1
    with pytest.raises(ConfigError, match="sometimes"):
        use_onednn_conv3d(conv, "sometimes")  # type: ignore[arg-type]


def test_tiny_vae_uses_it_and_reconstructs_as_before(monkeypatch):
    from mad_sim.model import load_backbone

    monkeypatch.setenv("MAD_SIM_ONEDNN_CONV", "1")  # the swap where it pays (auto decides per machine)
    bb = load_backbone("tiny", weights="random", device="cpu")
    convs = [m for m in bb.vae.modules() if isinstance(m, torch.nn.Conv3d)]
    assert convs and all(type(m) is OneDNNConv3d for m in convs)
    x = torch.rand(1, 3, 9, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        z = bb.vae.encode(x).latent_dist.mode()
        for m in convs:
            m.__class__ = torch.nn.Conv3d
        z_ref = bb.vae.encode(x).latent_dist.mode()
    torch.testing.assert_close(z, z_ref, atol=1e-4, rtol=1e-4)
