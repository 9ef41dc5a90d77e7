"""Memoria's memory as an ``nn.Module``: the Abstractor, the engrams and the previous segment, saved and moved
with the model that holds it."""

from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..abstractor import Abstractor
from ..checks import Rows, rows_mask
from ..memoria import MODES, Memoria
from .attention import Memories, _check_positive

WORKING_MEMORY_SOURCES = ("previous", "current")
LIFESPAN_RULES = ("paper", "renormalised")
STATE_FORMAT = 1
Similarity = Union[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]


def lifespan_delta(
    reminded_weights: Union[torch.Tensor, Sequence[torch.Tensor]],
    reminded_mask: torch.Tensor,
    *,
    alpha: float,
    rule: str = "paper",
    query_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """The lifespan each reminded engram earns from the attention it received (no gradient).

    The attention weights (after dropout) are averaged over reads (layers), heads and query positions (the real
    ones, when ``query_mask`` is given), then

      - ``rule="paper"`` (the paper's code): times the padded reminded width RemindedLength and ``alpha``, not
        renormalised, so a row whose queries also attend elsewhere hands out less lifespan, and a row's gains
        scale with the widest row of the batch;
      - ``rule="renormalised"``: normalised to sum to 1 over the row's real reminded engrams, times their count
        and ``alpha``, so every row hands out ``alpha`` per real reminded engram, whatever the other rows hold.

    Padding (mask False) earns 0 under both.

    Args:
        reminded_weights: the weights of one read, or a sequence of one per read, each shaped [BatchSize, NumHeads,
            SegmentLength, RemindedLength].
        reminded_mask: True where an engram is real, shaped [BatchSize, RemindedLength].
        alpha: the lifespan scale (8 in the paper's configurations).
        rule: "paper" or "renormalised".
        query_mask: optional bool shaped [BatchSize, SegmentLength], True at the positions to average over.

    Returns:
        float32 shaped [BatchSize, RemindedLength].
    """
    if rule not in LIFESPAN_RULES:
        raise ValueError(f"rule must be one of {LIFESPAN_RULES}, got {rule!r}")
    if isinstance(reminded_weights, torch.Tensor):
        reminded_weights = [reminded_weights]
    with torch.no_grad():
        weights = torch.stack(list(reminded_weights)).float()  # [Reads, B, H, L, R]
        if query_mask is None:
            attention = weights.mean(dim=(0, 2, 3))  # [B, R]
        else:
            per_position = weights.mean(dim=(0, 2))  # [B, L, R]
            positions = query_mask.float()  # [B, L]
            attention = (per_position * positions[:, :, None]).sum(dim=1) / positions.sum(dim=1, keepdim=True)
        attention = attention * reminded_mask
        if rule == "paper":
            return attention * (reminded_mask.size(1) * alpha)
        share = attention / attention.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(attention.dtype).tiny)
        return share * reminded_mask.sum(dim=-1, keepdim=True) * alpha


