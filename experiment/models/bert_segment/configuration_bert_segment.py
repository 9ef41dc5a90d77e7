"""Configurations of the plain-encoder baselines: BERT and RoBERTa run on one segment at a time."""

from huggingface_hub.dataclasses import strict
from transformers import BertConfig, RobertaConfig


@strict
class BertSegmentConfig(BertConfig):
    """BERT's configuration (every field keeps its meaning) under its own ``model_type``, so that the Auto classes
    build the segment classifier (which has ``reset_memory``)."""

    model_type = "bert_segment"


@strict
class RobertaSegmentConfig(RobertaConfig):
    """RoBERTa's configuration (every field keeps its meaning) under its own ``model_type``."""

    model_type = "roberta_segment"
