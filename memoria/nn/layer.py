"""``MemoriaLayer``: Memoria as one residual branch that any Transformer block can hold."""

from typing import Callable, Optional, Union

import torch
from torch import nn

from .attention import MemoryReader
from .memory import MemoriaMemory, Rows


class MemoriaLayer(nn.Module):
    """Reads this segment's memories by cross-attention and writes the segment into memory, in one call.

    Use it as a residual branch of a pre-norm block; each call is one segment of every row::

        x = x + self.memoria(self.ln_memoria(x))  # [B, L, D] -> [B, L, D]

    One call (the paper's order): make the working memory and remind (:meth:`MemoriaMemory.read`); read the
    working memory, then the reminded engrams, each by a cross-attention with its own LayerNorm (the second
    sees the first's result); pay each reminded engram lifespan from the attention it received, and keep the
    hidden states the layer was given for the next call's working memory (:meth:`MemoriaMemory.write`). It
    returns the sum of the two reads. The first call of a memory, and a row with nothing to read, returns zeros.

    The memory lives in the module (``self.memory``, a :class:`MemoriaMemory`): ``state_dict()`` holds it
    (leave it out with :func:`exclude_memory`), ``.to(device, dtype)`` moves it (engram data stay float32;
    reads are cast to the input's dtype), and :meth:`reset_memory` forgets all rows or chosen ones. The package
    docstring (``memoria.nn``) states what gets gradient, and how batch rows, DDP and gradient accumulation
    behave.

    Args:
        hidden_size: D, the width of the hidden states.
        num_heads: H, the cross-attentions' heads; D must be a multiple of it.
        num_working_memories: vectors the Abstractor makes from a segment (its working memory); None: no
            Abstractor, every position's hidden state is an engram (needs ``working_memory="previous"``).
        stm_capacity: short-term engrams a row keeps before its oldest become long-term.
        num_reminded_stm: short-term engrams reminded per segment and row.
        num_reminded_ltm: long-term engrams reminded per segment and row (Memoria's ``num_final_ltms``). With both
            this and ``num_reminded_stm`` 0 nothing is reminded: the layer reads its working memory only (the
            reminded read returns zeros).
        ltm_search_depth: steps of the long-term graph walk.
        initial_lifespan: lifespan of a new engram, in segments.
        lifespan_alpha: alpha, the lifespan scale of the attention a reminded engram receives.
        lifespan_rule: "paper" (the paper's code: mean attention times the padded reminded width and alpha) or
            "renormalised" (alpha per real reminded engram, shared by attention; rows fully independent); see
            :func:`lifespan_delta`.
        working_memory: "previous" (the paper's GPT-2; causal): the working memory summarises the hidden states
            this layer received in the previous call, so no position sees a later one. "current" (the paper's
            BERT; encoders only): it summarises this call's hidden states, so every position reads a summary of
            the whole segment.
        mode: Memoria's algorithm: "paper" (as the paper describes it) or "reference" (memoria-pytorch 1.0.0's,
            quirks included, engram for engram).
        similarity: Memoria's STM recall and LTM ranking kernel: "gaussian", "l2", "cosine" or a callable.
        max_ltm_per_row: optional bound on long-term engrams per row (lowest lifespan deleted first).
        static_shapes: Memoria's static-shape path (fixed capacities and reminded width, no host syncs), with which
            the layer compiles with ``torch.compile(fullgraph=True)``; needs ``mode="paper"`` and ``max_ltm_per_row``.
        tie_break: how Memoria chooses among LTM engrams with equal Hebbian counts: "oldest" (the oldest engram,
            nothing drawn: every row's ties are its own) or "random" (1.0.0's noise, one draw shaped by the widest
            row, so a row's ties depend on the others'). None: "oldest" with ``mode="paper"``, "random" with
            ``mode="reference"`` (1.0.0 engram for engram).
        reset_period: forget everything on its own every this many calls; None: only on :meth:`reset_memory`.
            1 erases the memory before every call (the memoryless ablation, parameters unchanged).
        shared_attention: one cross-attention module for both reads (the paper's) or one each.
        abstractor_feedforward_size: the Abstractor's inner width; None: 4 * D.
        attention_dropout: dropout on the cross-attention weights (the lifespan is paid from the weights after it,
            as in the paper's code).
        dropout: dropout on each read's output.
        layer_norm_eps: epsilon of the reads' LayerNorms.
        memory_device: keep the engrams on this device (e.g. "cpu" for a model on the GPU); None: where the
            module is, moved by ``.to()``.
        keep_history: record every engram's history (``layer.memory.memoria.histories``) for analysis; slower.
        save_memory: ``state_dict()`` holds the memory (True) or only the parameters.
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        *,
        num_working_memories: Optional[int] = 50,
        stm_capacity: int = 400,
        num_reminded_stm: int = 50,
        num_reminded_ltm: int = 50,
        ltm_search_depth: int = 10,
        initial_lifespan: int = 9,
        lifespan_alpha: float = 8.0,
        lifespan_rule: str = "paper",
        working_memory: str = "previous",
        mode: str = "paper",
        similarity: Union[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = "gaussian",
        max_ltm_per_row: Optional[int] = None,
        static_shapes: bool = False,
        tie_break: Optional[str] = None,
        reset_period: Optional[int] = None,
        shared_attention: bool = True,
        abstractor_feedforward_size: Optional[int] = None,
        attention_dropout: float = 0.0,
        dropout: float = 0.0,
        layer_norm_eps: float = 1e-5,
        memory_device: Optional[Union[str, torch.device]] = None,
        keep_history: bool = False,
        save_memory: bool = True,
    ) -> None:
        super().__init__()
        self.reader = MemoryReader(
            hidden_size,
            num_heads,
            shared_attention=shared_attention,
            attention_dropout=attention_dropout,
            dropout=dropout,
            layer_norm_eps=layer_norm_eps,
        )
        self.memory = MemoriaMemory(
            hidden_size,
            num_working_memories=num_working_memories,
            stm_capacity=stm_capacity,
            num_reminded_stm=num_reminded_stm,
            num_reminded_ltm=num_reminded_ltm,
            ltm_search_depth=ltm_search_depth,
            initial_lifespan=initial_lifespan,
            lifespan_alpha=lifespan_alpha,
            lifespan_rule=lifespan_rule,
            working_memory=working_memory,
            mode=mode,
            similarity=similarity,
            max_ltm_per_row=max_ltm_per_row,
            static_shapes=static_shapes,
            tie_break=tie_break if tie_break is not None or mode != "paper" else "oldest",
            reset_period=reset_period,
            abstractor_feedforward_size=abstractor_feedforward_size,
            memory_device=memory_device,
            keep_history=keep_history,
            save_memory=save_memory,
        )

    def forward(self, hidden: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Read this segment's memories and write the segment into memory.

        Args:
            hidden: shaped [BatchSize, SegmentLength, HiddenDim], the same rows in the same order on every call
                (a new batch of samples: :meth:`reset_memory` first).
            mask: optional bool shaped [BatchSize, SegmentLength], True at real (not padding) positions: the
                Abstractor reads and the lifespan averages over those only.

        Returns:
            the two reads' sum shaped [BatchSize, SegmentLength, HiddenDim], to add to the residual stream.
        """
        memories = self.memory.read(hidden, mask)
        working_read = self.reader.read_working(hidden, memories)  # [B, L, D]
        reminded_read, weights = self.reader.read_reminded(hidden + working_read, memories)
        if self.memory.working_memory == "previous":
            self.memory.write(weights, hidden, mask)
        else:
            self.memory.write(weights, mask=mask)
        return working_read + reminded_read

    def reset_memory(self, rows: Optional[Rows] = None) -> None:
        """Forget every row's memory, or only that of ``rows`` (a bool mask shaped [BatchSize] or row indices
        shaped [NumRows]); the other rows' memories stay as they were."""
        self.memory.reset_memory(rows)
