"""The Compressive Transformer, registered with transformers' Auto classes as ``memoria_compressive_transformer``."""

from .configuration_compressive import CompressiveTransformerConfig
from .modeling_compressive import CompressiveTransformerLMHeadModel, CompressiveTransformerModel
