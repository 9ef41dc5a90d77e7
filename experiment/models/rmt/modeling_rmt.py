"""The Recurrent Memory Transformer baseline (Bulatov et al., 2022) as a segment-recurrent causal LM.

The Transformer is lucidrains' ``RecurrentMemoryTransformer`` core (package ``recurrent-memory-transformer-pytorch``
0.7.0). One call of the core reads a segment between M read-memory tokens and M write-memory tokens and returns
the logits, the written memory tokens and each layer's XL keys and values. This module carries both kinds of
memory from call to call itself, row by row, which the package's own segment wrapper does not do for the XL
memories.
"""

from dataclasses import dataclass
from typing import List, Optional

import torch
from recurrent_memory_transformer_pytorch import RecurrentMemoryTransformer
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from ..heads import SegmentCausalLMMixin
from ..inputs import Rows, check_attention_mask, check_batch_size, check_input_ids, rows_to_mask
from ..segment_recurrent import SegmentRecurrentModel, carried_type
from .configuration_rmt import RMTConfig


@dataclass
class RMTModelOutput(ModelOutput):
    """Output of :class:`RMTModel`.

    Attributes:
        last_hidden_state: final normalised hidden states of the segment's tokens, shaped [BatchSize,
            SegmentLength, HiddenDim].
        logits: the core's own vocabulary projection of them, shaped [BatchSize, SegmentLength, VocabSize]
            (the library's core ends with its output layer, so the body computes the logits too).
    """

    last_hidden_state: Optional[torch.FloatTensor] = None
    logits: Optional[torch.FloatTensor] = None


@carried_type
@dataclass
class RMTMemoryState:
    """What each row carries into its next segment.

    Attributes:
        read_memories: the memory tokens the next segment reads, shaped [BatchSize, NumMemoryTokens, HiddenDim];
            zeros in a fresh row (the core's own start state).
        xl_memories: per layer, the keys and values of the previous segment's last positions, each shaped
            [2, BatchSize, NumHeads, XLMemLength, HeadDim]; None when no row has any.
        has_xl: [BatchSize] bool, rows whose ``xl_memories`` are real (False: the row has none, as when fresh).
        ended: [BatchSize] bool, rows whose last segment held padding: their stream is over until reset.
    """

    read_memories: torch.Tensor
    xl_memories: Optional[List[torch.Tensor]]
    has_xl: torch.Tensor
    ended: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.read_memories.size(0)


@dataclass
class _SegmentResult:
    """One call of the core: logits [B, L, V], hidden [B, L, D], memories [B, M, D], XL list or None."""

    logits: torch.Tensor
    hidden: torch.Tensor
    memories: torch.Tensor
    xl_memories: Optional[List[torch.Tensor]]


class RMTPreTrainedModel(PreTrainedModel):
    """Loading and saving shared by the RMT models; the weights keep the library's own initialisation."""

    config_class = RMTConfig
    base_model_prefix = "rmt"
    main_input_name = "input_ids"

    def _init_weights(self, module: nn.Module) -> None:
        """Leaves ``module`` as the library initialised it."""


