"""The Recurrent Memory Transformer baseline, registered with transformers' Auto classes as ``memoria_rmt``."""

from ..registration import register
from .configuration_rmt import RMTConfig
from .modeling_rmt import RMTForCausalLM, RMTModel

register(RMTConfig, RMTModel, causal_lm_class=RMTForCausalLM)
