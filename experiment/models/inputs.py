"""Checks of what a caller hands a segment-recurrent model: a segment's token ids, its padding mask, the rows to
reset, and the bounds of its configuration's fields. Each raises ValueError naming the argument (or field) and what
was expected, before any state changes."""

from typing import Any, Collection, Dict, Optional, Sequence, Union

import torch

Rows = Union[torch.Tensor, Sequence[int]]


def check_input_ids(input_ids: torch.Tensor, vocab_size: int, max_length: Optional[int], length_field: str) -> None:
    """Raises ValueError unless ``input_ids`` is a non-empty integer tensor [BatchSize, SegmentLength] of valid ids.

    Args:
        input_ids: the segment's token ids.
        vocab_size: ids must lie in [0, vocab_size).
        max_length: the longest segment the model takes; None: no limit.
        length_field: the configuration field that sets ``max_length``, named in the error.
    """
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or not _is_integer(input_ids.dtype):
        got = f"{input_ids.dtype} {list(input_ids.shape)}" if isinstance(input_ids, torch.Tensor) else type(input_ids)
        raise ValueError(f"input_ids must be an integer tensor shaped [BatchSize, SegmentLength], got {got}")
    batch_size, length = input_ids.shape
    if batch_size == 0:
        raise ValueError("input_ids must hold at least one row, got BatchSize 0")
    if length == 0 or (max_length is not None and length > max_length):
        raise ValueError(f"input_ids' SegmentLength must be in [1, {length_field} = {max_length}], got {length}")
    low, high = torch.aminmax(input_ids)
    low, high = int(low), int(high)
    if low < 0 or high >= vocab_size:
        raise ValueError(f"input_ids must lie in [0, vocab_size = {vocab_size}), got values in [{low}, {high}]")


def check_attention_mask(
    attention_mask: Optional[torch.Tensor], input_ids: torch.Tensor, takes_padding: bool = True
) -> Optional[torch.Tensor]:
    """The padding mask as bool [BatchSize, SegmentLength] (True at tokens), or None when none was given.

    Args:
        attention_mask: None, or 1 (True) at tokens and 0 (False) at padding, shaped like ``input_ids``.
        input_ids: the segment's token ids shaped [BatchSize, SegmentLength].
        takes_padding: False for a model that takes no padding: the mask must then be all ones.

    Raises:
        ValueError: for a mask of another shape or device, of values other than 0 and 1, or with padding where
            the model takes none.
    """
    if attention_mask is None:
        return None
    if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != input_ids.shape:
        got = list(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask)
        raise ValueError(f"attention_mask must be shaped like input_ids {list(input_ids.shape)}, got {got}")
    if attention_mask.device != input_ids.device:
        raise ValueError(f"attention_mask is on {attention_mask.device} but input_ids on {input_ids.device}")
    if attention_mask.dtype != torch.bool and not bool(((attention_mask == 0) | (attention_mask == 1)).all()):
        raise ValueError("attention_mask must hold only 0 and 1 (or be bool)")
    mask = attention_mask.bool()
    if not takes_padding and not bool(mask.all()):
        raise ValueError("attention_mask must be None or all ones: this model does not take padding inside a segment")
    return mask


def check_batch_size(memory_rows: Optional[int], input_ids: torch.Tensor) -> None:
    """Raises ValueError when the memory holds another number of rows than the segment has.

    Args:
        memory_rows: the rows the memory holds, or None while it holds none (any batch size is then taken).
        input_ids: the segment's token ids shaped [BatchSize, SegmentLength].
    """
    if memory_rows is not None and memory_rows != input_ids.size(0):
        raise ValueError(
            f"the memory holds {memory_rows} rows but input_ids has {input_ids.size(0)}; call reset_memory() before "
            "a batch of another size"
        )


def rows_to_mask(rows: Rows, batch_size: Optional[int], device: torch.device) -> Optional[torch.Tensor]:
    """The rows chosen for a reset as a bool mask [BatchSize].

    Args:
        rows: row indices (a list of ints, or an integer tensor shaped [NumRows]) or a bool mask shaped [BatchSize].
        batch_size: the rows the memory holds; None while it holds none (``rows`` is then only checked for its
            type, and None returned).
        device: where the mask should live.

    Raises:
        ValueError: for indices out of [0, BatchSize), a bool mask of another length, or rows of another type.
    """
    if not isinstance(rows, torch.Tensor):
        rows = list(rows)
        rows = torch.as_tensor(rows, dtype=None if rows else torch.long)
    if rows.dim() != 1 or not (rows.dtype == torch.bool or _is_integer(rows.dtype)):
        raise ValueError(f"rows must be integer indices shaped [NumRows] or a bool mask, got {rows.dtype} {rows.shape}")
    if rows.dtype == torch.bool:
        if batch_size is not None and rows.numel() != batch_size:
            raise ValueError(f"rows as a bool mask must be shaped [BatchSize] = [{batch_size}], got {list(rows.shape)}")
        return None if batch_size is None else rows.to(device)
    if batch_size is None:
        return None
    if rows.numel() > 0 and (int(rows.min()) < 0 or int(rows.max()) >= batch_size):
        raise ValueError(f"rows must be indices in [0, {batch_size}), got {rows.tolist()}")
    mask = torch.zeros(batch_size, dtype=torch.bool, device=device)
    mask[rows.to(device)] = True
    return mask


def check_minimums(config: Any, minimums: Dict[str, float], may_be_none: Collection[str] = ()) -> None:
    """Raises ValueError naming the first field of ``config`` (in the order of ``minimums``) below its minimum.

    Args:
        config: the configuration whose fields are read.
        minimums: {field name: the least value the field may take}.
        may_be_none: the fields of ``minimums`` that may also be None (no bound, or a default chosen later).
    """
    for name, minimum in minimums.items():
        value = getattr(config, name)
        if value is None and name in may_be_none:
            continue
        if value < minimum:
            allowed = f"None or at least {minimum}" if name in may_be_none else f"at least {minimum}"
            raise ValueError(f"{name} must be {allowed}, got {value}")


def _is_integer(dtype: torch.dtype) -> bool:
    return not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)
