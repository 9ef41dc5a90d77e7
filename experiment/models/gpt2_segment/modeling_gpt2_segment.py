"""The paper's "Transformer" baseline: GPT-2 without any memory, run segment by segment."""

from typing import Any, Optional

import torch
from transformers import GPT2LMHeadModel, GPT2Model

from ..heads import check_labels
from ..inputs import check_attention_mask, check_input_ids
from ..memoryless import MemorylessMixin
from .configuration_gpt2_segment import GPT2SegmentConfig


class GPT2SegmentModel(MemorylessMixin, GPT2Model):
    """transformers' GPT-2 body as a segment-recurrent model that carries nothing between segments."""

    config_class = GPT2SegmentConfig


class GPT2SegmentLMHeadModel(MemorylessMixin, GPT2LMHeadModel):
    """transformers' GPT-2 LM as a segment-recurrent model that carries nothing between segments.

    Each segment sees only its own tokens, so :meth:`reset_memory` has nothing to forget. Everything else is
    GPT-2's: ``labels`` give ``loss`` (shifted inside, -100 ignored), ``generate`` uses GPT-2's key-value cache when
    ``use_cache`` is on. The weights have GPT-2's names, so a GPT-2 checkpoint's weights can be copied in (see
    ``experiment.models.gpt2_weights``).
    """

    config_class = GPT2SegmentConfig

    def forward(
        self, input_ids: Optional[torch.LongTensor] = None, attention_mask: Optional[torch.Tensor] = None, **kwargs: Any
    ) -> Any:
        """GPT-2's forward, after checking ``input_ids`` shaped [BatchSize, SegmentLength] (when given) and, unless
        a key-value cache covers earlier tokens, ``attention_mask`` and ``labels`` shaped like it."""
        if input_ids is not None:
            check_input_ids(input_ids, self.config.vocab_size, self.config.n_positions, "n_positions")
            if kwargs.get("past_key_values") is None:
                check_attention_mask(attention_mask, input_ids)
            check_labels(kwargs.get("labels"), input_ids)
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
