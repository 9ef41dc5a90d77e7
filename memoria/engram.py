"""The engram store: every stored vector of every batch row with its lifespan, type and Hebbian counts."""

from enum import Enum
from typing import Dict, Optional

import torch

from .utils import front_padded_positions, gather_rows


class EngramType(Enum):
    """The kind of memory an engram belongs to (stored as uint8 in :attr:`Engrams.engrams_types`)."""

    NULL = 0
    WORKING = 1
    SHORTTERM = 2
    LONGTERM = 3


class Engrams:
    """Engrams of a batch, in creation order per row, front-padded with NULL engrams to a common length N.

    Storage grows by amortised doubling: the public fields are views of the first N slots of capacity-sized
    buffers, so appending working memory never re-allocates the [B, N, N] counts, and deletion compacts rows in
    place of the live region.

    Padding (and deleted) engrams have type NULL, lifespan -1, data 0 and Hebbian counts -1 with everything,
    as in the reference implementation.

    Attributes (all views shaped [BatchSize, N, ...], N = :attr:`length`):
        data: [B, N, D] float32 vectors, detached from autograd.
        lifespan: [B, N] float32 steps left to live.
        engrams_types: [B, N] uint8 :class:`EngramType` values.
        induce_counts: [B, N, N] int32 Hebbian counts; the diagonal is each engram's fire count.
        age: [B, N] int32 steps since creation (None unless ``track_age``).
        engram_ids: [B, N] int64 unique ids (None unless ``track_id``).
    """

    def __init__(
        self,
        batch_size: int,
        hidden_dim: int,
        device: Optional[torch.device] = None,
        track_age: bool = False,
        track_id: bool = False,
    ) -> None:
        self.batch_size = batch_size
        self.hidden_dim = hidden_dim
        self.track_age = track_age
        self.track_id = track_id
        self.length = 0
        self.next_id = 0
        self._allocate(0, torch.device(device) if device is not None else torch.device("cpu"))

    # ----------------------------------------------------------------------------------------------- storage
    def _allocate(self, capacity: int, device: torch.device) -> None:
        B, D = self.batch_size, self.hidden_dim
        self._data = torch.zeros(B, capacity, D, device=device)
        self._lifespan = torch.full((B, capacity), -1.0, device=device)
        self._types = torch.zeros(B, capacity, dtype=torch.uint8, device=device)
        self._counts = torch.full((B, capacity, capacity), -1, dtype=torch.int32, device=device)
        self._age = torch.full((B, capacity), -1, dtype=torch.int32, device=device) if self.track_age else None
        self._ids = torch.full((B, capacity), -1, dtype=torch.long, device=device) if self.track_id else None

    @property
    def capacity(self) -> int:
        """Slots allocated per row (>= :attr:`length`)."""
        return self._types.size(1)

    @property
    def device(self) -> torch.device:
        return self._types.device

    def _reserve(self, length: int) -> None:
        """Grow the buffers (doubling) so that ``length`` engrams fit per row."""
        if length <= self.capacity:
            return
        old = self._buffers()
        n = self.length
        self._allocate(max(length, 2 * self.capacity, 16), self.device)
        for name, buffer in old.items():
            new = getattr(self, name)
            if name == "_counts":
                new[:, :n, :n] = buffer[:, :n, :n]
            else:
                new[:, :n] = buffer[:, :n]

    def _buffers(self) -> Dict[str, torch.Tensor]:
        buffers = {"_data": self._data, "_lifespan": self._lifespan, "_types": self._types, "_counts": self._counts}
        if self._age is not None:
            buffers["_age"] = self._age
        if self._ids is not None:
            buffers["_ids"] = self._ids
        return buffers

    # ------------------------------------------------------------------------------------------------ views
    @property
    def data(self) -> torch.Tensor:
        return self._data[:, : self.length]

    @property
    def lifespan(self) -> torch.Tensor:
        return self._lifespan[:, : self.length]

    @property
    def engrams_types(self) -> torch.Tensor:
        return self._types[:, : self.length]

    @property
    def induce_counts(self) -> torch.Tensor:
        return self._counts[:, : self.length, : self.length]

    @property
    def fire_count(self) -> torch.Tensor:
        """How often each engram fired, shaped [BatchSize, N] (the diagonal of the counts)."""
        return self.induce_counts.diagonal(dim1=1, dim2=2)

    @property
    def age(self) -> Optional[torch.Tensor]:
        return None if self._age is None else self._age[:, : self.length]

    @property
    def engram_ids(self) -> Optional[torch.Tensor]:
        return None if self._ids is None else self._ids[:, : self.length]

    def data_at(self, positions: torch.Tensor) -> torch.Tensor:
        """Engram vectors at some positions, zeros where the position is -1.

        Args:
            positions: long tensor shaped [BatchSize, K].

        Returns:
            float32 tensor shaped [BatchSize, K, HiddenDim].
        """
        B, K = positions.shape
        flat = torch.arange(B, device=positions.device)[:, None] * self.capacity + positions.clamp(min=0)  # [B, K]
        out = self._data.view(-1, self.hidden_dim).index_select(0, flat.flatten()).view(B, K, self.hidden_dim)
        out[(positions < 0).nonzero(as_tuple=True)] = 0.0  # padding is a few rows: write them by index
        return out

    def counts_at(self, rows: torch.Tensor, columns: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Hebbian counts of some engrams with all or some others, read in one gather.

        Args:
            rows: long tensor shaped [BatchSize, K] of positions (>= 0).
            columns: None for all N engrams, or a long tensor shaped [BatchSize, C] of positions; -1 reads
                position 0 (mask it yourself).

        Returns:
            int32 tensor shaped [BatchSize, K, N] or [BatchSize, K, C].
        """
        C = self.capacity
        if columns is None:
            flat = torch.arange(self.batch_size, device=rows.device)[:, None] * C + rows  # [B, K]
            live_columns = self._counts.view(-1, C)[:, : self.length]  # [B * C, N] strided view
            return live_columns.index_select(0, flat.flatten()).view(self.batch_size, rows.size(1), self.length)
        base = torch.arange(self.batch_size, device=rows.device)[:, None, None] * (C * C)
        linear = base + rows[:, :, None] * C + columns.clamp(min=0)[:, None, :]  # [B, K, C]
        return self._counts.view(-1).take(linear)

    def __len__(self) -> int:
        return self.batch_size * self.length

    def __repr__(self) -> str:
        counts = {t.name: int((self.engrams_types == t.value).sum()) for t in EngramType if t is not EngramType.NULL}
        return f"Engrams(batch_size={self.batch_size}, length={self.length}, hidden_dim={self.hidden_dim}, {counts})"

    def mask(self, engram_type: EngramType) -> torch.Tensor:
        """Bool mask shaped [BatchSize, N] of the engrams of one type."""
        return self.engrams_types == engram_type.value

    def positions(self, engram_type: EngramType) -> torch.Tensor:
        """Positions of one type's engrams per row in creation order, front-padded with -1: [BatchSize, K]."""
        return front_padded_positions(self.mask(engram_type))

    # ------------------------------------------------------------------------------------------- mutations
    def add_working(self, data: torch.Tensor, lifespan: float) -> None:
        """Append W WORKING engrams to every row.

        Args:
            data: shaped [BatchSize, WorkingLength, HiddenDim], already on the store's device and float32.
            lifespan: their initial lifespan.
        """
        n, W = self.length, data.size(1)
        self._reserve(n + W)
        new = slice(n, n + W)
        self._data[:, new] = data
        self._lifespan[:, new] = lifespan
        self._types[:, new] = EngramType.WORKING.value
        # new engrams start with zero counts with every slot, padding included (as in the reference)
        self._counts[:, new, : n + W] = 0
        self._counts[:, : n + W, new] = 0
        if self._age is not None:
            self._age[:, new] = 0
        if self._ids is not None:
            self._ids[:, new] = torch.arange(self.next_id, self.next_id + self.batch_size * W, device=self.device).view(
                self.batch_size, W
            )
            self.next_id += self.batch_size * W
        self.length = n + W

    def fire_together(self, indices: torch.Tensor) -> None:
        """Hebbian firing: counts[i, j] += 1 for every pair of distinct firing engrams of a row, i == j included.

        Args:
            indices: long tensor shaped [BatchSize, K] of positions; -1 is ignored and an index that appears
                twice in a row fires once.
        """
        n = self.length
        if n == 0 or indices.size(1) == 0:
            return
        firing = torch.zeros(self.batch_size, n + 1, dtype=torch.bool, device=self.device)
        firing.scatter_(1, torch.where(indices < 0, n, indices), True)
        fired = front_padded_positions(firing[:, :n])  # [B, K'] unique positions, -1 padded
        valid = fired >= 0
        pairs = valid[:, :, None] & valid[:, None, :]  # [B, K', K']
        C = self.capacity
        rows = torch.arange(self.batch_size, device=self.device)[:, None, None] * (C * C)
        linear = rows + fired.clamp(min=0)[:, :, None] * C + fired.clamp(min=0)[:, None, :]  # [B, K', K']
        self._counts.view(-1).index_add_(
            0, linear[pairs], torch.ones((), dtype=torch.int32, device=self.device).expand(int(pairs.sum()))
        )

    def compact(self, keep: torch.Tensor) -> None:
        """Delete the engrams not kept and re-pad rows at the front to the new common length.

        Args:
            keep: bool tensor shaped [BatchSize, N]; padding entries must be False.
        """
        if bool(keep.all()):
            return
        source = front_padded_positions(keep)  # [B, N'] old position of each new slot, -1 for padding
        n = source.size(1)
        self._data[:, :n] = self.data_at(source)
        self._lifespan[:, :n] = gather_rows(self.lifespan, source, -1.0)
        self._types[:, :n] = gather_rows(self.engrams_types, source, EngramType.NULL.value)
        padding = source < 0
        kept = source.clamp(min=0)
        rows = self.counts_at(kept)  # [B, N', N] whole rows, copied by index_select
        counts = rows.gather(2, kept[:, None, :].expand(-1, n, -1))  # [B, N', N']
        batch, slot = padding.nonzero(as_tuple=True)  # padding is a few slots: write them by index
        counts[batch, slot] = -1
        counts[batch, :, slot] = -1
        self._counts[:, :n, :n] = counts
        if self._age is not None:
            self._age[:, :n] = gather_rows(self.age, source, -1)
        if self._ids is not None:
            self._ids[:, :n] = gather_rows(self.engram_ids, source, -1)
        self.length = n

    def clear_rows(self, rows: torch.Tensor) -> None:
        """Turn every engram of the chosen rows into padding, then compact.

        Args:
            rows: bool tensor shaped [BatchSize].
        """
        self.compact((self.engrams_types != EngramType.NULL.value) & ~rows[:, None])

    def to(self, device: torch.device) -> "Engrams":
        """Move every buffer to ``device`` (in place) and return self."""
        for name, buffer in self._buffers().items():
            setattr(self, name, buffer.to(device))
        return self
