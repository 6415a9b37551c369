"""Our sampler against diffusers' stock LTXPipeline, patched tokens against the transformer's own RoPE, determinism.

diffusers' ``LTXPipeline`` (0.42) only runs transformers with ``patch_size=1`` (every released LTX-Video): it sizes its
noise by ``transformer.config.in_channels`` (= C p p) and hands the transformer and ``_unpack_latents`` the latent grid
instead of the patch grid.  The tiny preset's transformer has ``patch_size=4``, so the sampler is compared with the
pipeline on the tiny VAE under a patch-1 transformer, and the patch-4 token order and RoPE coordinates of our denoiser
are compared with the stock transformer computing its own coordinates from the patch grid.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mad_sim.model import MADModel, get_preset


@pytest.fixture(scope="module")
def patch1_backbone():
    """The tiny preset (random init) with a patch-1 transformer reading the VAE's channels: what LTXPipeline can run."""
    from mad_sim.model.backbone_loading import _build_ltx

    tiny = get_preset("tiny")
    c = tiny.vae["latent_channels"]
    denoiser = {**tiny.denoiser, "in_channels": c, "out_channels": c, "patch_size": 1, "patch_size_t": 1}
    return _build_ltx(dataclasses.replace(tiny, denoiser=denoiser), seed=0).to("cpu", torch.float32)


def _pipeline_video(gen, bb, prompt: str, steps: int, guidance: float, seed: int) -> torch.Tensor:
    pipe = bb.pipeline()
    pipe.set_progress_bar_config(disable=True)
    out = pipe(
        prompt=prompt,
        negative_prompt="",
        height=64,
        width=64,
        num_frames=9,
        num_inference_steps=steps,
        guidance_scale=guidance,
        generator=gen(seed),
        output_type="pt",
        max_sequence_length=16,
        frame_rate=bb.config.frame_rate,
    ).frames  # [B, F, 3, H, W] in [0, 1]
    return out.permute(0, 2, 1, 3, 4)


def test_sampler_reproduces_ltx_pipeline(patch1_backbone, make_gen):
    gen = make_gen
    model = MADModel(patch1_backbone)
    for prompt, steps, guidance in (("", 4, 1.0), ("a red car turns left", 3, 3.0)):
        ours = model.sample(
            [], num_frames=9, height=64, width=64, steps=steps, guidance_scale=guidance, generator=gen(7), prompts=[prompt]
        )
        theirs = _pipeline_video(make_gen, patch1_backbone, prompt, steps, guidance, 7)
        ours01 = ((ours + 1) / 2).clamp(0, 1)
        assert ours01.shape == theirs.shape == (1, 3, 9, 64, 64)
        assert torch.allclose(ours01, theirs, atol=1e-5), (prompt, (ours01 - theirs).abs().max())
        # and the comparison can fail: another seed gives another video
        other = _pipeline_video(make_gen, patch1_backbone, prompt, steps, guidance, 8)
        assert (ours01 - other).abs().max() > 1e-3


def test_patched_tokens_match_the_transformers_own_rope(tiny_backbone, make_gen):
    """Patch-4 tokens: our packing and RoPE coordinates give what the transformer computes from the patch grid."""
    from diffusers import LTXPipeline

    bb = tiny_backbone
    p, p_t = bb.denoiser.patch
    assert p > 1  # the tiny preset's transformer patches its latents
    c, f, h, w = bb.latent_shape(9, 64, 64)
    x = torch.randn(1, c, f, h, w, generator=make_gen(3))
    e, m = bb.encode_prompts(None, 1)
    t = torch.tensor([600.0])
    with torch.no_grad():
        ours = bb.denoiser(x, t, [], e, m)
        out = bb.transformer(
            hidden_states=LTXPipeline._pack_latents(x, p, p_t),
            encoder_hidden_states=e,
            timestep=t,
            encoder_attention_mask=m,
            num_frames=f // p_t,
            height=h // p,
            width=w // p,
            rope_interpolation_scale=(bb.temporal_ratio / bb.config.frame_rate, bb.spatial_ratio, bb.spatial_ratio),
            return_dict=False,
        )[0]
    theirs = LTXPipeline._unpack_latents(out, f // p_t, h // p, w // p, p, p_t)
    assert ours.shape == theirs.shape == x.shape
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()


def test_same_seed_same_video_other_seed_differs(tiny_backbone, make_gen):
    gen = make_gen
    model = MADModel(tiny_backbone)
    a = model.sample([], num_frames=9, height=64, width=64, steps=2, generator=gen(1), return_latents=True)
    b = model.sample([], num_frames=9, height=64, width=64, steps=2, generator=gen(1), return_latents=True)
    c = model.sample([], num_frames=9, height=64, width=64, steps=2, generator=gen(2), return_latents=True)
    assert a.shape == (1, *tiny_backbone.latent_shape(9, 64, 64))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
