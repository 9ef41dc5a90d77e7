"""Memoria BERT and Memoria RoBERTa, registered with transformers' Auto classes as ``memoria_bert`` and
``memoria_roberta``."""

from ..registration import register
from .configuration_memoria_bert import MemoriaBertConfig, MemoriaRobertaConfig
from .modeling_memoria_bert import (
    MemoriaBertForSequenceClassification,
    MemoriaBertModel,
    MemoriaRobertaForSequenceClassification,
    MemoriaRobertaModel,
)

register(MemoriaBertConfig, MemoriaBertModel, sequence_classification_class=MemoriaBertForSequenceClassification)
register(
    MemoriaRobertaConfig, MemoriaRobertaModel, sequence_classification_class=MemoriaRobertaForSequenceClassification
)