class RMTModel(RMTPreTrainedModel, SegmentRecurrentModel):
    """The RMT core with memory tokens and XL memories carried between calls, per row.

    Memory persists across calls in train and eval mode; :meth:`reset_memory` forgets all or chosen rows. The XL
    memories are detached at every boundary. With ``config.bptt_segments`` 0 so are the memory tokens; otherwise
    they stay in the graph until :meth:`detach_memory` (or a reset): truncating backpropagation through time is
    the caller's, in windows that reach ``bptt_segments`` boundaries back from each loss (the experiment tasks do
    this from :attr:`bptt_segments`; a hand-written loop calls :meth:`detach_memory` after each backward pass).
    """

    memory_attributes = ("state",)

    def __init__(self, config: RMTConfig) -> None:
        super().__init__(config)
        self.core = RecurrentMemoryTransformer(
            config.hidden_size,
            num_tokens=config.vocab_size,
            depth=config.num_hidden_layers,
            num_memory_tokens=config.num_memory_tokens,
            seq_len=config.max_segment_length,
            dim_head=config.head_dim or config.hidden_size // config.num_attention_heads,
            heads=config.num_attention_heads,
            ff_mult=config.ff_mult,
            attn_dropout=config.attn_dropout,
            ff_dropout=config.ff_dropout,
            abs_pos_emb=config.abs_pos_emb,
            rotary_pos_emb=config.rotary_pos_emb,
            emb_gradient_frac=config.emb_gradient_frac,
            use_xl_memories=config.use_xl_memories,
            xl_mem_len=config.xl_mem_len if config.use_xl_memories else None,
            enhanced_xl_recurrence=config.enhanced_xl_recurrence,
            memory_not_causal=config.memory_not_causal,
            num_residual_streams=config.num_residual_streams,
        )
        if config.embedding_init_std is not None:
            for table in (self.core.token_emb, self.core.pos_emb):
                if table is not None:
                    nn.init.normal_(table.weight, std=config.embedding_init_std)
        self.core.to_logits.register_forward_pre_hook(self._keep_final_hidden)
        self._final_hidden: Optional[torch.Tensor] = None  # [B, L, D], the input of the core's output layer
        self.state: Optional[RMTMemoryState] = None
        self.post_init()

    @property
    def bptt_segments(self) -> int:
        """How many segment boundaries a segment's loss should reach back through the memory tokens in training."""
        return self.config.bptt_segments

    def get_input_embeddings(self) -> nn.Embedding:
        return self.core.token_emb

    def set_input_embeddings(self, embeddings: nn.Embedding) -> None:
        self.core.token_emb = embeddings

    def _keep_final_hidden(self, module: nn.Module, args: tuple) -> None:
        self._final_hidden = args[0]

    def reset_memory(self, rows: Optional[Rows] = None) -> None:
        """Forgets the memory of every row, or of the chosen rows only.

        A reset row starts again from the core's initial state: zero read memories and no XL memory. The other
        rows' memory is left bit-identical.

        Args:
            rows: None for every row, or row indices (a list or an integer tensor shaped [NumRows]) or a bool mask
                shaped [BatchSize].
        """
        state = self.state
        chosen = None if rows is None else rows_to_mask(rows, self.memory_rows, self.device)  # [B]
        if chosen is None:
            self.state = None
            return
        xl_memories = state.xl_memories
        if xl_memories is not None:
            xl_memories = [torch.where(chosen[None, :, None, None, None], 0.0, xl) for xl in xl_memories]
        self.state = RMTMemoryState(
            read_memories=torch.where(chosen[:, None, None], 0.0, state.read_memories),
            xl_memories=xl_memories,
            has_xl=state.has_xl & ~chosen,
            ended=state.ended & ~chosen,
        )

    @property
    def memory_rows(self) -> Optional[int]:
        """Rows the memory holds, or None while it is empty."""
        return None if self.state is None else self.state.batch_size

    def detach_memory(self) -> None:
        """Cuts the graph behind the carried memory now, e.g. after a backward pass over part of a stream."""
        if self.state is not None:
            self.state.read_memories = self.state.read_memories.detach()

    def forward(self, input_ids: torch.LongTensor, attention_mask: Optional[torch.Tensor] = None) -> RMTModelOutput:
        """Runs the next segment of every row's stream and keeps the memory it writes.

        Args:
            input_ids: shaped [BatchSize, SegmentLength], token ids in [0, vocab_size); SegmentLength at most
                ``config.max_segment_length``. BatchSize may change only after a full :meth:`reset_memory`.
            attention_mask: None, or bool / 0-1 integers shaped [BatchSize, SegmentLength], 0 on padding. Padded
                tokens are hidden from the segment's tokens and from the memory tokens it writes, but the core
                cannot hide them from the next segment's XL attention, so a row whose segment holds padding has
                ended: until it is reset, its later segments must be padding only.

        Returns:
            :class:`RMTModelOutput` with ``last_hidden_state`` [BatchSize, SegmentLength, HiddenDim] and ``logits``
            [BatchSize, SegmentLength, VocabSize].
        """
        check_input_ids(input_ids, self.config.vocab_size, self.config.max_segment_length, "max_segment_length")
        mask = check_attention_mask(attention_mask, input_ids)
        check_batch_size(self.memory_rows, input_ids)
        state = self._state_for(input_ids)
        _check_ended_rows(state, mask)
        result = self._run_rows(input_ids, mask, state)
        self.state = self._next_state(state, result, mask)
        return RMTModelOutput(last_hidden_state=result.hidden, logits=result.logits)

    def _state_for(self, input_ids: torch.Tensor) -> RMTMemoryState:
        """The carried state, or a fresh one for a new batch; checks the batch size and device match."""
        batch_size = input_ids.size(0)
        if self.state is None:
            weight = self.core.token_emb.weight
            return RMTMemoryState(
                read_memories=weight.new_zeros(batch_size, self.config.num_memory_tokens, self.config.hidden_size),
                xl_memories=None,
                has_xl=torch.zeros(batch_size, dtype=torch.bool, device=weight.device),
                ended=torch.zeros(batch_size, dtype=torch.bool, device=weight.device),
            )
        if self.state.read_memories.device != input_ids.device:
            raise ValueError(
                f"input_ids is on {input_ids.device} but the memory is on {self.state.read_memories.device}; "
                "call reset_memory() after moving the model"
            )
        return self.state

    def _run_rows(self, input_ids: torch.Tensor, mask: Optional[torch.Tensor], state: RMTMemoryState) -> _SegmentResult:
        """Runs rows with XL memory and rows without it in separate core calls (the core's XL has no row mask)."""
        if state.xl_memories is None or bool(state.has_xl.all()):
            return self._run_core(input_ids, mask, state.read_memories, state.xl_memories)
        if not bool(state.has_xl.any()):
            return self._run_core(input_ids, mask, state.read_memories, None)
        with_xl = state.has_xl.nonzero().flatten()  # [R]
        without_xl = (~state.has_xl).nonzero().flatten()  # [B - R]
        carried = self._run_core(
            input_ids[with_xl],
            None if mask is None else mask[with_xl],
            state.read_memories[with_xl],
            [xl[:, with_xl] for xl in state.xl_memories],
        )
        fresh = self._run_core(
            input_ids[without_xl],
            None if mask is None else mask[without_xl],
            state.read_memories[without_xl],
            None,
        )
        return _merge_rows(carried, with_xl, fresh, without_xl)

    def _run_core(
        self,
        input_ids: torch.Tensor,
        mask: Optional[torch.Tensor],
        read_memories: torch.Tensor,
        xl_memories: Optional[List[torch.Tensor]],
    ) -> _SegmentResult:
        """One call of the library's core; a mask without padding is passed as None, as the core's default."""
        if mask is not None and bool(mask.all()):
            mask = None
        self._final_hidden = None
        logits, memories, next_xl = self.core(input_ids, read_memories, mask=mask, xl_memories=xl_memories)
        hidden, self._final_hidden = self._final_hidden, None
        return _SegmentResult(logits=logits, hidden=hidden, memories=memories, xl_memories=next_xl)

    def _next_state(
        self, state: RMTMemoryState, result: _SegmentResult, mask: Optional[torch.Tensor]
    ) -> RMTMemoryState:
        """The state after a segment: XL memories detached, memory tokens too when ``bptt_segments`` is 0."""
        memories = result.memories  # [B, M, D]
        if self.config.bptt_segments == 0:
            memories = memories.detach()
        xl_memories = None if result.xl_memories is None else [xl.detach() for xl in result.xl_memories]
        ended = state.ended if mask is None else state.ended | ~mask.all(dim=1)
        return RMTMemoryState(
            read_memories=memories,
            xl_memories=xl_memories,
            has_xl=torch.full_like(state.has_xl, xl_memories is not None),
            ended=ended,
        )


