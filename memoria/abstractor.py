"""The memory encoder: summarises a segment's hidden states into a fixed number of memory vectors."""

import math
from typing import Optional

import torch
from torch import nn

ACTIVATIONS = {"gelu": nn.functional.gelu, "relu": nn.functional.relu}


class Abstractor(nn.Module):
    """Learned queries attend over hidden states, then a feed-forward projection gives ``num_memories`` vectors.

    By default it computes what memoria-pytorch 1.0.0's ``Abstractor`` computes, with the same parameter names
    and shapes (``query_embeddings``, ``key_transform``, ``value_transform``, ``feedforward``, ``output``), so
    1.0.0 checkpoints load into it and give the same outputs::

        attended = softmax(queries @ key_transform(h)^T) @ value_transform(h)   # [B, M, D], scores unscaled
        memories = output(feedforward(attended))                               # no nonlinearity in between

    with queries initialised from N(0, 0.02^2). The keyword-only options give the scaled variant (scores divided
    by sqrt(D), a GELU between the two projections, queries from N(0, 1/D)):
    ``Abstractor(M, D, F, scale_scores=True, activation="gelu", query_std=None)``.

    Args:
        num_memories: M, the number of memory vectors produced.
        hidden_dim: D, the model width.
        feedforward_dim: the inner width of the projection.
        scale_scores: divide the attention scores by sqrt(D).
        activation: None (1.0.0) or "gelu" / "relu", applied between ``feedforward`` and ``output``.
        query_std: the standard deviation of the queries' initialisation; None for 1/sqrt(D).
    """

    def __init__(
        self,
        num_memories: int,
        hidden_dim: int,
        feedforward_dim: int,
        *,
        scale_scores: bool = False,
        activation: Optional[str] = None,
        query_std: Optional[float] = 0.02,
    ) -> None:
        super().__init__()
        for name, value in (
            ("num_memories", num_memories),
            ("hidden_dim", hidden_dim),
            ("feedforward_dim", feedforward_dim),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if activation is not None and activation not in ACTIVATIONS:
            raise ValueError(f"activation must be None or one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if query_std is not None and not query_std > 0:
            raise ValueError(f"query_std must be a positive number or None (1/sqrt(hidden_dim)), got {query_std!r}")
        self.num_memories = num_memories
        self.hidden_dim = hidden_dim
        self.scale_scores = scale_scores
        self.activation = activation
        std = hidden_dim**-0.5 if query_std is None else query_std
        self.query_embeddings = nn.Parameter(torch.randn(1, num_memories, hidden_dim) * std)
        self.key_transform = nn.Linear(hidden_dim, hidden_dim)
        self.value_transform = nn.Linear(hidden_dim, hidden_dim)
        self.feedforward = nn.Linear(hidden_dim, feedforward_dim)
        self.output = nn.Linear(feedforward_dim, hidden_dim)

    def forward(self, hidden_states: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Summarise hidden states.

        Args:
            hidden_states: shaped [BatchSize, SequenceLength, HiddenDim].
            attention_mask: optional shaped [BatchSize, SequenceLength], 1/True for positions to attend to (an
                extension: 1.0.0 takes no mask). A row must keep at least one position.

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
        scores = torch.bmm(queries, keys.transpose(1, 2))  # [B, M, L]
        if self.scale_scores:
            scores = scores / math.sqrt(self.hidden_dim)
        if attention_mask is not None:
            scores = scores.masked_fill(~self._checked_mask(attention_mask, hidden_states)[:, None, :], float("-inf"))
        attended = torch.bmm(scores.softmax(dim=-1), values)  # [B, M, D]
        projected = self.feedforward(attended)  # [B, M, F]
        if self.activation is not None:
            projected = ACTIVATIONS[self.activation](projected)
        return self.output(projected)

    @staticmethod
    def _checked_mask(attention_mask: torch.Tensor, hidden_states: torch.Tensor) -> torch.Tensor:
        if attention_mask.shape != hidden_states.shape[:2]:
            raise ValueError(
                f"attention_mask must be shaped {tuple(hidden_states.shape[:2])} [BatchSize, SequenceLength], "
                f"got {tuple(attention_mask.shape)}"
            )
        mask = attention_mask.bool()
        if not bool(mask.any(1).all()):
            raise ValueError("attention_mask must keep at least one position per row (an empty row gives NaN)")
        return mask

    def extra_repr(self) -> str:
        return f"num_memories={self.num_memories}, scale_scores={self.scale_scores}, activation={self.activation}"
