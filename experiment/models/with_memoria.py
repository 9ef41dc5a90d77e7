"""What every model with Memoria shares: its configuration fields and their checks, the ``memoria.nn`` memory they
build, and what the experiment asks of that memory beyond ``memoria.nn``: the segment-recurrent interface (resets
that check their rows, the carried memory for checkpoints) and the parameter names of models saved before the
models were built on ``memoria.nn``."""

import re
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import torch

from memoria import Memoria
from memoria.abstractor import Abstractor
from memoria.memoria import MODES
from memoria.nn import MemoriaMemory, exclude_memory

from .inputs import Rows, check_batch_size, check_minimums, rows_to_mask
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
        memoria_static_shapes: Memoria's static-shape path (fixed capacities and reminded width, no host syncs in a
            step); needs ``memoria_mode="paper"`` and ``memoria_max_ltm_per_row``.
        memoria_max_ltm_per_row: a bound on the long-term engrams a row keeps (lowest lifespan deleted first); None:
            no bound.
        memoria_abstractor: "reference" (the paper's and memoria-pytorch 1.0.0's Abstractor: unscaled scores,
            queries from N(0, 0.02^2), no nonlinearity) or "scaled", an ablation outside the paper's design (scores
            divided by sqrt(D), a GELU between its two projections, queries from N(0, 1/D); see
            ``memoria.abstractor.Abstractor``). Needs ``memoria_num_memories`` to be an int.
"""

ABSTRACTOR_VARIANTS = {
    "reference": {},
    "scaled": dict(scale_scores=True, activation="gelu", query_std=None),
}

MEMORIA_MINIMUMS = {
    "memoria_num_memories": 1,
    "memoria_stm_capacity": 1,
    "memoria_num_reminded_stm": 0,
    "memoria_num_reminded_ltm": 0,
    "memoria_ltm_search_depth": 0,
    "memoria_reset_period": 1,
    "memoria_max_ltm_per_row": 1,
}
"""The least value of each integer Memoria field; those of ``MEMORIA_MAY_BE_NONE`` may also be None."""
MEMORIA_MAY_BE_NONE = ("memoria_num_memories", "memoria_reset_period", "memoria_max_ltm_per_row")


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
    memoria_static_shapes: bool = False
    memoria_max_ltm_per_row: Optional[int] = None
    memoria_abstractor: str = "reference"

    def validate_memoria(self) -> None:
        """Raises ValueError naming the field when a Memoria field is out of range."""
        if self.memoria_mode not in MODES:
            raise ValueError(f"memoria_mode must be one of {MODES}, got {self.memoria_mode!r}")
        check_minimums(self, MEMORIA_MINIMUMS, may_be_none=MEMORIA_MAY_BE_NONE)
        if self.memoria_abstractor not in ABSTRACTOR_VARIANTS:
            raise ValueError(
                f"memoria_abstractor must be one of {tuple(ABSTRACTOR_VARIANTS)}, got {self.memoria_abstractor!r}"
            )
        if self.memoria_abstractor != "reference" and self.memoria_num_memories is None:
            raise ValueError(
                f"memoria_abstractor={self.memoria_abstractor!r} needs an Abstractor: memoria_num_memories must be an "
                "int, got None"
            )
        if self.memoria_static_shapes and (self.memoria_mode != "paper" or self.memoria_max_ltm_per_row is None):
            raise ValueError(
                'memoria_static_shapes needs memoria_mode="paper" and memoria_max_ltm_per_row, got '
                f"{self.memoria_mode!r} and {self.memoria_max_ltm_per_row}"
            )

    def build_memory(self, hidden_size: int, **settings: Any) -> MemoriaMemory:
        """A new, empty ``memoria.nn.MemoriaMemory`` with these fields.

        Args:
            hidden_size: D, the width of the hidden states the memory reads.
            settings: the model's own ``MemoriaMemory`` settings (``working_memory``, ``lifespan_rule``,
                ``abstractor_feedforward_size``, ``keep_history``).
        """
        fields = dict(
            num_working_memories=self.memoria_num_memories,
            stm_capacity=self.memoria_stm_capacity,
            num_reminded_stm=self.memoria_num_reminded_stm,
            num_reminded_ltm=self.memoria_num_reminded_ltm,
            ltm_search_depth=self.memoria_ltm_search_depth,
            initial_lifespan=self.memoria_initial_lifespan,
            lifespan_alpha=self.memoria_lifespan_extend_scale,
            mode=self.memoria_mode,
            max_ltm_per_row=self.memoria_max_ltm_per_row,
            reset_period=self.memoria_reset_period,
            memory_device=self.memoria_device,
        )
        if self.memoria_static_shapes:
            fields["static_shapes"] = True
        memory = MemoriaMemory(hidden_size, **fields, **settings)
        if self.memoria_abstractor != "reference":
            reference = memory.abstractor
            memory.abstractor = Abstractor(
                reference.num_memories,
                reference.hidden_dim,
                reference.feedforward.out_features,
                **ABSTRACTOR_VARIANTS[self.memoria_abstractor],
            )
        return memory


MEMORY_STATE_PATTERN = r"(^|\.)memory\._extra_state$"
"""The ``state_dict`` key of a body's memory."""


