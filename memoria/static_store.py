"""Fixed-capacity engram storage for ``Memoria(static_shapes=True)``: every buffer keeps its shape and address.

Slot layout (docs/algorithm.md, "Static shapes"): each batch row has C = W + stm_capacity + max_ltm_per_row
engram slots and one *sentinel* slot, index C. An engram takes a free slot when it is created and keeps it for
life, whatever its type; when it dies its slot becomes free (type NULL) and is reused. The sentinel never holds
an engram: its vector and its counts stay zero, and it stands for "no engram" in fixed-width index lists, so
that gathering at it reads a zero vector (or zero counts) and firing it adds nothing anywhere it matters.

Slot order is not creation order (slots are reused); creation order is the order of the engram ids, which grow
with every engram created (:meth:`StaticEngramStore.birth_order`).

The store never reads a tensor on the host: each method is a fixed sequence of tensor operations whose shapes
depend only on B, W, D and C, so a step can be compiled into one graph and captured in a CUDA graph.
"""

from typing import Dict, Optional

import torch

from .engram import EngramType
from .store import EngramColumns

NULL, WORKING, SHORTTERM, LONGTERM = (t.value for t in EngramType)
NEWEST = torch.iinfo(torch.int64).max
"""The id kept for a free slot (read as -1): later than every engram's, so free slots sort last by birth."""


