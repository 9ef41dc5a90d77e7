"""Configurations of Memoria BERT and Memoria RoBERTa: the encoder's configuration plus Memoria's fields."""

from typing import Optional

from huggingface_hub.dataclasses import strict
from transformers import BertConfig, RobertaConfig

from memoria.memoria import MODES

MEMORIA_FIELDS_DOC = """
    Memoria fields (the paper's defaults for Hyperpartisan):
        memory_layer_index: the layers before this index run as the plain encoder; the Abstractor reads the
            output of layer ``memory_layer_index - 1`` (9: after the 9th of 12 layers), and every layer from
            this index on also reads the working memory and the reminded engrams. From 1 to
            ``num_hidden_layers - 1``.
        memoria_num_memories: working-memory vectors the Abstractor makes from a segment (64).
        memoria_stm_capacity: short-term engrams a row keeps before its oldest become long-term (128).
        memoria_num_reminded_stm: short-term engrams reminded per segment (64).
        memoria_num_reminded_ltm: long-term engrams reminded per segment (64).
        memoria_ltm_search_depth: steps of the long-term graph walk (10).
        memoria_initial_lifespan: lifespan of a new engram, in segments (12).
        memoria_lifespan_extend_scale: alpha, the lifespan scale of the attention a reminded engram gets (8).
        memoria_reset_period: erase the memory on its own after this many segments; None: only on
            ``reset_memory``. 1 is the memoryless ablation (same model, same parameters).
        memoria_device: where Memoria keeps its engrams; None: where the inputs are.
        memoria_mode: "reference" (memoria-pytorch 1.0.0's behaviour) or "paper"; see ``memoria.Memoria``.
"""


def validate_memoria_fields(config) -> None:
    """Raises ValueError naming the field when a Memoria field is out of range."""
    if not 1 <= config.memory_layer_index <= config.num_hidden_layers - 1:
        raise ValueError(
            f"memory_layer_index must be in [1, num_hidden_layers - 1 = {config.num_hidden_layers - 1}], "
            f"got {config.memory_layer_index}"
        )
    for field in ("memoria_num_memories", "memoria_stm_capacity"):
        if getattr(config, field) < 1:
            raise ValueError(f"{field} must be at least 1, got {getattr(config, field)}")
    for field in ("memoria_num_reminded_stm", "memoria_num_reminded_ltm", "memoria_ltm_search_depth"):
        if getattr(config, field) < 0:
            raise ValueError(f"{field} must be at least 0, got {getattr(config, field)}")
    if config.memoria_mode not in MODES:
        raise ValueError(f"memoria_mode must be one of {MODES}, got {config.memoria_mode!r}")
    if config.memoria_reset_period is not None and config.memoria_reset_period < 1:
        raise ValueError(f"memoria_reset_period must be None or at least 1, got {config.memoria_reset_period}")


@strict
class MemoriaBertConfig(BertConfig):
    __doc__ = "BERT's configuration (every field keeps its meaning) plus Memoria's.\n" + MEMORIA_FIELDS_DOC

    model_type = "memoria_bert"

    memory_layer_index: int = 9
    memoria_num_memories: int = 64
    memoria_stm_capacity: int = 128
    memoria_num_reminded_stm: int = 64
    memoria_num_reminded_ltm: int = 64
    memoria_ltm_search_depth: int = 10
    memoria_initial_lifespan: int = 12
    memoria_lifespan_extend_scale: float = 8.0
    memoria_reset_period: Optional[int] = None
    memoria_device: Optional[str] = None
    memoria_mode: str = "reference"

    def validate_memoria(self) -> None:
        """Raises ValueError naming the field when a Memoria field is out of range."""
        validate_memoria_fields(self)


@strict
class MemoriaRobertaConfig(RobertaConfig):
    __doc__ = "RoBERTa's configuration (every field keeps its meaning) plus Memoria's.\n" + MEMORIA_FIELDS_DOC

    model_type = "memoria_roberta"

    memory_layer_index: int = 9
    memoria_num_memories: int = 64
    memoria_stm_capacity: int = 128
    memoria_num_reminded_stm: int = 64
    memoria_num_reminded_ltm: int = 64
    memoria_ltm_search_depth: int = 10
    memoria_initial_lifespan: int = 12
    memoria_lifespan_extend_scale: float = 8.0
    memoria_reset_period: Optional[int] = None
    memoria_device: Optional[str] = None
    memoria_mode: str = "reference"

    def validate_memoria(self) -> None:
        """Raises ValueError naming the field when a Memoria field is out of range."""
        validate_memoria_fields(self)
