"""The plain-encoder baselines, registered with transformers' Auto classes as ``bert_segment`` and
``roberta_segment``."""

from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from .configuration_bert_segment import BertSegmentConfig, RobertaSegmentConfig
from .modeling_bert_segment import (
    BertSegmentForSequenceClassification,
    BertSegmentModel,
    RobertaSegmentForSequenceClassification,
    RobertaSegmentModel,
)

AutoConfig.register(BertSegmentConfig.model_type, BertSegmentConfig)
AutoConfig.register(RobertaSegmentConfig.model_type, RobertaSegmentConfig)
AutoModel.register(BertSegmentConfig, BertSegmentModel)
AutoModel.register(RobertaSegmentConfig, RobertaSegmentModel)
AutoModelForSequenceClassification.register(BertSegmentConfig, BertSegmentForSequenceClassification)
AutoModelForSequenceClassification.register(RobertaSegmentConfig, RobertaSegmentForSequenceClassification)
