"""``SparseTensor``: memoria-pytorch 1.0.0's coordinate-list tensor with a default value.

A ``SparseTensor`` of ``shape`` holds ``values[k]`` at the coordinates ``indices[k]`` and ``default_value``
everywhere else. Entries keep the order they were given in, and two sparse tensors are equal only when their
entries are equal in the same order (as in 1.0.0). Indexing follows ``torch.Tensor`` indexing (ints, slices,
integer and bool tensors or lists, ``...``, ``None``); the README ("Migrating from memoria-pytorch 1.0.0 / 1.1.0")
lists where 1.0.0 differs and why we do not.
"""

from typing import Iterable, List, Optional, Tuple, Union

import torch

Key = Union[int, slice, torch.Tensor, list, tuple, None]


class SparseTensor:
    """A tensor of ``shape`` that is ``default_value`` except at a list of coordinates.

    Args:
        indices: integer tensor shaped [NumEntries, NumDims], one coordinate per row.
        values: tensor shaped [NumEntries], the value at each coordinate.
        default_value: the value everywhere else.
        shape: the dense shape; by default one past the largest coordinate in each dimension.
        device: where the entries live; by default that of ``indices`` (both are moved there).

    Attributes:
        indices: long tensor [NumEntries, NumDims]. values: tensor [NumEntries]. shape: tuple of ints.
        default_value: int or float. device: torch.device.
    """

    def __init__(
        self,
        indices: torch.Tensor,
        values: torch.Tensor,
        default_value: Union[int, float] = 0,
        shape: Optional[Iterable[int]] = None,
        device: Optional[torch.device] = None,
    ) -> None:
        if not isinstance(indices, torch.Tensor) or indices.dim() != 2:
            got = tuple(indices.shape) if isinstance(indices, torch.Tensor) else type(indices).__name__
            raise ValueError(f"indices must be a tensor shaped [NumEntries, NumDims], got {got}")
        if indices.is_floating_point() or indices.is_complex():
            raise TypeError(f"indices must be an integer tensor, got dtype {indices.dtype}")
        if not isinstance(values, torch.Tensor) or values.shape != indices.shape[:1]:
            got = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
            raise ValueError(f"values must be a tensor shaped [NumEntries={indices.size(0)}], got {got}")
        if shape is None:
            if indices.size(0) == 0:
                raise ValueError("shape is required when there are no entries to infer it from")
            shape = (indices.max(dim=0).values + 1).tolist()
        shape = tuple(int(size) for size in shape)
        if len(shape) != indices.size(1):
            raise ValueError(f"shape {shape} has {len(shape)} dims but indices have {indices.size(1)} columns")
        self.device = torch.device(device) if device is not None else indices.device
        self.shape = shape
        self.indices = indices.to(self.device, torch.long)
        self.values = values.to(self.device)
        self.default_value = default_value

    # ------------------------------------------------------------------------------------------ constructors
    @staticmethod
    def empty(
        size: Iterable[int],
        default_value: Union[int, float] = 0,
        dtype: Optional[torch.dtype] = torch.int32,
        device: Optional[torch.device] = None,
    ) -> "SparseTensor":
        """A sparse tensor of ``size`` without entries (every element is ``default_value``)."""
        size = tuple(size)
        indices = torch.zeros(0, len(size), dtype=torch.long, device=device)
        return SparseTensor(indices, torch.zeros(0, dtype=dtype, device=device), default_value, size, device)

    @staticmethod
    def from_tensor(tensor: torch.Tensor, default_value: Union[int, float] = 0) -> "SparseTensor":
        """The entries of a dense ``tensor`` (rank >= 1) that differ from ``default_value``, in row-major order."""
        if not isinstance(tensor, torch.Tensor) or tensor.dim() == 0:
            raise ValueError("from_tensor expects a tensor of rank >= 1")
        stored = tensor != default_value
        return SparseTensor(stored.nonzero(), tensor[stored], default_value, tensor.shape, tensor.device)

    # ------------------------------------------------------------------------------------------ conversion
    def dim(self) -> int:
        return len(self.shape)

    def to_dense(self) -> torch.Tensor:
        """The dense tensor shaped ``shape`` (a coordinate given twice holds its last value)."""
        dense = torch.full(self.shape, self.default_value, dtype=self.values.dtype, device=self.device)
        if self.indices.size(0):
            flat = self._flat_positions(self.indices)
            order = torch.arange(flat.numel(), device=self.device)
            last = torch.full((dense.numel(),), -1, dtype=torch.long, device=self.device)
            last.scatter_reduce_(0, flat, order, reduce="amax")
            written = last >= 0
            dense.view(-1)[written] = self.values[last[written]]
        return dense

    def tolist(self) -> list:
        return self.to_dense().tolist()

    def clone(self) -> "SparseTensor":
        return SparseTensor(self.indices.clone(), self.values.clone(), self.default_value, self.shape, self.device)

    def to(self, device: torch.device) -> "SparseTensor":
        return SparseTensor(self.indices, self.values, self.default_value, self.shape, device)

    def type(self, dtype: torch.dtype) -> "SparseTensor":
        """The same entries with values of ``dtype``."""
        return SparseTensor(self.indices, self.values.to(dtype), self.default_value, self.shape, self.device)

    # ------------------------------------------------------------------------------------------ shape
    def unsqueeze(self, dim: int = -1) -> "SparseTensor":
        """A size-1 dimension inserted before dimension ``dim``.

        As in 1.0.0, a negative ``dim`` counts like a list index into the current dimensions (``-1`` inserts before
        the last one), unlike ``torch.unsqueeze`` (where ``-1`` appends).
        """
        ndim = self.dim()
        position = dim + ndim if dim < 0 else dim
        if not 0 <= position <= ndim:
            raise IndexError(f"dim must be in [{-ndim}, {ndim}] for a {ndim}-d SparseTensor, got {dim}")
        zeros = self.indices.new_zeros(self.indices.size(0), 1)
        indices = torch.cat([self.indices[:, :position], zeros, self.indices[:, position:]], dim=1)
        shape = self.shape[:position] + (1,) + self.shape[position:]
        return SparseTensor(indices, self.values, self.default_value, shape, self.device)

    def diagonal(self, dim1: int = 0, dim2: int = 1) -> "SparseTensor":
        """The entries whose coordinates agree in ``dim1`` and ``dim2``, with the lower of the two removed.

        As in 1.0.0 the diagonal keeps the place (and size) of the higher dimension; ``torch.diagonal`` would
        append it last, sized ``min`` of the two.
        """
        ndim = self.dim()
        first, second = (self._checked_dim(d, "dim1" if i == 0 else "dim2") for i, d in enumerate((dim1, dim2)))
        if first == second:
            raise ValueError(f"dim1 and dim2 must differ, got {dim1} and {dim2} for a {ndim}-d SparseTensor")
        on_diagonal = self.indices[:, first] == self.indices[:, second]
        others = [d for d in range(ndim) if d != min(first, second)]
        indices = self.indices[on_diagonal][:, others]
        shape = tuple(self.shape[d] for d in others)
        return SparseTensor(indices, self.values[on_diagonal], self.default_value, shape, self.device)

    # ------------------------------------------------------------------------------------------ operators
    def __eq__(self, other: object) -> bool:
        """Same shape, default value and entries in the same order (values compared across dtypes). A dense
        tensor is compared as ``SparseTensor.from_tensor(other, self.default_value)``."""
        if isinstance(other, torch.Tensor):
            other = SparseTensor.from_tensor(other, self.default_value)
        if not isinstance(other, SparseTensor):
            return False
        return (
            self.shape == other.shape
            and self.default_value == other.default_value
            and self.indices.shape == other.indices.shape
            and torch.equal(self.indices, other.indices.to(self.device))
            and bool((self.values == other.values.to(self.device)).all())
        )

    __hash__ = None  # a mutable value

    def __add__(self, other: Union[int, "SparseTensor"]) -> "SparseTensor":
        """``self + int``: :meth:`from_tensor` of the dense sum (so the result's default value is 0, as in 1.0.0).

        ``self + SparseTensor`` (same shape and default value): stored values add where coordinates agree;
        ``other``'s other entries are appended after ``self``'s.
        """
        if isinstance(other, int):
            return SparseTensor.from_tensor(self.to_dense() + other)
        if not isinstance(other, SparseTensor):
            raise ValueError(f"other must be int or SparseTensor, got {type(other).__name__}")
        if other.default_value != self.default_value:
            raise ValueError(f"default_value must be the same, got {self.default_value} and {other.default_value}")
        if other.shape != self.shape:
            raise ValueError(f"shape must be the same, got {self.shape} and {other.shape}")
        if torch.equal(self.indices, other.indices):
            return SparseTensor(self.indices, self.values + other.values, self.default_value, self.shape, self.device)
        same = (self.indices[:, None, :] == other.indices[None, :, :]).all(dim=2)  # [NumSelf, NumOther]
        added = (same.to(other.values.dtype) * other.values[None, :]).sum(dim=1)
        extra = ~same.any(dim=0)
        indices = torch.cat([self.indices, other.indices[extra]])
        values = torch.cat([self.values + added, other.values[extra]])
        return SparseTensor(indices, values, self.default_value, self.shape, self.device)

    def __getitem__(self, raw_keys: Key) -> Union["SparseTensor", torch.Tensor]:
        """Index as a dense tensor would; returns a ``SparseTensor`` with the selected entries.

        Entries come out in their stored order, grouped by the position of the advanced (tensor or list) index
        they match. When every dimension is indexed by an int the result is a tensor: the stored value(s) at
        that coordinate, or ``default_value`` as a 0-d tensor when none is stored (as in 1.0.0).
        """
        keys = self._expanded_keys(raw_keys)
        advanced = [i for i, key in enumerate(keys) if isinstance(key, torch.Tensor)]
        if advanced:  # ints index like 0-d tensors once any tensor takes part (torch's rule)
            keys = [torch.tensor(k, device=self.device) if isinstance(k, int) else k for k in keys]
            advanced = [i for i, key in enumerate(keys) if isinstance(key, torch.Tensor)]
        if not advanced and all(isinstance(key, int) for key in keys):
            found = self._basic_match(keys)[0]
            if bool(found.any()):
                return self.values[found]
            return torch.tensor(self.default_value, dtype=self.values.dtype, device=self.device)

        basic, columns, sizes = self._basic_match(keys)  # [NumEntries], per result dim
        if not advanced:
            entries = basic.nonzero().flatten()
            indices = _stack_columns([column[entries] for column in columns], entries.numel(), self.device)
            return SparseTensor(indices, self.values[entries], self.default_value, tuple(sizes), self.device)

        tensors = torch.broadcast_tensors(*[keys[i] for i in advanced])
        advanced_shape = tuple(tensors[0].shape)
        match = basic[None, :].expand(tensors[0].numel(), -1).clone()  # [NumPositions, NumEntries]
        for i, tensor in zip(advanced, tensors):
            wanted = self._wrapped(tensor.reshape(-1), i)
            match &= self.indices[None, :, i] == wanted[:, None]
        position, entries = match.nonzero(as_tuple=True)  # position-major, then stored order
        advanced_columns = list(torch.unravel_index(position, advanced_shape)) if advanced_shape else []
        adjacent = advanced == list(range(advanced[0], advanced[-1] + 1))
        place = sum(1 for i, key in enumerate(keys[: advanced[0]]) if not isinstance(key, int)) if adjacent else 0
        basic_columns = [column[entries] for column in columns]
        indices = _stack_columns(
            basic_columns[:place] + advanced_columns + basic_columns[place:], entries.numel(), self.device
        )
        shape = tuple(sizes[:place]) + advanced_shape + tuple(sizes[place:])
        return SparseTensor(indices, self.values[entries], self.default_value, shape, self.device)

    def __setitem__(self, raw_keys: Key, value: Union[int, float, torch.Tensor]) -> None:
        """Set the selected elements to ``value`` in place, as on a dense tensor (``t[i, j] = v``, slices, ...).

        As in memoria-pytorch 1.0.0, the entries stored at the selected coordinates are dropped and the selected
        coordinates are appended in row-major order of the selection, except where the new value equals
        ``default_value`` (those are only dropped). Negative indices are stored wrapped (1.0.0 stores them as
        given, so that they never replace the entry they name).

        Args:
            raw_keys: any key :meth:`__getitem__` takes.
            value: a number, or a tensor (or ``SparseTensor``) broadcastable to the selection's shape; cast to the values' dtype
                (a fractional value for integer values is refused).
        """
        keys = raw_keys if isinstance(raw_keys, tuple) else (raw_keys,)
        keys = tuple(k.to(self.device) if isinstance(k, torch.Tensor) else k for k in keys)
        coordinates = []
        for d, size in enumerate(self.shape):  # the coordinate of dimension d at every element, indexed like one
            axis = [1] * self.dim()
            axis[d] = size
            coordinates.append(torch.arange(size, device=self.device).view(axis).expand(self.shape)[keys])
        selection = coordinates[0].shape if coordinates else torch.Size()
        value = torch.as_tensor(value, device=self.device)
        if (
            value.is_floating_point()
            and not self.values.is_floating_point()
            and not bool((value == value.trunc()).all())
        ):
            raise TypeError(f"value {value.tolist()} is fractional but this SparseTensor holds {self.values.dtype}")
        try:
            value = torch.broadcast_to(value.to(self.values.dtype), selection).reshape(-1)
        except RuntimeError:
            raise ValueError(f"value shaped {tuple(value.shape)} cannot fill a selection shaped {tuple(selection)}")
        indices = _stack_columns([c.reshape(-1) for c in coordinates], value.numel(), self.device)
        kept = ~torch.isin(self._flat_positions(self.indices), self._flat_positions(indices))
        written = value != self.default_value
        self.indices = torch.cat([self.indices[kept], indices[written]])
        self.values = torch.cat([self.values[kept], value[written]])

    def __repr__(self) -> str:
        return (
            f"SparseTensor(shape={self.shape}, default_value={self.default_value}, indices={self.indices}, "
            f"values={self.values})"
        )

    # ------------------------------------------------------------------------------------------ private
    def _checked_dim(self, dim: int, name: str) -> int:
        ndim = self.dim()
        if not -ndim <= dim < ndim:
            raise IndexError(f"{name} must be in [{-ndim}, {ndim}) for a {ndim}-d SparseTensor, got {dim}")
        return dim % ndim

    def _flat_positions(self, indices: torch.Tensor) -> torch.Tensor:
        flat = torch.zeros(indices.size(0), dtype=torch.long, device=indices.device)
        for d, size in enumerate(self.shape):
            flat = flat * size + indices[:, d]
        return flat

    def _wrapped(self, index: torch.Tensor, dim: int) -> torch.Tensor:
        """Integer index values for dimension ``dim``, negatives wrapped, range checked."""
        size = self.shape[dim]
        if index.numel() and (int(index.min()) < -size or int(index.max()) >= size):
            raise IndexError(f"index out of range for dimension {dim} with size {size}: {index.tolist()}")
        return torch.where(index < 0, index + size, index)

    def _expanded_keys(self, raw_keys: Key) -> List[Union[int, slice, torch.Tensor, None]]:
        """One key per dimension (plus ``None`` for new ones): ``...`` expanded, lists and bool masks as long
        tensors, 0-d integer tensors as ints, missing trailing keys as ``:``."""
        raw = list(raw_keys) if isinstance(raw_keys, tuple) else [raw_keys]
        keys: List[Union[int, slice, torch.Tensor, None, type(Ellipsis)]] = []
        for key in raw:
            if isinstance(key, list):
                key = torch.tensor(key, device=self.device)
            if isinstance(key, torch.Tensor) and key.dtype == torch.bool:
                keys.extend(key.to(self.device).nonzero(as_tuple=True))
            elif isinstance(key, torch.Tensor) and key.dim() == 0:
                if key.is_floating_point() or key.is_complex():
                    raise IndexError(f"tensors used as indices must be integer or bool, got dtype {key.dtype}")
                keys.append(int(key))
            elif isinstance(key, torch.Tensor):
                if key.is_floating_point() or key.is_complex():
                    raise IndexError(f"tensors used as indices must be integer or bool, got dtype {key.dtype}")
                keys.append(key.to(self.device, torch.long))
            elif key is None or key is Ellipsis or isinstance(key, (int, slice)):
                keys.append(key)
            else:
                raise IndexError(f"unsupported index type {type(key).__name__}")
        used = sum(1 for key in keys if key is not None and key is not Ellipsis)
        if used > self.dim():
            raise IndexError(f"too many indices for a {self.dim()}-d SparseTensor: {used}")
        if sum(1 for key in keys if key is Ellipsis) > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        fill = [slice(None)] * (self.dim() - used)
        if Ellipsis in keys:
            at = keys.index(Ellipsis)
            return keys[:at] + fill + keys[at + 1 :]
        return keys + fill

    def _basic_match(self, keys: list) -> Tuple[torch.Tensor, List[torch.Tensor], List[int]]:
        """Entries that satisfy every int and slice key, and the result coordinates and sizes of the dims that
        ints and tensors do not consume (slices and ``None``), in key order."""
        match = torch.ones(self.indices.size(0), dtype=torch.bool, device=self.device)
        columns: List[torch.Tensor] = []
        sizes: List[int] = []
        dim = 0
        for key in keys:
            if key is None:
                columns.append(self.indices.new_zeros(self.indices.size(0)))
                sizes.append(1)
                continue
            coordinate, size = self.indices[:, dim], self.shape[dim]
            if isinstance(key, int):
                if not -size <= key < size:
                    raise IndexError(f"index {key} is out of range for dimension {dim} with size {size}")
                match &= coordinate == key % size
            elif isinstance(key, slice):
                start, stop, step = key.indices(size)
                if step <= 0:
                    raise ValueError(f"slice step must be positive, got {step}")
                offset = coordinate - start
                match &= (offset >= 0) & (coordinate < stop) & (offset % step == 0)
                columns.append(torch.div(offset, step, rounding_mode="floor"))
                sizes.append(len(range(start, stop, step)))
            dim += 1
        return match, columns, sizes


def _stack_columns(columns: List[torch.Tensor], rows: int, device: torch.device) -> torch.Tensor:
    """Coordinate columns [NumEntries] each -> indices [NumEntries, NumDims]."""
    if not columns:
        return torch.zeros(rows, 0, dtype=torch.long, device=device)
    return torch.stack(columns, dim=1)
