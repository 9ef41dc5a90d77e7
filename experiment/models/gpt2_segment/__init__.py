"""The paper's "Transformer" baseline, registered with transformers' Auto classes as ``gpt2_segment``."""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .configuration_gpt2_segment import GPT2SegmentConfig
from .modeling_gpt2_segment import GPT2SegmentLMHeadModel, GPT2SegmentModel

AutoConfig.register(GPT2SegmentConfig.model_type, GPT2SegmentConfig)
AutoModel.register(GPT2SegmentConfig, GPT2SegmentModel)
AutoModelForCausalLM.register(GPT2SegmentConfig, GPT2SegmentLMHeadModel)
