"""The infinity-former (Martins et al., 2022), registered with transformers' Auto classes as ``infinity_former``."""

from .configuration_infinity_former import InfinityFormerConfig
from .modeling_infinity_former import InfinityFormerLMHeadModel, InfinityFormerModel
