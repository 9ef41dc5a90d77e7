"""Configurations of Memoria BERT and Memoria RoBERTa: the encoder's configuration plus Memoria's fields."""

from dataclasses import dataclass

from huggingface_hub.dataclasses import strict
from transformers import BertConfig, RobertaConfig

from ..with_memoria import MEMORIA_FIELDS_DOC, MemoriaFields

ENCODER_FIELDS_DOC = """
    Encoder fields:
        memory_layer_index: the layers before this index run as the plain encoder; the Abstractor reads the
            output of layer ``memory_layer_index - 1`` (9: after the 9th of 12 layers), and every layer from
            this index on also reads the working memory and the reminded engrams. From 1 to
            ``num_hidden_layers - 1``.
    The defaults are the paper's for Hyperpartisan: 64 working memories, 64 reminded short-term and 64 reminded
    long-term engrams, an initial lifespan of 12 segments.
"""


@dataclass
class MemoriaEncoderFields(MemoriaFields):
    """Memoria's fields with the paper's Hyperpartisan defaults, plus where the memory layers start."""

    memory_layer_index: int = 9
    memoria_num_memories: int = 64
    memoria_num_reminded_stm: int = 64
    memoria_num_reminded_ltm: int = 64
    memoria_initial_lifespan: int = 12

    def validate_memory_layer_index(self) -> None:
        """Raises ValueError unless the memory layers start inside the encoder."""
        if not 1 <= self.memory_layer_index <= self.num_hidden_layers - 1:
            raise ValueError(
                f"memory_layer_index must be in [1, num_hidden_layers - 1 = {self.num_hidden_layers - 1}], "
                f"got {self.memory_layer_index}"
            )


@strict
class MemoriaBertConfig(BertConfig, MemoriaEncoderFields):
    __doc__ = "BERT's configuration (every field keeps its meaning) plus Memoria's.\n" + ENCODER_FIELDS_DOC
    __doc__ += MEMORIA_FIELDS_DOC

    model_type = "memoria_bert"


@strict
class MemoriaRobertaConfig(RobertaConfig, MemoriaEncoderFields):
    __doc__ = "RoBERTa's configuration (every field keeps its meaning) plus Memoria's.\n" + ENCODER_FIELDS_DOC
    __doc__ += MEMORIA_FIELDS_DOC

    model_type = "memoria_roberta"