class RMTForCausalLM(SegmentCausalLMMixin, RMTPreTrainedModel):
    """The RMT as a segment-recurrent causal language model (the core's output layer is the LM head); takes
    ``labels`` and generates as :mod:`experiment.models.heads` describes; ``aux_loss`` is always None."""

    memory_attributes = ("rmt",)

    def __init__(self, config: RMTConfig) -> None:
        super().__init__(config)
        self.rmt = RMTModel(config)
        self.post_init()

    def head_logits(self, body: RMTModelOutput) -> torch.Tensor:
        """The core's own logits, shaped [BatchSize, SegmentLength, VocabSize]."""
        return body.logits

    @property
    def bptt_segments(self) -> int:
        """See :attr:`RMTModel.bptt_segments`; the experiment tasks read it to size their truncation windows."""
        return self.rmt.bptt_segments

    def detach_memory(self) -> None:
        """Cuts the graph behind the carried memory; see :meth:`RMTModel.detach_memory`."""
        self.rmt.detach_memory()


def _merge_rows(
    first: _SegmentResult, first_rows: torch.Tensor, second: _SegmentResult, second_rows: torch.Tensor
) -> _SegmentResult:
    """Puts the results of two disjoint row groups back in batch order."""

    def merge(a: torch.Tensor, b: torch.Tensor, dim: int) -> torch.Tensor:
        shape = list(a.shape)
        shape[dim] = a.size(dim) + b.size(dim)
        merged = a.new_zeros(shape)
        return merged.index_copy(dim, first_rows, a).index_copy(dim, second_rows, b)

    xl_memories = None
    if first.xl_memories is not None:
        xl_memories = [merge(a, b, dim=1) for a, b in zip(first.xl_memories, second.xl_memories)]
    return _SegmentResult(
        logits=merge(first.logits, second.logits, dim=0),
        hidden=merge(first.hidden, second.hidden, dim=0),
        memories=merge(first.memories, second.memories, dim=0),
        xl_memories=xl_memories,
    )


def _check_ended_rows(state: RMTMemoryState, mask: Optional[torch.Tensor]) -> None:
    """Raises ValueError if a row whose stream ended (it held padding) is given tokens before its reset."""
    given_tokens = state.ended if mask is None else state.ended & mask.any(dim=1)  # [B]
    if bool(given_tokens.any()):
        rows = given_tokens.nonzero().flatten().tolist()
        raise ValueError(
            f"rows {rows} had padding in an earlier segment, so their stream has ended; call "
            "reset_memory(rows) before giving them new tokens, or mask them out entirely"
        )
