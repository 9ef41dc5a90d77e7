"""Small tensor helpers shared by the recall algorithm and the engram store."""

import torch


def super_unique(t: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Deduplicate integer indices per row, padding shorter rows with -1.

    The result holds each distinct value of a row once, in the order that the reference implementation
    (memoria-pytorch 1.0.0) produces: a presence mask over the value range ``[min, max]`` ranked by
    ``torch.topk``. The order is an artefact of topk's tie handling but it is observable (the tutorial prints
    it), so it is part of the contract. ``-1`` is a value like any other when it occurs.

    Args:
        t: integer tensor shaped [BatchSize, Length] (``dim`` selects the deduplicated axis).
        dim: the axis to deduplicate along.

    Returns:
        integer tensor shaped [BatchSize, NumUnique] where NumUnique is the largest number of distinct values
        in a row; rows with fewer distinct values are padded with -1.
    """
    if t.dim() != 2:
        raise ValueError(f"super_unique expects a 2-d tensor, got shape {tuple(t.shape)}")
    if t.is_floating_point():
        raise TypeError(f"super_unique expects integer indices, got dtype {t.dtype}")
    if dim not in (1, -1):
        return super_unique(t.transpose(0, 1), dim=1).transpose(0, 1)
    if t.numel() == 0:
        return t.clone()
    low = t.min()
    present = torch.zeros(t.size(0), int(t.max() - low) + 1, dtype=torch.bool, device=t.device)
    present.scatter_(1, t - low, True)  # [B, ValueRange]
    return unique_from_presence(present, int(low))


def unique_from_presence(present: torch.Tensor, low: int) -> torch.Tensor:
    """:func:`super_unique` of any rows holding the values marked in ``present``.

    Args:
        present: bool tensor shaped [BatchSize, ValueRange]; column c marks the value ``low + c``.
        low: the value of column 0.

    Returns:
        long tensor shaped [BatchSize, NumUnique], in :func:`super_unique`'s order, -1 padded.
    """
    columns = present.any(dim=0).nonzero().flatten()
    if columns.numel() == 0:
        return torch.full((present.size(0), 0), -1, dtype=torch.long, device=present.device)
    first, last = int(columns[0]), int(columns[-1])
    # the order depends on the mask's extent [min, max] over the batch, so trim to it
    mask = present[:, first : last + 1].float()
    num_unique = int(present.sum(1).max())
    value, position = mask.topk(num_unique, dim=1)
    return torch.where(value > 0, position + (low + first), torch.full_like(position, -1))


def front_padded_positions(mask: torch.Tensor) -> torch.Tensor:
    """Positions of the True entries of each row, in order, padded at the front with -1.

    Args:
        mask: bool tensor shaped [BatchSize, Length].

    Returns:
        long tensor shaped [BatchSize, K] with K the largest number of True entries in a row.
    """
    length = mask.size(1)
    count = int(mask.sum(1).max()) if mask.numel() else 0
    # a stable sort puts False before True, each group in position order: the last `count` entries are the
    # selected positions, preceded by (unselected) padding
    order = torch.sort(mask.to(torch.uint8), dim=1, stable=True).indices[:, length - count :]  # [B, K]
    return torch.where(mask.gather(1, order), order, torch.full_like(order, -1))


def gather_rows(t: torch.Tensor, indices: torch.Tensor, fill: float = 0) -> torch.Tensor:
    """Gather along dim 1 with -1 meaning "padding", which reads as ``fill``.

    Args:
        t: tensor shaped [BatchSize, Length, *Rest].
        indices: long tensor shaped [BatchSize, K]; -1 marks padding.
        fill: the value padding entries read as.

    Returns:
        tensor shaped [BatchSize, K, *Rest].
    """
    valid = indices >= 0
    index = indices.clamp(min=0)
    shape = index.shape + t.shape[2:]
    index = index.view(index.shape + (1,) * (t.dim() - 2)).expand(shape)
    out = t.gather(1, index)
    return out.masked_fill(~valid.view(valid.shape + (1,) * (t.dim() - 2)), fill)


def positions_mask(indices: torch.Tensor, length: int) -> torch.Tensor:
    """Bool mask shaped [BatchSize, Length] of the non-negative positions in ``indices`` [BatchSize, K]."""
    mask = torch.zeros(indices.size(0), length + 1, dtype=torch.bool, device=indices.device)
    return mask.scatter_(1, torch.where(indices < 0, length, indices), True)[:, :length]


def unique_positions(indices: torch.Tensor, length: int) -> torch.Tensor:
    """Distinct non-negative positions per row in ascending order, padded at the end with -1: [BatchSize, K]."""
    present = positions_mask(indices, length)
    count = int(present.sum(1).max()) if present.numel() else 0
    order = torch.sort(present.to(torch.uint8), dim=1, descending=True, stable=True).indices[:, :count]
    return torch.where(present.gather(1, order), order, -1)
