"""Engrams as a value: memoria-pytorch 1.0.0's public ``Engrams`` type, and :class:`EngramType`.

``Engrams`` is what users build, slice and inspect: every field is a plain tensor in position order, and every
method is one vectorised tensor operation. ``Memoria`` itself runs on the fast :class:`memoria.store.EngramStore`;
``memoria.engrams`` is a snapshot of that store as an ``Engrams``, built only when read.

Padding (a -1 index, or a row shorter than the longest) reads as a NULL engram: data 0, Hebbian count -1 with
everything, type NULL, lifespan -1, age -1, id -1.
"""

from enum import Enum
from typing import Optional, Sequence, Tuple, Union

import torch

from .utils import front_padded_positions, gather_rows, positions_mask

Indices = Union[torch.Tensor, Sequence[int], Sequence[Sequence[int]], int]


class EngramType(Enum):
    """The kind of memory an engram belongs to (stored as uint8 in ``engrams_types``).

    NULL marks padding: a position that holds no engram (lifespan -1, zero vector).
    """

    NULL = 0
    WORKING = 1
    SHORTTERM = 2
    LONGTERM = 3


class Engrams:
    """Engrams of a batch, in creation order per row, as plain tensors (memoria-pytorch 1.0.0's ``Engrams``).

    Args:
        data: vectors shaped [BatchSize, MemoryLength, HiddenDim]; stored detached, as float32.
        induce_counts: Hebbian counts shaped [BatchSize, MemoryLength, MemoryLength] (stored as int32); zeros when
            None. ``[b, i, j]`` is how often engrams i and j fired together; the diagonal is each one's fire count.
        engrams_types: uint8 tensor shaped [BatchSize, MemoryLength], or one :class:`EngramType` for every engram;
            WORKING when None.
        lifespan: float tensor shaped [BatchSize, MemoryLength], or one number for every engram (stored as float32).
        age: int tensor shaped [BatchSize, MemoryLength] or one number (kept only with ``track_age``; 0 when None).
        engram_ids: int tensor shaped [BatchSize, MemoryLength], or the first id of every row (ids count up from
            it along the row, as in memoria-pytorch 1.1.0); kept only with ``track_engram_id``; 0, 1, ... when None.
        track_age: keep :attr:`age`.
        track_engram_id: keep :attr:`engram_ids`.

    Attributes:
        batch_size, memory_length, hidden_dim: B, N and D.
        data, induce_counts, engrams_types, lifespan: the fields above.
        age, engram_ids: [BatchSize, MemoryLength] int tensors, or None when not tracked.
    """

    def __init__(
        self,
        data: torch.Tensor,
        induce_counts: Optional[torch.Tensor] = None,
        engrams_types: Optional[Union[torch.Tensor, EngramType]] = None,
        lifespan: Union[torch.Tensor, float] = 0,
        age: Optional[Union[torch.Tensor, int]] = None,
        engram_ids: Optional[Union[torch.Tensor, int]] = None,
        track_age: bool = False,
        track_engram_id: bool = False,
    ) -> None:
        if not isinstance(data, torch.Tensor) or data.dim() != 3:
            shape = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
            raise ValueError(f"data must be a tensor shaped [BatchSize, MemoryLength, HiddenDim], got {shape}")
        if data.is_complex() or data.dtype == torch.bool:
            raise TypeError(f"data must be a real tensor, got dtype {data.dtype}")
        B, N, D = data.shape
        device = data.device
        self.batch_size, self.memory_length, self.hidden_dim = B, N, D
        self.track_age, self.track_engram_id = track_age, track_engram_id
        self.data = data.detach().to(torch.float32)
        if induce_counts is None:
            induce_counts = torch.zeros(B, N, N, dtype=torch.int32, device=device)
        self.induce_counts = _field("induce_counts", induce_counts, (B, N, N), torch.int32, device)
        if engrams_types is None:
            engrams_types = EngramType.WORKING
        if isinstance(engrams_types, EngramType):
            engrams_types = torch.full((B, N), engrams_types.value, dtype=torch.uint8, device=device)
        self.engrams_types = _field("engrams_types", engrams_types, (B, N), torch.uint8, device)
        self.lifespan = _field(
            "lifespan", _filled(lifespan, (B, N), torch.float32, device), (B, N), torch.float32, device
        )
        self.age: Optional[torch.Tensor] = None
        self.engram_ids: Optional[torch.Tensor] = None
        if track_age:
            age = 0 if age is None else age
            self.age = _field("age", _filled(age, (B, N), torch.int32, device), (B, N), torch.int32, device)
        if track_engram_id:
            if engram_ids is None or isinstance(engram_ids, int):
                first = 0 if engram_ids is None else engram_ids
                engram_ids = torch.arange(first, first + N, device=device).expand(B, N).clone()
            self.engram_ids = _field("engram_ids", engram_ids, (B, N), torch.long, device)

    @staticmethod
    def empty(track_age: bool = False, track_engram_id: bool = False) -> "Engrams":
        """No engrams at all: batch size, memory length and hidden size 0 (``+`` with it returns the other side)."""
        return Engrams(torch.zeros(0, 0, 0), track_age=track_age, track_engram_id=track_engram_id)

    # ------------------------------------------------------------------------------------------ value protocol
    def __len__(self) -> int:
        """B * N: every position, padding included."""
        return self.batch_size * self.memory_length

    def __eq__(self, other: object) -> torch.Tensor:
        """Whether every field is equal, as a 0-d bool tensor (as in 1.0.0); False when the shapes differ."""
        if not isinstance(other, Engrams):
            return NotImplemented
        pairs = [
            (self.data, other.data),
            (self.induce_counts, other.induce_counts),
            (self.engrams_types, other.engrams_types),
            (self.lifespan, other.lifespan),
            (self.age, other.age),
            (self.engram_ids, other.engram_ids),
        ]
        same = all(a is None and b is None or a is not None and b is not None and torch.equal(a, b) for a, b in pairs)
        return torch.tensor(same)

    __hash__ = None  # a mutable value

    def __add__(self, other: "Engrams") -> "Engrams":
        """Concatenate two batches' engrams along the memory: ``self``'s first; they never fired together (count 0).

        An operand without rows (:meth:`empty`) is the identity.
        """
        if not isinstance(other, Engrams):
            return NotImplemented
        if other.batch_size == 0:
            return self.select(self._all_positions())
        if self.batch_size == 0:
            return other.select(other._all_positions())
        if (self.batch_size, self.hidden_dim) != (other.batch_size, other.hidden_dim):
            raise ValueError(
                "engrams to add must share BatchSize and HiddenDim, got "
                f"[{self.batch_size}, {self.memory_length}, {self.hidden_dim}] and "
                f"[{other.batch_size}, {other.memory_length}, {other.hidden_dim}]"
            )
        if (self.age is None) != (other.age is None) or (self.engram_ids is None) != (other.engram_ids is None):
            raise ValueError("engrams to add must track the same fields (age, engram_ids)")
        B, N, M = self.batch_size, self.memory_length, other.memory_length
        counts = torch.zeros(B, N + M, N + M, dtype=torch.int32, device=self.data.device)
        counts[:, :N, :N] = self.induce_counts
        counts[:, N:, N:] = other.induce_counts
        return Engrams(
            torch.cat([self.data, other.data], dim=1),
            counts,
            torch.cat([self.engrams_types, other.engrams_types], dim=1),
            torch.cat([self.lifespan, other.lifespan], dim=1),
            None if self.age is None else torch.cat([self.age, other.age], dim=1),
            None if self.engram_ids is None else torch.cat([self.engram_ids, other.engram_ids], dim=1),
            track_age=self.age is not None,
            track_engram_id=self.engram_ids is not None,
        )

    def __repr__(self) -> str:
        counts = {t.name: int((self.engrams_types == t.value).sum()) for t in EngramType if t is not EngramType.NULL}
        return (
            f"Engrams(batch_size={self.batch_size}, memory_length={self.memory_length}, "
            f"hidden_dim={self.hidden_dim}, {counts})"
        )

    # ------------------------------------------------------------------------------------------ masks and indices
    @property
    def fire_count(self) -> torch.Tensor:
        """How often each engram fired: the diagonal of :attr:`induce_counts`, shaped [BatchSize, MemoryLength]."""
        return self.induce_counts.diagonal(dim1=1, dim2=2)

    @property
    def working_memory_mask(self) -> torch.Tensor:
        """Bool [BatchSize, MemoryLength]: the WORKING engrams."""
        return self.engrams_types == EngramType.WORKING.value

    @property
    def shortterm_memory_mask(self) -> torch.Tensor:
        """Bool [BatchSize, MemoryLength]: the SHORTTERM engrams."""
        return self.engrams_types == EngramType.SHORTTERM.value

    @property
    def longterm_memory_mask(self) -> torch.Tensor:
        """Bool [BatchSize, MemoryLength]: the LONGTERM engrams."""
        return self.engrams_types == EngramType.LONGTERM.value

    def get_indices_with_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """Positions of the True entries of ``mask`` [BatchSize, MemoryLength], in order, front-padded with -1.

        Returns:
            long tensor shaped [BatchSize, K], K the most True entries in a row.
        """
        return front_padded_positions(self._check_mask("mask", mask))

    def get_mask_with_indices(self, indices: Indices) -> torch.Tensor:
        """Bool [BatchSize, MemoryLength] of the positions named in ``indices`` [BatchSize, K] (or [K] for every
        row; a negative index is ignored)."""
        return positions_mask(self._check_indices("indices", indices), self.memory_length)

    def get_working_memory(self) -> Tuple["Engrams", torch.Tensor]:
        """The WORKING engrams (front-padded) and their positions [BatchSize, K] (-1 where padded)."""
        return self._with_mask(self.working_memory_mask)

    def get_shortterm_memory(self) -> Tuple["Engrams", torch.Tensor]:
        """The SHORTTERM engrams (front-padded) and their positions [BatchSize, K] (-1 where padded)."""
        return self._with_mask(self.shortterm_memory_mask)

    def get_longterm_memory(self) -> Tuple["Engrams", torch.Tensor]:
        """The LONGTERM engrams (front-padded) and their positions [BatchSize, K] (-1 where padded)."""
        return self._with_mask(self.longterm_memory_mask)

    def get_local_indices_from_global_indices(
        self, partial_mask: torch.Tensor, global_indices: Indices
    ) -> torch.Tensor:
        """Where some engrams sit in ``self.mask_select(partial_mask)``.

        Args:
            partial_mask: bool [BatchSize, MemoryLength], the engrams of the part (e.g. :attr:`longterm_memory_mask`).
            global_indices: integer positions in ``self`` shaped [BatchSize, K], or [K] / an int for every row
                (a tensor or a list); -1 and positions outside the part are ignored. Indices below -1 are refused:
                memoria-pytorch 1.0.0 reads -2 as the last position, an accident of its implementation.

        Returns:
            long tensor shaped [BatchSize, K'] of the part's positions that were named, ascending, front-padded
            with -1 (the order of ``global_indices`` is not kept).
        """
        part = front_padded_positions(self._check_mask("partial_mask", partial_mask))  # [B, P] global positions
        global_indices = self._check_indices("global_indices", global_indices, negatives="minus_one")
        named = positions_mask(global_indices, self.memory_length)  # [B, N]
        return front_padded_positions(gather_rows(named, part, False))

    # ------------------------------------------------------------------------------------------ selection
    def select(self, indices: Indices) -> "Engrams":
        """The engrams at ``indices``, in that order (repeats repeat).

        Args:
            indices: integer positions shaped [BatchSize, K] or [1, K], where a negative index reads as padding;
                or shaped [K], the same positions for every row, where (as in memoria-pytorch 1.0.0) a negative
                index counts from the end of the memory like a list index.

        Returns:
            Engrams shaped [BatchSize, K, HiddenDim].
        """
        indices = self._check_indices("indices", indices, negatives="wrap_one_row")
        if self.memory_length == 0:  # every index is -1: all padding
            padding = torch.zeros(self.batch_size, 1, self.hidden_dim, device=self.data.device)
            return Engrams(padding, track_age=self.track_age, track_engram_id=self.track_engram_id).select(indices)
        valid = indices >= 0  # [B, K]
        index = indices.clamp(min=0)
        counts = self.induce_counts.gather(1, index[:, :, None].expand(-1, -1, self.memory_length))  # [B, K, N]
        counts = counts.gather(2, index[:, None, :].expand(-1, indices.size(1), -1))  # [B, K, K]
        counts = counts.masked_fill(~(valid[:, :, None] & valid[:, None, :]), -1)
        return Engrams(
            gather_rows(self.data, indices, 0.0),
            counts,
            gather_rows(self.engrams_types, indices, EngramType.NULL.value),
            gather_rows(self.lifespan, indices, -1.0),
            None if self.age is None else gather_rows(self.age, indices, -1),
            None if self.engram_ids is None else gather_rows(self.engram_ids, indices, -1),
            track_age=self.track_age,
            track_engram_id=self.track_engram_id,
        )

    def mask_select(self, mask: torch.Tensor) -> "Engrams":
        """The engrams where ``mask`` [BatchSize, MemoryLength] is True, in order, rows front-padded."""
        return self.select(self.get_indices_with_mask(mask))

    # ------------------------------------------------------------------------------------------ mutation
    def fire_together_wire_together(self, indices: Indices) -> None:
        """Hebbian firing in place: counts[i, j] += 1 for every pair of engrams of a row named in ``indices``
        [BatchSize, K] (or [K] for every row), i == j included (a repeated index fires once; a negative index is
        ignored, as in memoria-pytorch 1.0.0, which also overwrites the caller's negative entries with -1: we
        leave the caller's tensor alone)."""
        firing = self.get_mask_with_indices(indices).to(torch.int32)  # [B, N]
        self.induce_counts += firing[:, :, None] * firing[:, None, :]

    def extend_lifespan(self, indices: Indices, lifespan_delta: torch.Tensor) -> None:
        """Add ``lifespan_delta`` [BatchSize, K] to the lifespan at ``indices`` [BatchSize, K], in place.

        ``indices`` may also be shaped [K] (the same positions in every row; ``lifespan_delta`` then [K] too).
        A negative index is ignored. A position named twice in a row gets the delta of its last occurrence only
        (1.0.0's behaviour; ``Memoria.adjust_lifespan_and_memories`` instead adds repeats up).
        """
        given = tuple(indices.shape) if isinstance(indices, torch.Tensor) else None
        indices = self._check_indices("indices", indices)
        expected = given if given is not None else tuple(indices.shape)
        shape = tuple(lifespan_delta.shape) if isinstance(lifespan_delta, torch.Tensor) else lifespan_delta
        if shape not in (expected, tuple(indices.shape)):
            raise ValueError(f"lifespan_delta must be a tensor shaped like indices {expected}, got {shape}")
        N, K = self.memory_length, indices.size(1)
        if K == 0:
            return
        lifespan_delta = lifespan_delta.reshape(-1, K).expand_as(indices)
        order = torch.arange(K, device=indices.device).expand_as(indices)
        last = torch.full((self.batch_size, N + 1), -1, dtype=torch.long, device=indices.device)
        last.scatter_reduce_(1, torch.where(indices < 0, N, indices), order, reduce="amax")  # last occurrence
        last = last[:, :N]  # [B, N]
        gain = lifespan_delta.to(torch.float32).gather(1, last.clamp(min=0)).masked_fill(last < 0, 0.0)
        self.lifespan += gain

    def decrease_lifespan(self) -> None:
        """Every position, padding included, loses 1 lifespan (in place)."""
        self.lifespan -= 1

    def increase_age(self) -> None:
        """Every position grows 1 step older (memoria-pytorch 1.1.0; nothing happens without ``track_age``)."""
        if self.age is not None:
            self.age += 1

    def delete(self, indices: torch.Tensor) -> None:
        """Delete the engrams at ``indices`` [BatchSize, K] (-1 is ignored) in place; rows are front-padded again
        to the longest row's new length."""
        keep = ~self.get_mask_with_indices(indices)
        kept = self.select(front_padded_positions(keep))
        self.__dict__.update(kept.__dict__)

    # ------------------------------------------------------------------------------------------ private
    def _all_positions(self) -> torch.Tensor:
        N = self.memory_length
        return torch.arange(N, device=self.data.device).expand(self.batch_size, N)

    def _with_mask(self, mask: torch.Tensor) -> Tuple["Engrams", torch.Tensor]:
        indices = front_padded_positions(mask)
        return self.select(indices), indices

    def _check_mask(self, name: str, mask: torch.Tensor) -> torch.Tensor:
        shape = (self.batch_size, self.memory_length)
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != shape:
            got = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(
                f"{name} must be a bool tensor shaped [BatchSize, MemoryLength] = {list(shape)}, got {got}"
            )
        return mask

    def _check_indices(self, name: str, indices: Indices, negatives: str = "none") -> torch.Tensor:
        """``indices`` as a long tensor shaped [BatchSize, K], as memoria-pytorch 1.0.0 reads them.

        Accepted: an integer tensor or (nested) list shaped [BatchSize, K], [1, K] or [K] (one list of positions
        for every row), or one int. ``negatives`` says what a negative index means: "none" (any negative names no
        engram), "minus_one" (only -1, which names none), or "wrap_one_row" (as "none", but in indices shaped
        [K] a negative index counts from the end of the memory like a list index: 1.0.0's 1-D ``select``).
        """
        B, N = self.batch_size, self.memory_length
        if isinstance(indices, (list, tuple, int)) and not isinstance(indices, bool):
            indices = torch.as_tensor(indices, device=self.data.device)
            indices = indices.long() if indices.numel() == 0 else indices
        if not isinstance(indices, torch.Tensor):
            raise TypeError(
                f"{name} must be an integer tensor or list shaped [BatchSize={B}, K] or [K], got {indices!r}"
            )
        if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
            raise TypeError(f"{name} must be an integer tensor, got dtype {indices.dtype}")
        if indices.dim() > 2 or indices.dim() == 2 and indices.size(0) not in (1, B):
            raise ValueError(
                f"{name} must be shaped [BatchSize={B}, K], [1, K] or [K] (the same positions in every row), "
                f"got {tuple(indices.shape)}"
            )
        one_row = indices.dim() < 2
        wraps = negatives == "wrap_one_row" and one_row
        if indices.numel():
            low, high = int(indices.min()), int(indices.max())
            if negatives == "minus_one" and low < -1:
                raise ValueError(f"{name} must lie in [-1, {N}) (-1 = none), got [{low}, {high}]")
            if wraps and (low < -N or high >= N):
                raise ValueError(
                    f"{name} must lie in [{-N}, {N}) (a negative one counts from the end), got [{low}, {high}]"
                )
            if high >= N:
                raise ValueError(f"{name} must lie below MemoryLength={N} (a negative one names no engram), got {high}")
        indices = indices.long().reshape(1, -1) if one_row else indices.long()
        if wraps:
            indices = torch.where(indices < 0, indices + N, indices)
        return indices.expand(B, -1)


def _filled(value: Union[torch.Tensor, float], shape: Tuple[int, ...], dtype: torch.dtype, device) -> torch.Tensor:
    """``value`` itself when it is a tensor, else a tensor of ``shape`` filled with it."""
    if isinstance(value, torch.Tensor):
        return value
    return torch.full(shape, value, dtype=dtype, device=device)


def _field(
    name: str, value: torch.Tensor, shape: Tuple[int, ...], dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """``value`` checked to be a tensor of ``shape`` on ``device``, converted to ``dtype``."""
    if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"{name} must be a tensor shaped {list(shape)} (data's [B, N(, N)]), got {got}")
    if value.device != device:
        raise ValueError(f"{name} is on {value.device} but data is on {device}; move them to one device")
    return value.to(dtype)
