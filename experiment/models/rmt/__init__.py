"""The Recurrent Memory Transformer baseline, registered with transformers' Auto classes as ``memoria_rmt``."""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .configuration_rmt import RMTConfig
from .modeling_rmt import (
    RMTCausalLMOutput,
    RMTForCausalLM,
    RMTMemoryState,
    RMTModel,
    RMTModelOutput,
    RMTPreTrainedModel,
)

AutoConfig.register(RMTConfig.model_type, RMTConfig)
AutoModel.register(RMTConfig, RMTModel)
AutoModelForCausalLM.register(RMTConfig, RMTForCausalLM)

__all__ = [
    "RMTCausalLMOutput",
    "RMTConfig",
    "RMTForCausalLM",
    "RMTMemoryState",
    "RMTModel",
    "RMTModelOutput",
    "RMTPreTrainedModel",
]
