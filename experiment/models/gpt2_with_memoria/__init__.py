"""The Memoria Transformer, registered with transformers' Auto classes as ``gpt2_with_memoria``."""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .configuration_gpt2_with_memoria import GPT2WithMemoriaConfig
from .modeling_gpt2_with_memoria import (
    GPT2WithMemoriaBlock,
    GPT2WithMemoriaCausalLMOutput,
    GPT2WithMemoriaLMHeadModel,
    GPT2WithMemoriaModel,
    GPT2WithMemoriaModelOutput,
    GPT2WithMemoriaPreTrainedModel,
)

AutoConfig.register(GPT2WithMemoriaConfig.model_type, GPT2WithMemoriaConfig)
AutoModel.register(GPT2WithMemoriaConfig, GPT2WithMemoriaModel)
AutoModelForCausalLM.register(GPT2WithMemoriaConfig, GPT2WithMemoriaLMHeadModel)
