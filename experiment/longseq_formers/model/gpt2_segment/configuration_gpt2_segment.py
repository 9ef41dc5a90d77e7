"""Configuration of the paper's "Transformer" baseline: GPT-2's, under its own ``model_type``."""

from huggingface_hub.dataclasses import strict
from transformers import GPT2Config


@strict
class GPT2SegmentConfig(GPT2Config):
    """GPT-2's configuration, every field with GPT-2's meaning, under ``model_type`` "gpt2_segment".

    The own ``model_type`` makes the Auto classes build :class:`GPT2SegmentLMHeadModel` (which has
    ``reset_memory``) rather than transformers' ``GPT2LMHeadModel``, which a ``model_type`` "gpt2" would get.
    """

    model_type = "gpt2_segment"
