"""The memory encoder: summarises a segment's hidden states into a fixed number of memory vectors."""

import math
from typing import Optional

import torch
from torch import nn


class Abstractor(nn.Module):
    """Learned queries attend over hidden states, then a feed-forward projection gives ``num_memories`` vectors.

    Parameter names follow memoria-pytorch (``query_embeddings``, ``key_transform``, ``value_transform``,
    ``feedforward``, ``output``), so checkpoints of the same shapes load into it.

    Args:
        num_memories: M, the number of memory vectors produced.
        hidden_dim: D, the model width.
        feedforward_dim: the inner width of the projection.
    """

    def __init__(self, num_memories: int, hidden_dim: int, feedforward_dim: int) -> None:
        super().__init__()
        for name, value in (
            ("num_memories", num_memories),
            ("hidden_dim", hidden_dim),
            ("feedforward_dim", feedforward_dim),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.num_memories = num_memories
        self.hidden_dim = hidden_dim
        self.query_embeddings = nn.Parameter(torch.randn(1, num_memories, hidden_dim) * hidden_dim**-0.5)
        self.key_transform = nn.Linear(hidden_dim, hidden_dim)
        self.value_transform = nn.Linear(hidden_dim, hidden_dim)
        self.feedforward = nn.Linear(hidden_dim, feedforward_dim)
        self.output = nn.Linear(feedforward_dim, hidden_dim)

    def forward(self, hidden_states: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Summarise hidden states.

        Args:
            hidden_states: shaped [BatchSize, SequenceLength, HiddenDim].
            attention_mask: optional shaped [BatchSize, SequenceLength], 1/True for positions to attend to.

        Returns:
            memories shaped [BatchSize, NumMemories, HiddenDim].
        """
        if hidden_states.dim() != 3 or hidden_states.size(-1) != self.hidden_dim:
            raise ValueError(
                f"hidden_states must be shaped [BatchSize, SequenceLength, {self.hidden_dim}], "
                f"got {tuple(hidden_states.shape)}"
            )
        queries = self.query_embeddings.expand(hidden_states.size(0), -1, -1)  # [B, M, D]
        keys = self.key_transform(hidden_states)  # [B, L, D]
        values = self.value_transform(hidden_states)  # [B, L, D]
        scores = torch.bmm(queries, keys.transpose(1, 2)) / math.sqrt(self.hidden_dim)  # [B, M, L]
        if attention_mask is not None:
            if attention_mask.shape != hidden_states.shape[:2]:
                raise ValueError(
                    f"attention_mask must be shaped {tuple(hidden_states.shape[:2])} [BatchSize, SequenceLength], "
                    f"got {tuple(attention_mask.shape)}"
                )
            scores = scores.masked_fill(~attention_mask.bool()[:, None, :], float("-inf"))
        attended = torch.bmm(scores.softmax(dim=-1), values)  # [B, M, D]
        return self.output(nn.functional.gelu(self.feedforward(attended)))
