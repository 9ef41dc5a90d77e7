"""Memoria BERT and Memoria RoBERTa, registered with transformers' Auto classes as ``memoria_bert`` and
``memoria_roberta``."""

from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from .configuration_memoria_bert import MemoriaBertConfig, MemoriaRobertaConfig
from .modeling_memoria_bert import (
    MemoriaBertForSequenceClassification,
    MemoriaBertModel,
    MemoriaEncoderOutput,
    MemoriaRobertaForSequenceClassification,
    MemoriaRobertaModel,
    MemoriaSequenceClassifierOutput,
)

AutoConfig.register(MemoriaBertConfig.model_type, MemoriaBertConfig)
AutoConfig.register(MemoriaRobertaConfig.model_type, MemoriaRobertaConfig)
AutoModel.register(MemoriaBertConfig, MemoriaBertModel)
AutoModel.register(MemoriaRobertaConfig, MemoriaRobertaModel)
AutoModelForSequenceClassification.register(MemoriaBertConfig, MemoriaBertForSequenceClassification)
AutoModelForSequenceClassification.register(MemoriaRobertaConfig, MemoriaRobertaForSequenceClassification)
