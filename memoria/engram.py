"""The engram store: every stored vector of every batch row with its lifespan, type and Hebbian counts."""

from enum import Enum
from typing import Dict, Optional

import torch

from .utils import Workspace, front_padded_positions, gather_rows, positions_mask

COUNT16_MAX = 2**15 - 1
"""Counts are stored as int16 while they stay at or below this, as int32 beyond."""


class EngramType(Enum):
    """The kind of memory an engram belongs to (stored as uint8 in :attr:`Engrams.engrams_types`)."""

    NULL = 0
    WORKING = 1
    SHORTTERM = 2
    LONGTERM = 3


class Engrams:
    """Engrams of a batch, in creation order per row, front-padded with NULL engrams to a common length N.

    Public fields are indexed by *position*: the engram's rank in its row after front padding, which is what
    ``remind`` returns and ``adjust_lifespan_and_memories`` takes. Padding has type NULL, lifespan -1, data 0 and
    Hebbian count -1 with everything (0 with working memory, which starts at 0 with every slot), as in the
    reference implementation.

    Storage is built so that a step costs little:

    - per-position fields (lifespan, types, slot, age, ids) live in buffers that grow by amortised doubling and
      are compacted when engrams die, which moves O(B N) numbers;
    - Hebbian counts and the vectors live in a separate *slot* space that does not move when engrams die: an
      engram keeps its slot for life, new engrams take slots at a shared frontier, dead slots become holes, and the
      slot space is compacted (and grown) only when the frontier reaches its end, so the O(B N^2) move is amortised
      over many steps. Slots increase with position for every engram that can be LONGTERM, so "the lowest position
      among equals" is "the lowest slot among equals". ``slot_of`` maps positions to slots; -1 marks padding that
      has no slot (its counts are implied);
    - counts are stored as int16 while :attr:`count_bound` (an upper bound on every count, which grows by 1 per
      firing and is made tight again at each compaction) stays below 2^15, and as int32 from then on: half the
      memory and bandwidth for the first 32,767 firings, exact always. Every public read returns int32.

    Attributes (views shaped [BatchSize, N, ...], N = :attr:`length`):
        data: [B, N, D] float32 vectors, detached from autograd.
        lifespan: [B, N] float32 steps left to live.
        engrams_types: [B, N] uint8 :class:`EngramType` values.
        induce_counts: [B, N, N] int32 Hebbian counts (a fresh tensor assembled from the slot space; the
            diagonal is each engram's fire count).
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
        self.slot_end = 0
        self.count_bound = 1  # no stored count is larger in magnitude (kept loose: it grows by 1 per firing)
        self.workspace = Workspace()  # reused buffers for large per-step temporaries
        device = torch.device(device) if device is not None else torch.device("cpu")
        self._allocate(0, device)
        self._counts = torch.full((batch_size, 0, 0), -1, dtype=torch.int16, device=device)  # widened when needed
        self._data = torch.zeros(batch_size, 0, hidden_dim, device=device)  # slot space, like the counts
        self._sqnorm = torch.zeros(batch_size, 0, device=device)

    # ----------------------------------------------------------------------------------------------- storage
    def _allocate(self, capacity: int, device: torch.device) -> None:
        B = self.batch_size
        self._lifespan = torch.full((B, capacity), -1.0, device=device)
        self._types = torch.zeros(B, capacity, dtype=torch.uint8, device=device)
        self._slot = torch.full((B, capacity), -1, dtype=torch.long, device=device)
        self._age = torch.full((B, capacity), -1, dtype=torch.int32, device=device) if self.track_age else None
        self._ids = torch.full((B, capacity), -1, dtype=torch.long, device=device) if self.track_id else None

    @property
    def capacity(self) -> int:
        """Positions allocated per row (>= :attr:`length`)."""
        return self._types.size(1)

    @property
    def slot_capacity(self) -> int:
        """Count slots allocated per row (>= :attr:`slot_end`)."""
        return self._counts.size(1)

    @property
    def device(self) -> torch.device:
        return self._types.device

    def _reserve(self, length: int) -> None:
        """Grow the per-position buffers (doubling) so that ``length`` engrams fit per row."""
        if length <= self.capacity:
            return
        old = self._position_buffers()
        n = self.length
        self._allocate(max(length, 2 * self.capacity, 16), self.device)
        for name, buffer in old.items():
            getattr(self, name)[:, :n] = buffer[:, :n]

    def _position_buffers(self) -> Dict[str, torch.Tensor]:
        buffers = {
            "_lifespan": self._lifespan,
            "_types": self._types,
            "_slot": self._slot,
        }
        if self._age is not None:
            buffers["_age"] = self._age
        if self._ids is not None:
            buffers["_ids"] = self._ids
        return buffers

    def _widen_counts(self, bound: int) -> None:
        """Store the counts as int32 from now on if they may reach ``bound`` (they start as int16: half the
        memory and bandwidth while every count is below 2^15, which a count reaches only after 32,767 firings)."""
        if self._counts.dtype == torch.int16 and bound > COUNT16_MAX:
            self._counts = self._counts.to(torch.int32)

    def _reserve_slots(self, count: int) -> None:
        """Make room for ``count`` new slots at the frontier, compacting (and growing) the slot space if needed.

        Compaction gives every position, padding included, the slot equal to its position, so it is the one
        place where the [B, N, N] counts move. It keeps at least 25% headroom (growing to 40% when it must
        grow), so it happens once per N / (4 W) steps or fewer. It goes one batch row at a time, so that its only
        temporary is one row's [N, N] block; when it grows, the counts move first and their old buffer is freed
        before the vectors move, so that the peak holds one old buffer besides the new ones, not two.
        """
        if self.slot_end + count <= self.slot_capacity:
            return
        n, B, D = self.length, self.batch_size, self.hidden_dim
        grow = 5 * (n + count) // 4 > self.slot_capacity
        capacity = 7 * (n + count) // 5 + 16 if grow else self.slot_capacity
        slots = self.slot_of
        padding = slots < 0  # [B, N]
        index = slots.clamp(min=0)
        working = self.mask(EngramType.WORKING)

        old = self._counts
        if grow:
            self._counts = torch.empty(B, capacity, capacity, dtype=old.dtype, device=self.device)
        bound = 1
        for row in range(B):
            block = old[row].index_select(0, index[row]).index_select(1, index[row])  # [N, N]
            block = _imply_padding(block, padding[row], padding[row], working[row], working[row])
            self._counts[row, :n, :n] = block
            bound = max(bound, int(block.max()) if n else 0)
        self.count_bound = bound  # the live counts' maximum: tight again
        old = block = None  # the old counts are freed before the vectors move

        old_data, old_sqnorm = self._data, self._sqnorm
        if grow:
            self._data = torch.empty(B, capacity, D, device=self.device)
            self._sqnorm = torch.empty(B, capacity, device=self.device)
        for row in range(B):
            self._data[row, :n] = old_data[row].index_select(0, index[row]).masked_fill_(padding[row, :, None], 0.0)
            self._sqnorm[row, :n] = old_sqnorm[row].index_select(0, index[row]).masked_fill_(padding[row], 0.0)
        self._slot[:, :n] = torch.arange(n, device=self.device)
        self.slot_end = n

    # ------------------------------------------------------------------------------------------------ views
    @property
    def data(self) -> torch.Tensor:
        """Vectors shaped [BatchSize, N, HiddenDim] in position order (assembled on each access)."""
        return self.data_at(self._all_positions())

    @property
    def lifespan(self) -> torch.Tensor:
        return self._lifespan[:, : self.length]

    @property
    def engrams_types(self) -> torch.Tensor:
        return self._types[:, : self.length]

    @property
    def sqnorm(self) -> torch.Tensor:
        """Squared norms of the vectors, shaped [BatchSize, N] (kept so that distances need no pass over data)."""
        return gather_rows(self.slot_sqnorm, self.slot_of, 0.0)

    @property
    def slot_data(self) -> torch.Tensor:
        """Vectors in slot order, shaped [BatchSize, slot_end, HiddenDim] (holes hold stale vectors)."""
        return self._data[:, : self.slot_end]

    @property
    def slot_sqnorm(self) -> torch.Tensor:
        """Squared norms in slot order, shaped [BatchSize, slot_end]."""
        return self._sqnorm[:, : self.slot_end]

    def _all_positions(self) -> torch.Tensor:
        return torch.arange(self.length, device=self.device).expand(self.batch_size, -1)

    @property
    def slot_of(self) -> torch.Tensor:
        """The count slot of each position, shaped [BatchSize, N]; -1 for padding without one."""
        return self._slot[:, : self.length]

    @property
    def age(self) -> Optional[torch.Tensor]:
        return None if self._age is None else self._age[:, : self.length]

    @property
    def engram_ids(self) -> Optional[torch.Tensor]:
        return None if self._ids is None else self._ids[:, : self.length]

    @property
    def induce_counts(self) -> torch.Tensor:
        """Hebbian counts shaped [BatchSize, N, N] in position order (assembled on each access)."""
        positions = self._all_positions()
        return self.counts_at(positions, positions)

    @property
    def fire_count(self) -> torch.Tensor:
        """How often each engram fired, shaped [BatchSize, N] (the diagonal of the counts)."""
        slots = self.slot_of
        diagonal = self._counts.diagonal(dim1=1, dim2=2)[:, : self.slot_end]
        fired = diagonal.gather(1, slots.clamp(min=0)) if self.slot_end else torch.zeros_like(slots, dtype=torch.int32)
        return fired.masked_fill(slots < 0, -1).to(torch.int32)

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

    def data_at(self, positions: torch.Tensor) -> torch.Tensor:
        """Engram vectors at some positions, zeros where the position is -1.

        Args:
            positions: long tensor shaped [BatchSize, K].

        Returns:
            float32 tensor shaped [BatchSize, K, HiddenDim].
        """
        B, K = positions.shape
        slots = self.slot_of.gather(1, positions.clamp(min=0)).masked_fill_(positions < 0, -1)  # [B, K]
        flat = torch.arange(B, device=positions.device)[:, None] * self.slot_capacity + slots.clamp(min=0)
        out = self._data.view(-1, self.hidden_dim).index_select(0, flat.flatten()).view(B, K, self.hidden_dim)
        out[(slots < 0).nonzero(as_tuple=True)] = 0.0  # padding is a few rows: write them by index
        return out

    def counts_at(self, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """Hebbian counts between some engrams, padding included.

        Args:
            rows: long tensor shaped [BatchSize, K] of positions (-1 reads as position 0: mask it yourself).
            columns: long tensor shaped [BatchSize, C] of positions (likewise).

        Returns:
            int32 tensor shaped [BatchSize, K, C]; padding without a slot reads -1, or 0 with working memory.
        """
        row_slots = self.slot_of.gather(1, rows.clamp(min=0))  # [B, K]
        column_slots = self.slot_of.gather(1, columns.clamp(min=0))  # [B, C]
        working = self.mask(EngramType.WORKING)
        return _imply_padding(
            self.counts_between(rows, columns).to(torch.int32),
            row_slots < 0,
            column_slots < 0,
            working.gather(1, rows.clamp(min=0)),
            working.gather(1, columns.clamp(min=0)),
        )

    def counts_between(self, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """Stored Hebbian counts between engrams that have slots: their slot rows copied whole, then the columns.

        Args:
            rows: long tensor shaped [BatchSize, K] of positions; columns: shaped [BatchSize, C]. Positions
                without a slot (and -1) read arbitrary values: use :meth:`counts_at` for those, or mask them.

        Returns:
            tensor shaped [BatchSize, K, C] of the storage type (int16, or int32 once counts may exceed 2^15 - 1).
        """
        full_rows = self.slot_rows(rows)  # [B, K, slot_end]
        if self.slot_end == 0:
            return full_rows.new_zeros(rows.shape + columns.shape[1:])
        column_slots = self.slot_of.gather(1, columns.clamp(min=0)).clamp(min=0)
        return full_rows.gather(2, column_slots[:, None, :].expand(-1, rows.size(1), -1))

    def slot_rows(
        self, rows: torch.Tensor, start: int = 0, end: Optional[int] = None, batch: slice = slice(None)
    ) -> torch.Tensor:
        """Count rows of some engrams in slot order, columns ``start:end`` of the slot space, copied row by row.

        Args:
            rows: long tensor shaped [b, K] of positions that have slots (-1 reads slot 0), for the batch rows
                ``batch`` (default: all, b = BatchSize).
            start, end: the slot columns to copy (default: all, ``0:slot_end``).
            batch: the batch rows that ``rows`` belongs to, a slice with step 1.

        Returns:
            tensor shaped [b, K, end - start] of the storage type (int16, or int32 once counts may exceed 2^15 - 1).
        """
        slots = self.slot_of[batch].gather(1, rows.clamp(min=0)).clamp(min=0)
        return self.count_rows(self.flat_slot_rows(slots, batch), start, end)

    def flat_slot_rows(self, slots: torch.Tensor, batch: slice = slice(None)) -> torch.Tensor:
        """The rows of the flat count store ([BatchSize * slot_capacity, slot_capacity]) holding ``slots`` [b, K]
        of the batch rows ``batch``: shaped [b, K]."""
        return torch.arange(self.batch_size, device=slots.device)[batch, None] * self.slot_capacity + slots

    def count_rows(self, flat: torch.Tensor, start: int = 0, end: Optional[int] = None) -> torch.Tensor:
        """Columns ``start:end`` of some rows of the flat count store (see :meth:`flat_slot_rows`), copied.

        Args:
            flat: long tensor shaped [b, K].

        Returns:
            tensor shaped [b, K, end - start] of the storage type (int16, or int32 once counts may exceed 2^15 - 1).
        """
        S = self.slot_capacity
        end = self.slot_end if end is None else end
        if S == 0 or end <= start:
            return self._counts.new_zeros(flat.shape + (max(end - start, 0),))
        used = self._counts.view(-1, S)[:, start:end]  # [B * S, end - start] strided view
        return used.index_select(0, flat.flatten()).view(flat.shape + (end - start,))

    def position_of_slot(self) -> torch.Tensor:
        """Inverse of :attr:`slot_of`: the position holding each slot, -1 for holes. Shaped [BatchSize, slot_end]."""
        slots = self.slot_of
        positions = torch.arange(self.length, device=self.device).expand_as(slots)
        inverse = torch.full((self.batch_size, self.slot_end + 1), -1, dtype=torch.long, device=self.device)
        return inverse.scatter_(1, torch.where(slots < 0, self.slot_end, slots), positions)[:, : self.slot_end]

    # ------------------------------------------------------------------------------------------- mutations
    def add_working(self, data: torch.Tensor, lifespan: float) -> None:
        """Append W WORKING engrams to every row.

        Args:
            data: shaped [BatchSize, WorkingLength, HiddenDim], already on the store's device and float32.
            lifespan: their initial lifespan.
        """
        n, W = self.length, data.size(1)
        self._reserve(n + W)
        self._reserve_slots(W)
        new = slice(n, n + W)
        new_slots = slice(self.slot_end, self.slot_end + W)
        self._data[:, new_slots] = data
        self._sqnorm[:, new_slots] = data.pow(2).sum(-1)
        self._lifespan[:, new] = lifespan
        self._types[:, new] = EngramType.WORKING.value
        self._slot[:, new] = torch.arange(self.slot_end, self.slot_end + W, device=self.device)
        # new engrams start with zero counts with every slot, padding included (as in the reference)
        self._counts[:, new_slots, : self.slot_end + W] = 0
        self._counts[:, : self.slot_end + W, new_slots] = 0
        self.slot_end += W
        if self._age is not None:
            self._age[:, new] = 0
        if self._ids is not None:
            self._ids[:, new] = torch.arange(self.next_id, self.next_id + self.batch_size * W, device=self.device).view(
                self.batch_size, W
            )
            self.next_id += self.batch_size * W
        self.length = n + W

    def give_slots(self, positions: torch.Tensor) -> None:
        """Give slots to padding positions that are about to hold counts of their own (they fire or survive).

        Their counts start as the implied ones: -1 with everything, 0 with working memory.

        Args:
            positions: bool tensor shaped [BatchSize, N]; positions that already have a slot are left alone.
        """
        needed = positions & (self.slot_of < 0)
        per_row = needed.sum(1)
        count = int(per_row.max()) if needed.numel() else 0
        if count == 0:
            return
        self._reserve_slots(count)
        if not bool((needed & (self.slot_of < 0)).any()):  # the compaction gave every position a slot
            return
        start, end = self.slot_end, self.slot_end + count
        rank = needed.cumsum(1) - 1  # [B, N]: the k-th such position of a row takes slot start + k
        self._slot[:, : self.length] = torch.where(needed, start + rank, self.slot_of)
        working = torch.zeros(self.batch_size, end + 1, dtype=torch.bool, device=self.device)
        working_slots = self.slot_of.masked_fill(~self.mask(EngramType.WORKING), end)
        working = working.scatter_(1, working_slots, True)[:, :end]  # [B, end] slots of working memory
        self._data[:, start:end] = 0.0
        self._sqnorm[:, start:end] = 0.0
        self._counts[:, start:end, :end] = -1
        self._counts[:, :end, start:end] = -1
        self._counts[:, start:end, :end].masked_fill_(working[:, None, :], 0)
        self._counts[:, :end, start:end].masked_fill_(working[:, :, None], 0)
        self.slot_end = end

    def fire_together(self, indices: torch.Tensor) -> None:
        """Hebbian firing: counts[i, j] += 1 for every pair of firing engrams of a row, i == j included.

        Args:
            indices: long tensor shaped [BatchSize, K] of positions; -1 is ignored and an index that appears
                twice in a row fires once.
        """
        n = self.length
        if n == 0 or indices.size(1) == 0:
            return
        firing = positions_mask(indices, n)
        self.give_slots(firing)
        positions = front_padded_positions(firing)  # [B, K] distinct positions, -1 padded at the front
        slots = self.slot_of.gather(1, positions.clamp(min=0)).clamp(min=0)  # [B, K]; padding: any cell
        self._widen_counts(self.count_bound + 1)
        weight = (positions >= 0).to(self._counts.dtype)  # padding pairs add 0
        S = self.slot_capacity
        for row in range(self.batch_size):  # one row at a time keeps the [K, K] cell index small
            cells = (slots[row, :, None] * S + slots[row, None, :]).view(-1)  # [K * K] flat cells of the row block
            self._counts[row].view(-1).index_add_(0, cells, torch.outer(weight[row], weight[row]).view(-1))
        self.count_bound += 1

    def compact(self, keep: torch.Tensor) -> None:
        """Delete the engrams not kept and re-pad rows at the front to the new common length.

        Only per-position fields move; the slots of deleted engrams become holes in the count space.

        Args:
            keep: bool tensor shaped [BatchSize, N]; padding entries must be False.
        """
        if bool(keep.all()):
            return
        self.give_slots(keep)  # kept padding (rewarded by a reference quirk) keeps its counts from now on
        source = front_padded_positions(keep)  # [B, N'] old position of each new slot, -1 for padding
        n = source.size(1)
        self._lifespan[:, :n] = gather_rows(self.lifespan, source, -1.0)
        self._types[:, :n] = gather_rows(self.engrams_types, source, EngramType.NULL.value)
        self._slot[:, :n] = gather_rows(self.slot_of, source, -1)
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

    def load(self, data: torch.Tensor, lifespan: torch.Tensor, types: torch.Tensor, counts: torch.Tensor) -> None:
        """Replace the contents (data [B, N, D], lifespan [B, N], types [B, N], counts [B, N, N])."""
        n = lifespan.size(1)
        self.length = 0
        self._reserve(n)
        bound = max(1, int(counts.abs().max())) if counts.numel() else 1
        dtype = torch.int16 if bound <= COUNT16_MAX else torch.int32
        self._counts = torch.empty(self.batch_size, n, n, dtype=dtype, device=self.device)
        self._data = data.to(self.device, torch.float32).clone()
        self._sqnorm = self._data.pow(2).sum(-1)
        self.length = n
        self.lifespan.copy_(lifespan)
        self.engrams_types.copy_(types)
        self._counts.copy_(counts)
        self.count_bound = bound
        self.slot_of.copy_(torch.arange(n, device=self.device))
        self.slot_end = n

    def to(self, device: torch.device) -> "Engrams":
        """Move every buffer to ``device`` (in place) and return self."""
        for name, buffer in self._position_buffers().items():
            setattr(self, name, buffer.to(device))
        self._counts = self._counts.to(device)
        self._data = self._data.to(device)
        self._sqnorm = self._sqnorm.to(device)
        self.workspace.clear()
        return self


def _imply_padding(
    counts: torch.Tensor,
    row_padding: torch.Tensor,
    column_padding: torch.Tensor,
    row_working: torch.Tensor,
    column_working: torch.Tensor,
) -> torch.Tensor:
    """Write the implied counts of padding without a slot: -1 with everything, 0 with working memory.

    Args:
        counts: [..., K, C] counts read at slot 0 where a side has no slot (modified in place and returned).
        row_padding, row_working: [..., K] bool; column_padding, column_working: [..., C] bool.
    """
    if not (bool(row_padding.any()) or bool(column_padding.any())):
        return counts
    counts.masked_fill_(row_padding[..., :, None] | column_padding[..., None, :], -1)
    return counts.masked_fill_(
        (row_padding[..., :, None] & column_working[..., None, :])
        | (row_working[..., :, None] & column_padding[..., None, :]),
        0,
    )
