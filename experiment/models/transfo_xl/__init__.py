"""Transformer-XL, registered with transformers' Auto classes as ``memoria_transfo_xl``."""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .configuration_transfo_xl import TransfoXLConfig
from .memory import SegmentMemory, rows_to_mask
from .modeling_transfo_xl import (
    TransfoXLCausalLMOutput,
    TransfoXLLMHeadModel,
    TransfoXLModel,
    TransfoXLModelOutput,
    TransfoXLPreTrainedModel,
    build_decoder,
)

AutoConfig.register(TransfoXLConfig.model_type, TransfoXLConfig)
AutoModel.register(TransfoXLConfig, TransfoXLModel)
AutoModelForCausalLM.register(TransfoXLConfig, TransfoXLLMHeadModel)

__all__ = [
    "SegmentMemory",
    "TransfoXLCausalLMOutput",
    "TransfoXLConfig",
    "TransfoXLLMHeadModel",
    "TransfoXLModel",
    "TransfoXLModelOutput",
    "TransfoXLPreTrainedModel",
    "build_decoder",
    "rows_to_mask",
]
