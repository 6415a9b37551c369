"""Text conditioning: a tiny T5 encoder and a tokenizer built from a vocabulary in code.

Why in code: ``T5TokenizerFast.from_pretrained(hub_id)`` with the hub offline
can silently return an empty tokenizer that maps every word to ``<unk>``.  The
tiny preset's tokenizer is a word-level :class:`tokenizers.Tokenizer` over the
fixed vocabulary below (driving words, digits, colours, letters), wrapped in
:class:`transformers.PreTrainedTokenizerFast` so diffusers pipelines can call
it like a T5 tokenizer: ids ``<pad>=0, </s>=1, <unk>=2``, lower-cased,
whitespace/punctuation pre-tokenised, ``</s>`` appended.

Prompt embedding (the LTX convention, which :func:`encode_prompts` follows
exactly so our sampler matches ``LTXPipeline``): tokenize to
``max_length`` with padding and truncation, run the encoder on the ids
*without* an attention mask, and return the embeddings ``[B, L, D]`` with the
boolean mask ``[B, L]`` the transformer uses for cross-attention.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

SPECIAL = ["<pad>", "</s>", "<unk>"]

_WORDS = """
a an the and or of in on at to from with without by for into onto over under near far left right straight
ahead behind front back forward backward up down is are was be being this that these those it its there
car cars vehicle vehicles truck trucks bus buses van vans motorcycle motorcycles bicycle bicycles cyclist
cyclists pedestrian pedestrians person people child children dog animal ego sdc agent agents object objects
road roads street streets lane lanes highway freeway intersection intersections crosswalk crosswalks sidewalk
junction roundabout ramp merge exit bridge tunnel parking lot driveway curb median shoulder edge
traffic light lights signal signals stop sign yield green yellow red white black blue gray grey silver orange
brown purple pink dark bright color colour colours colors
day night dawn dusk morning evening afternoon sunny cloudy rainy rain snow snowy fog foggy wet dry clear
overcast shadow shadows sun city urban suburban rural downtown residential industrial building buildings tree
trees sky
drive drives driving driven turn turns turning turned go goes going stops stopping stopped wait waits waiting
accelerate accelerates accelerating brake brakes braking slow slowing slows fast faster speed speeding cruise
cruising follow follows following overtake overtakes overtaking pass passes passing change changes changing
yielding crossing cross crosses park parked parks reverse reversing u uturn moving moves move still static
camera dashcam view video frame frames pose poses wireframe skeleton motion appearance scene scenes photo
photorealistic realistic render rendered waymo
one two three four five six seven eight nine ten many few several some no
0 1 2 3 4 5 6 7 8 9
b c d e f g h i j k l m n o p q r s t v w x y z
. , ! ? - ' :
"""


def vocabulary() -> List[str]:
    """The tiny tokenizer's vocabulary in id order (specials first, then words, no duplicates)."""
    seen: Dict[str, None] = {}
    for w in SPECIAL + _WORDS.split():
        seen.setdefault(w, None)
    return list(seen)


def build_tokenizer(model_max_length: int = 16) -> Any:
    """A T5-compatible fast tokenizer over :func:`vocabulary` (no files, no network)."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(vocabulary())}
    tok = Tokenizer(WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()])
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", vocab["</s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=model_max_length,
        padding_side="right",
    )


def build_text_encoder(config: Dict[str, Any]) -> Any:
    """A randomly initialised :class:`transformers.T5EncoderModel` of the given (tiny) config."""
    from transformers import T5Config, T5EncoderModel

    cfg = T5Config(vocab_size=len(vocabulary()), pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, **config)
    return T5EncoderModel(cfg).eval()


def encode_prompts(
    tokenizer: Any,
    text_encoder: Any,
    prompts: Sequence[str],
    max_length: int,
    device: Optional[torch.device] = None,
    dtype: Optional[torch.dtype] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Embed prompts the way ``LTXPipeline`` does.

    Returns:
      embeds: [B, max_length, D] float, the encoder's last hidden state.
      mask: [B, max_length] bool, True on real tokens (including ``</s>``).
    """
    device = device or text_encoder.device
    dtype = dtype or text_encoder.dtype
    ids = tokenizer(
        list(prompts), padding="max_length", max_length=max_length, truncation=True, add_special_tokens=True, return_tensors="pt"
    )
    with torch.no_grad():
        embeds = text_encoder(ids.input_ids.to(device))[0]
    return embeds.to(device=device, dtype=dtype), ids.attention_mask.bool().to(device)
