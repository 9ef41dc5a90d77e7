"""Cross-attention from a segment's positions to memory vectors: finite for rows with no memory, weights returned."""

import math
from typing import NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn


class Memories(NamedTuple):
    """What one segment reads: the working memory and the reminded engrams, with their masks.

    Attributes:
        working: the working memory shaped [BatchSize, WorkingLength, HiddenDim]; it carries gradient to the
            Abstractor that made it. WorkingLength is 0 while there is no previous segment.
        working_mask: True where a working-memory vector is real shaped [BatchSize, WorkingLength] (False in a row
            reset since the previous segment).
        reminded: the reminded engrams shaped [BatchSize, RemindedLength, HiddenDim], detached, in the hidden
            states' dtype (zeros at padding).
        reminded_mask: True where an engram is real shaped [BatchSize, RemindedLength] (``reminded_indices >= 0``).
        reminded_indices: Memoria's positions of the reminded engrams shaped [BatchSize, RemindedLength], -1 at
            padding (a row may have none).
    """

    working: torch.Tensor
    working_mask: torch.Tensor
    reminded: torch.Tensor
    reminded_mask: torch.Tensor
    reminded_indices: torch.Tensor


class MemoryCrossAttention(nn.Module):
    """Multi-head attention from a segment's positions to a set of memory vectors, returning its weights too.

    A memory whose mask is False gets weight 0; a row with no memory at all (the first segment, a row just reset)
    gets zero output and zero weights, with finite gradients (its scores are masked with the dtype's finite
    minimum, never -inf, whose softmax would be NaN).

    The read is one ``F.scaled_dot_product_attention`` call (one fused kernel forward and one backward, where the
    written-out product, mask, softmax and product take about 25 ops), except while attention dropout is active
    (training with ``attention_dropout > 0``): then the weights are written out, dropped out, and the weights after
    dropout are both the ones that read and the ones returned (the paper's code pays lifespan from those). The two
    compute the same function; the fused kernel may round differently in the last bits.

    Args:
        hidden_size: D, the width of queries and memories.
        num_heads: H; D must be a multiple of it.
        attention_dropout: dropout on the attention weights (the weights returned are the ones after it).
        dropout: dropout on the output projection.
    """

    def __init__(self, hidden_size: int, num_heads: int, *, attention_dropout: float = 0.0, dropout: float = 0.0):
        super().__init__()
        _check_positive("hidden_size", hidden_size)
        _check_positive("num_heads", num_heads)
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size ({hidden_size}) must be a multiple of num_heads ({num_heads})")
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.q_proj = nn.Linear(hidden_size, hidden_size)
        self.kv_proj = nn.Linear(hidden_size, 2 * hidden_size)
        self.out_proj = nn.Linear(hidden_size, hidden_size)
        self.attention_dropout = nn.Dropout(attention_dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, hidden: torch.Tensor, memories: torch.Tensor, memory_mask: torch.Tensor, need_weights: bool = True
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Attend every position to the memories that ``memory_mask`` keeps.

        Args:
            hidden: queries shaped [BatchSize, SegmentLength, HiddenDim].
            memories: keys and values shaped [BatchSize, MemoryLength, HiddenDim] (MemoryLength may be 0); cast to
                the queries' dtype.
            memory_mask: bool, True where a memory is real, shaped [BatchSize, MemoryLength].
            need_weights: also return the attention weights (False: None in their place, and no work spent on
                them).

        Returns:
            the read shaped [BatchSize, SegmentLength, HiddenDim] and the attention weights after dropout shaped
            [BatchSize, NumHeads, SegmentLength, MemoryLength], without gradient (or None).
        """
        self._check_shapes(hidden, memories, memory_mask)
        batch_size, length, hidden_dim = hidden.shape
        memory_length = memories.size(1)
        query = self.q_proj(hidden).view(batch_size, length, self.num_heads, self.head_dim).transpose(1, 2)
        key, value = self.kv_proj(memories.to(hidden.dtype)).split(hidden_dim, dim=-1)  # [B, M, D] each
        key, value = (
            x.view(batch_size, memory_length, self.num_heads, self.head_dim).transpose(1, 2) for x in (key, value)
        )  # [B, H, M, D/H]
        keep = memory_mask[:, None, None, :]  # [B, 1, 1, M]
        masked = ~keep
        dropping = self.training and self.attention_dropout.p > 0
        if dropping or memory_length == 0:
            weights = self.attention_dropout(self._weights(query, key, keep, masked))
            attended = weights @ value  # [B, H, L, D/H]
            weights = weights.detach() if need_weights else None
        else:
            # the dtype's finite minimum where masked (never -inf: a row with no memory must stay finite)
            bias = masked.to(query.dtype).mul_(torch.finfo(query.dtype).min)  # [B, 1, 1, M]
            attended = F.scaled_dot_product_attention(query, key, value, attn_mask=bias)
            weights = None
            if need_weights:
                with torch.no_grad():
                    weights = self._weights(query, key, keep, masked)
        attended = attended.transpose(1, 2).reshape(batch_size, length, hidden_dim)
        has_memory = memory_mask.any(dim=-1)[:, None, None]  # [B, 1, 1]
        return self.dropout(self.out_proj(attended)) * has_memory, weights

    def _weights(
        self, query: torch.Tensor, key: torch.Tensor, keep: torch.Tensor, masked: torch.Tensor
    ) -> torch.Tensor:
        """Softmax weights [BatchSize, NumHeads, SegmentLength, MemoryLength] of ``query`` [B, H, L, D/H] over
        ``key`` [B, H, M, D/H] where ``keep`` [B, 1, 1, M] (``masked`` is its negation); 0 elsewhere and in a row
        with nothing kept."""
        scores = query @ key.transpose(-1, -2) / math.sqrt(self.head_dim)  # [B, H, L, M]
        return scores.masked_fill(masked, torch.finfo(scores.dtype).min).softmax(dim=-1) * keep

    def _check_shapes(self, hidden: torch.Tensor, memories: torch.Tensor, memory_mask: torch.Tensor) -> None:
        if hidden.dim() != 3 or hidden.size(-1) != self.hidden_size:
            raise ValueError(
                f"hidden must be shaped [BatchSize, SegmentLength, {self.hidden_size}], got {tuple(hidden.shape)}"
            )
        batch_size = hidden.size(0)
        if memories.dim() != 3 or memories.size(0) != batch_size or memories.size(-1) != self.hidden_size:
            raise ValueError(
                f"memories must be shaped [{batch_size}, MemoryLength, {self.hidden_size}], "
                f"got {tuple(memories.shape)}"
            )
        if memory_mask.shape != memories.shape[:2] or memory_mask.dtype != torch.bool:
            raise ValueError(
                f"memory_mask must be bool shaped {tuple(memories.shape[:2])} [BatchSize, MemoryLength], "
                f"got {memory_mask.dtype} shaped {tuple(memory_mask.shape)}"
            )

    def extra_repr(self) -> str:
        return f"hidden_size={self.hidden_size}, num_heads={self.num_heads}"


class MemoryReader(nn.Module):
    """One block's two memory reads, in the paper's order: the working memory, then the reminded engrams.

    Each read is a pre-norm cross-attention with its own LayerNorm. With ``shared_attention`` (the paper's) one
    :class:`MemoryCrossAttention` serves both reads; otherwise each read has its own (``attention[0]`` reads the
    working memory, ``attention[-1]`` the reminded engrams).

    Args:
        hidden_size: D.
        num_heads: H.
        shared_attention: one attention module for both reads (True, the paper's) or one each.
        attention_dropout: dropout on the attention weights.
        dropout: dropout on each read's output.
        layer_norm_eps: epsilon of the two LayerNorms.
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        *,
        shared_attention: bool = True,
        attention_dropout: float = 0.0,
        dropout: float = 0.0,
        layer_norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.ln_working = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.ln_reminded = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.attention = nn.ModuleList(
            MemoryCrossAttention(hidden_size, num_heads, attention_dropout=attention_dropout, dropout=dropout)
            for _ in range(1 if shared_attention else 2)
        )

    def read_working(self, hidden: torch.Tensor, memories: Memories) -> torch.Tensor:
        """The working-memory read of ``hidden`` [BatchSize, SegmentLength, HiddenDim], shaped like it."""
        return self.attention[0](self.ln_working(hidden), memories.working, memories.working_mask, need_weights=False)[
            0
        ]

    def read_reminded(self, hidden: torch.Tensor, memories: Memories) -> Tuple[torch.Tensor, torch.Tensor]:
        """The reminded read of ``hidden`` [BatchSize, SegmentLength, HiddenDim], shaped like it, and its
        attention weights shaped [BatchSize, NumHeads, SegmentLength, RemindedLength]."""
        return self.attention[-1](self.ln_reminded(hidden), memories.reminded, memories.reminded_mask)

    def forward(self, hidden: torch.Tensor, memories: Memories) -> Tuple[torch.Tensor, torch.Tensor]:
        """Both reads as residual steps: ``h = h + read_working(h)``, then ``h = h + read_reminded(h)``.

        Args:
            hidden: shaped [BatchSize, SegmentLength, HiddenDim].
            memories: this segment's :class:`Memories` (from :meth:`MemoriaMemory.read`).

        Returns:
            the hidden states after both reads shaped [BatchSize, SegmentLength, HiddenDim] and the reminded
            read's attention weights shaped [BatchSize, NumHeads, SegmentLength, RemindedLength], which
            :meth:`MemoriaMemory.write` turns into lifespan.
        """
        hidden = hidden + self.read_working(hidden, memories)
        read, weights = self.read_reminded(hidden, memories)
        return hidden + read, weights


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
