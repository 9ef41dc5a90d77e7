"""The paper's "Transformer" baseline: GPT-2 without any memory, run segment by segment."""

from typing import Optional

import torch
from transformers import GPT2LMHeadModel

from ..segment_recurrent import SegmentRecurrentModel


class GPT2SegmentLMHeadModel(GPT2LMHeadModel, SegmentRecurrentModel):
    """transformers' GPT-2 as a segment-recurrent model that carries nothing between segments.

    Each segment sees only its own tokens, so :meth:`reset_memory` has nothing to forget. Checkpoints are plain
    GPT-2 checkpoints (``model_type`` "gpt2").
    """

    def reset_memory(self, rows: Optional[torch.Tensor] = None) -> None:
        """Does nothing: this model keeps no memory between segments."""