class StaticEngramStore(EngramColumns):
    """Engrams of a batch in C fixed slots per row plus a sentinel (slot C); readers cover the C slots.

    Args:
        batch_size: B.
        working_length: W, the working engrams every step adds.
        hidden_dim: D.
        capacity: C, the engram slots of a row (at least every engram a row can hold at once).
        reminded_length: R, the fixed width of ``remind()``'s result.
        device: where every buffer lives.
        track_age: keep :attr:`age`.
        track_id: expose :attr:`engram_ids` (ids are always kept: they define creation order).

    Attributes (slot layout; free slots read as type NULL, lifespan -1, id -1, age -1):
        data: [B, C, D] float32 vectors.
        lifespan: [B, C] float32.
        engrams_types: [B, C] uint8 :class:`EngramType` values.
        induce_counts: [B, C, C] int32 Hebbian counts (stale where a side is a free slot).
        age: [B, C] int32 (None unless ``track_age``).
        engram_ids: [B, C] int64 (None unless ``track_id``).
    """

    def __init__(
        self,
        batch_size: int,
        working_length: int,
        hidden_dim: int,
        capacity: int,
        reminded_length: int,
        device: torch.device,
        track_age: bool = False,
        track_id: bool = False,
    ) -> None:
        B, W, D, C = batch_size, working_length, hidden_dim, capacity
        self.batch_size, self.working_length, self.hidden_dim, self.capacity = B, W, D, C
        self.sentinel = C
        self.track_age, self.track_id = track_age, track_id
        S = C + 1  # slots plus the sentinel
        self._data = torch.zeros(B, S, D, device=device)
        self._sqnorm = torch.zeros(B, S, device=device)
        self._lifespan = torch.full((B, S), -1.0, device=device)
        self._types = torch.zeros(B, S, dtype=torch.uint8, device=device)
        self._counts = torch.zeros(B, S, S, dtype=torch.int32, device=device)
        self._ids = torch.full((B, S), NEWEST, dtype=torch.long, device=device)
        self._age = torch.full((B, S), -1, dtype=torch.int32, device=device) if track_age else None
        self._next_id = torch.zeros((), dtype=torch.long, device=device)
        self._new_ids = torch.arange(B * W, device=device).view(B, W)  # ids of a step's engrams, less next_id
        self._slot_numbers = torch.arange(S, device=device).expand(B, S)
        self._seniority = torch.arange(S - 1, -1, -1, dtype=torch.int32, device=device).expand(B, S)  # S - 1, ...
        self.working = torch.full((B, W), C, dtype=torch.long, device=device)  # this step's working slots
        self.reminded = torch.full((B, reminded_length), C, dtype=torch.long, device=device)  # this step's remind()

    # ------------------------------------------------------------------------------------------------ readers
    @property
    def device(self) -> torch.device:
        return self._types.device

    @property
    def length(self) -> int:
        """C: readers cover every slot, free ones included (as NULL engrams)."""
        return self.capacity

    @property
    def data(self) -> torch.Tensor:
        return self._data[:, : self.capacity]

    @property
    def induce_counts(self) -> torch.Tensor:
        return self._counts[:, : self.capacity, : self.capacity]

    @property
    def engram_ids(self) -> Optional[torch.Tensor]:
        if not self.track_id:
            return None
        ids = self._ids[:, : self.capacity]
        return ids.masked_fill(ids == NEWEST, -1)

    def __len__(self) -> int:
        return self.batch_size * self.capacity

    def __repr__(self) -> str:
        counts = {t.name: int((self.engrams_types == t.value).sum()) for t in EngramType if t is not EngramType.NULL}
        return (
            f"StaticEngramStore(batch_size={self.batch_size}, capacity={self.capacity}, "
            f"hidden_dim={self.hidden_dim}, {counts})"
        )

    def mask(self, engram_type: EngramType) -> torch.Tensor:
        """Bool mask shaped [BatchSize, C + 1] of the slots holding one type's engrams (the sentinel never does)."""
        return self._types == engram_type.value

    def live(self) -> torch.Tensor:
        """Bool mask shaped [BatchSize, C + 1] of the slots holding an engram."""
        return self._types != NULL

    def data_at(self, slots: torch.Tensor) -> torch.Tensor:
        """Vectors at ``slots`` [BatchSize, K] (the sentinel reads zeros): [BatchSize, K, HiddenDim]."""
        return self._data.gather(1, slots[:, :, None].expand(-1, -1, self.hidden_dim))

    def vectors(self) -> torch.Tensor:
        """Every slot's vector, sentinel included: [BatchSize, C + 1, HiddenDim] (a view)."""
        return self._data

    def sqnorms(self) -> torch.Tensor:
        """Every slot's squared norm, sentinel included: [BatchSize, C + 1] (a view)."""
        return self._sqnorm

    def lifespans(self) -> torch.Tensor:
        """Every slot's lifespan, sentinel included: [BatchSize, C + 1] (a view)."""
        return self._lifespan

    def counts_from(self, slots: torch.Tensor) -> torch.Tensor:
        """The count rows of ``slots`` [BatchSize, K] to every slot: int32 [BatchSize, K, C + 1] (sentinel: 0)."""
        return self._counts.gather(1, slots[:, :, None].expand(-1, -1, self.capacity + 1))

    def birth_order(self) -> torch.Tensor:
        """Slots oldest engram first, free slots last: long [BatchSize, C + 1]."""
        return self._ids.argsort(dim=1)

    def seniority(self, order: torch.Tensor) -> torch.Tensor:
        """Each slot's rank from :meth:`birth_order`, the oldest engram C, the last free slot 0: int32 [B, C + 1]."""
        return torch.empty(order.shape, dtype=torch.int32, device=order.device).scatter_(1, order, self._seniority)

    # ---------------------------------------------------------------------------------------------- mutations
    def add_working(self, data: torch.Tensor, lifespan: float) -> None:
        """Write W new WORKING engrams into the lowest free slots of every row (in order, so that slot order
        within a step is creation order); they start with count 0 with every slot.

        Args:
            data: float32 shaped [BatchSize, WorkingLength, HiddenDim] on the store's device.
            lifespan: their initial lifespan.
        """
        C, S = self.capacity, self.capacity + 1
        free_first = torch.add(self._slot_numbers[:, :C], self._types[:, :C], alpha=S)  # [B, C]: free slots < S
        slots = free_first.topk(self.working_length, dim=1, largest=False).indices  # [B, W] ascending
        self.working.copy_(slots)
        self._data.scatter_(1, slots[:, :, None].expand(-1, -1, self.hidden_dim), data)
        self._sqnorm.scatter_(1, slots, data.pow(2).sum(-1))
        self._lifespan.scatter_(1, slots, float(lifespan))
        self._types.scatter_(1, slots, WORKING)
        self._ids.scatter_(1, slots, self._new_ids + self._next_id)
        self._next_id.add_(self._new_ids.numel())
        if self._age is not None:
            self._age.scatter_(1, slots, 0)
        self._counts.scatter_(1, slots[:, :, None].expand(-1, -1, S), 0)
        self._counts.scatter_(2, slots[:, None, :].expand(-1, S, -1), 0)

    @property
    def count_ceiling(self) -> int:
        """Counts stop growing here, so that a count times C + 1 plus a slot rank fits an int32 (graph walks rank
        moves by such keys); over a million firings of one pair at any usual capacity."""
        return (2**31 - 1) // (self.capacity + 1) - 2

    def fire_together(self, slots: torch.Tensor) -> None:
        """Hebbian firing: counts[i, j] += 1 for every pair of the distinct ``slots`` [BatchSize, K] of a row,
        i == j included, up to :attr:`count_ceiling`; sentinel entries add nothing."""
        S = self.capacity + 1
        counts = self._counts.view(self.batch_size, S * S)
        cells = (slots[:, :, None] * S + slots[:, None, :]).flatten(1)  # [B, K * K] cells of each row's count block
        real = slots != self.sentinel
        weight = (real[:, :, None] & real[:, None, :]).flatten(1) & (counts.gather(1, cells) < self.count_ceiling)
        counts.scatter_add_(1, cells, weight.to(torch.int32))

    def add_lifespan(self, slots: torch.Tensor, delta: torch.Tensor) -> None:
        """Add ``delta`` [BatchSize, K] to the lifespan at ``slots`` [BatchSize, K] (repeats add up; the
        sentinel's lifespan is restored to -1)."""
        self._lifespan.scatter_add_(1, slots, delta)
        self._lifespan[:, self.sentinel].fill_(-1.0)

    def grow_older(self, live: torch.Tensor) -> None:
        """Every engram of the mask ``live`` [BatchSize, C + 1] loses 1 lifespan and ages by 1."""
        self._lifespan.sub_(live.to(self._lifespan.dtype))
        if self._age is not None:
            self._age.add_(live.to(self._age.dtype))

    def retype(self, slots: torch.Tensor, engram_type: EngramType) -> None:
        """Give the engrams of the bool mask ``slots`` [BatchSize, C + 1] a new type."""
        self._types.masked_fill_(slots, engram_type.value)

    def free(self, slots: torch.Tensor) -> None:
        """Delete the engrams of the bool mask ``slots`` [BatchSize, C + 1]: their slots become free."""
        self._types.masked_fill_(slots, NULL)
        self._lifespan.masked_fill_(slots, -1.0)
        self._ids.masked_fill_(slots, NEWEST)
        if self._age is not None:
            self._age.masked_fill_(slots, -1)

    def clear(self, rows: Optional[torch.Tensor] = None) -> None:
        """Free every slot of the chosen rows (bool [BatchSize]), or of all rows (and restart ids at 0)."""
        if rows is None:
            self.free(self.live())
            self._next_id.zero_()
            self.working.fill_(self.sentinel)
            self.reminded.fill_(self.sentinel)
            return
        self.free(self.live() & rows[:, None])
        self.working.masked_fill_(rows[:, None], self.sentinel)
        self.reminded.masked_fill_(rows[:, None], self.sentinel)

    def to(self, device: torch.device) -> "StaticEngramStore":
        """Move every buffer to ``device`` (new buffers there: a captured CUDA graph must be captured again)."""
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
        return self

    # ------------------------------------------------------------------------------------------------- state
    def state(self) -> Dict[str, torch.Tensor]:
        """Every buffer, copied to the CPU (slot layout, sentinel included)."""
        return {name: value.cpu().clone() for name, value in self._buffers().items()}

    def load_state(self, state: Dict[str, torch.Tensor]) -> None:
        """Copy a :meth:`state` into this store's buffers (in place: their addresses do not change).

        Raises:
            ValueError: a buffer is missing or has another shape or dtype (nothing is changed then).
        """
        buffers = self._buffers()
        for name, buffer in buffers.items():
            saved = state.get(name)
            if not isinstance(saved, torch.Tensor) or saved.shape != buffer.shape or saved.dtype != buffer.dtype:
                got = (tuple(saved.shape), saved.dtype) if isinstance(saved, torch.Tensor) else type(saved).__name__
                raise ValueError(
                    f"static engram state {name!r} must be shaped {tuple(buffer.shape)} with dtype {buffer.dtype}, "
                    f"got {got}"
                )
        for name, buffer in buffers.items():
            buffer.copy_(state[name])

    def _buffers(self) -> Dict[str, torch.Tensor]:
        buffers = {
            "data": self._data,
            "sqnorm": self._sqnorm,
            "lifespan": self._lifespan,
            "types": self._types,
            "counts": self._counts,
            "ids": self._ids,
            "next_id": self._next_id,
            "working": self.working,
            "reminded": self.reminded,
        }
        if self._age is not None:
            buffers["age"] = self._age
        return buffers
