"""The memoryless baselines' share of the segment-recurrent contract: nothing to carry, nothing to forget."""

from typing import Optional

from .inputs import Rows, rows_to_mask
from .segment_recurrent import SegmentRecurrentModel


class MemorylessMixin(SegmentRecurrentModel):
    """Mixed in before a transformers model that reads each segment on its own and carries nothing."""

    memory_attributes = ()

    def reset_memory(self, rows: Optional[Rows] = None) -> None:
        """Forgets nothing, as there is nothing to forget; ``rows`` is only checked.

        Args:
            rows: row indices shaped [NumRows] or a bool mask shaped [BatchSize]; None means every row.
        """
        if rows is not None:
            rows_to_mask(rows, None, self.device)
