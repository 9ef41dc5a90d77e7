"""Checks shared by the default and the static-shape step: the call order of a step and the working memory's form."""

from typing import Any, Sequence, Tuple, Union

import torch

STEP_ORDER = ("add_working_memory", "remind", "adjust_lifespan_and_memories")
"""The calls of one step, in order."""

Rows = Union[torch.Tensor, Sequence[int], Sequence[bool]]
"""Batch rows: a bool mask shaped [BatchSize] or row indices shaped [NumRows]."""


def is_next_call(call: str, expected: str, indices: Any = None) -> bool:
    """Whether ``call`` may come now: it is ``expected``, or it is adjust right after add with indices shaped
    [BatchSize, 0] (a step that reminded nothing)."""
    reminded_nothing = isinstance(indices, torch.Tensor) and indices.dim() == 2 and indices.size(1) == 0
    return call == expected or (call == STEP_ORDER[2] and expected == STEP_ORDER[1] and reminded_nothing)


def out_of_order(call: str, expected: str) -> RuntimeError:
    """The error for ``call`` coming when ``expected`` should."""
    return RuntimeError(
        f"{call}() called out of order: expected {expected}() next. One step is add_working_memory() -> "
        "remind() -> adjust_lifespan_and_memories() (adjust may follow add directly only with indices shaped "
        "[BatchSize, 0]); reset_memory() starts over"
    )


def check_working_memory_form(data: Any) -> Tuple[int, int, int]:
    """Refuse working memory that is not a non-empty floating tensor shaped [BatchSize, WorkingLength, HiddenDim].

    Returns:
        (B, W, D).
    """
    if not isinstance(data, torch.Tensor):
        raise TypeError(f"data must be a torch.Tensor shaped [BatchSize, WorkingLength, HiddenDim], got {type(data)}")
    if data.dim() != 3:
        raise ValueError(f"data must be shaped [BatchSize, WorkingLength, HiddenDim], got shape {tuple(data.shape)}")
    if not data.is_floating_point():
        raise TypeError(f"data must be a floating tensor, got dtype {data.dtype}")
    if 0 in data.shape:
        raise ValueError(
            f"data must have at least one row, one working vector and one feature, got {tuple(data.shape)}"
        )
    B, W, D = data.shape
    return B, W, D


def rows_mask(rows: Rows, batch_size: int) -> torch.Tensor:
    """``rows`` as a bool mask shaped [BatchSize] on the CPU, refused clearly when it is neither a mask of that shape
    nor 1-d row indices in range."""
    rows = torch.as_tensor(rows).cpu()
    if rows.dtype == torch.bool:
        if rows.shape != (batch_size,):
            raise ValueError(f"rows as a bool mask must be shaped [{batch_size}], got {tuple(rows.shape)}")
        return rows
    if rows.is_floating_point() or rows.dim() != 1:
        raise ValueError(f"rows must be a bool mask [{batch_size}] or a 1-d list of row indices, got {rows}")
    if rows.numel() and (rows.min() < 0 or rows.max() >= batch_size):
        raise ValueError(f"rows must be row indices in [0, {batch_size}), got {rows.tolist()}")
    return torch.zeros(batch_size, dtype=torch.bool).index_fill_(0, rows.long(), True)


def check_adjust_form(indices: torch.Tensor, lifespan_delta: torch.Tensor) -> None:
    """Refuse indices that are not integers, and lifespan deltas that are not real or not shaped like the indices."""
    if indices.is_floating_point() or indices.dtype == torch.bool or indices.is_complex():
        raise TypeError(f"indices must be an integer tensor, got dtype {indices.dtype}")
    if lifespan_delta.shape != indices.shape:
        raise ValueError(
            f"lifespan_delta must be shaped like indices {tuple(indices.shape)}, got {tuple(lifespan_delta.shape)}"
        )
    if lifespan_delta.dtype == torch.bool or lifespan_delta.is_complex():
        raise TypeError(f"lifespan_delta must be a real tensor, got dtype {lifespan_delta.dtype}")
