"""Transformer-XL, registered with transformers' Auto classes as ``memoria_transfo_xl``."""

from .configuration_transfo_xl import TransfoXLConfig
from .modeling_transfo_xl import TransfoXLLMHeadModel, TransfoXLModel
