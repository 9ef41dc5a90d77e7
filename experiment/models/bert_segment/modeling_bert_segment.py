"""The plain-encoder baselines of long-document classification: transformers' BERT and RoBERTa classifiers run on
one segment at a time, carrying nothing from segment to segment.

Whether such a model sees only a document's first segment (truncation) or averages the logits of all its
segments is the task's choice (``ClassificationTask``'s ``max_segments`` and ``prediction``), not the model's.
A row whose segment is padding only is run as if it were unpadded (its output is meaningless and the task
ignores it), so that attention never sees a row with nothing to attend to.
"""

from typing import Any, Optional

import torch
from transformers import BertForSequenceClassification, BertModel, RobertaForSequenceClassification, RobertaModel

from ..heads import check_class_labels
from ..memoria_bert.modeling_memoria_bert import check_segment
from ..memoryless import MemorylessMixin
from .configuration_bert_segment import BertSegmentConfig, RobertaSegmentConfig


class MemorylessClassifierMixin(MemorylessMixin):
    """Classifies one segment: logits shaped [BatchSize, NumLabels] from its first token, with the encoder's head."""

    def forward(self, input_ids: torch.LongTensor, attention_mask: Optional[torch.Tensor] = None, **kwargs: Any) -> Any:
        """The encoder's classifier on ``input_ids`` and ``attention_mask`` (0 on padding) shaped [BatchSize,
        SegmentLength]; other keyword arguments (``labels``, ...) as transformers' classifier takes them."""
        keep = check_segment(input_ids, attention_mask, self.config)  # [B, L]
        check_class_labels(kwargs.get("labels"), input_ids)
        return super().forward(input_ids=input_ids, attention_mask=keep.long(), **kwargs)


class BertSegmentModel(MemorylessMixin, BertModel):
    """transformers' BERT body as a segment model that keeps no memory."""

    config_class = BertSegmentConfig


class RobertaSegmentModel(MemorylessMixin, RobertaModel):
    """transformers' RoBERTa body as a segment model that keeps no memory."""

    config_class = RobertaSegmentConfig


class BertSegmentForSequenceClassification(MemorylessClassifierMixin, BertForSequenceClassification):
    """transformers' BERT classifier on one segment, from its [CLS]."""

    config_class = BertSegmentConfig


class RobertaSegmentForSequenceClassification(MemorylessClassifierMixin, RobertaForSequenceClassification):
    """transformers' RoBERTa classifier on one segment, from its <s>."""

    config_class = RobertaSegmentConfig
