"""Attention over reminded memories that stays finite when a row has none (the first step, a reset row).

Run it with ``python -m examples.attention_over_reminded``; README.md, "Attention over reminded memories", shows
the function.
"""

import torch

from memoria import Memoria


def attend_to_reminded(queries: torch.Tensor, memories: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Scaled dot-product attention of ``queries`` over the reminded memories of their row.

    A row with no reminded memory (every index -1) gets zeros instead of the NaN that a softmax over nothing
    gives, in the forward and the backward pass alike.

    Args:
        queries: shaped [BatchSize, QueryLength, HiddenDim].
        memories: shaped [BatchSize, RemindedLength, HiddenDim], from ``Memoria.remind()``.
        indices: long tensor shaped [BatchSize, RemindedLength], from ``Memoria.remind()``; -1 for none.

    Returns:
        shaped [BatchSize, QueryLength, HiddenDim].
    """
    valid = (indices >= 0)[:, None, :]  # [B, 1, R]
    scores = queries @ memories.transpose(1, 2) / queries.size(-1) ** 0.5  # [B, L, R]
    scores = scores.masked_fill(~valid, torch.finfo(scores.dtype).min)  # finite: -inf would give NaN rows
    weights = scores.softmax(dim=-1) * valid  # a row with nothing reminded attends to nothing
    return weights @ memories


if __name__ == "__main__":
    torch.manual_seed(0)
    memoria = Memoria(num_reminded_stm=2, stm_capacity=4, ltm_search_depth=2, initial_lifespan=3, num_final_ltms=2)
    for step in range(4):
        if step == 3:
            memoria.reset_memory(rows=[0])  # row 0 starts over: it has nothing to be reminded of
        memoria.add_working_memory(torch.rand(2, 3, 8))
        memories, indices = memoria.remind()
        out = attend_to_reminded(torch.rand(2, 5, 8), memories, indices)
        print(f"step {step}: reminded per row {(indices >= 0).sum(1).tolist()}, finite: {bool(out.isfinite().all())}")
        memoria.adjust_lifespan_and_memories(indices, torch.ones(indices.shape))