class MemoriaModelMixin(SegmentRecurrentModel):
    """A body holding its memory in ``self.memory`` (a ``memoria.nn.MemoriaMemory``), which does the segment's
    bookkeeping (the previous segment, rows reset since then, the periodic reset). What this adds:

      - :meth:`reset_memory` checks ``rows`` as every experiment model does, and :meth:`check_segment_rows` the
        batch size, before anything changes;
      - :attr:`carried_memory`, the memory as tensors and plain containers, for ``memory_state`` (checkpoints);
      - ``memoria`` and ``abstractor``, the memory's Memoria and Abstractor;
      - ``legacy_key_renames``: the parameter names of models saved before they were built on ``memoria.nn``, which
        ``load_state_dict`` and ``from_pretrained`` rename; a saved state without the memory loads with an empty one.
    """

    memory_attributes = ("carried_memory",)
    _keys_to_ignore_on_save = {"memory._extra_state"}
    legacy_key_renames: Sequence[Tuple[str, str]] = ()
    memory: MemoriaMemory

    @property
    def memoria(self) -> Memoria:
        """The memory's Memoria (its engrams)."""
        return self.memory.memoria

    @property
    def abstractor(self) -> Optional[torch.nn.Module]:
        """The memory's Abstractor, or None when the working memory is the hidden states themselves."""
        return self.memory.abstractor

    @property
    def memory_rows(self) -> Optional[int]:
        """Rows the memory holds, or None while it is empty."""
        return self.memory._rows

    @property
    def carried_memory(self) -> Dict[str, Any]:
        """The memory as tensors and plain containers (``MemoriaMemory``'s extra state), whether or not the model's
        ``state_dict`` holds it; setting it restores the memory."""
        saving = self.memory.save_memory
        self.memory.save_memory = True
        try:
            return self.memory.get_extra_state()
        finally:
            self.memory.save_memory = saving

    @carried_memory.setter
    def carried_memory(self, state: Dict[str, Any]) -> None:
        self.memory.set_extra_state(state)

    def reset_memory(self, rows: Optional[Rows] = None) -> None:
        """Forgets the memory of every row, or only of ``rows`` (the other rows' stay as they were).

        Args:
            rows: row indices shaped [NumRows] or a bool mask shaped [BatchSize]; None resets every row.
        """
        chosen = None if rows is None else rows_to_mask(rows, self.memory_rows, self.memory._device_anchor.device)
        if rows is None or chosen is not None:
            self.memory.reset_memory(chosen)

    def check_segment_rows(self, input_ids: torch.Tensor) -> None:
        """Raises ValueError when the memory holds another number of rows than ``input_ids`` [BatchSize, Length]."""
        check_batch_size(self.memory_rows, input_ids)

    def _load_from_state_dict(self, state_dict: Dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        """Renames the parameters of a state saved before the model was built on ``memoria.nn``, and gives a state
        without the memory (saved before the memory was part of the state, or without it) an empty one."""
        for key in [key for key in state_dict if key.startswith(prefix)]:
            renamed = prefix + rename_legacy_key(key[len(prefix) :], self.legacy_key_renames)
            if renamed != key:
                state_dict[renamed] = state_dict.pop(key)
        state_dict.setdefault(f"{prefix}memory._extra_state", torch.empty(0))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def rename_legacy_key(key: str, renames: Sequence[Tuple[str, str]]) -> str:
    """``key`` with every ``(pattern, replacement)`` of ``renames`` applied in turn (``re.sub``, once each)."""
    for pattern, replacement in renames:
        key = re.sub(pattern, replacement, key, count=1)
    return key


class MemoriaPreTrainedMixin:
    """transformers' saving and loading for a model whose body holds a ``memoria.nn`` memory (its ``state_dict``
    holds ``memory._extra_state``, not a tensor): ``save_pretrained`` leaves the memory out (safetensors holds
    tensors only) and ``from_pretrained`` builds the model with an empty memory, also from a model saved before the
    model was built on ``memoria.nn`` (the body's ``legacy_key_renames`` join the caller's ``key_mapping``). Mixed
    in before the model's ``PreTrainedModel`` class; ``legacy_body_class`` names the body class (None: this one)."""

    legacy_body_class: Optional[type] = None
    _keys_to_ignore_on_load_missing = [MEMORY_STATE_PATTERN]

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any):
        """transformers' ``from_pretrained``, the old parameter names renamed first; the memory starts empty."""
        renames = dict((cls.legacy_body_class or cls).legacy_key_renames)
        kwargs["key_mapping"] = {**renames, **(kwargs.get("key_mapping") or {})}
        return super().from_pretrained(*args, **kwargs)

    def save_pretrained(self, *args: Any, **kwargs: Any) -> Any:
        """transformers' ``save_pretrained``, without the memory: the saved model loads with an empty memory."""
        with exclude_memory(self):
            return super().save_pretrained(*args, **kwargs)

    def _move_missing_keys_from_meta_to_device(self, missing_keys: Any, *args: Any, **kwargs: Any) -> None:
        """transformers' step that materialises the parameters a checkpoint lacks; the memory is not one (it is
        empty after loading), so it is left to the memory."""
        kept = {key for key in missing_keys if re.search(MEMORY_STATE_PATTERN, key) is None}
        return super()._move_missing_keys_from_meta_to_device(kept, *args, **kwargs)
