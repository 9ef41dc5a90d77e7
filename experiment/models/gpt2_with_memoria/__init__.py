"""The Memoria Transformer, registered with transformers' Auto classes as ``gpt2_with_memoria``."""

from .configuration_gpt2_with_memoria import GPT2WithMemoriaConfig
from .modeling_gpt2_with_memoria import GPT2WithMemoriaLMHeadModel, GPT2WithMemoriaModel
