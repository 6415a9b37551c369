"""Which CPU-specific fast paths pay on this machine: bfloat16 autocast and the oneDNN Conv3d swap.

Machines differ: CPU bfloat16 autocast was 1.6x faster on an AVX512-BF16
Xeon and 9x *slower* on an AVX2-only EPYC (no native bf16: every bf16 matmul
is emulated), so neither fast path is switched on blindly.

* :func:`bf16_choice`: bfloat16 only where the CPU does bf16 natively.  On
  Linux the CPU's flags decide (``avx512_bf16`` or ``amx_bf16``: yes; flags
  readable without them: no).  Where no flags can be read (another OS), a
  short timing probe (a 256x256 matmul chain, float32 against bf16 autocast,
  about 0.1 s) decides: bf16 when it is at least 1.2x faster.
* :func:`onednn_conv_choice`: the oneDNN swap of :mod:`mad_sim.model.onednn_conv`
  when oneDNN is available and a probe (one batch-1 float32 ``Conv3d``, 16
  channels, 9x32x32, through both paths) shows it at least 1.2x faster.

Each choice is made once per process and cached on disk
(``$MAD_SIM_CACHE`` or ``~/.cache/mad-sim``, ``cpu_paths.json``, keyed by the
CPU model, core count and torch version), so probes run once per machine.
``MAD_SIM_BF16`` / ``MAD_SIM_ONEDNN_CONV`` (``1`` / ``0``) override both.
:func:`describe` is the one line ``mad-sim info --system`` and the bench
scripts print.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, FrozenSet, Optional

import torch

log = logging.getLogger(__name__)

BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""CPU flags (``/proc/cpuinfo``) that mean native bfloat16 arithmetic."""
PROBE_SPEEDUP = 1.2
"""A fast path must beat the plain one by this factor in its probe."""
CACHE_FILE = "cpu_paths.json"


@dataclass(frozen=True)
class Choice:
    """One fast path's decision: ``use`` it or not, and ``why`` (flags, a probe's figures or an override)."""

    use: bool
    why: str

    def __str__(self) -> str:
        return f"{'on' if self.use else 'off'} ({self.why})"


def cpu_flags(path: str = "/proc/cpuinfo") -> Optional[FrozenSet[str]]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``); None where they cannot be read."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return None


def cpu_model(path: str = "/proc/cpuinfo") -> str:
    """The CPU's model name (``/proc/cpuinfo``, else :func:`platform.processor`)."""
    try:
        for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _override(var: str) -> Optional[Choice]:
    v = os.environ.get(var, "").strip().lower()
    if v in ("1", "true", "yes", "on"):
        return Choice(True, f"{var}={v}")
    if v in ("0", "false", "no", "off"):
        return Choice(False, f"{var}={v}")
    return None


def _cache_path() -> Path:
    root = os.environ.get("MAD_SIM_CACHE") or str(Path.home() / ".cache" / "mad-sim")
    return Path(root) / CACHE_FILE


def _machine_key() -> str:
    return f"{cpu_model()} | {os.cpu_count()} cpus | torch {torch.__version__}"


def _cached_probe(name: str, probe: Callable[[], Choice]) -> Choice:
    """``probe()`` once per machine: read from / written to the disk cache (a broken cache is ignored)."""
    path, key = _cache_path(), _machine_key()
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        hit = doc.get(key, {}).get(name)
        if hit is not None:
            return Choice(bool(hit["use"]), f"{hit['why']}, cached")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        doc = {}
    choice = probe()
    try:
        doc = doc if isinstance(doc, dict) else {}
        doc.setdefault(key, {})[name] = asdict(choice)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:  # a read-only home still gets the choice, made again next process
        log.debug("cpu path cache not written (%s): %s", path, exc)
    return choice


def _best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    fn()  # warm-up (oneDNN primitive creation, allocator)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@torch.no_grad()
def _probe_bf16() -> Choice:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(256, 256, generator=g), torch.randn(256, 256, generator=g)

    def chain() -> torch.Tensor:
        x = a
        for _ in range(8):
            x = torch.tanh(x @ b)
        return x

    def bf16() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return chain()

    t32, t16 = _best_of(chain), _best_of(bf16)
    speedup = t32 / max(t16, 1e-9)
    return Choice(speedup >= PROBE_SPEEDUP, f"probe: bf16 matmuls {speedup:.2f}x float32's speed")


