"""Configuration of the Memoria Transformer: GPT-2 plus Memoria's memory."""

from dataclasses import dataclass

from huggingface_hub.dataclasses import strict
from transformers import GPT2Config

from ..with_memoria import MEMORIA_FIELDS_DOC, MemoriaFields

LIFESPAN_DELTAS = ("paper", "renormalised")


@dataclass
class MemoriaTransformerFields(MemoriaFields):
    """The Memoria Transformer's own fields besides Memoria's (documented on :class:`GPT2WithMemoriaConfig`)."""

    memoria_keep_history: bool = False
    memoria_shared_memory_attention: bool = True
    memoria_lifespan_delta: str = "paper"

    def validate_memoria_lifespan_delta(self) -> None:
        """Raises ValueError unless ``memoria_lifespan_delta`` names a rule."""
        if self.memoria_lifespan_delta not in LIFESPAN_DELTAS:
            raise ValueError(
                f"memoria_lifespan_delta must be one of {LIFESPAN_DELTAS}, got {self.memoria_lifespan_delta!r}"
            )


@strict
class GPT2WithMemoriaConfig(GPT2Config, MemoriaTransformerFields):
    __doc__ = """GPT-2's configuration plus the fields of Memoria and of the memory the model attends to.

    Every GPT-2 field (``n_layer``, ``n_embd``, ``n_head``, ``n_inner``, ``n_positions``, ``vocab_size``, the
    dropouts, ...) keeps its meaning. ``n_positions`` only needs to cover one segment, because each segment
    starts again at position 0.

    Memory fields:
        memoria_num_memories: None means no Abstractor: the working memory is the previous segment's final
            hidden states themselves (one per token).
        memoria_shared_memory_attention: one cross-attention module per block reads both the working memory and
            the reminded memories, each read with its own LayerNorm (the paper's); false: a module for each.
        memoria_lifespan_delta: "paper": the lifespan a reminded engram earns is its attention weight after
            dropout, averaged over layers, heads and queries, times the padded reminded width and alpha;
            "renormalised": that average renormalised over a row's real reminded engrams, times their count and
            alpha.
        memoria_keep_history: record every engram's history (``model.transformer.memoria.histories``, one per
            row, cleared by ``reset_memory``) for engram analysis; slower, off for training.
""" + MEMORIA_FIELDS_DOC

    model_type = "gpt2_with_memoria"
