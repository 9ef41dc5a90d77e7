"""Checks shared by the default and the static-shape step: the call order of a step and the working memory's form."""

from typing import Any, Tuple

import torch

STEP_ORDER = ("add_working_memory", "remind", "adjust_lifespan_and_memories")
"""The calls of one step, in order."""


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
