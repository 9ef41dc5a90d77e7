"""Configuration of the Memoria Transformer: GPT-2 plus Memoria's memory."""

from typing import Optional

from huggingface_hub.dataclasses import strict
from transformers import GPT2Config

from memoria.memoria import MODES


@strict
class GPT2WithMemoriaConfig(GPT2Config):
    """GPT-2's configuration plus the fields of Memoria and of the memory the model attends to.

    Every GPT-2 field (``n_layer``, ``n_embd``, ``n_head``, ``n_inner``, ``n_positions``, ``vocab_size``, the
    dropouts, ...) keeps its meaning. ``n_positions`` only needs to cover one segment, because each segment
    starts again at position 0.

    Memoria fields:
        memoria_num_memories: how many working-memory vectors the Abstractor makes from a segment's final hidden
            states. None: no Abstractor; the working memory is those hidden states themselves (one per token).
        memoria_stm_capacity: how many short-term engrams a row keeps before its oldest become long-term.
        memoria_num_reminded_stm: how many short-term engrams are reminded per segment.
        memoria_num_reminded_ltm: how many long-term engrams are reminded per segment (Memoria's
            ``num_final_ltms``).
        memoria_ltm_search_depth: steps of the long-term graph walk.
        memoria_initial_lifespan: lifespan of a new engram, in segments.
        memoria_lifespan_extend_scale: alpha, the scale of the lifespan each reminded engram earns from the
            attention it received (8 in the paper).
        memoria_reset_period: reset the memory on its own after this many segments; None: only when
            ``reset_memory`` is called. 1 erases the memory every segment: the memoryless ablation, with the
            model and its parameters unchanged.
        memoria_shared_memory_attention: one cross-attention module per block reads both the working memory and
            the reminded memories, each read with its own LayerNorm (the paper's); false: a module for each.
        memoria_lifespan_delta: "paper": the lifespan a reminded engram earns is its attention weight after
            dropout, averaged over layers, heads and queries, times the padded reminded width and alpha;
            "renormalised": that average renormalised over a row's real reminded engrams, times their count and
            alpha.
        memoria_device: where Memoria keeps its engrams ("cpu", "cuda:0", ...); None: where the inputs are.
        memoria_mode: "reference" (memoria-pytorch 1.0.0's behaviour, engram for engram) or "paper" (the
            algorithm as the paper describes it, without 1.0.0's quirks); see ``Memoria``.
        memoria_keep_history: record every engram's history (``model.transformer.memoria.histories``, one per
            row, cleared by ``reset_memory``) for engram analysis; slower, off for training.
    """

    model_type = "gpt2_with_memoria"

    memoria_num_memories: Optional[int] = 32
    memoria_stm_capacity: int = 128
    memoria_num_reminded_stm: int = 32
    memoria_num_reminded_ltm: int = 32
    memoria_ltm_search_depth: int = 10
    memoria_initial_lifespan: int = 5
    memoria_lifespan_extend_scale: float = 8.0
    memoria_reset_period: Optional[int] = None
    memoria_device: Optional[str] = None
    memoria_mode: str = "reference"
    memoria_keep_history: bool = False
    memoria_shared_memory_attention: bool = True
    memoria_lifespan_delta: str = "paper"

    LIFESPAN_DELTAS = ("paper", "renormalised")

    def validate_memoria(self) -> None:
        """Raises ValueError naming the field when a Memoria field is out of range."""
        if self.memoria_mode not in MODES:
            raise ValueError(f"memoria_mode must be one of {MODES}, got {self.memoria_mode!r}")
        if self.memoria_lifespan_delta not in self.LIFESPAN_DELTAS:
            raise ValueError(
                f"memoria_lifespan_delta must be one of {self.LIFESPAN_DELTAS}, got {self.memoria_lifespan_delta!r}"
            )
        if self.memoria_reset_period is not None and self.memoria_reset_period < 1:
            raise ValueError(f"memoria_reset_period must be None or at least 1, got {self.memoria_reset_period}")
