"""The memory Transformer-XL carries between segments: every layer's input hidden states, per row, with a mask.

Rows share one tensor, so a row that was reset (or whose stream was padded) keeps slots that must not be read.
The mask says which slots are real; slots that are not real hold zeros, so nothing they held (a NaN from a
padded position, an earlier sample) can leak through an attention weight of zero.
"""

from typing import List, Optional, Tuple

import torch

from ..segment_recurrent import carried_type


@carried_type
class SegmentMemory:
    """Hidden states of earlier segments for every layer, newest last, at most ``capacity`` per row.

    Attributes:
        states: shaped [NumLayers, BatchSize, MemoryLength, HiddenDim], detached; None while empty.
        mask: True where a slot holds a real position, shaped [BatchSize, MemoryLength]; None while empty.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.states: Optional[torch.Tensor] = None
        self.mask: Optional[torch.Tensor] = None

    @property
    def batch_size(self) -> Optional[int]:
        """Rows held, or None while the memory is empty (any batch size is then accepted)."""
        return None if self.mask is None else self.mask.size(0)

    @property
    def length(self) -> int:
        """Slots per row (real or not)."""
        return 0 if self.mask is None else self.mask.size(1)

    def layer_states(self) -> Optional[List[torch.Tensor]]:
        """The memory of each layer, each shaped [BatchSize, MemoryLength, HiddenDim]; None while empty."""
        return None if self.states is None else list(self.states.unbind(0))

    def append(
        self, hiddens: torch.Tensor, valid: torch.Tensor, evict_multiple: int = 1
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Adds a segment's hidden states and evicts the oldest slots beyond ``capacity``.

        Args:
            hiddens: the segment's input to every layer shaped [NumLayers, BatchSize, SegmentLength, HiddenDim];
                stored detached.
            valid: True at real (not padded) positions shaped [BatchSize, SegmentLength].
            evict_multiple: evict a multiple of this many slots (rounding up), so that a compression with this
                rate sees whole groups; the memory then holds up to ``evict_multiple - 1`` slots fewer.

        Returns:
            the evicted states shaped [NumLayers, BatchSize, NumEvicted, HiddenDim] and their mask shaped
            [BatchSize, NumEvicted]; NumEvicted is 0 while the memory has room.
        """
        hiddens = hiddens.detach().masked_fill(~valid[None, :, :, None], 0.0)  # [N, B, L, D], zero at padding
        states = hiddens if self.states is None else torch.cat([self.states, hiddens], dim=2)
        mask = valid if self.mask is None else torch.cat([self.mask, valid], dim=1)
        overflow = max(0, mask.size(1) - self.capacity)
        num_evicted = min(mask.size(1), -(-overflow // evict_multiple) * evict_multiple)
        evicted_states, evicted_mask = states[:, :, :num_evicted], mask[:, :num_evicted]
        self.states, self.mask = states[:, :, num_evicted:], mask[:, num_evicted:]
        if self.mask.size(1) == 0:
            self.states, self.mask = None, None
        return evicted_states, evicted_mask

    def forget(self, rows: Optional[torch.Tensor] = None) -> None:
        """Empties every row, or only the rows where ``rows`` (a bool mask shaped [BatchSize]) is True.

        The other rows' slots and states are left untouched, bit for bit.
        """
        if rows is None or self.mask is None or bool(rows.all()):
            self.states, self.mask = None, None
            return
        self.mask = self.mask & ~rows[:, None]
        self.states = self.states.masked_fill(rows[None, :, None, None], 0.0)
