"""The Memoria Transformer: a GPT-2-style causal LM that reads segment by segment and remembers through Memoria.

For each segment the model
  1. makes working memory: the Abstractor's summary of the previous segment's final hidden states, which are
     detached (or those hidden states themselves when ``memoria_num_memories`` is None);
  2. hands a detached copy to Memoria and gets back the reminded engrams;
  3. runs every block: causal self-attention, a memory cross-attention to the working memory, the same
     cross-attention module again to the reminded engrams (padding indices masked; each read has its own
     LayerNorm), then the MLP;
  4. gives each reminded engram lifespan from the attention it received, and keeps its final hidden states for
     the next segment.

That is the paper's architecture. ``memoria_shared_memory_attention: false`` gives each read its own
cross-attention module, and ``memoria_lifespan_delta: "renormalised"`` the renormalised lifespan delta (see
:meth:`GPT2WithMemoriaModel._lifespan_delta`).

Gradients stop at segment boundaries (the hidden states the Abstractor reads are detached) but reach the
Abstractor and the memory cross-attention through the current segment's loss.
"""

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple, Type

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.activations import ACT2FN

from memoria import Abstractor

from ..heads import SegmentCausalLMOutput, SegmentLMHeadMixin
from ..inputs import check_attention_mask, check_input_ids
from ..with_memoria import MemoriaModelMixin
from .configuration_gpt2_with_memoria import GPT2WithMemoriaConfig


@dataclass
class GPT2WithMemoriaOutput(SegmentCausalLMOutput):
    """Output of one segment, of the body (``loss`` and ``logits`` None) or of the LM, plus what Memoria reminded;
    ``aux_loss`` is always None.

    Args:
        reminded_indices: Memoria's indices of the reminded engrams shaped [BatchSize, NumReminded]; -1 is padding.
        lifespan_delta: lifespan each reminded engram earned shaped [BatchSize, NumReminded].
    """

    reminded_indices: Optional[torch.LongTensor] = None
    lifespan_delta: Optional[torch.FloatTensor] = None


def gpt2_init_weights(
    config: PreTrainedConfig, module: nn.Module, residual_classes: Tuple[Type[nn.Module], ...]
) -> None:
    """GPT-2's scaling of residual projections: ``module.c_proj`` drawn from normal(0, initializer_range /
    sqrt(2 n_layer)) when ``module`` is one of ``residual_classes`` (the rest is transformers' usual init)."""
    if isinstance(module, residual_classes):
        std = config.initializer_range / math.sqrt(2 * config.n_layer)
        nn.init.normal_(module.c_proj.weight, mean=0.0, std=std)


