"""Small tensor helpers shared by the recall algorithm and the engram store."""

from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch

INT32_MAX = 2**31 - 1

_accelerator_path_forced = False


def tuned_for_cpu(device: torch.device) -> bool:
    """Whether the step takes its CPU-tuned variants on ``device``.

    On a CPU a host read-back costs nothing and small temporaries stay in cache, so the step reads exact widths
    back eagerly, exits loops early and goes a few batch rows at a time. On an accelerator every launch and every
    read-back costs several microseconds of host time, so the step takes upper-bound widths, whole-batch ops and
    one read-back per phase instead. Both give the same results. :func:`accelerator_path` forces the latter on CPU.
    """
    return device.type == "cpu" and not _accelerator_path_forced


@contextmanager
def accelerator_path() -> Iterator[None]:
    """Within the block, CPU tensors take the accelerator path (for counting its launches and host syncs on a CPU,
    and for testing it there)."""
    global _accelerator_path_forced
    previous, _accelerator_path_forced = _accelerator_path_forced, True
    try:
        yield
    finally:
        _accelerator_path_forced = previous


def super_unique(t: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Deduplicate integer values along one axis, padding shorter lines with -1.

    Each line of ``t`` along ``dim`` (a row, for a 2-d tensor and ``dim=1``) keeps each of its distinct values
    once, in the order that memoria-pytorch 1.0.0 produces: a presence mask over the value range ``[min, max]``
    of the whole tensor, ranked by ``torch.topk``. The order is an artefact of topk's tie handling but it is
    observable (the tutorial prints it), so it is part of the contract. ``-1`` is a value like any other when it
    occurs.

    Args:
        t: integer tensor of any rank >= 1, e.g. shaped [BatchSize, Length].
        dim: the axis to deduplicate along.

    Returns:
        integer tensor shaped like ``t`` except along ``dim``, whose size becomes the largest number of distinct
        values in a line; lines with fewer distinct values are padded with -1. An empty ``t`` comes back as a copy.
    """
    if not isinstance(t, torch.Tensor) or t.dim() == 0:
        raise ValueError(
            f"super_unique expects a tensor of rank >= 1, got {t if not isinstance(t, torch.Tensor) else t.shape}"
        )
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"super_unique expects integer indices, got dtype {t.dtype}")
    if not -t.dim() <= dim < t.dim():
        raise ValueError(f"dim must be in [{-t.dim()}, {t.dim()}) for a {t.dim()}-d tensor, got {dim}")
    if t.numel() == 0:
        return t.clone()
    if t.dim() != 2 or dim not in (1, -1):  # any other layout: lines as the rows of a 2-d tensor
        lines = t.movedim(dim, -1)
        unique = super_unique(lines.reshape(-1, lines.size(-1)), dim=1)  # [Lines, NumUnique]
        return unique.view(lines.shape[:-1] + unique.shape[-1:]).movedim(-1, dim)
    low = t.min()
    present = torch.zeros(t.size(0), int(t.max() - low) + 1, dtype=torch.bool, device=t.device)
    present.scatter_(1, t - low, True)  # [B, ValueRange]
    return unique_from_presence(present, int(low))


def presence_extent(present: torch.Tensor) -> torch.Tensor:
    """What :func:`unique_from_presence` needs to know of ``present`` [BatchSize, ValueRange] on the host, as a
    long tensor [3]: the first and last columns marked in any row (arbitrary when none is), and the most values a
    row holds. Read it back together with other figures to spend one host sync on all of them."""
    if present.numel() == 0:
        return torch.zeros(3, dtype=torch.long, device=present.device)
    marked = present.any(dim=0).to(torch.uint8)  # [ValueRange]
    first = marked.argmax()  # the first marked column
    last = (marked.size(0) - 1) - marked.flip(0).argmax()  # the last
    return torch.stack([first, last, present.sum(1).amax()])


def unique_from_presence(present: torch.Tensor, low: int, extent: Optional[List[int]] = None) -> torch.Tensor:
    """:func:`super_unique` of any rows holding the values marked in ``present``.

    Args:
        present: bool tensor shaped [BatchSize, ValueRange]; column c marks the value ``low + c``.
        low: the value of column 0.
        extent: ``presence_extent(present).tolist()`` if already read back (else it is read here).

    Returns:
        long tensor shaped [BatchSize, NumUnique], in :func:`super_unique`'s order, -1 padded.
    """
    first, last, num_unique = presence_extent(present).tolist() if extent is None else extent
    if num_unique == 0:
        return torch.full((present.size(0), 0), -1, dtype=torch.long, device=present.device)
    # the order depends on the mask's extent [min, max] over the batch, so trim to it
    mask = present[:, first : last + 1].float()
    value, position = mask.topk(num_unique, dim=1)
    return position.add_(low + first).masked_fill_(value <= 0, -1)


def front_padded_positions(mask: torch.Tensor, width: Optional[int] = None, fill: int = -1) -> torch.Tensor:
    """Positions of the True entries of each row, in order, padded at the front with -1.

    Args:
        mask: bool tensor shaped [BatchSize, Length].
        width: K, when known on the host to be at least the largest number of True entries in a row (no host
            sync then); by default that number, read from the device.
        fill: the padding value.

    Returns:
        long tensor shaped [BatchSize, K].
    """
    B, length = mask.shape
    if width is not None and not tuned_for_cpu(mask.device):  # one sort: fewer launches than the scatter below
        values, order = torch.sort(mask, dim=1, stable=True)  # [B, Length]: True entries last, in order
        K = min(width, length)
        out = order[:, length - K :].masked_fill_(~values[:, length - K :], fill)  # [B, K]
        return out if K == width else torch.cat([out.new_full((B, width - K), fill), out], dim=1)
    count = mask.sum(1)  # [B]
    K = width if width is not None else int(count.max()) if mask.numel() else 0
    # the i-th True entry of a row goes to column K - count + i; the others to a discarded column K
    rank = torch.where(mask, mask.cumsum(1) - 1 + (K - count)[:, None], K)  # [B, Length]
    out = torch.full((B, K + 1), fill, dtype=torch.long, device=mask.device)
    return out.scatter_(1, rank, torch.arange(length, device=mask.device).expand(B, -1))[:, :K]


def gather_rows(t: torch.Tensor, indices: torch.Tensor, fill: float = 0) -> torch.Tensor:
    """Gather along dim 1 with -1 meaning "padding", which reads as ``fill``.

    Args:
        t: tensor shaped [BatchSize, Length, *Rest].
        indices: long tensor shaped [BatchSize, K]; -1 marks padding.
        fill: the value padding entries read as.

    Returns:
        tensor shaped [BatchSize, K, *Rest].
    """
    index = indices.clamp(min=0)
    shape = index.shape + t.shape[2:]
    index = index.view(index.shape + (1,) * (t.dim() - 2)).expand(shape)
    out = t.gather(1, index)
    return out.masked_fill_((indices < 0).view(indices.shape + (1,) * (t.dim() - 2)), fill)


def positions_mask(indices: torch.Tensor, length: int) -> torch.Tensor:
    """Bool mask shaped [BatchSize, Length] of the non-negative positions in ``indices`` [BatchSize, K]."""
    mask = torch.zeros(indices.size(0), length + 1, dtype=torch.bool, device=indices.device)
    return mask.scatter_(1, indices.masked_fill(indices < 0, length), True)[:, :length]


def unique_positions(indices: torch.Tensor, length: int, width: Optional[int] = None) -> torch.Tensor:
    """Distinct non-negative positions per row in ascending order, padded at the end with -1: [BatchSize, K].

    ``width``: K, when known on the host to be at least the largest number of distinct positions in a row (no
    host sync then); by default that number, read from the device."""
    present = positions_mask(indices, length)
    return unique_positions_from_mask(present, width)


def unique_positions_from_mask(present: torch.Tensor, width: Optional[int] = None) -> torch.Tensor:
    """:func:`unique_positions` of the positions marked in the bool mask ``present`` [BatchSize, Length]."""
    count = width if width is not None else int(present.sum(1).max()) if present.numel() else 0
    order = torch.sort(present.to(torch.uint8), dim=1, descending=True, stable=True).indices[:, :count]
    return torch.where(present.gather(1, order), order, -1)


class FirstMax:
    """``values.masked_fill(~allowed, -inf).max(dim=2)`` for integer values [BatchSize, K, C], in three parts.

    Each value becomes one fused key ``value * C + (C - 1 - column)``, with disallowed columns pushed below every
    allowed key, reduced with ``amax``: on CPUs an index-returning ``max`` and a broadcast ``masked_fill`` each
    cost several times a plain reduction. :meth:`bias` is computed once per mask, :meth:`keys` once per chunk of
    rows, :meth:`decode` once. Keys are int32 when ``bound`` allows it, int64 otherwise; either way the result
    is exact: the largest allowed value and its first (lowest) column.

    Args:
        columns: C.
        bound: a bound on the magnitude of the values (need not be tight).
        device: where the values live.
    """

    def __init__(self, columns: int, bound: int, device: torch.device) -> None:
        self.columns = columns
        self.bound = bound
        self.key_type = torch.int32 if (3 * bound + 2) * max(columns, 1) <= INT32_MAX else torch.int64
        self.offset = (2 * bound + 1) * columns  # moves a disallowed key below the smallest allowed one
        self.reverse = torch.arange(columns - 1, -1, -1, dtype=self.key_type, device=device)  # [C]

    def bias(self, allowed: torch.Tensor) -> torch.Tensor:
        """The column part of the keys, shaped [BatchSize, C], from the bool mask ``allowed`` [BatchSize, C]."""
        return torch.where(allowed, self.reverse, self.reverse - self.offset)

    def keys(self, values: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """The best key of each row of ``values`` [b, K, C] (entries in [-bound, bound]), shaped [b, K]."""
        return torch.add(bias[:, None, :], values.to(self.key_type), alpha=self.columns).amax(dim=2)

    def decode(self, key: torch.Tensor, fill: int = -1) -> Tuple[torch.Tensor, torch.Tensor]:
        """Best keys [BatchSize, K] -> (best value, ``fill`` where nothing is allowed; its column), long tensors."""
        C = self.columns
        best = torch.div(key, C, rounding_mode="floor")
        column = (C - 1) - (key - best * C)
        return torch.where(key >= -self.bound * C, best, fill).long(), column.long()


def best_count_then_noise(
    counts: Optional[torch.Tensor], bits: Optional[torch.Tensor], allowed: torch.Tensor, bound: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per entry, the allowed column with the highest count, then the most noise, then the lowest column.

    This is the reference's choice at every count (probed up to 2^30): the noise only ever breaks ties between
    equal counts, never rounds away in a sum. Computed with int32 (int64 for huge counts) and int16 passes.

    Args:
        counts: integer [b, E, C] (the store's int16 or int32), or None when every count is equal (the noise
            alone decides).
        bits: the noise as int16 bit patterns of float16 values in [0, 1), [b, E, C], or None: no noise (the lowest
            column among equal counts).
        allowed: bool [b, C].
        bound: a bound on the counts' magnitude.

    Returns:
        linked: bool [b, E] (or [b, 1] without counts), whether the highest allowed count is >= 1;
        column: long [b, E] (arbitrary for an entry with no allowed column).
    """
    key_type = torch.int32 if bound < 2**30 else torch.int64
    penalty = allowed.to(key_type).sub_(1).mul_(bound + 2)[:, None, :]  # [b, 1, C]: disallowed fall below -1
    key = penalty if counts is None else torch.add(counts.to(key_type), penalty)  # [b, E, C]
    if bits is None:
        top, column = key.max(dim=2)  # the first column among equals
        return top >= 1, column
    top = key.amax(dim=2, keepdim=True)  # [b, E, 1] the highest allowed count
    column = bits.masked_fill(key != top, -1).argmax(dim=2)  # the most noise, then the lowest column
    return top.squeeze(2) >= 1, column


def batch_chunks(
    batch_size: int, bytes_per_row: int, budget: int = 4 << 20, device: Optional[torch.device] = None
) -> Iterator[slice]:
    """Slices of batch rows whose temporaries (``bytes_per_row`` each) fit in about ``budget`` bytes.

    Large temporaries are slow on CPUs twice over: they fall out of cache, and each fresh allocation of more
    than a few MB is mapped and page-faulted anew. Row chunks keep both small. Off the CPU (``device``, see
    :func:`tuned_for_cpu`) chunks would only multiply launches: the whole batch is one slice.
    """
    if device is not None and not tuned_for_cpu(device):
        yield slice(0, batch_size)
        return
    step = max(1, budget // max(bytes_per_row, 1))
    for start in range(0, batch_size, step):
        yield slice(start, min(start + step, batch_size))


class Workspace:
    """Buffers kept from step to step for the few temporaries that are large by nature (allocating them anew
    each step costs page faults on CPUs)."""

    def __init__(self) -> None:
        self._buffers: Dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: Sequence[int], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """An uninitialised tensor shaped ``shape``, backed by the buffer ``name`` (grown with 25% headroom)."""
        numel = 1
        for size in shape:
            numel *= size
        buffer = self._buffers.get(name)
        if buffer is None or buffer.numel() < numel or buffer.dtype != dtype or buffer.device != device:
            buffer = torch.empty(numel + numel // 4, dtype=dtype, device=device)
            self._buffers[name] = buffer
        return buffer[:numel].view(tuple(shape))

    def uniform(self, name: str, shape: Sequence[int], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """``torch.rand(shape, dtype=dtype, device=device)`` drawn into the buffer ``name``: the same numbers from
        the same generator. Valid until the next call with this name."""
        return self.get(name, shape, dtype, device).uniform_()

    def clear(self) -> None:
        """Free every buffer."""
        self._buffers.clear()
