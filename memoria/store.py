"""The engram store: every engram of every batch row with its vector, lifespan, type and Hebbian counts.

Readers speak the algorithm's language (positions, types, the long-term window, seed noise); the slot space that
holds vectors and counts is private to this module. docs/algorithm.md, "Storage", explains the design.
"""

from typing import Dict, NamedTuple, Optional, Tuple

import torch

from .engram import EngramType
from .utils import Workspace, front_padded_positions, gather_rows, positions_mask, tuned_for_cpu

COUNT16_MAX = 2**15 - 1
"""Counts are stored as int16 while they stay at or below this, as int32 beyond."""

KEY_WINDOW_SPREAD = 1.25
"""Vectors asked for are scored in place when their slots span at most this many times their number."""


class KeyWindow(NamedTuple):
    """Stored vectors scored in place: a contiguous run of storage and where each asked-for position lies in it.

    Attributes:
        vectors: [BatchSize, K, HiddenDim] float32 view (entries not asked for hold other or stale vectors).
        sqnorm: [BatchSize, K] their squared norms.
        columns: [BatchSize, P] long, the column of each asked-for position, -1 where it holds no vector.
    """

    vectors: torch.Tensor
    sqnorm: torch.Tensor
    columns: torch.Tensor


class LongTermWindow:
    """The long-term engrams of every row, as C columns ordered by position, and their Hebbian counts.

    A column is an LTM engram of some row (``is_longterm``) or a column that row does not use. Built by
    :meth:`EngramStore.longterm_window`; valid until the store changes.

    Attributes:
        columns: C.
        is_longterm: [BatchSize, C] bool, the columns holding one of the row's LTM engrams.
        position: [BatchSize, C] long, the engram position of each column, -1 where none.
        count_bound: an upper bound on the magnitude of every count.
        most_per_row: the largest number of LTM engrams in a row.
    """

    def __init__(self, store: "EngramStore", longterm: torch.Tensor) -> None:
        self._store = store
        slots = store._slot_of.masked_fill(~longterm, -1)  # [B, N]
        self.most_per_row = store.width(EngramType.LONGTERM)
        if self.most_per_row == 0:
            self._start = self._end = 0
        elif tuned_for_cpu(store.device):  # the columns that hold LTMs: fewer columns to read
            used = slots >= 0
            self._start = int(slots.masked_fill(~used, store._slot_end).min())
            self._end = int(slots.max()) + 1
        else:  # the whole slot space: no host read-back
            self._start, self._end = 0, store._slot_end
        self.columns = self._end - self._start
        self.is_longterm = positions_mask(slots, store._slot_end)[:, self._start : self._end]  # [B, C]
        self.position = store._position_of_slot()[:, self._start : self._end]  # [B, C]
        self.count_bound = store._count_bound
        self._row_base = store._row_base() + self._start  # [B, 1]

    def column_of(self, positions: torch.Tensor, none: int = -1) -> torch.Tensor:
        """The column of each LTM position [BatchSize, K], ``none`` for -1: long [BatchSize, K]."""
        slots = self._store._slot_of.gather(1, positions.clamp(min=0))
        return (slots - self._start).masked_fill_((positions < 0) | (slots < 0), none)

    def counts_from(self, positions: torch.Tensor, batch: slice = slice(None)) -> torch.Tensor:
        """Counts from engrams that hold counts to every column.

        Args:
            positions: long [b, K] positions of the batch rows ``batch`` (-1 reads an arbitrary engram's counts).
            batch: a slice of batch rows with step 1 (default: all).

        Returns:
            [b, K, C] counts in the storage dtype (int16, or int32 once a count may exceed 2^15 - 1).
        """
        slots = self._store._slot_of[batch].gather(1, positions.clamp(min=0)).clamp(min=0)
        return self._store._count_rows(slots + (self._row_base[batch] - self._start), self._start, self._end)

    def counts_from_columns(self, columns: torch.Tensor, batch: slice = slice(None)) -> torch.Tensor:
        """Counts from the engrams in some columns [b, K] in [0, C] to every column: [b, K, C] (column C, standing
        for none, reads an unspecified row: the store keeps a spare slot beyond the window)."""
        return self._store._count_rows(columns + self._row_base[batch], self._start, self._end)


