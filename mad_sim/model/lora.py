"""LoRA adapters on the denoiser through peft (works for the LTX transformer and the SVD UNet).

Adapters are injected with ``peft.inject_adapter_in_model`` under a name
(``"motion"``, ``"appearance"``); several coexist on one module and one (or
none) is active at a time.  A LoRA layer computes

    y = W x + (alpha / rank) * B A x,     A: [rank, in], B: [out, rank], B = 0 at init,

so a fresh adapter leaves the base model unchanged, and with every adapter
disabled the base model is reproduced exactly (the LoRA branch is skipped).

File format (the diffusers/peft LoRA format): one safetensors file, keys
``<prefix>.<module path>.lora_A.weight`` / ``.lora_B.weight`` with ``prefix`` =
``transformer`` (LTX) or ``unet`` (SVD), and the adapter's ``r``,
``lora_alpha`` and ``target_modules`` as JSON in the metadata key
``lora_adapter_metadata``, keys prefixed the same way (the layout of a
diffusers pipeline's ``save_lora_weights``; diffusers'
``model.load_lora_adapter(dir, weight_name=<file name>, prefix="transformer")``
reads such a file: ``weight_name=`` is needed for a safetensors name other
than the default ``pytorch_lora_weights.safetensors``).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch

from mad_sim.errors import CheckpointError, ConfigError
from mad_sim.io import atomic_path

METADATA_KEY = "lora_adapter_metadata"
PathLike = Union[str, os.PathLike]


def _tuner_layers(module: torch.nn.Module) -> List[torch.nn.Module]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in module.modules() if isinstance(m, BaseTunerLayer)]


def adapter_names(module: torch.nn.Module) -> List[str]:
    """Names of the adapters injected into ``module``."""
    names: Dict[str, None] = {}
    for layer in _tuner_layers(module):
        for n in getattr(layer, "lora_A", {}):
            names.setdefault(n, None)
    return list(names)


def add_lora(module: torch.nn.Module, name: str, rank: int, alpha: float, targets: Sequence[str]) -> None:
    """Inject a LoRA adapter ``name`` (rank, alpha, target module-name suffixes) into ``module``.

    ConfigError if the name exists, rank < 1, or no module matches ``targets``.
    The adapter is created inactive-neutral (B = 0); call :func:`set_active` to use it.
    """
    from peft import LoraConfig, inject_adapter_in_model

    if name in adapter_names(module):
        raise ConfigError(f"adapter {name!r} already exists")
    if int(rank) < 1:
        raise ConfigError(f"adapter {name!r}: rank must be >= 1, got {rank}")
    active = active_adapter(module)
    enabled = adapters_enabled(module)
    cfg = LoraConfig(r=int(rank), lora_alpha=float(alpha), target_modules=list(targets), init_lora_weights=True)
    requires = {n: p.requires_grad for n, p in module.named_parameters()}
    try:
        with warnings.catch_warnings():  # "multiple adapters in the model" is what we want
            warnings.filterwarnings("ignore", message=".*peft_config.*")
            inject_adapter_in_model(cfg, module, adapter_name=name)
    except ValueError as exc:
        raise ConfigError(
            f"adapter {name!r}: targets {list(targets)} match no module of {type(module).__name__} ({exc})"
        ) from exc
    # peft freezes the base model on injection; restore what the caller had set.
    for n, p in module.named_parameters():
        if n in requires:
            p.requires_grad_(requires[n])
    set_active(module, active if enabled else None)


def adapters_enabled(module: torch.nn.Module) -> bool:
    layers = _tuner_layers(module)
    return bool(layers) and not layers[0].disable_adapters


def active_adapter(module: torch.nn.Module) -> Optional[str]:
    layers = _tuner_layers(module)
    if not layers or layers[0].disable_adapters:
        return None
    act = layers[0].active_adapters
    return act[0] if act else None


def set_active(module: torch.nn.Module, name: Optional[str]) -> None:
    """Activate adapter ``name`` on every LoRA layer, or disable all adapters with None.

    Only the active adapter's LoRA weights keep ``requires_grad`` (what training expects);
    switching costs a loop over the layers (milliseconds).
    """
    layers = _tuner_layers(module)
    if name is not None and name not in adapter_names(module):
        raise ConfigError(f"no adapter named {name!r} (have: {adapter_names(module)})")
    grads = {n: p.requires_grad for n, p in module.named_parameters() if "lora_" not in n}
    for layer in layers:
        if name is None:
            layer.enable_adapters(False)
        else:
            layer.enable_adapters(True)
            layer.set_adapter(name)
    for n, p in module.named_parameters():
        if "lora_" in n:
            p.requires_grad_(name is not None and f".{name}." in f"{n}.")
        elif n in grads:
            p.requires_grad_(grads[n])


def lora_parameters(module: torch.nn.Module, name: str) -> List[torch.nn.Parameter]:
    """The LoRA parameters (A and B of every layer) of adapter ``name``."""
    params = [p for n, p in module.named_parameters() if "lora_" in n and f".{name}." in f"{n}."]
    if not params:
        raise ConfigError(f"no adapter named {name!r} (have: {adapter_names(module)})")
    return params


def lora_config(module: torch.nn.Module, name: str) -> Dict[str, object]:
    """rank, alpha and targets of adapter ``name`` (read from its layers)."""
    cfgs = getattr(module, "peft_config", {})
    if name in cfgs:
        c = cfgs[name]
        targets = c.target_modules
        return {
            "r": int(c.r),
            "lora_alpha": float(c.lora_alpha),
            "target_modules": sorted(targets) if not isinstance(targets, str) else targets,
        }
    ranks, alphas, targets = set(), set(), set()
    for mname, layer in module.named_modules():
        if hasattr(layer, "r") and name in getattr(layer, "r", {}):
            ranks.add(layer.r[name])
            alphas.add(layer.lora_alpha[name])
            targets.add(_suffix(mname))
    if not ranks:
        raise ConfigError(f"no adapter named {name!r} (have: {adapter_names(module)})")
    return {"r": max(ranks), "lora_alpha": max(alphas), "target_modules": sorted(targets)}


def _suffix(module_name: str) -> str:
    """Target-style suffix of a module path: ``to_q``, ``to_out.0``, ``ff.net.0.proj``, ``ff.net.2``."""
    parts = module_name.split(".")
    if "net" in parts[-3:]:
        i = len(parts) - 1 - parts[::-1].index("net")
        return ".".join(parts[max(i - 1, 0) :])
    if parts[-1].isdigit() and len(parts) >= 2:
        return ".".join(parts[-2:])
    return parts[-1]


def adapter_state_dict(module: torch.nn.Module, name: str) -> Dict[str, torch.Tensor]:
    """peft-style state dict of adapter ``name``: ``<module path>.lora_A.weight`` etc. (no adapter name)."""
    from peft import get_peft_model_state_dict

    lora_parameters(module, name)  # raises if unknown
    return {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(module, adapter_name=name).items()}


def save_lora(module: torch.nn.Module, name: str, path: PathLike, prefix: str) -> Path:
    """Write adapter ``name`` as a diffusers-format LoRA safetensors file (atomic)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path / "pytorch_lora_weights.safetensors"
    sd = {f"{prefix}.{k}": v for k, v in adapter_state_dict(module, name).items()}
    meta = {f"{prefix}.{k}": v for k, v in lora_config(module, name).items()}
    with atomic_path(path) as tmp:
        save_file(sd, str(tmp), metadata={"format": "pt", METADATA_KEY: json.dumps(meta, sort_keys=True)})
    return path


