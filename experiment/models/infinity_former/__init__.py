"""The infinity-former (Martins et al., 2022), registered with transformers' Auto classes as ``infinity_former``."""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .configuration_infinity_former import InfinityFormerConfig
from .continuous_signal import GaussianBasis, attention_histogram, kl_to_reference, sample_positions
from .memory import BlockReadout, InfinityFormerMemory
from .modeling_infinity_former import (
    ContinuousAttention,
    InfinityFormerBlock,
    InfinityFormerCausalLMOutput,
    InfinityFormerLMHeadModel,
    InfinityFormerModel,
    InfinityFormerModelOutput,
    InfinityFormerPreTrainedModel,
)

AutoConfig.register(InfinityFormerConfig.model_type, InfinityFormerConfig)
AutoModel.register(InfinityFormerConfig, InfinityFormerModel)
AutoModelForCausalLM.register(InfinityFormerConfig, InfinityFormerLMHeadModel)

__all__ = [
    "ContinuousAttention",
    "GaussianBasis",
    "InfinityFormerBlock",
    "InfinityFormerCausalLMOutput",
    "InfinityFormerConfig",
    "InfinityFormerLMHeadModel",
    "InfinityFormerMemory",
    "InfinityFormerModel",
    "InfinityFormerModelOutput",
    "InfinityFormerPreTrainedModel",
    "attention_histogram",
    "kl_to_reference",
    "sample_positions",
]
