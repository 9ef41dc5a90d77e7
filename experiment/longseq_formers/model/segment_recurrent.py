"""The one interface the tasks need from a model: run a segment, and reset what it remembers."""

from abc import ABC, abstractmethod
from typing import Optional

import torch


class SegmentRecurrentModel(ABC):
    """A causal language model that reads a long sequence one segment at a time.

    Calling the model with ``input_ids`` shaped [BatchSize, SegmentLength] runs the next segment and returns an
    output with ``logits`` shaped [BatchSize, SegmentLength, VocabSize]. Whatever the model carries from one
    segment to the next (Memoria's engrams, for instance) stays inside it until :meth:`reset_memory`.
    """

    @abstractmethod
    def reset_memory(self, rows: Optional[torch.Tensor] = None) -> None:
        """Forgets what was carried over from earlier segments.

        Args:
            rows: the batch rows to reset, as row indices shaped [NumRows] or a bool mask shaped [BatchSize];
                None resets every row.
        """