class EngramColumns:
    """The per-engram fields of a store as views of the first ``length`` columns of its buffers: ``lifespan``,
    ``engrams_types`` and ``age`` shaped [BatchSize, length] (shared by :class:`EngramStore` and the static-shape
    store)."""

    length: int
    _lifespan: torch.Tensor
    _types: torch.Tensor
    _age: Optional[torch.Tensor]

    @property
    def lifespan(self) -> torch.Tensor:
        return self._lifespan[:, : self.length]

    @property
    def engrams_types(self) -> torch.Tensor:
        return self._types[:, : self.length]

    @property
    def age(self) -> Optional[torch.Tensor]:
        return None if self._age is None else self._age[:, : self.length]


class EngramStore(EngramColumns):
    """Engrams of a batch, in creation order per row, front-padded with NULL engrams to a common length N.

    Every reader is indexed by *position*: the engram's rank in its row after front padding, which is what
    ``Memoria.remind`` returns and ``Memoria.adjust_lifespan_and_memories`` takes. Padding has type NULL, lifespan
    -1, data 0 and Hebbian count -1 with everything (0 with working memory, which starts at 0 with every
    position), as in memoria-pytorch 1.0.0.

    Storage (docs/algorithm.md, "Storage"): per-position fields live in buffers that grow by doubling and are
    compacted when engrams die; vectors and counts live in a private *slot* space that does not move when
    engrams die and is compacted only when full, so the O(B N^2) move of the counts is amortised over many steps.
    Counts are stored as int16 while every count is at most 2^15 - 1, as int32 beyond; every reader returns int32.

    Attributes (shaped [BatchSize, N, ...], N = :attr:`length`):
        data: [B, N, D] float32 vectors, detached from autograd (assembled on each access).
        lifespan: [B, N] float32 steps left to live.
        engrams_types: [B, N] uint8 :class:`EngramType` values.
        induce_counts: [B, N, N] int32 Hebbian counts (assembled on each access; the diagonal is each engram's
            fire count).
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
        self._slot_end = 0
        self._count_bound = 1  # no stored count is larger in magnitude (kept loose: it grows by 1 per firing)
        self._workspace = Workspace()  # reused buffers for large per-step temporaries
        self._widths: Dict[int, int] = {}  # engram type -> the most engrams of that type in a row, where known
        self._row_base_key: Optional[Tuple[int, torch.device]] = None
        device = torch.device(device) if device is not None else torch.device("cpu")
        self._allocate(0, device)
        self._counts = torch.full((batch_size, 0, 0), -1, dtype=torch.int16, device=device)  # widened when needed
        self._data = torch.zeros(batch_size, 0, hidden_dim, device=device)  # slot space, like the counts
        self._sqnorm = torch.zeros(batch_size, 0, device=device)

    # ------------------------------------------------------------------------------------------------ readers
    @property
    def device(self) -> torch.device:
        return self._types.device

    @property
    def data(self) -> torch.Tensor:
        """Vectors shaped [BatchSize, N, HiddenDim] in position order (assembled on each access)."""
        return self.data_at(self._all_positions())

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
        """How often each engram fired, shaped [BatchSize, N] (the diagonal of the counts; -1 for padding)."""
        slots = self._slot_of
        diagonal = self._counts.diagonal(dim1=1, dim2=2)[:, : self._slot_end]
        fired = diagonal.gather(1, slots.clamp(min=0)) if self._slot_end else torch.zeros_like(slots, dtype=torch.int32)
        return fired.masked_fill(slots < 0, -1).to(torch.int32)

    def __len__(self) -> int:
        return self.batch_size * self.length

    def __repr__(self) -> str:
        counts = {t.name: int((self.engrams_types == t.value).sum()) for t in EngramType if t is not EngramType.NULL}
        return (
            f"EngramStore(batch_size={self.batch_size}, length={self.length}, hidden_dim={self.hidden_dim}, {counts})"
        )

    def mask(self, engram_type: EngramType) -> torch.Tensor:
        """Bool mask shaped [BatchSize, N] of the engrams of one type."""
        return self.engrams_types == engram_type.value

    def positions(self, engram_type: EngramType) -> torch.Tensor:
        """Positions of one type's engrams per row in creation order, front-padded with -1: [BatchSize, K], K the
        largest number of such engrams in a row (:meth:`width`)."""
        return front_padded_positions(self.mask(engram_type), self.width(engram_type))

    def width(self, engram_type: EngramType) -> int:
        """The largest number of engrams of one type in a row: known on the host after a step (no sync), else
        read from the device once."""
        key = engram_type.value
        if key not in self._widths:
            mask = self.mask(engram_type)
            self._widths[key] = int(mask.sum(1).max()) if mask.numel() else 0
        return self._widths[key]

    def set_widths(self, widths: Dict[EngramType, int]) -> None:
        """Record what :meth:`width` returns for some types (figures the step already brought to the host)."""
        self._widths.update({t.value: w for t, w in widths.items()})

    def data_at(self, positions: torch.Tensor) -> torch.Tensor:
        """Engram vectors at some positions, zeros where the position is -1 or padding.

        Args:
            positions: long tensor shaped [BatchSize, K].

        Returns:
            float32 tensor shaped [BatchSize, K, HiddenDim].
        """
        B, K = positions.shape
        slots = gather_rows(self._slot_of, positions, -1)  # [B, K]
        flat = slots.clamp(min=0) + self._row_base()
        out = self._data.view(-1, self.hidden_dim).index_select(0, flat.flatten()).view(B, K, self.hidden_dim)
        if not tuned_for_cpu(self.device):
            return out.masked_fill_((slots < 0)[:, :, None], 0.0)
        out[(slots < 0).nonzero(as_tuple=True)] = 0.0  # padding is a few rows: write them by index
        return out

    def sqnorm_at(self, positions: torch.Tensor) -> torch.Tensor:
        """Squared norms of the vectors at some positions [BatchSize, K] (0 where -1 or padding): [BatchSize, K]."""
        slots = gather_rows(self._slot_of, positions, -1)
        return self._sqnorm.gather(1, slots.clamp(min=0)).masked_fill_(slots < 0, 0.0)

    def key_window(self, positions: torch.Tensor) -> Optional[KeyWindow]:
        """The stored vectors of ``positions`` [BatchSize, P] as one in-place run, or None when they are scattered.

        Short-term engrams are stored side by side, so scoring a run in place beats gathering their vectors;
        the engrams a graph walk found are scattered, and a run spanning them would be mostly other vectors.
        Off the CPU (:func:`~memoria.utils.tuned_for_cpu`) the run is the whole slot space: scoring more vectors
        costs an accelerator less than reading the run's bounds back.
        """
        slots = gather_rows(self._slot_of, positions, -1)  # [B, P]
        if not tuned_for_cpu(self.device):
            end = self._slot_end
            return KeyWindow(self._data[:, :end], self._sqnorm[:, :end], slots)
        valid = slots >= 0
        if not bool(valid.any()):
            return None
        start = int(slots.masked_fill(~valid, self._slot_end).min())
        end = int(slots.max()) + 1
        if end - start > slots.size(1) * KEY_WINDOW_SPREAD:
            return None
        columns = torch.where(valid, slots - start, -1)
        return KeyWindow(self._data[:, start:end], self._sqnorm[:, start:end], columns)

    def counts_at(self, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """Hebbian counts between some engrams, padding included.

        Args:
            rows: long tensor shaped [BatchSize, K] of positions (-1 reads as position 0: mask it yourself).
            columns: long tensor shaped [BatchSize, C] of positions (likewise).

        Returns:
            int32 tensor shaped [BatchSize, K, C]; padding reads -1, or 0 with working memory.
        """
        row_slots = self._slot_of.gather(1, rows.clamp(min=0))  # [B, K]
        column_slots = self._slot_of.gather(1, columns.clamp(min=0))  # [B, C]
        stored = self._count_rows(self._flat_rows(row_slots.clamp(min=0)))  # [B, K, slot_end]
        if self._slot_end == 0:
            stored = stored.new_zeros(rows.shape + columns.shape[1:])
        else:
            stored = stored.gather(2, column_slots.clamp(min=0)[:, None, :].expand(-1, rows.size(1), -1))
        working = self.mask(EngramType.WORKING)
        return _imply_padding(
            stored.to(torch.int32),
            row_slots < 0,
            column_slots < 0,
            working.gather(1, rows.clamp(min=0)),
            working.gather(1, columns.clamp(min=0)),
        )

    def longterm_window(self) -> LongTermWindow:
        """The LTM engrams of every row and their counts, for seeding and walking the long-term graph."""
        return LongTermWindow(self, self.mask(EngramType.LONGTERM))

    def seed_noise(self, entries: int) -> torch.Tensor:
        """Tie-breaking noise for seeding: ``torch.rand(B, entries, N, dtype=float16)`` on the store's device.

        Drawn from torch's generator as memoria-pytorch 1.0.0 draws it, so ``torch.manual_seed`` reproduces its
        runs. Valid until the next call.
        """
        shape = (self.batch_size, entries, self.length)
        return self._workspace.uniform("seed_noise", shape, torch.float16, self.device)

    # ---------------------------------------------------------------------------------------------- mutations
    def add_working(self, data: torch.Tensor, lifespan: float) -> None:
        """Append W WORKING engrams to every row; they start with count 0 with every position.

        Args:
            data: shaped [BatchSize, WorkingLength, HiddenDim], already on the store's device and float32.
            lifespan: their initial lifespan.
        """
        n, W = self.length, data.size(1)
        self._reserve(n + W)
        self._reserve_slots(W)
        new = slice(n, n + W)
        new_slots = slice(self._slot_end, self._slot_end + W)
        self._data[:, new_slots] = data
        self._sqnorm[:, new_slots] = data.pow(2).sum(-1)
        self._lifespan[:, new] = lifespan
        self._types[:, new] = EngramType.WORKING.value
        self._slot[:, new] = torch.arange(self._slot_end, self._slot_end + W, device=self.device)
        self._counts[:, new_slots, : self._slot_end + W] = 0
        self._counts[:, : self._slot_end + W, new_slots] = 0
        self._slot_end += W
        if self._age is not None:
            self._age[:, new] = 0
        if self._ids is not None:
            ids = torch.arange(self.next_id, self.next_id + self.batch_size * W, device=self.device)
            self._ids[:, new] = ids.view(self.batch_size, W)
            self.next_id += self.batch_size * W
        self.length = n + W
        if EngramType.WORKING.value in self._widths:
            self._widths[EngramType.WORKING.value] += W

    def fire_together(self, indices: torch.Tensor) -> None:
        """Hebbian firing: counts[i, j] += 1 for every pair of firing engrams of a row, i == j included.

        Args:
            indices: long tensor shaped [BatchSize, K] of positions; -1 is ignored and an index that appears
                twice in a row fires once.
        """
        if self.length == 0 or indices.size(1) == 0:
            return
        self.fire_mask(positions_mask(indices, self.length))

    def fire_mask(self, firing: torch.Tensor, widths: Optional[Tuple[int, int]] = None) -> None:
        """:meth:`fire_together` for the engrams of the bool mask ``firing`` [BatchSize, N].

        Args:
            widths: ``firing_widths(firing).tolist()`` if already read back (else it is read here).
        """
        if self.length == 0:
            return
        most, unstored = self.firing_widths(firing).tolist() if widths is None else widths
        self.materialise_padding(firing, unstored)
        positions = front_padded_positions(firing, most)  # [B, K] distinct positions, -1 padded at the front
        slots = self._slot_of.gather(1, positions.clamp(min=0)).clamp(min=0)  # [B, K]; padding: any cell
        self._widen_counts(self._count_bound + 1)
        weight = (positions >= 0).to(self._counts.dtype)  # padding pairs add 0
        S = self._slot_capacity
        if not tuned_for_cpu(self.device):  # one scatter over the whole batch
            cells = slots[:, :, None] * S + slots[:, None, :]  # [B, K, K] flat cells of each row block
            pairs = weight[:, :, None] * weight[:, None, :]  # [B, K, K]
            self._counts.view(self.batch_size, -1).scatter_add_(1, cells.flatten(1), pairs.flatten(1))
        else:
            for row in range(self.batch_size):  # one row at a time keeps the [K, K] cell index small
                cells = (slots[row, :, None] * S + slots[row, None, :]).view(-1)  # [K * K] flat cells of a row
                self._counts[row].view(-1).index_add_(0, cells, torch.outer(weight[row], weight[row]).view(-1))
        self._count_bound += 1

    def firing_widths(self, firing: torch.Tensor) -> torch.Tensor:
        """What :meth:`fire_mask` must know on the host, as a long tensor [2]: the most engrams firing in a row,
        and the most firing padding positions without storage in a row (see :meth:`materialise_padding`)."""
        return torch.stack([firing.sum(1).amax(), self.unstored(firing).sum(1).amax()])

    def lifespan_gain(self, indices: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """The lifespan that ``delta`` [BatchSize, K] adds at ``indices`` [BatchSize, K] (repeats add up, -1 is
        ignored), for every position: float32 [BatchSize, N]. Changes nothing."""
        n = self.length
        gain = torch.zeros(self.batch_size, n + 1, device=self.device)
        gain.scatter_add_(1, indices.masked_fill(indices < 0, n), delta.to(gain.dtype))
        return gain[:, :n]

    def set_lifespan(self, lifespan: torch.Tensor) -> None:
        """Take ``lifespan`` [BatchSize, N] as the new lifespans, one step later: live engrams age by 1."""
        self.lifespan.copy_(lifespan)
        if self._age is not None:
            self.age.add_((self.engrams_types != EngramType.NULL.value).int())

    def unstored(self, positions: torch.Tensor) -> torch.Tensor:
        """The positions of the bool mask [BatchSize, N] that are padding without storage of their own (see
        :meth:`materialise_padding`): bool [BatchSize, N]."""
        return positions & (self._slot_of < 0)

    def retype(self, positions: torch.Tensor, engram_type: EngramType) -> None:
        """Give the engrams of the bool mask ``positions`` [BatchSize, N] a new type (:meth:`width` is read anew
        unless :meth:`set_widths` says it)."""
        self.engrams_types.masked_fill_(positions, engram_type.value)
        self._widths.clear()

    def materialise_padding(self, positions: torch.Tensor, count: Optional[int] = None) -> None:
        """Padding positions of the bool mask [BatchSize, N] that will hold counts of their own (they fire, or a
        reference quirk keeps them alive) take storage now, with the counts implied so far: -1 with everything,
        0 with working memory. Call it before working memory changes type. Other positions are left alone.

        Args:
            count: the most such positions in a row, if known on the host (else it is read back).
        """
        if count is None:
            count = int(self.unstored(positions).sum(1).max()) if positions.numel() else 0
        if count == 0:
            return
        needed = self.unstored(positions)
        if self._reserve_slots(count):  # the compaction gave every position a slot
            return
        start, end = self._slot_end, self._slot_end + count
        rank = needed.cumsum(1) - 1  # [B, N]: the k-th such position of a row takes slot start + k
        self._slot[:, : self.length] = torch.where(needed, start + rank, self._slot_of)
        working_slots = self._slot_of.masked_fill(~self.mask(EngramType.WORKING), -1)
        working = positions_mask(working_slots, end)  # [B, end] slots of working memory
        self._data[:, start:end] = 0.0
        self._sqnorm[:, start:end] = 0.0
        self._counts[:, start:end, :end] = -1
        self._counts[:, :end, start:end] = -1
        self._counts[:, start:end, :end].masked_fill_(working[:, None, :], 0)
        self._counts[:, :end, start:end].masked_fill_(working[:, :, None], 0)
        self._slot_end = end

    def forget(self, keep: torch.Tensor, widths: Optional[Tuple[int, int]] = None) -> None:
        """Delete the engrams not kept and re-pad rows at the front to the new common length.

        Only per-position fields move; the storage of deleted engrams is reclaimed when the slot space is full.

        Args:
            keep: bool tensor shaped [BatchSize, N].
            widths: ``forget_widths(keep).tolist()`` if already read back (else it is read here).
        """
        length, unstored = self.forget_widths(keep).tolist() if widths is None else widths
        if length == self.length and tuned_for_cpu(self.device) and bool(keep.all()):
            return
        self.materialise_padding(keep, unstored)
        source = front_padded_positions(keep, length)  # [B, N'] old position of each new position, -1 for padding
        n = source.size(1)
        self._lifespan[:, :n] = gather_rows(self.lifespan, source, -1.0)
        self._types[:, :n] = gather_rows(self.engrams_types, source, EngramType.NULL.value)
        self._slot[:, :n] = gather_rows(self._slot_of, source, -1)
        if self._age is not None:
            self._age[:, :n] = gather_rows(self.age, source, -1)
        if self._ids is not None:
            self._ids[:, :n] = gather_rows(self.engram_ids, source, -1)
        self.length = n
        self._widths.clear()

    def forget_widths(self, keep: torch.Tensor) -> torch.Tensor:
        """What :meth:`forget` must know on the host, as a long tensor [2]: the new length (the most engrams kept
        in a row), and the most kept padding positions without storage in a row."""
        if keep.numel() == 0:
            return torch.zeros(2, dtype=torch.long, device=keep.device)
        return torch.stack([keep.sum(1).amax(), self.unstored(keep).sum(1).amax()])

    def clear_rows(self, rows: torch.Tensor) -> None:
        """Forget every engram of the chosen rows (bool tensor shaped [BatchSize])."""
        self.forget((self.engrams_types != EngramType.NULL.value) & ~rows[:, None])

    def load(self, data: torch.Tensor, lifespan: torch.Tensor, types: torch.Tensor, counts: torch.Tensor) -> None:
        """Replace the contents (data [B, N, D], lifespan [B, N], types [B, N], counts [B, N, N])."""
        n = lifespan.size(1)
        self.length = 0
        self._reserve(n)
        bound = max(1, int(counts.abs().max())) if counts.numel() else 1
        dtype = torch.int16 if bound <= COUNT16_MAX else torch.int32
        B, D = self.batch_size, self.hidden_dim
        self._counts = torch.full((B, n + 1, n + 1), -1, dtype=dtype, device=self.device)  # a spare slot beyond
        self._counts[:, :n, :n] = counts
        self._data = torch.zeros(B, n + 1, D, device=self.device)
        self._data[:, :n] = data
        self._sqnorm = self._data.pow(2).sum(-1)
        self.length = n
        self.lifespan.copy_(lifespan)
        self.engrams_types.copy_(types)
        self._count_bound = bound
        self._slot_of.copy_(torch.arange(n, device=self.device))
        self._slot_end = n
        self._widths.clear()

    def to(self, device: torch.device) -> "EngramStore":
        """Move every buffer to ``device`` (in place) and return self."""
        for name, buffer in self._position_buffers().items():
            setattr(self, name, buffer.to(device))
        self._counts = self._counts.to(device)
        self._data = self._data.to(device)
        self._sqnorm = self._sqnorm.to(device)
        self._workspace.clear()
        return self

    # ------------------------------------------------------------------------------------ private: positions
    def _allocate(self, capacity: int, device: torch.device) -> None:
        B = self.batch_size
        self._lifespan = torch.full((B, capacity), -1.0, device=device)
        self._types = torch.zeros(B, capacity, dtype=torch.uint8, device=device)
        self._slot = torch.full((B, capacity), -1, dtype=torch.long, device=device)
        self._age = torch.full((B, capacity), -1, dtype=torch.int32, device=device) if self.track_age else None
        self._ids = torch.full((B, capacity), -1, dtype=torch.long, device=device) if self.track_id else None

    def _reserve(self, length: int) -> None:
        """Grow the per-position buffers (doubling) so that ``length`` engrams fit per row."""
        capacity = self._types.size(1)
        if length <= capacity:
            return
        old = self._position_buffers()
        n = self.length
        self._allocate(max(length, 2 * capacity, 16), self.device)
        for name, buffer in old.items():
            getattr(self, name)[:, :n] = buffer[:, :n]

    def _position_buffers(self) -> Dict[str, torch.Tensor]:
        buffers = {"_lifespan": self._lifespan, "_types": self._types, "_slot": self._slot}
        if self._age is not None:
            buffers["_age"] = self._age
        if self._ids is not None:
            buffers["_ids"] = self._ids
        return buffers

    def _all_positions(self) -> torch.Tensor:
        return torch.arange(self.length, device=self.device).expand(self.batch_size, -1)

    # ---------------------------------------------------------------------------------------- private: slots
    @property
    def _slot_of(self) -> torch.Tensor:
        """The slot of each position, shaped [BatchSize, N]; -1 for padding without one (its counts are implied)."""
        return self._slot[:, : self.length]

    @property
    def _slot_capacity(self) -> int:
        return self._counts.size(1)

    def _position_of_slot(self) -> torch.Tensor:
        """Inverse of :attr:`_slot_of`: the position holding each slot, -1 for holes. Shaped [BatchSize, slot_end]."""
        slots = self._slot_of
        positions = torch.arange(self.length, device=self.device).expand_as(slots)
        inverse = torch.full((self.batch_size, self._slot_end + 1), -1, dtype=torch.long, device=self.device)
        return inverse.scatter_(1, slots.masked_fill(slots < 0, self._slot_end), positions)[:, : self._slot_end]

    def _flat_rows(self, slots: torch.Tensor) -> torch.Tensor:
        """Rows of the flat count store ([BatchSize * capacity, capacity]) holding ``slots`` [BatchSize, K]."""
        return slots + self._row_base()

    def _row_base(self) -> torch.Tensor:
        """The flat row of each batch row's slot 0, [BatchSize, 1] long (kept while the slot space keeps its size)."""
        key = (self._slot_capacity, self.device)
        if self._row_base_key != key:
            self._row_base_tensor = torch.arange(self.batch_size, device=self.device)[:, None] * self._slot_capacity
            self._row_base_key = key
        return self._row_base_tensor

    def _count_rows(self, flat: torch.Tensor, start: int = 0, end: Optional[int] = None) -> torch.Tensor:
        """Slot columns ``start:end`` of some rows [b, K] of the flat count store, copied: [b, K, end - start]."""
        S = self._slot_capacity
        end = self._slot_end if end is None else end
        if S == 0 or end <= start:
            return self._counts.new_zeros(flat.shape + (max(end - start, 0),))
        used = self._counts.view(-1, S)[:, start:end]  # [B * S, end - start] strided view
        return used.index_select(0, flat.flatten()).view(flat.shape + (end - start,))

    def _widen_counts(self, bound: int) -> None:
        """Store the counts as int32 from now on if they may reach ``bound``."""
        if self._counts.dtype == torch.int16 and bound > COUNT16_MAX:
            self._counts = self._counts.to(torch.int32)

    def _reserve_slots(self, count: int) -> bool:
        """Make room for ``count`` new slots at the frontier and one spare slot beyond (read by walkers that stand
        nowhere), compacting (and growing) the slot space if needed; returns whether it compacted.

        Compaction gives every position, padding included, the slot equal to its position, so it is the one
        place where the [B, N, N] counts move. It keeps at least 25% headroom (growing to 40% when it must
        grow), so it happens once per N / (4 W) steps or fewer.
        """
        if self._slot_end + count < self._slot_capacity:
            return False
        n = self.length
        grow = 5 * (n + count) // 4 > self._slot_capacity
        capacity = 7 * (n + count) // 5 + 16 if grow else self._slot_capacity
        self._compact_counts(capacity if grow else None)
        self._compact_vectors(capacity if grow else None)
        self._slot[:, :n] = torch.arange(n, device=self.device)
        self._slot_end = n
        return True

    def _compact_counts(self, capacity: Optional[int]) -> None:
        """Move every position's counts to the slot equal to its position (into a new buffer of ``capacity``).

        One batch row at a time, so that the only temporary is one row's [N, N] block; the old buffer is freed
        before the vectors move, so that the peak holds one old buffer besides the new ones, not two.
        """
        n, B = self.length, self.batch_size
        padding = self._slot_of < 0  # [B, N]
        index = self._slot_of.clamp(min=0)
        working = self.mask(EngramType.WORKING)
        old = self._counts
        if capacity is not None:
            self._counts = torch.empty(B, capacity, capacity, dtype=old.dtype, device=self.device)
        bound = 1
        for row in range(B):
            block = old[row].index_select(0, index[row]).index_select(1, index[row])  # [N, N]
            block = _imply_padding(block, padding[row], padding[row], working[row], working[row])
            self._counts[row, :n, :n] = block
            bound = max(bound, int(block.max()) if n else 0)
        self._count_bound = bound  # the live counts' maximum: tight again

    def _compact_vectors(self, capacity: Optional[int]) -> None:
        """Move every position's vector to the slot equal to its position (into a new buffer of ``capacity``)."""
        n, B, D = self.length, self.batch_size, self.hidden_dim
        padding = self._slot_of < 0  # [B, N]
        index = self._slot_of.clamp(min=0)
        old_data, old_sqnorm = self._data, self._sqnorm
        if capacity is not None:
            self._data = torch.empty(B, capacity, D, device=self.device)
            self._sqnorm = torch.empty(B, capacity, device=self.device)
        for row in range(B):
            self._data[row, :n] = old_data[row].index_select(0, index[row]).masked_fill_(padding[row, :, None], 0.0)
            self._sqnorm[row, :n] = old_sqnorm[row].index_select(0, index[row]).masked_fill_(padding[row], 0.0)


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