def read_lora(path: PathLike, prefix: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, object]]:
    """Read a diffusers-format LoRA file: (peft-style state dict without ``prefix``, config from metadata)."""
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        path = path / "pytorch_lora_weights.safetensors"
    if not path.is_file():
        raise CheckpointError(f"{path}: LoRA file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            sd = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    out = {}
    for k, v in sd.items():
        if not k.startswith(f"{prefix}."):
            raise CheckpointError(f"{path}: key {k!r} does not start with {prefix!r}. (a LoRA for another model?)")
        out[k[len(prefix) + 1 :]] = v
    if METADATA_KEY in meta:
        raw = json.loads(meta[METADATA_KEY])
        cfg = {k[len(prefix) + 1 :] if k.startswith(f"{prefix}.") else k: v for k, v in raw.items()}
        if not {"r", "lora_alpha", "target_modules"} <= set(cfg):
            cfg = {**infer_lora_config(out), **cfg}
    else:
        cfg = infer_lora_config(out)
    return out, cfg


def infer_lora_config(sd: Dict[str, torch.Tensor]) -> Dict[str, object]:
    """rank (from lora_A shapes), alpha (= rank when unknown) and target suffixes of a peft-style state dict."""
    ranks = {v.shape[0] for k, v in sd.items() if k.endswith("lora_A.weight")}
    if not ranks:
        raise CheckpointError("state dict holds no lora_A weights")
    targets = sorted({_suffix(k[: -len(".lora_A.weight")]) for k in sd if k.endswith("lora_A.weight")})
    return {"r": max(ranks), "lora_alpha": float(max(ranks)), "target_modules": targets}


def load_lora(
    module: torch.nn.Module, name: str, sd: Dict[str, torch.Tensor], cfg: Dict[str, Any], source: str = "<state dict>"
) -> None:
    """Create adapter ``name`` from ``cfg`` (if absent) and load ``sd`` into it; CheckpointError on mismatch."""
    from peft import set_peft_model_state_dict

    if name not in adapter_names(module):
        add_lora(module, name, int(cfg["r"]), float(cfg["lora_alpha"]), list(cfg["target_modules"]))
    expected = set(adapter_state_dict(module, name))
    got = set(sd)
    if expected != got:
        missing, extra = sorted(expected - got), sorted(got - expected)
        raise CheckpointError(
            f"{source}: LoRA keys do not fit adapter {name!r}: missing {missing[:2]}, "
            f"unexpected {extra[:2]} ({len(missing)} missing, {len(extra)} unexpected)"
        )
    own = adapter_state_dict(module, name)
    for k, v in sd.items():
        if own[k].shape != v.shape:
            raise CheckpointError(f"{source}: {k} has shape {tuple(v.shape)}, adapter {name!r} wants {tuple(own[k].shape)}")
    res = set_peft_model_state_dict(module, sd, adapter_name=name)
    bad = [k for k in getattr(res, "unexpected_keys", []) or [] if "lora_" in k]
    if bad:
        raise CheckpointError(f"{source}: unexpected LoRA keys {bad[:3]}")
