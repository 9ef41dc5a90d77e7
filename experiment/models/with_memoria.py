"""What every model with Memoria shares: its configuration fields and their checks, the Memoria they build, and the
bookkeeping of that Memoria between segments (resets of all or chosen rows, the periodic reset)."""

from dataclasses import dataclass
from typing import Optional

import torch

from memoria import Memoria
from memoria.memoria import MODES

from .inputs import Rows, check_batch_size, rows_to_mask
from .segment_recurrent import SegmentRecurrentModel

MEMORIA_FIELDS_DOC = """
    Memoria fields:
        memoria_num_memories: how many working-memory vectors the Abstractor makes from a segment.
        memoria_stm_capacity: how many short-term engrams a row keeps before its oldest become long-term.
        memoria_num_reminded_stm: how many short-term engrams are reminded per segment.
        memoria_num_reminded_ltm: how many long-term engrams are reminded per segment (Memoria's
            ``num_final_ltms``).
        memoria_ltm_search_depth: steps of the long-term graph walk.
        memoria_initial_lifespan: lifespan of a new engram, in segments.
        memoria_lifespan_extend_scale: alpha, the scale of the lifespan each reminded engram earns from the
            attention it received (8 in the paper).
        memoria_reset_period: reset the memory on its own after this many segments; None: only when
            ``reset_memory`` is called. 1 erases the memory every segment: the memoryless ablation, with the
            model and its parameters unchanged.
        memoria_device: where Memoria keeps its engrams ("cpu", "cuda:0", ...); None: where the inputs are.
        memoria_mode: "reference" (memoria-pytorch 1.0.0's behaviour, engram for engram) or "paper" (the
            algorithm as the paper describes it, without 1.0.0's quirks); see ``memoria.Memoria``.
"""


@dataclass
class MemoriaFields:
    """Memoria's fields, mixed into a transformers configuration (a strict dataclass) beside the encoder's own.

    The defaults are the Memoria Transformer's; a configuration may declare a field again with its own default.
    """

    memoria_num_memories: Optional[int] = 32
    memoria_stm_capacity: int = 128
    memoria_num_reminded_stm: int = 32
    memoria_num_reminded_ltm: int = 32
    memoria_ltm_search_depth: int = 10
    memoria_initial_lifespan: int = 5
    memoria_lifespan_extend_scale: float = 8.0
    memoria_reset_period: Optional[int] = None
    memoria_device: Optional[str] = None
    memoria_mode: str = "reference"

    def validate_memoria(self) -> None:
        """Raises ValueError naming the field when a Memoria field is out of range."""
        if self.memoria_mode not in MODES:
            raise ValueError(f"memoria_mode must be one of {MODES}, got {self.memoria_mode!r}")
        if self.memoria_num_memories is not None and self.memoria_num_memories < 1:
            raise ValueError(f"memoria_num_memories must be None or at least 1, got {self.memoria_num_memories}")
        if self.memoria_stm_capacity < 1:
            raise ValueError(f"memoria_stm_capacity must be at least 1, got {self.memoria_stm_capacity}")
        for field in ("memoria_num_reminded_stm", "memoria_num_reminded_ltm", "memoria_ltm_search_depth"):
            if getattr(self, field) < 0:
                raise ValueError(f"{field} must be at least 0, got {getattr(self, field)}")
        if self.memoria_reset_period is not None and self.memoria_reset_period < 1:
            raise ValueError(f"memoria_reset_period must be None or at least 1, got {self.memoria_reset_period}")

    def build_memoria(self, keep_history: bool = False) -> Memoria:
        """A new, empty Memoria with these fields.

        Args:
            keep_history: record every engram's history (for engram analysis; slower).
        """
        return Memoria(
            num_reminded_stm=self.memoria_num_reminded_stm,
            stm_capacity=self.memoria_stm_capacity,
            ltm_search_depth=self.memoria_ltm_search_depth,
            initial_lifespan=self.memoria_initial_lifespan,
            num_final_ltms=self.memoria_num_reminded_ltm,
            device=self.memoria_device,
            mode=self.memoria_mode,
            keep_history=keep_history,
        )


class MemoriaModelMixin(SegmentRecurrentModel):
    """A body that keeps ``self.memoria`` and counts ``self._segments_since_reset`` for ``memoria_reset_period``.

    The model says how many rows it holds (``memory_rows``) and forgets its own state besides Memoria in
    :meth:`forget_model_state`; a segment starts with :meth:`start_segment` and ends with :meth:`end_segment`.
    """

    @property
    def memory_rows(self) -> Optional[int]:
        """Rows the memory holds, or None while it is empty."""
        raise NotImplementedError

    def forget_model_state(self, rows: Optional[torch.Tensor]) -> None:
        """Forgets what the model carries besides Memoria: everything, or the rows of a bool mask [BatchSize]."""
        raise NotImplementedError

    def reset_memory(self, rows: Optional[Rows] = None) -> None:
        """Forgets the engrams and whatever else the model carries, for every row or only for ``rows``.

        Args:
            rows: row indices shaped [NumRows] or a bool mask shaped [BatchSize]; None resets every row.
        """
        chosen = None if rows is None else rows_to_mask(rows, self.memory_rows, self.device)
        self.forget_model_state(chosen)
        if chosen is None:
            self.memoria.reset_memory()
            self._segments_since_reset = 0
        else:
            self.memoria.reset_memory(chosen)

    def start_segment(self, input_ids: torch.Tensor) -> None:
        """Checks the segment's batch size against the memory, then resets everything when
        ``memoria_reset_period`` segments have passed since the last reset."""
        check_batch_size(self.memory_rows, input_ids)
        period = self.config.memoria_reset_period
        if period is not None and self._segments_since_reset >= period:
            self.reset_memory()

    def end_segment(self) -> None:
        """Counts a segment read since the last reset."""
        self._segments_since_reset += 1
