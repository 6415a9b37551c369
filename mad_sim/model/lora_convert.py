"""LoRA weights in the MAD authors' layout (LTX-Video-Trainer / ComfyUI) -> our peft layout.

The authors trained with the LTX-Video trainer, which saves LoRA weights keyed
by the *original* LTX-Video module names under a ``diffusion_model.`` prefix,
for example::

    diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight   [r, 2048]
    diffusion_model.transformer_blocks.0.ff.net.2.lora_B.weight     [2048, r]

Variants seen in the wild are handled too: kohya-style ``lora_down`` /
``lora_up`` names with optional per-module ``.alpha`` scalars, a
``transformer.`` or ``base_model.model.`` prefix, and the original names of
non-block modules (``patchify_proj`` -> ``proj_in``, ``adaln_single`` ->
``time_embed``, ``q_norm`` / ``k_norm`` -> ``norm_q`` / ``norm_k``).

Output: the peft-style state dict our :func:`mad_sim.model.lora.load_lora`
takes (``transformer_blocks.0.attn1.to_q.lora_A.weight``...) and its config
(rank from the ``lora_A`` shapes, alpha from ``.alpha`` entries, else = rank,
as the trainer saves rank = alpha).
"""

from __future__ import annotations

from typing import Dict, Tuple

import torch

from mad_sim.errors import CheckpointError
from mad_sim.model.lora import infer_lora_config

PREFIXES = ("diffusion_model.", "transformer.", "base_model.model.", "model.")
RENAMES = (("patchify_proj", "proj_in"), ("adaln_single", "time_embed"), ("q_norm", "norm_q"), ("k_norm", "norm_k"))


def convert_authors_lora(
    sd: Dict[str, torch.Tensor], source: str = "<state dict>"
) -> Tuple[Dict[str, torch.Tensor], Dict[str, object]]:
    """Map an LTX-Video-Trainer LoRA state dict to (peft-style state dict, config)."""
    out: Dict[str, torch.Tensor] = {}
    alphas: Dict[str, float] = {}
    for key, value in sd.items():
        k = key
        for p in PREFIXES:
            if k.startswith(p):
                k = k[len(p) :]
                break
        for old, new in RENAMES:
            k = k.replace(old, new)
        if k.endswith(".alpha"):
            alphas[k[: -len(".alpha")]] = float(value.reshape(-1)[0])
            continue
        k = k.replace(".lora_down.", ".lora_A.").replace(".lora_up.", ".lora_B.")
        if ".lora_A." not in k and ".lora_B." not in k:
            raise CheckpointError(f"{source}: key {key!r} is not a LoRA weight (lora_A/lora_B/lora_down/lora_up)")
        if not k.endswith(".weight"):
            k = k + ".weight" if k.endswith((".lora_A", ".lora_B")) else k
        out[k] = value
    if not out:
        raise CheckpointError(f"{source}: no LoRA weights found")
    cfg = infer_lora_config(out)
    if alphas:
        vals = set(alphas.values())
        if len(vals) > 1:
            raise CheckpointError(f"{source}: per-module alphas differ ({sorted(vals)[:4]}); one alpha per adapter is supported")
        cfg["lora_alpha"] = vals.pop()
    ranks = {v.shape[0] for k, v in out.items() if k.endswith("lora_A.weight")}
    if len(ranks) > 1:
        raise CheckpointError(f"{source}: mixed LoRA ranks {sorted(ranks)}; one rank per adapter is supported")
    for k in out:
        if k.endswith("lora_A.weight"):
            b = k.replace("lora_A", "lora_B")
            if b not in out:
                raise CheckpointError(f"{source}: {k} has no matching lora_B")
    return out, cfg
