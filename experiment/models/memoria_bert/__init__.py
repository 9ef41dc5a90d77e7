"""Memoria BERT and Memoria RoBERTa, registered with transformers' Auto classes as ``memoria_bert`` and
``memoria_roberta``."""

from .configuration_memoria_bert import MemoriaBertConfig, MemoriaRobertaConfig
from .modeling_memoria_bert import (
    MemoriaBertForSequenceClassification,
    MemoriaBertModel,
    MemoriaRobertaForSequenceClassification,
    MemoriaRobertaModel,
)