class CausalSelfAttention(nn.Module):
    """GPT-2's masked multi-head self-attention (parameter names and shapes as GPT-2's, in nn.Linear layout)."""

    def __init__(self, config: GPT2WithMemoriaConfig) -> None:
        super().__init__()
        self.num_heads = config.n_head
        self.dropout = config.attn_pdrop
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Attends each position to itself and the positions before it.

        Args:
            hidden: shaped [BatchSize, SegmentLength, HiddenDim].

        Returns:
            shaped [BatchSize, SegmentLength, HiddenDim].
        """
        batch_size, length, hidden_dim = hidden.shape
        query, key, value = self.c_attn(hidden).split(hidden_dim, dim=-1)
        query, key, value = (
            x.view(batch_size, length, self.num_heads, -1).transpose(1, 2) for x in (query, key, value)
        )
        dropout = self.dropout if self.training else 0.0
        attended = F.scaled_dot_product_attention(
            query, key, value, dropout_p=dropout, is_causal=True
        )  # [B, H, L, D/H]
        attended = attended.transpose(1, 2).reshape(batch_size, length, hidden_dim)
        return self.resid_dropout(self.c_proj(attended))


class MemoryCrossAttention(nn.Module):
    """Multi-head attention from a segment's positions to a set of memory vectors, returning its weights too."""

    def __init__(self, config: GPT2WithMemoriaConfig) -> None:
        super().__init__()
        self.num_heads = config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.q_proj = nn.Linear(config.n_embd, config.n_embd)
        self.kv_proj = nn.Linear(config.n_embd, 2 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_dropout = nn.Dropout(config.attn_pdrop)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def forward(
        self, hidden: torch.Tensor, memories: torch.Tensor, memory_mask: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Attends every position to the memories that ``memory_mask`` keeps.

        A row with no memory kept gets zero output and zero weights. The weights returned are the ones the
        values were averaged with: after attention dropout (in training mode).

        Args:
            hidden: queries shaped [BatchSize, SegmentLength, HiddenDim].
            memories: keys and values shaped [BatchSize, MemoryLength, HiddenDim].
            memory_mask: True where a memory is real shaped [BatchSize, MemoryLength].

        Returns:
            the attended values shaped [BatchSize, SegmentLength, HiddenDim] and the attention weights shaped
            [BatchSize, NumHeads, SegmentLength, MemoryLength].
        """
        batch_size, length, hidden_dim = hidden.shape
        memory_length = memories.size(1)
        query = (
            self.q_proj(hidden).view(batch_size, length, self.num_heads, self.head_dim).transpose(1, 2)
        )  # [B, H, L, D/H]
        key, value = self.kv_proj(memories.to(hidden.dtype)).split(hidden_dim, dim=-1)
        key, value = (
            x.view(batch_size, memory_length, self.num_heads, self.head_dim).transpose(1, 2) for x in (key, value)
        )

        scores = query @ key.transpose(-1, -2) / math.sqrt(query.size(-1))  # [B, H, L, M]
        keep = memory_mask[:, None, None, :]  # [B, 1, 1, M]
        scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
        # a row whose memories are all masked would spread its weight uniformly over padding: zero it instead
        weights = scores.softmax(dim=-1) * keep

        weights = self.attn_dropout(weights)
        attended = (weights @ value).transpose(1, 2).reshape(batch_size, length, hidden_dim)
        has_memory = memory_mask.any(dim=-1)[:, None, None]  # [B, 1, 1]
        return self.resid_dropout(self.c_proj(attended)) * has_memory, weights


class MLP(nn.Module):
    """GPT-2's position-wise feed-forward network."""

    def __init__(self, config: GPT2WithMemoriaConfig) -> None:
        super().__init__()
        inner_dim = config.n_inner if config.n_inner is not None else 4 * config.n_embd
        self.c_fc = nn.Linear(config.n_embd, inner_dim)
        self.act = ACT2FN[config.activation_function]
        self.c_proj = nn.Linear(inner_dim, config.n_embd)
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Maps ``hidden`` shaped [BatchSize, SegmentLength, HiddenDim] to the same shape."""
        return self.dropout(self.c_proj(self.act(self.c_fc(hidden))))


class GPT2WithMemoriaBlock(nn.Module):
    """A GPT-2 block that also reads the working memory and the reminded memories by cross-attention.

    ``memory_attn`` holds one cross-attention module used for both reads (the paper's), or two (working memory
    first, then reminded) when ``memoria_shared_memory_attention`` is false.
    """

    def __init__(self, config: GPT2WithMemoriaConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = CausalSelfAttention(config)
        self.ln_working = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.ln_reminded = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        num_memory_attentions = 1 if config.memoria_shared_memory_attention else 2
        self.memory_attn = nn.ModuleList([MemoryCrossAttention(config) for _ in range(num_memory_attentions)])
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = MLP(config)

    def forward(
        self,
        hidden: torch.Tensor,
        working_memory: torch.Tensor,
        working_memory_mask: torch.Tensor,
        reminded: torch.Tensor,
        reminded_mask: torch.Tensor,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Runs self-attention, the two memory reads and the MLP, each as a pre-norm residual step.

        Args:
            hidden: shaped [BatchSize, SegmentLength, HiddenDim].
            working_memory: shaped [BatchSize, WorkingLength, HiddenDim].
            working_memory_mask: True where real shaped [BatchSize, WorkingLength].
            reminded: shaped [BatchSize, NumReminded, HiddenDim].
            reminded_mask: True where real (index not -1) shaped [BatchSize, NumReminded].

        Returns:
            the new hidden states shaped [BatchSize, SegmentLength, HiddenDim] and the attention weights to the
            reminded memories shaped [BatchSize, NumHeads, SegmentLength, NumReminded].
        """
        hidden = hidden + self.attn(self.ln_1(hidden))
        working_attn, reminded_attn = self.memory_attn[0], self.memory_attn[-1]
        working_out, _ = working_attn(self.ln_working(hidden), working_memory, working_memory_mask)
        hidden = hidden + working_out
        reminded_out, reminded_weights = reminded_attn(self.ln_reminded(hidden), reminded, reminded_mask)
        hidden = hidden + reminded_out
        hidden = hidden + self.mlp(self.ln_2(hidden))
        return hidden, reminded_weights


class GPT2WithMemoriaPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading shared by the Memoria Transformer's models."""

    config_class = GPT2WithMemoriaConfig
    base_model_prefix = "transformer"
    _no_split_modules = ["GPT2WithMemoriaBlock"]

    def _init_weights(self, module: nn.Module) -> None:
        """GPT-2's initialisation: normal(0, initializer_range), residual projections scaled by 1/sqrt(2 n_layer)."""
        super()._init_weights(module)
        gpt2_init_weights(self.config, module, (CausalSelfAttention, MemoryCrossAttention, MLP))


class GPT2WithMemoriaModel(MemoriaModelMixin, GPT2WithMemoriaPreTrainedModel):
    """The Memoria Transformer's body: embeddings, blocks, final LayerNorm, the Abstractor and Memoria.

    Memory persists across calls; reset it with :meth:`reset_memory` before a new batch of samples.
    """

    memory_attributes = ("memoria", "_previous_hidden", "_stale_rows", "_segments_since_reset")
    _input_embed_layer = "wte"

    def __init__(self, config: GPT2WithMemoriaConfig) -> None:
        config.validate()  # fields set after construction (from_pretrained's keyword arguments) are checked here
        super().__init__(config)
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.drop = nn.Dropout(config.embd_pdrop)
        self.h = nn.ModuleList([GPT2WithMemoriaBlock(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.abstractor = (
            Abstractor(config.memoria_num_memories, config.n_embd, config.n_inner or 4 * config.n_embd)
            if config.memoria_num_memories is not None
            else None
        )
        self.memoria = config.build_memoria(keep_history=config.memoria_keep_history)
        self._previous_hidden: Optional[torch.Tensor] = None  # [B, L, D], detached
        self._stale_rows: Optional[torch.Tensor] = None  # [B] bool: rows reset since the previous segment
        self._segments_since_reset = 0
        self.post_init()

    @property
    def memory_rows(self) -> Optional[int]:
        """Rows the memory holds, or None while it is empty."""
        return None if self._previous_hidden is None else self._previous_hidden.size(0)

    def forget_model_state(self, rows: Optional[torch.Tensor]) -> None:
        """Forgets the previous segment, or masks the chosen rows' part of it in the next segment."""
        if rows is None:
            self._previous_hidden = None
            self._stale_rows = None
        else:
            self._stale_rows = rows if self._stale_rows is None else self._stale_rows | rows

    def forward(
        self, input_ids: torch.LongTensor, attention_mask: Optional[torch.Tensor] = None
    ) -> GPT2WithMemoriaOutput:
        """Runs the next segment of every row, reading from and writing to memory.

        Args:
            input_ids: token ids shaped [BatchSize, SegmentLength]; SegmentLength at most ``n_positions``.
            attention_mask: None, or all ones shaped [BatchSize, SegmentLength]: this model does not take padding.

        Returns:
            the final hidden states, the reminded indices and the lifespan they earned.
        """
        check_input_ids(input_ids, self.config.vocab_size, self.config.n_positions, "n_positions")
        check_attention_mask(attention_mask, input_ids, takes_padding=False)
        self.start_segment(input_ids)
        batch_size, length = input_ids.shape

        hidden = self.drop(self.wte(input_ids) + self.wpe(torch.arange(length, device=input_ids.device)))
        working_memory, working_memory_mask = self._make_working_memory(batch_size, hidden)
        reminded, reminded_indices = self._remind(working_memory)
        reminded_mask = reminded_indices >= 0  # [B, R]

        attention_to_reminded = []
        for block in self.h:
            hidden, weights = block(
                hidden, working_memory, working_memory_mask, reminded.to(hidden.dtype), reminded_mask
            )
            attention_to_reminded.append(weights)
        hidden = self.ln_f(hidden)

        lifespan_delta = self._lifespan_delta(attention_to_reminded, reminded_mask)
        if working_memory.size(1) > 0:
            self.memoria.adjust_lifespan_and_memories(reminded_indices, lifespan_delta)
        self._previous_hidden = hidden.detach()
        self.end_segment()
        return GPT2WithMemoriaOutput(
            last_hidden_state=hidden, reminded_indices=reminded_indices, lifespan_delta=lifespan_delta
        )

    def _make_working_memory(self, batch_size: int, hidden: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The working memory of this segment and its mask (False for rows reset since the previous segment).

        Returns:
            working memory shaped [BatchSize, WorkingLength, HiddenDim] (WorkingLength 0 on a fresh memory) and
            its mask shaped [BatchSize, WorkingLength].
        """
        if self._previous_hidden is None:
            empty = hidden.new_zeros(batch_size, 0, hidden.size(-1))
            return empty, torch.ones(batch_size, 0, dtype=torch.bool, device=hidden.device)
        previous = self._previous_hidden
        working_memory = self.abstractor(previous) if self.abstractor is not None else previous  # [B, W, D]
        mask = torch.ones(working_memory.shape[:2], dtype=torch.bool, device=hidden.device)
        if self._stale_rows is not None:
            mask &= ~self._stale_rows[:, None]
        return working_memory, mask

    def _remind(self, working_memory: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Stores the working memory in Memoria and recalls engrams for it.

        Args:
            working_memory: shaped [BatchSize, WorkingLength, HiddenDim].

        Returns:
            reminded memories shaped [BatchSize, NumReminded, HiddenDim] and their indices shaped
            [BatchSize, NumReminded] (-1 for padding).
        """
        batch_size, working_length, hidden_dim = working_memory.shape
        if working_length == 0:
            return working_memory.new_zeros(batch_size, 0, hidden_dim), torch.zeros(
                batch_size, 0, dtype=torch.long, device=working_memory.device
            )
        self.memoria.add_working_memory(working_memory.detach().float())
        if self._stale_rows is not None:
            # the working memory of a reset row came from the sample before the reset: drop it from Memoria too
            self.memoria.reset_memory(self._stale_rows)
            self._stale_rows = None
        reminded, indices = self.memoria.remind()
        return reminded.to(working_memory.device), indices.to(working_memory.device)

    @torch.no_grad()
    def _lifespan_delta(self, attention_to_reminded: List[torch.Tensor], reminded_mask: torch.Tensor) -> torch.Tensor:
        """Lifespan each reminded engram earns from the attention it received.

        The attention weight (after dropout) averaged over layers, heads and query positions, then
          - "paper" (``memoria_lifespan_delta``, the paper's): times the padded reminded width NumReminded and
            alpha, not renormalised, so a row whose queries also attend elsewhere hands out less lifespan;
          - "renormalised": normalised to sum to 1 over a row's real reminded engrams, times their count and
            alpha, so every row hands out alpha per real reminded engram.
        Padding gets 0 in both.

        Args:
            attention_to_reminded: one weight tensor per layer, each shaped [BatchSize, NumHeads, SegmentLength,
                NumReminded].
            reminded_mask: True where real shaped [BatchSize, NumReminded].

        Returns:
            shaped [BatchSize, NumReminded], float32.
        """
        attention = torch.stack(attention_to_reminded).float().mean(dim=(0, 2, 3)) * reminded_mask  # [B, R]
        if self.config.memoria_lifespan_delta == "paper":
            return attention * reminded_mask.size(1) * self.config.memoria_lifespan_extend_scale
        share = attention / attention.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(attention.dtype).tiny)
        num_reminded = reminded_mask.sum(dim=-1, keepdim=True)  # [B, 1]
        return share * num_reminded * self.config.memoria_lifespan_extend_scale


class GPT2WithMemoriaLMHeadModel(SegmentLMHeadMixin, GPT2WithMemoriaPreTrainedModel):
    """The Memoria Transformer with a language-model head tied to the token embeddings; takes ``labels`` and
    generates as :mod:`experiment.models.heads` describes (Memoria's engrams are restored after ``generate``)."""

    body_class = GPT2WithMemoriaModel
    output_class = GPT2WithMemoriaOutput
    _tied_weights_keys = {"lm_head.weight": "transformer.wte.weight"}
