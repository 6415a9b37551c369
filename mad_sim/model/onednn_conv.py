"""Float32 3-D convolutions on CPU through oneDNN, whatever the batch size.

PyTorch's CPU convolution dispatcher picks oneDNN (mkldnn) for a float32
``Conv3d`` only when a heuristic says it pays: batch > 1, a kernel wider than
3, or ``N * C * D * H > 20480``.  A VAE run on one clip (batch 1, 3x3x3
kernels, 16-128 channels, 17 frames at 128x128) misses all of these and goes
to the im2col fallback ``slow_conv3d``, which on these machines (2-core AVX-512
CPUs) is 8-14x slower than oneDNN on the very same shapes:

=================  =================  ============  ===========
Conv3d shape       slow_conv3d (ms)   oneDNN (ms)   max |diff|
=================  =================  ============  ===========
16ch 17x32x32      11.3               1.2           2.3e-6
32ch 17x16x16      8.4                1.1           1.9e-6
3->16ch 17x128^2   51.1               3.6           1.7e-6
=================  =================  ============  ===========

(forward, one call, 2 threads; the backward is 1.3-1.5x faster too, gradients
agree to a relative 5e-7).  :func:`use_onednn_conv3d` turns every plain
``torch.nn.Conv3d`` of a module into :class:`OneDNNConv3d`, which calls
``aten::mkldnn_convolution`` directly for contiguous float32 CPU inputs with
zero padding and falls back to ``F.conv3d`` everywhere else (GPU, other
dtypes, CPU autocast — which must see ``conv3d`` to cast it —, or a PyTorch
built without oneDNN).  Results equal the fallback's up to float32 rounding
(different summation order), not bit for bit.

Whether the swap pays is machine-specific (the table is from AVX-512 CPUs):
with ``mode="auto"`` (the default) :func:`use_onednn_conv3d` swaps only where
:func:`mad_sim.model.cpu_paths.onednn_conv_choice` says so (a timing probe,
cached per machine; ``MAD_SIM_ONEDNN_CONV=0|1`` overrides it).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from mad_sim.errors import ConfigError
from mad_sim.model.cpu_paths import onednn_available, onednn_conv_choice


class OneDNNConv3d(torch.nn.Conv3d):
    """``Conv3d`` whose float32 CPU forward always runs oneDNN (see the module doc).

    Same parameters, state dict and outputs (to float32 rounding) as ``Conv3d``;
    instances are made by :func:`use_onednn_conv3d`, which swaps the class of
    an existing module in place.
    """

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if (
            input.device.type == "cpu"
            and input.dtype == torch.float32
            and weight.dtype == torch.float32
            and input.dim() == 5
            and not input.is_mkldnn
            and not torch.is_autocast_enabled("cpu")
            and onednn_available()
        ):
            return torch.ops.aten.mkldnn_convolution(
                input.contiguous(),
                weight.contiguous(),
                None if bias is None else bias.contiguous(),
                list(self.padding),
                list(self.stride),
                list(self.dilation),
                self.groups,
            )
        return F.conv3d(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)


def use_onednn_conv3d(module: torch.nn.Module, mode: Literal["auto", "always", "never"] = "auto") -> int:
    """Make every plain zero-padded ``Conv3d`` inside ``module`` a :class:`OneDNNConv3d`; returns how many.

    ``mode``: ``auto`` swaps where the swap pays on this machine (module doc), ``always`` / ``never``
    as they say.  Convolutions with ``padding_mode != "zeros"`` or string padding
    (``"same"``) and subclasses of ``Conv3d`` are left as they are.
    """
    if mode not in ("auto", "always", "never"):
        raise ConfigError(f"oneDNN Conv3d swap mode {mode!r} is not one of auto, always, never")
    if mode == "never" or (mode == "auto" and not onednn_conv_choice().use):
        return 0
    n = 0
    for m in module.modules():
        if type(m) is torch.nn.Conv3d and m.padding_mode == "zeros" and not isinstance(m.padding, str):
            m.__class__ = OneDNNConv3d
            n += 1
    return n
