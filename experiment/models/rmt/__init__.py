"""The Recurrent Memory Transformer baseline, registered with transformers' Auto classes as ``memoria_rmt``."""

from .configuration_rmt import RMTConfig
from .modeling_rmt import RMTForCausalLM, RMTModel
