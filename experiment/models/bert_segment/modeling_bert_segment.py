"""The plain-encoder baselines of long-document classification: transformers' BERT and RoBERTa classifiers run on
one segment at a time, carrying nothing from segment to segment.

Whether such a model sees only a document's first segment (truncation) or averages the logits of all its
segments is the task's choice (``ClassificationTask``'s ``max_segments`` and ``prediction``), not the model's.
A row whose segment is padding only is run as if it were unpadded (its output is meaningless and the task
ignores it), so that attention never sees a row with nothing to attend to.
"""

from typing import Optional

import torch
from transformers import BertForSequenceClassification, BertModel, RobertaForSequenceClassification, RobertaModel

from ..memoria_bert.modeling_memoria_bert import check_segment
from ..segment_recurrent import SegmentRecurrentModel
from .configuration_bert_segment import BertSegmentConfig, RobertaSegmentConfig


class BertSegmentModel(BertModel, SegmentRecurrentModel):
    """transformers' BERT body as a segment model that keeps no memory."""

    memory_attributes = ()

    config_class = BertSegmentConfig

    def reset_memory(self, rows: Optional[torch.Tensor] = None) -> None:
        """Does nothing: this model keeps no memory between segments."""


class RobertaSegmentModel(RobertaModel, SegmentRecurrentModel):
    """transformers' RoBERTa body as a segment model that keeps no memory."""

    memory_attributes = ()

    config_class = RobertaSegmentConfig

    def reset_memory(self, rows: Optional[torch.Tensor] = None) -> None:
        """Does nothing: this model keeps no memory between segments."""


class BertSegmentForSequenceClassification(BertForSequenceClassification, SegmentRecurrentModel):
    """transformers' BERT classifier on one segment: logits shaped [BatchSize, NumLabels] from its [CLS]."""

    memory_attributes = ()

    config_class = BertSegmentConfig

    def reset_memory(self, rows: Optional[torch.Tensor] = None) -> None:
        """Does nothing: this model keeps no memory between segments."""

    def forward(self, input_ids: torch.LongTensor, attention_mask: Optional[torch.Tensor] = None, **kwargs):
        """Classifies one segment: ``input_ids`` and ``attention_mask`` (0 on padding) shaped [BatchSize, SegmentLength]."""
        return super().forward(
            input_ids=input_ids, attention_mask=check_segment(input_ids, attention_mask).long(), **kwargs
        )


class RobertaSegmentForSequenceClassification(RobertaForSequenceClassification, SegmentRecurrentModel):
    """transformers' RoBERTa classifier on one segment: logits shaped [BatchSize, NumLabels] from its <s>."""

    memory_attributes = ()

    config_class = RobertaSegmentConfig

    def reset_memory(self, rows: Optional[torch.Tensor] = None) -> None:
        """Does nothing: this model keeps no memory between segments."""

    def forward(self, input_ids: torch.LongTensor, attention_mask: Optional[torch.Tensor] = None, **kwargs):
        """Classifies one segment: ``input_ids`` and ``attention_mask`` (0 on padding) shaped [BatchSize, SegmentLength]."""
        return super().forward(
            input_ids=input_ids, attention_mask=check_segment(input_ids, attention_mask).long(), **kwargs
        )
