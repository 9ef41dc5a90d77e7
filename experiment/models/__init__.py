"""The experiments' models; importing this package registers each of them with transformers' Auto classes (the
table below; every one is listed in ``registration.REGISTERED``). See README.md beside this file.

Build a model from a configuration file with
``AutoModelForCausalLM.from_config(AutoConfig.from_pretrained("experiment/configs/<name>.json"))`` (an encoder with
``AutoModelForSequenceClassification``), and load a saved one with ``AutoModelForCausalLM.from_pretrained(path)``.
"""

from .bert_segment import (
    BertSegmentConfig,
    BertSegmentForSequenceClassification,
    BertSegmentModel,
    RobertaSegmentConfig,
    RobertaSegmentForSequenceClassification,
    RobertaSegmentModel,
)
from .compressive import CompressiveTransformerConfig, CompressiveTransformerLMHeadModel, CompressiveTransformerModel
from .gpt2_segment import GPT2SegmentConfig, GPT2SegmentLMHeadModel, GPT2SegmentModel
from .gpt2_with_memoria import GPT2WithMemoriaConfig, GPT2WithMemoriaLMHeadModel, GPT2WithMemoriaModel
from .infinity_former import InfinityFormerConfig, InfinityFormerLMHeadModel, InfinityFormerModel
from .memoria_bert import (
    MemoriaBertConfig,
    MemoriaBertForSequenceClassification,
    MemoriaBertModel,
    MemoriaRobertaConfig,
    MemoriaRobertaForSequenceClassification,
    MemoriaRobertaModel,
)
from .registration import register
from .rmt import RMTConfig, RMTForCausalLM, RMTModel
from .transfo_xl import TransfoXLConfig, TransfoXLLMHeadModel, TransfoXLModel

# the causal language models, built by AutoModelForCausalLM
register(GPT2WithMemoriaConfig, GPT2WithMemoriaModel, causal_lm_class=GPT2WithMemoriaLMHeadModel)
register(GPT2SegmentConfig, GPT2SegmentModel, causal_lm_class=GPT2SegmentLMHeadModel)
register(TransfoXLConfig, TransfoXLModel, causal_lm_class=TransfoXLLMHeadModel)
register(CompressiveTransformerConfig, CompressiveTransformerModel, causal_lm_class=CompressiveTransformerLMHeadModel)
register(InfinityFormerConfig, InfinityFormerModel, causal_lm_class=InfinityFormerLMHeadModel)
register(RMTConfig, RMTModel, causal_lm_class=RMTForCausalLM)
# the encoders, built by AutoModelForSequenceClassification
register(MemoriaBertConfig, MemoriaBertModel, sequence_classification_class=MemoriaBertForSequenceClassification)
register(
    MemoriaRobertaConfig, MemoriaRobertaModel, sequence_classification_class=MemoriaRobertaForSequenceClassification
)
register(BertSegmentConfig, BertSegmentModel, sequence_classification_class=BertSegmentForSequenceClassification)
register(
    RobertaSegmentConfig, RobertaSegmentModel, sequence_classification_class=RobertaSegmentForSequenceClassification
)