_MEMO: Dict[str, Choice] = {}


def bf16_choice(flags: Optional[FrozenSet[str]] = None) -> Choice:
    """Whether CPU bfloat16 autocast pays here (see the module doc); ``flags`` for tests, default this CPU's."""
    forced = _override("MAD_SIM_BF16")
    if forced is not None:
        return forced
    given = flags is not None
    if not given:
        if "bf16" in _MEMO:
            return _MEMO["bf16"]
        flags = cpu_flags()
        if flags is None:
            _MEMO["bf16"] = _cached_probe("bf16", _probe_bf16)
            return _MEMO["bf16"]
    assert flags is not None
    native = [f for f in BF16_FLAGS if f in flags]
    choice = Choice(bool(native), f"cpu flag {native[0]}" if native else f"no cpu flag {' or '.join(BF16_FLAGS)}")
    if not given:
        _MEMO["bf16"] = choice
    return choice


def onednn_available() -> bool:
    """True when this PyTorch has oneDNN and it is enabled (``torch.backends.mkldnn``)."""
    return bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)


@torch.no_grad()
def _probe_onednn_conv() -> Choice:
    g = torch.Generator().manual_seed(0)
    x, w, bias = torch.randn(1, 16, 9, 32, 32, generator=g), torch.randn(16, 16, 3, 3, 3, generator=g), torch.zeros(16)
    plain = lambda: torch.nn.functional.conv3d(x, w, bias, 1, 1)  # noqa: E731
    fast = lambda: torch.ops.aten.mkldnn_convolution(x, w, bias, [1, 1, 1], [1, 1, 1], [1, 1, 1], 1)  # noqa: E731
    t_plain, t_fast = _best_of(plain), _best_of(fast)
    speedup = t_plain / max(t_fast, 1e-9)
    return Choice(speedup >= PROBE_SPEEDUP, f"probe: oneDNN Conv3d {speedup:.2f}x the default path's speed")


def onednn_conv_choice() -> Choice:
    """Whether the oneDNN Conv3d swap of :mod:`mad_sim.model.onednn_conv` pays here (see the module doc)."""
    forced = _override("MAD_SIM_ONEDNN_CONV")
    if forced is not None:
        return forced
    if "onednn_conv" not in _MEMO:
        if not onednn_available():
            _MEMO["onednn_conv"] = Choice(False, "this PyTorch has no oneDNN")
        else:
            _MEMO["onednn_conv"] = _cached_probe("onednn_conv", _probe_onednn_conv)
    return _MEMO["onednn_conv"]


def resolve_precision(precision: str, device: Optional[torch.device] = None) -> tuple[str, str]:
    """``(float32 | bfloat16, why)`` for a sampler precision setting (``auto``, ``float32`` or ``bfloat16``).

    ``auto`` is bfloat16 on a CPU with native bf16 (:func:`bf16_choice`) and float32 elsewhere (other
    devices included); the explicit ones are kept as asked.
    """
    if precision != "auto":
        return precision, "asked for"
    if device is not None and torch.device(device).type != "cpu":
        return "float32", f"auto: {torch.device(device).type} device"
    c = bf16_choice()
    return ("bfloat16" if c.use else "float32"), f"auto: {c.why}"


def describe() -> str:
    """One line: the CPU, torch's threads and each fast path's choice (for ``mad-sim info`` and bench headers)."""
    return (
        f"cpu {cpu_model()} ({os.cpu_count()} cpus), torch {torch.__version__} with {torch.get_num_threads()} "
        f"threads; precision auto -> {resolve_precision('auto')[0]} [bf16 {bf16_choice()}]; "
        f"oneDNN Conv3d swap {onednn_conv_choice()}"
    )


def system_info() -> Dict[str, object]:
    """The same as :func:`describe`, as a JSON-ready mapping."""
    bf, conv = bf16_choice(), onednn_conv_choice()
    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "precision_auto": resolve_precision("auto")[0],
        "bf16": {"use": bf.use, "why": bf.why},
        "onednn_conv3d": {"use": conv.use, "why": conv.why},
    }


__all__ = [
    "BF16_FLAGS",
    "Choice",
    "bf16_choice",
    "cpu_flags",
    "cpu_model",
    "describe",
    "onednn_available",
    "onednn_conv_choice",
    "resolve_precision",
    "system_info",
]
