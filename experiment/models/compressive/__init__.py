"""The Compressive Transformer, registered with transformers' Auto classes as ``memoria_compressive_transformer``."""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .configuration_compressive import CompressiveTransformerConfig
from .modeling_compressive import (
    CompressiveTransformerLMHeadModel,
    CompressiveTransformerModel,
    MemoryCompression,
    attention_reconstruction_loss,
    content_attention,
)

AutoConfig.register(CompressiveTransformerConfig.model_type, CompressiveTransformerConfig)
AutoModel.register(CompressiveTransformerConfig, CompressiveTransformerModel)
AutoModelForCausalLM.register(CompressiveTransformerConfig, CompressiveTransformerLMHeadModel)

__all__ = [
    "CompressiveTransformerConfig",
    "CompressiveTransformerLMHeadModel",
    "CompressiveTransformerModel",
    "MemoryCompression",
    "attention_reconstruction_loss",
    "content_attention",
]
