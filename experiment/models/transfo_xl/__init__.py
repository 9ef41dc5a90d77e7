"""Transformer-XL, registered with transformers' Auto classes as ``memoria_transfo_xl``."""

from ..registration import register
from .configuration_transfo_xl import TransfoXLConfig
from .modeling_transfo_xl import TransfoXLLMHeadModel, TransfoXLModel

register(TransfoXLConfig, TransfoXLModel, causal_lm_class=TransfoXLLMHeadModel)
