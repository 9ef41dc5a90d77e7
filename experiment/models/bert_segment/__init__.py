"""The plain-encoder baselines, registered with transformers' Auto classes as ``bert_segment`` and
``roberta_segment``."""

from .configuration_bert_segment import BertSegmentConfig, RobertaSegmentConfig
from .modeling_bert_segment import (
    BertSegmentForSequenceClassification,
    BertSegmentModel,
    RobertaSegmentForSequenceClassification,
    RobertaSegmentModel,
)
