"""The paper's "Transformer" baseline, registered with transformers' Auto classes as ``gpt2_segment``."""

from .configuration_gpt2_segment import GPT2SegmentConfig
from .modeling_gpt2_segment import GPT2SegmentLMHeadModel, GPT2SegmentModel
