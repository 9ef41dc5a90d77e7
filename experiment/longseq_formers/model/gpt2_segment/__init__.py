"""The paper's "Transformer" baseline: GPT-2 without memory, run segment by segment."""

from .modeling_gpt2_segment import GPT2SegmentLMHeadModel
