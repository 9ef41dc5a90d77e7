"""Configuration of the memoryless baseline: GPT-2 run segment by segment."""

from huggingface_hub.dataclasses import strict
from transformers import GPT2Config


@strict
class GPT2SegmentConfig(GPT2Config):
    """GPT-2's configuration under its own ``model_type``, so that the Auto classes build the segment model.

    Every field is GPT-2's (``n_layer``, ``n_embd``, ``n_head``, ``n_inner``, ``n_positions``, ``vocab_size``,
    the dropouts, ...). ``n_positions`` only needs to cover one segment, because each segment starts again at
    position 0.
    """

    model_type = "gpt2_segment"