class MemoriaMemory(nn.Module):
    """Memoria's memory for a model: it makes each segment's working memory, reminds, and learns from the reads.

    One segment is ``memories = memory.read(hidden)``, the model's reads of ``memories`` (any number of blocks,
    e.g. one :class:`MemoryReader` each), then ``memory.write(reminded_weights, hidden)``:

      1. ``read`` makes the working memory: the Abstractor's ``num_working_memories`` vectors summarising the
         hidden states of the previous segment that ``write`` kept (``working_memory="previous"``), or of the
         ``hidden`` given to ``read`` (``"current"``); with ``num_working_memories=None`` those hidden states
         themselves (one engram per position, detached). It hands a detached float32 copy to Memoria
         (``add_working_memory``) and returns the engrams Memoria reminds (``remind``).
      2. ``write`` turns the attention the reminded engrams received into lifespan (:func:`lifespan_delta`),
         calls ``adjust_lifespan_and_memories``, and keeps this segment's hidden states, detached, for the next
         ``read`` (``"previous"``).

    Before the first segment there is nothing to read: the working memory has width 0, nothing is reminded, and
    Memoria is not called. A row reset since the previous segment (:meth:`reset_memory` with ``rows``) reads
    nothing from the previous segment (``working_mask`` False) and its working memory never reaches Memoria.

    The memory is part of the module: :meth:`state_dict` holds it (``_extra_state``, tensors and plain
    containers only, so ``torch.load(..., weights_only=True)`` reads it; :func:`exclude_memory` leaves it out),
    and ``.to(device, dtype)`` moves it. Engram data stay float32 whatever the model's dtype (Memoria's
    requirement); reads come back in the dtype of the hidden states given to :meth:`read`.

    Args:
        hidden_size: D, the width of the hidden states.
        num_working_memories: vectors the Abstractor makes per segment; None: no Abstractor, every position's
            hidden state is an engram (``working_memory="previous"`` only).
        stm_capacity, num_reminded_stm, ltm_search_depth, initial_lifespan, mode, similarity, max_ltm_per_row,
            static_shapes, tie_break, keep_history: Memoria's settings of those names (:class:`~memoria.Memoria`);
            ``tie_break=None`` takes Memoria's default, 1.0.0's random draw, whose shape couples the rows' ties
            (:class:`~memoria.nn.MemoriaLayer` gives ties to the oldest engram instead).
        num_reminded_ltm: Memoria's ``num_final_ltms``.
        lifespan_alpha: alpha of :func:`lifespan_delta`.
        lifespan_rule: "paper" or "renormalised", the ``rule`` of :func:`lifespan_delta`.
        working_memory: "previous" (causal) or "current" (encoders): see the steps above.
        reset_period: forget everything on its own every this many segments; None: only on :meth:`reset_memory`.
        abstractor_feedforward_size: the Abstractor's inner width; None: 4 * D.
        memory_device: keep the engrams on this device; None: where the module is (moved by ``.to()``).
        save_memory: :meth:`state_dict` holds the memory (True) or an empty tensor in its place.
    """

    def __init__(
        self,
        hidden_size: int,
        *,
        num_working_memories: Optional[int] = 50,
        stm_capacity: int = 400,
        num_reminded_stm: int = 50,
        num_reminded_ltm: int = 50,
        ltm_search_depth: int = 10,
        initial_lifespan: int = 9,
        lifespan_alpha: float = 8.0,
        lifespan_rule: str = "paper",
        working_memory: str = "previous",
        mode: str = "paper",
        similarity: Similarity = "gaussian",
        max_ltm_per_row: Optional[int] = None,
        static_shapes: bool = False,
        tie_break: Optional[str] = None,
        reset_period: Optional[int] = None,
        abstractor_feedforward_size: Optional[int] = None,
        memory_device: Optional[Union[str, torch.device]] = None,
        keep_history: bool = False,
        save_memory: bool = True,
    ) -> None:
        super().__init__()
        _check_positive("hidden_size", hidden_size)
        if num_working_memories is not None:
            _check_positive("num_working_memories", num_working_memories)
        if abstractor_feedforward_size is not None:
            _check_positive("abstractor_feedforward_size", abstractor_feedforward_size)
        if lifespan_rule not in LIFESPAN_RULES:
            raise ValueError(f"lifespan_rule must be one of {LIFESPAN_RULES}, got {lifespan_rule!r}")
        if working_memory not in WORKING_MEMORY_SOURCES:
            raise ValueError(f"working_memory must be one of {WORKING_MEMORY_SOURCES}, got {working_memory!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if reset_period is not None and (isinstance(reset_period, bool) or not isinstance(reset_period, int)):
            raise ValueError(f"reset_period must be None or a positive int, got {reset_period!r}")
        if reset_period is not None and reset_period < 1:
            raise ValueError(f"reset_period must be None or a positive int, got {reset_period!r}")
        if isinstance(lifespan_alpha, bool) or not isinstance(lifespan_alpha, (int, float)) or lifespan_alpha < 0:
            raise ValueError(f"lifespan_alpha must be a non-negative number, got {lifespan_alpha!r}")
        if working_memory == "current" and num_working_memories is None:
            raise ValueError(
                'working_memory="current" needs an Abstractor (num_working_memories an int): the segment\'s own '
                "hidden states as engrams would be read back by the same segment"
            )
        self.hidden_size = hidden_size
        self.num_working_memories = num_working_memories
        self.lifespan_alpha = float(lifespan_alpha)
        self.lifespan_rule = lifespan_rule
        self.working_memory = working_memory
        self.reset_period = reset_period
        self.memory_device = None if memory_device is None else torch.device(memory_device)
        self.save_memory = save_memory
        self.abstractor = (
            None
            if num_working_memories is None
            else Abstractor(num_working_memories, hidden_size, abstractor_feedforward_size or 4 * hidden_size)
        )
        # where the module lives (moved by .to(), never saved): the engrams follow it unless memory_device is set
        self.register_buffer("_device_anchor", torch.empty(0), persistent=False)
        self._memoria_settings: Dict[str, Any] = dict(
            num_reminded_stm=num_reminded_stm,
            stm_capacity=stm_capacity,
            ltm_search_depth=ltm_search_depth,
            initial_lifespan=initial_lifespan,
            num_final_ltms=num_reminded_ltm,
            mode=mode,
            similarity=similarity,
            max_ltm_per_row=max_ltm_per_row,
            keep_history=keep_history,
            static_shapes=static_shapes,
            tie_break=tie_break,
        )
        self.memoria = self._new_memoria()
        self._previous: Optional[torch.Tensor] = None  # [B, L, D] detached: the last segment's hidden states
        self._previous_mask: Optional[torch.Tensor] = None  # [B, L] bool, or None for all positions
        self._stale_rows: Optional[torch.Tensor] = None  # [B] bool: rows reset since the previous segment
        self._rows: Optional[int] = None  # the batch size the memory holds, None while empty
        self._segments_since_reset = 0
        self._pending: Optional[Tuple[torch.Tensor, torch.Tensor, bool]] = None  # this read's indices, mask, adjust

    # ------------------------------------------------------------------------------------------ the step
    def read(self, hidden: torch.Tensor, mask: Optional[torch.Tensor] = None) -> Memories:
        """Start a segment: make its working memory, store it in Memoria, and remind.

        Args:
            hidden: this segment's hidden states shaped [BatchSize, SegmentLength, HiddenDim]. With
                ``working_memory="current"`` the Abstractor summarises them; with ``"previous"`` only their batch
                size, device and dtype are used.
            mask: optional bool shaped [BatchSize, SegmentLength], True at real positions (the Abstractor's mask
                with ``"current"``; each row must keep one). With ``"previous"``, pass the mask to :meth:`write`.

        Returns:
            the segment's :class:`Memories`.
        """
        self._check_hidden("hidden", hidden, mask)
        if self._pending is not None:
            raise RuntimeError("read() called twice: call write() to finish the segment first (or reset_memory())")
        batch_size = hidden.size(0)
        if self._rows is not None and self._rows != batch_size:
            raise ValueError(
                f"the memory holds {self._rows} rows but hidden has {batch_size}; call reset_memory() before a "
                "batch of another size"
            )
        if self.reset_period is not None and self._segments_since_reset >= self.reset_period:
            self.reset_memory()
        working, working_mask = self._working_memory(hidden, mask)  # [B, W, D], [B, W]
        reminded, indices = self._remind(working, hidden)  # [B, R, D], [B, R]
        reminded_mask = indices >= 0  # [B, R]
        self._pending = (indices, reminded_mask, working.size(1) > 0)
        return Memories(working, working_mask, reminded, reminded_mask, indices)

    def write(
        self,
        reminded_weights: Union[torch.Tensor, Sequence[torch.Tensor]],
        hidden: Optional[torch.Tensor] = None,
        mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Finish the segment: reward the reminded engrams, age, promote and forget; keep ``hidden``.

        Args:
            reminded_weights: the attention weights of the reminded reads, one tensor (or a sequence, one per
                block) shaped [BatchSize, NumHeads, SegmentLength, RemindedLength].
            hidden: with ``working_memory="previous"`` (required there), the hidden states to summarise into the
                next segment's working memory, shaped [BatchSize, SegmentLength, HiddenDim]; kept detached. Not
                taken with ``"current"``.
            mask: optional bool shaped [BatchSize, SegmentLength], True at real positions: the lifespan averages
                attention over those only, and (``"previous"``) the next Abstractor reads those only.

        Returns:
            the lifespan each reminded engram earned, float32 shaped [BatchSize, RemindedLength].
        """
        if self._pending is None:
            raise RuntimeError("write() called without read(): one segment is read() -> the model's reads -> write()")
        indices, reminded_mask, adjust = self._pending
        weights = [reminded_weights] if isinstance(reminded_weights, torch.Tensor) else list(reminded_weights)
        self._check_weights(weights, reminded_mask)
        if self.working_memory == "previous":
            if hidden is None:
                raise ValueError('write() needs hidden with working_memory="previous": it is the next working memory')
            self._check_hidden("hidden", hidden, mask)
        elif hidden is not None:
            raise ValueError('write() takes no hidden with working_memory="current" (read() made the working memory)')
        delta = lifespan_delta(
            weights, reminded_mask, alpha=self.lifespan_alpha, rule=self.lifespan_rule, query_mask=mask
        )  # [B, R]
        if adjust:
            self.memoria.adjust_lifespan_and_memories(indices, delta)
        if self.working_memory == "previous":
            self._previous = hidden.detach()
            self._previous_mask = None if mask is None else mask.detach()
        self._rows = weights[0].size(0)
        self._segments_since_reset += 1
        self._pending = None
        return delta

    def _working_memory(self, hidden: torch.Tensor, mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """This segment's working memory [BatchSize, WorkingLength, HiddenDim] and its mask [BatchSize,
        WorkingLength] (False in rows reset since the previous segment)."""
        batch_size = hidden.size(0)
        if self.working_memory == "current":
            working = self.abstractor(hidden, mask)
            return working, torch.ones(working.shape[:2], dtype=torch.bool, device=working.device)
        if self._previous is None:
            # no previous segment: nothing to read. The zero-weighted Abstractor term puts every parameter in the
            # graph, so DDP without find_unused_parameters sees them all on the first segment too
            empty = hidden.new_zeros(batch_size, 0, hidden.size(-1)) + self._unused_parameters_term()
            return empty, torch.ones(batch_size, 0, dtype=torch.bool, device=hidden.device)
        previous = self._previous
        if self.abstractor is None:
            working = previous
        else:
            working = self.abstractor(previous, self._previous_mask)
        working_mask = torch.ones(working.shape[:2], dtype=torch.bool, device=hidden.device)
        if self._stale_rows is not None:
            working_mask = working_mask & ~self._stale_rows[:, None]
        return working, working_mask

    def _unused_parameters_term(self) -> torch.Tensor:
        """0 times the sum of every Abstractor parameter: a scalar in the graph of all of them."""
        if self.abstractor is None:
            return self._device_anchor.new_zeros(())
        return sum(parameter.sum() for parameter in self.abstractor.parameters()) * 0.0

    def _remind(self, working: torch.Tensor, hidden: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Store the working memory in Memoria and recall for it: the reminded engrams [BatchSize, RemindedLength,
        HiddenDim] in the hidden states' dtype, and their indices [BatchSize, RemindedLength]."""
        batch_size, working_length, hidden_dim = working.shape
        if working_length == 0:
            return working.new_zeros(batch_size, 0, hidden_dim).to(hidden.dtype), torch.zeros(
                batch_size, 0, dtype=torch.long, device=working.device
            )
        self.memoria.add_working_memory(working.detach().float())
        if self._stale_rows is not None:
            # a reset row's working memory came from the sample before the reset: it must not enter Memoria
            self.memoria.reset_memory(self._stale_rows)
            self._stale_rows = None
        reminded, indices = self.memoria.remind()
        return reminded.to(working.device).to(hidden.dtype), indices.to(working.device)

    # ------------------------------------------------------------------------------------------ state
    def reset_memory(self, rows: Optional[Rows] = None) -> None:
        """Forget everything, or only the chosen rows (the other rows' memories stay as they were).

        Args:
            rows: None for every row; else a bool mask shaped [BatchSize] or row indices shaped [NumRows].
        """
        if rows is None or self._rows is None:
            self.memoria.reset_memory()
            self._previous = None
            self._previous_mask = None
            self._stale_rows = None
            self._rows = None
            self._segments_since_reset = 0
            self._pending = None
            return
        if self._pending is not None:
            raise RuntimeError("reset_memory(rows) between read() and write(): finish the segment first")
        stale = rows_mask(rows, self._rows).to(self._device_anchor.device)
        if self.working_memory == "previous":
            self._stale_rows = stale if self._stale_rows is None else self._stale_rows | stale
        self.memoria.reset_memory(stale)

    def get_extra_state(self) -> Union[Dict[str, Any], torch.Tensor]:
        """The memory as tensors and plain containers (``weights_only``-loadable), or, when :attr:`save_memory` is
        False (see :func:`exclude_memory`), an empty tensor: a state of tensors only, as safetensors (Hugging
        Face's ``save_pretrained``) requires."""
        if not self.save_memory:
            return torch.empty(0)
        if self._pending is not None:
            raise RuntimeError("state_dict() between read() and write(): save the memory between segments")
        return {
            "format": STATE_FORMAT,
            "memory": {
                "memoria": self.memoria.state_dict(),
                "previous": _cpu(self._previous),
                "previous_mask": _cpu(self._previous_mask),
                "stale_rows": _cpu(self._stale_rows),
                "rows": self._rows,
                "segments_since_reset": self._segments_since_reset,
            },
        }

    def set_extra_state(self, state: Any) -> None:
        """Restore :meth:`get_extra_state`'s value onto this module's device; a state without memory (an empty
        tensor) empties the memory. A refused state raises ``ValueError`` and leaves the memory as it was."""
        if isinstance(state, torch.Tensor) and state.numel() == 0:
            self.reset_memory()
            return
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or "memory" not in state:
            raise ValueError(
                f"the memory's saved state must be a dict with format {STATE_FORMAT} and 'memory', or an empty tensor "
                f"(saved without memory), got {type(state).__name__}"
            )
        saved = state["memory"]
        rows, previous, previous_mask, stale = self._checked_saved_memory(saved)
        memoria = self._new_memoria()
        memoria.load_state_dict(saved["memoria"])
        device = self._device_anchor.device
        self.memoria = memoria
        self._previous = None if previous is None else previous.to(device)
        self._previous_mask = None if previous_mask is None else previous_mask.to(device)
        self._stale_rows = None if stale is None else stale.to(device)
        self._rows = rows
        self._segments_since_reset = saved["segments_since_reset"]
        self._pending = None

    def _checked_saved_memory(self, saved: Any) -> Tuple[Optional[int], Any, Any, Any]:
        keys = {"memoria", "previous", "previous_mask", "stale_rows", "rows", "segments_since_reset"}
        if not isinstance(saved, dict) or set(saved) != keys:
            raise ValueError(f"the saved memory must be a dict with the keys {sorted(keys)}")
        rows, previous, previous_mask, stale = (
            saved["rows"],
            saved["previous"],
            saved["previous_mask"],
            saved["stale_rows"],
        )
        if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 1):
            raise ValueError(f"the saved memory's rows must be None or a positive int, got {rows!r}")
        segments = saved["segments_since_reset"]
        if isinstance(segments, bool) or not isinstance(segments, int) or segments < 0:
            raise ValueError(f"the saved memory's segments_since_reset must be an int >= 0, got {segments!r}")
        if previous is not None:
            if self.working_memory != "previous":
                raise ValueError('the saved memory holds a previous segment; this memory is working_memory="current"')
            if not isinstance(previous, torch.Tensor) or previous.dim() != 3 or previous.shape[0] != rows:
                raise ValueError(f"the saved previous segment must be shaped [{rows}, SegmentLength, HiddenDim]")
            if previous.size(-1) != self.hidden_size or not previous.is_floating_point():
                raise ValueError(f"the saved previous segment must be floating with HiddenDim {self.hidden_size}")
        for name, value, shape in (
            ("previous_mask", previous_mask, None if previous is None else tuple(previous.shape[:2])),
            ("stale_rows", stale, (rows,)),
        ):
            if value is not None and (
                not isinstance(value, torch.Tensor) or value.dtype != torch.bool or tuple(value.shape) != shape
            ):
                raise ValueError(f"the saved {name} must be None or a bool tensor shaped {shape}")
        return rows, previous, previous_mask, stale

    def _new_memoria(self) -> Memoria:
        device = self.memory_device
        if device is None and self._device_anchor.device.type != "meta":
            device = self._device_anchor.device
        return Memoria(device=device, **self._memoria_settings)

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> "MemoriaMemory":
        """``.to()``, ``.cuda()``, ``.half()``...: also move the engrams (kept float32) and the previous segment."""
        super()._apply(fn, recurse)
        if self._previous is not None:
            self._previous = fn(self._previous)
        for name in ("_previous_mask", "_stale_rows"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.to(self._device_anchor.device))
        if self.memory_device is None and self._device_anchor.device.type != "meta":
            self.memoria.to(self._device_anchor.device)
        return self

    # ------------------------------------------------------------------------------------------ checks
    def _check_hidden(self, name: str, hidden: Any, mask: Optional[torch.Tensor]) -> None:
        if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3 or hidden.size(-1) != self.hidden_size:
            shape = tuple(hidden.shape) if isinstance(hidden, torch.Tensor) else type(hidden).__name__
            raise ValueError(f"{name} must be shaped [BatchSize, SegmentLength, {self.hidden_size}], got {shape}")
        if not hidden.is_floating_point():
            raise ValueError(f"{name} must be floating, got {hidden.dtype}")
        if mask is not None and (mask.dtype != torch.bool or mask.shape != hidden.shape[:2]):
            raise ValueError(
                f"mask must be bool shaped {tuple(hidden.shape[:2])} [BatchSize, SegmentLength], "
                f"got {mask.dtype} shaped {tuple(mask.shape)}"
            )

    @staticmethod
    def _check_weights(weights: List[torch.Tensor], reminded_mask: torch.Tensor) -> None:
        batch_size, reminded_length = reminded_mask.shape
        for w in weights:
            if (
                not isinstance(w, torch.Tensor)
                or w.dim() != 4
                or w.size(0) != batch_size
                or w.size(-1) != reminded_length
            ):
                shape = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
                raise ValueError(
                    f"reminded_weights must be shaped [{batch_size}, NumHeads, SegmentLength, {reminded_length}] "
                    f"(the reminded read's attention weights), got {shape}"
                )
        if not weights:
            raise ValueError("reminded_weights must hold at least one read's weights")

    def extra_repr(self) -> str:
        s = self._memoria_settings
        return (
            f"hidden_size={self.hidden_size}, working_memory={self.working_memory!r}, stm_capacity="
            f"{s['stm_capacity']}, num_reminded_stm={s['num_reminded_stm']}, num_reminded_ltm={s['num_final_ltms']}, "
            f"mode={s['mode']!r}, lifespan_alpha={self.lifespan_alpha}, lifespan_rule={self.lifespan_rule!r}"
        )


@contextmanager
def exclude_memory(module: nn.Module) -> Iterator[nn.Module]:
    """Within the block, ``module.state_dict()`` holds no memory, only the parameters: a model saved this way
    loads with an empty memory.

    Example::

        with exclude_memory(model):
            torch.save(model.state_dict(), "weights.pt")
    """
    memories = [m for m in module.modules() if isinstance(m, MemoriaMemory)]
    saved = [m.save_memory for m in memories]
    for m in memories:
        m.save_memory = False
    try:
        yield module
    finally:
        for m, save in zip(memories, saved):
            m.save_memory = save


def reset_memory(module: nn.Module, rows: Optional[Rows] = None) -> None:
    """Reset every :class:`MemoriaMemory` inside ``module`` (all rows, or only ``rows``: a bool mask shaped
    [BatchSize] or row indices shaped [NumRows])."""
    for m in module.modules():
        if isinstance(m, MemoriaMemory):
            m.reset_memory(rows)


def _cpu(tensor: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    return None if tensor is None else tensor.detach().cpu().clone()
