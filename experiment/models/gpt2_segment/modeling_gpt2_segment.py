"""The paper's "Transformer" baseline: GPT-2 without any memory, run segment by segment."""

from typing import Optional

import torch
from transformers import GPT2LMHeadModel, GPT2Model

from ..segment_recurrent import SegmentRecurrentModel
from .configuration_gpt2_segment import GPT2SegmentConfig


class GPT2SegmentModel(GPT2Model, SegmentRecurrentModel):
    """transformers' GPT-2 body as a segment-recurrent model that carries nothing between segments."""

    memory_attributes = ()

    config_class = GPT2SegmentConfig

    def reset_memory(self, rows: Optional[torch.Tensor] = None) -> None:
        """Does nothing: this model keeps no memory between segments."""


class GPT2SegmentLMHeadModel(GPT2LMHeadModel, SegmentRecurrentModel):
    """transformers' GPT-2 LM as a segment-recurrent model that carries nothing between segments.

    Each segment sees only its own tokens, so :meth:`reset_memory` has nothing to forget. The weights have
    GPT-2's names, so a GPT-2 checkpoint's weights can be copied in (see ``model.gpt2_weights``).
    """

    memory_attributes = ()

    config_class = GPT2SegmentConfig

    def reset_memory(self, rows: Optional[torch.Tensor] = None) -> None:
        """Does nothing: this model keeps no memory between segments."""
