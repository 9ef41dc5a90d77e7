"""Memoria: the orchestrator that a model calls once per step (docs/algorithm.md walks through the algorithm)."""

import math
import numbers
import operator
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch

from .checks import (
    STEP_ORDER,
    Rows,
    check_adjust_form,
    check_working_memory_form,
    is_next_call,
    out_of_order,
    rows_mask,
)
from .engram import Engrams, EngramType
from .history import EngramConnection, Firing, HistoryManager, build_summary
from .recall import recall_shortterm, seed_longterm, select_longterm, walk_longterm
from .similarity import Similarity, WorkingMemoryQuery
from .state import check_state
from .static import StaticMemoria
from .store import EngramStore
from .utils import positions_mask, presence_extent, tuned_for_cpu, unique_from_presence, unique_positions_from_mask

MODES = ("reference", "paper")
COUNT_SETTINGS = ("num_reminded_stm", "stm_capacity", "ltm_search_depth", "initial_lifespan", "num_final_ltms")
"""The settings that may be passed by position, in memoria-pytorch 1.0.0's order."""
TIE_BREAKS = ("random", "oldest")
DEFAULT_HISTORY_WINDOW = 100
FLOAT32_MAX = torch.finfo(torch.float32).max
NAN_ORIGIN = (
    "; NaN usually comes from a softmax over reminded memories in a row that has none (all indices -1: the first "
    "step, or a row just reset): mask with indices >= 0 and give such rows a fallback (README, 'Attention over "
    "reminded memories')"
)


class Memoria:
    """Human-inspired memory: working, short-term and long-term engrams linked by Hebbian counts.

    One step of a model is ``add_working_memory(x)``, ``remind()``, ``adjust_lifespan_and_memories(indices,
    delta)``, in that order (an out-of-order call raises ``RuntimeError`` and changes nothing; ``adjust`` may
    follow ``add`` directly only with indices shaped [BatchSize, 0], a step that reminded nothing). README.md has
    the tutorial; docs/algorithm.md the algorithm.

    ``Memoria`` is not an ``nn.Module``: it has no parameters, and its state (the engrams) is saved with
    :meth:`state_dict` / :meth:`load_state_dict` and moved with :meth:`to`.

    The first six arguments may be passed by position, in memoria-pytorch 1.0.0's order; the rest are keyword-only.

    Args:
        num_reminded_stm: STM engrams recalled per step and row.
        stm_capacity: the most STM engrams a row keeps; the oldest beyond it become LTM.
        ltm_search_depth: steps of each LTM graph walk.
        initial_lifespan: lifespan of a new engram.
        num_final_ltms: LTM engrams returned per step and row.
        device: where engrams live; by default the device of the first input. Checked now: "cuda" on a machine
            without CUDA raises ``ValueError``.
        track_age: keep :attr:`EngramStore.age`.
        track_id: keep :attr:`EngramStore.engram_ids` (forced on by ``keep_history``). ``track_engram_id`` (the
            name :class:`Engrams` uses) is accepted as a synonym.
        keep_history: record every step in one :class:`HistoryManager` per batch row (:attr:`histories`).
        similarity: "gaussian" (default, the paper's kernel ranked in log space), "l2", "cosine", or a callable
            ``f(working [B, W, D], keys [B, S, D]) -> [B, W, S]``.
        mode: "reference" (default) reproduces memoria-pytorch 1.0.0 engram for engram, quirks included;
            "paper" runs the algorithm as the paper describes it (docs/algorithm.md, "Reference quirks").
        max_ltm_per_row: optional bound on LTM engrams per row; the lowest-lifespan ones (oldest among equals)
            are deleted beyond it. None (default) keeps every LTM.
        history_window: with ``keep_history``, the steps each history holds (default 100; None keeps every
            step): the record of older steps (their summaries and firings, and the engrams deleted by then) is
            dropped, so that memory stays bounded. A summary lists every live engram and link: about 1 MB of
            Python objects per row and step with 100 engrams and 4,700 links.
        static_shapes: run every step on fixed-capacity buffers with no host sync, so that a step compiles into one
            graph (``torch.compile(fullgraph=True)``) and can be captured in a CUDA graph; needs ``mode="paper"`` and
            ``max_ltm_per_row``, refuses ``keep_history``. ``remind()`` then returns ``num_reminded_stm +
            num_final_ltms`` indices (-1 padded) that name slots (docs/algorithm.md, "Static shapes").
        tie_break: how a walk's seed is chosen among LTM engrams with equal Hebbian counts. "random" (the default
            path's default): by one float16 uniform tensor shaped [BatchSize, S, N] drawn from torch's generator
            per :meth:`remind`, as 1.0.0 draws it, so that ``torch.manual_seed`` reproduces its runs; its shape
            follows the widest row, so a row's ties depend on the other rows. "oldest" (the only one
            ``static_shapes`` takes, its default): the oldest engram, nothing drawn, so that each row's ties are
            its own (docs/algorithm.md, "Ties"). None: the default of the path.

    Counts (the first five arguments, ``max_ltm_per_row``, ``history_window``) may be ints, numpy integers or 0-d
    integer tensors.
    """

    def __init__(
        self,
        num_reminded_stm: int,
        stm_capacity: int,
        ltm_search_depth: int,
        initial_lifespan: float,
        num_final_ltms: int,
        device: Optional[Union[str, torch.device]] = None,
        *,
        track_age: bool = False,
        track_id: bool = False,
        keep_history: bool = False,
        similarity: Union[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = "gaussian",
        mode: str = "reference",
        max_ltm_per_row: Optional[int] = None,
        track_engram_id: Optional[bool] = None,
        history_window: Optional[int] = DEFAULT_HISTORY_WINDOW,
        static_shapes: bool = False,
        tie_break: Optional[str] = None,
    ) -> None:
        if track_engram_id is not None:
            track_id = track_id or track_engram_id
        if isinstance(device, bool):
            raise TypeError(
                "device must be a str or torch.device, got a bool: the sixth positional argument is device, as in "
                "memoria-pytorch 1.0.0; pass track_age, track_id and keep_history by keyword"
            )
        num_reminded_stm = _checked_count("num_reminded_stm", num_reminded_stm, minimum=0)
        stm_capacity = _checked_count("stm_capacity", stm_capacity, minimum=1)
        ltm_search_depth = _checked_count("ltm_search_depth", ltm_search_depth, minimum=0)
        num_final_ltms = _checked_count("num_final_ltms", num_final_ltms, minimum=0)
        initial_lifespan = _checked_lifespan(initial_lifespan)
        if max_ltm_per_row is not None:
            max_ltm_per_row = _checked_count("max_ltm_per_row", max_ltm_per_row, minimum=1)
        if history_window is not None:
            history_window = _checked_count("history_window", history_window, minimum=1)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not isinstance(static_shapes, bool):
            raise TypeError(f"static_shapes must be a bool, got {type(static_shapes).__name__}")
        if tie_break is None:
            tie_break = "oldest" if static_shapes else "random"
        if tie_break not in TIE_BREAKS:
            raise ValueError(f"tie_break must be None or one of {TIE_BREAKS}, got {tie_break!r}")
        if static_shapes and tie_break != "oldest":
            raise ValueError(
                f"static_shapes=True breaks ties by the oldest engram: tie_break must be 'oldest', got {tie_break!r}"
            )
        if static_shapes and (mode != "paper" or max_ltm_per_row is None or keep_history):
            raise ValueError(
                "static_shapes=True needs mode='paper' (the reference's quirks have data-dependent shapes) and "
                "max_ltm_per_row (the LTM capacity), and cannot keep_history (it reads every step on the host); got "
                f"mode={mode!r}, max_ltm_per_row={max_ltm_per_row!r}, keep_history={keep_history!r}"
            )

        self.num_reminded_stm = num_reminded_stm
        self.stm_capacity = stm_capacity
        self.ltm_search_depth = ltm_search_depth
        self.initial_lifespan = initial_lifespan
        self.num_final_ltms = num_final_ltms
        self.track_age = track_age
        self.track_id = track_id or keep_history
        self.keep_history = keep_history
        self.similarity = Similarity(similarity)
        self.mode = mode
        self.max_ltm_per_row = max_ltm_per_row
        self.history_window = history_window
        self.tie_break = tie_break
        self.device = _checked_device(device) if device is not None else None

        self.store: Optional[EngramStore] = None
        self.histories: List[HistoryManager] = []
        self._expected_call = STEP_ORDER[0]
        self._reminded: Optional[torch.Tensor] = None  # [B, R] positions this step's remind() returned
        self._output_device: Optional[torch.device] = None
        self._output_dtype = torch.float32
        self._fired: Optional[torch.Tensor] = None
        self._static = StaticMemoria(self._settings(), self.similarity) if static_shapes else None

    @property
    def engrams(self) -> Engrams:
        """A snapshot of every engram as an :class:`Engrams` value (memoria-pytorch 1.0.0's ``memoria.engrams``).

        Built from :attr:`store` on each read (fields in position order, copied): changing it does not change the
        memory; assign an :class:`Engrams` to replace the memory's engrams. ``Engrams.empty()`` while no engram
        is held. The step path never builds it. With ``static_shapes`` its positions are slots.
        """
        if self._static is not None:
            return self._static.engrams()
        store = self.store
        if store is None or store.length == 0:
            return Engrams.empty(track_age=self.track_age, track_engram_id=self.track_id)
        return Engrams(
            store.data,
            store.induce_counts,
            store.engrams_types.clone(),
            store.lifespan.clone(),
            None if store.age is None else store.age.clone(),
            None if store.engram_ids is None else store.engram_ids.clone(),
            track_age=self.track_age,
            track_engram_id=self.track_id,
        )

    @engrams.setter
    def engrams(self, engrams: Engrams) -> None:
        """Replace every engram with a copy of ``engrams`` (shaped [BatchSize, N, HiddenDim]), on this memory's
        device (or that of ``engrams``); the next call is :meth:`add_working_memory`."""
        if not isinstance(engrams, Engrams):
            raise TypeError(f"memoria.engrams must be set to an Engrams, got {type(engrams).__name__}")
        if self._static is not None:
            raise ValueError("memoria.engrams cannot be assigned with static_shapes=True: use load_state_dict()")
        if engrams.batch_size == 0:
            self.reset_memory()
            return
        if self.track_age and engrams.age is None or self.track_id and engrams.engram_ids is None:
            raise ValueError("this Memoria tracks age/engram ids: the Engrams assigned must carry them too")
        device = self.device or engrams.data.device
        store = EngramStore(engrams.batch_size, engrams.hidden_dim, device, self.track_age, self.track_id)
        store.load(engrams.data, engrams.lifespan, engrams.engrams_types, engrams.induce_counts)
        if store.age is not None:
            store.age.copy_(engrams.age)
        if store.engram_ids is not None:
            store.engram_ids.copy_(engrams.engram_ids)
            store.next_id = int(engrams.engram_ids.max()) + 1 if engrams.engram_ids.numel() else 0
        self.store = store
        if self.keep_history and len(self.histories) != engrams.batch_size:
            self.histories = [HistoryManager() for _ in range(engrams.batch_size)]
        self._expected_call = STEP_ORDER[0]
        self._reminded = None

    @property
    def ext_device(self) -> Optional[torch.device]:
        """The device of the latest input, where results come back (memoria-pytorch 1.0.0's name)."""
        return self._output_device

    @property
    def paper(self) -> bool:
        return self.mode == "paper"

    # ------------------------------------------------------------------------------------------ the step
    @torch.no_grad()
    def add_working_memory(self, data: torch.Tensor) -> None:
        """Store this step's working memory as W new WORKING engrams per row.

        Args:
            data: floating tensor shaped [BatchSize, WorkingLength, HiddenDim]; it is detached and kept as float32
                on the memory's device. Results of :meth:`remind` come back on its device and in its dtype.
                NaN or inf raises ``ValueError`` where ``data`` is on a CPU; elsewhere it fails a device-side
                assertion (``torch._assert_async``), which costs no host sync.
        """
        if self._static is not None:
            self.store = self._static.add_working_memory(data, self.device)
            self._output_device = data.device
            return
        self._check_order("add_working_memory")
        self._check_working_memory(data)
        B, W, D = data.shape
        if self.store is None or self.store.length == 0:
            device = self.device or (self.store.device if self.store is not None else data.device)
            self.store = EngramStore(B, D, device, track_age=self.track_age, track_id=self.track_id)
            if self.keep_history and len(self.histories) != B:
                self.histories = [HistoryManager() for _ in range(B)]
        self._output_device = data.device
        self._output_dtype = data.dtype
        self.store.add_working(data.detach().to(device=self.store.device, dtype=torch.float32), self.initial_lifespan)
        if self.keep_history:
            new_ids = self.store.engram_ids[:, -W:].tolist()
            for history, ids in zip(self.histories, new_ids):
                history.add_created(ids)
        self._expected_call = "remind"

    @torch.no_grad()
    def remind(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Recall the STM and LTM engrams that this step's working memory reminds, and fire them together.

        Call it once per step, after :meth:`add_working_memory`; a second call before
        :meth:`adjust_lifespan_and_memories` raises ``RuntimeError`` (it would fire the same engrams twice).

        Returns:
            memories: their data shaped [BatchSize, RemindedLength, HiddenDim] (zeros where the index is -1), on the
                latest input's device and in its dtype.
            indices: long tensor shaped [BatchSize, RemindedLength] of engram positions, -1 where a row has fewer
                (a row may have none: mask attention with ``indices >= 0``, README "Attention over reminded
                memories").
        """
        if self._static is not None:
            return self._static.remind()
        self._check_order("remind")
        store = self.store
        working_positions = store.positions(EngramType.WORKING)  # [B, W]
        query = WorkingMemoryQuery(self.similarity, store.data_at(working_positions), store)
        with torch.profiler.record_function("memoria.recall_stm"):
            recalled_stm = recall_shortterm(store, query, self.num_reminded_stm, paper=self.paper)
        longterm = store.longterm_window()
        with torch.profiler.record_function("memoria.seed_ltm"):
            seeds = seed_longterm(
                store, longterm, recalled_stm, paper=self.paper, random_ties=self.tie_break == "random"
            )
        with torch.profiler.record_function("memoria.walk_ltm"):
            found = walk_longterm(longterm, seeds, self.ltm_search_depth, paper=self.paper)
        with torch.profiler.record_function("memoria.select_ltm"):
            recalled_ltm = select_longterm(query, found, self.num_final_ltms, paper=self.paper)

        reminded, firing = self._reminded_and_firing(recalled_stm, recalled_ltm)
        with torch.profiler.record_function("memoria.fire"):
            store.fire_mask(*firing)
        if self.keep_history:
            self._fired = torch.cat([working_positions, reminded], dim=1)  # [B, W + R]
        self._expected_call = "adjust_lifespan_and_memories"
        self._reminded = reminded
        return self._to_output(store.data_at(reminded)), reminded.to(self._output_device)

    def _reminded_and_firing(
        self, recalled_stm: torch.Tensor, recalled_ltm: torch.Tensor
    ) -> Tuple[torch.Tensor, Tuple[torch.Tensor, List[int]]]:
        """The reminded engrams without duplicates [BatchSize, R], and the firing engrams (working and reminded)
        as a bool mask [BatchSize, N] with the widths :meth:`EngramStore.fire_mask` needs: every data-dependent
        width of the step's end in one host read-back.

        Reference mode keeps :func:`~memoria.utils.super_unique`'s order, -1 a value among the others; paper mode
        gives ascending positions, -1 padded.
        """
        store = self.store
        n = store.length
        candidates = torch.cat([recalled_stm, recalled_ltm], dim=1)  # [B, S + F']
        if self.paper:
            present = positions_mask(candidates, n)  # [B, N]
            reminded_positions = present
        else:
            present = torch.zeros(store.batch_size, n + 1, dtype=torch.bool, device=store.device)  # column 0: -1
            present.scatter_(1, candidates + 1, True)
            reminded_positions = present[:, 1:]
        firing = reminded_positions | store.mask(EngramType.WORKING)  # [B, N]
        figures = torch.cat([presence_extent(present), store.firing_widths(firing)]).tolist()  # the one read-back
        extent, firing_widths = figures[:3], figures[3:]
        if self.paper:
            reminded = unique_positions_from_mask(present, extent[2])
        else:
            reminded = unique_from_presence(present, -1, extent)
        return reminded, (firing, firing_widths)

    @torch.no_grad()
    def adjust_lifespan_and_memories(self, indices: torch.Tensor, lifespan_delta: torch.Tensor) -> None:
        """Reward reminded engrams, age everything, promote and forget.

        Adds each delta to its engram's lifespan (repeated indices add up, -1 is ignored); every engram loses 1
        lifespan; WORKING engrams become SHORTTERM; a row's oldest STM engrams beyond ``stm_capacity`` become
        LONGTERM; engrams whose lifespan is <= 0 are deleted.

        Args:
            indices: integer tensor shaped [BatchSize, RemindedLength], the indices this step's :meth:`remind`
                returned (an entry may be replaced by -1, which is ignored), or shaped [BatchSize, 0] right after
                :meth:`add_working_memory`.
            lifespan_delta: real tensor of the same shape.
        """
        if self._static is not None:
            return self._static.adjust_lifespan_and_memories(indices, lifespan_delta)
        self._check_order("adjust_lifespan_and_memories", indices)
        store = self.store
        indices, lifespan_delta, checks = self._check_adjust_inputs(store, indices, lifespan_delta)
        with torch.profiler.record_function("memoria.adjust"):
            # plan the step without changing anything, so that a refused call leaves the memory as it was
            gain = store.lifespan_gain(indices, lifespan_delta)  # 1) reward the reminded engrams
            ageing = self._ageing()
            lifespan = store.lifespan + gain - ageing.to(gain.dtype)  # 2) every engram loses 1 lifespan
            survives = ageing & (lifespan > 0)
            working = store.mask(EngramType.WORKING)  # 3) every WORKING engram becomes SHORTTERM
            shortterm = store.mask(EngramType.SHORTTERM) | working
            promoted = self._beyond_stm_capacity(shortterm)  # 4) the oldest STM beyond capacity become LONGTERM
            longterm = store.mask(EngramType.LONGTERM) | promoted
            keep = self._bound_longterm(survives, longterm, lifespan)
            widths = self._read_back_adjust(checks, survives, keep, shortterm & ~promoted, longterm)
            # then change it (the one host read-back above raised on bad inputs)
            store.set_lifespan(lifespan)
            store.materialise_padding(survives, widths["unstored"])  # quirk: rewarded padding lives on
            store.retype(working, EngramType.SHORTTERM)
            store.retype(promoted, EngramType.LONGTERM)
            if self.keep_history:
                firings, deleted = self._firings_and_deletions(keep, gain)
            store.forget(keep, (widths["length"], 0))  # 5) engrams out of lifespan (and LTM beyond the bound) go
            store.set_widths(widths["types"])
        if self.keep_history:
            self._record_step(firings, deleted)
        self._expected_call = "add_working_memory"

    def _ageing(self) -> torch.Tensor:
        """The positions that lose lifespan this step, [BatchSize, N] bool: live engrams; in reference mode
        padding too (so padding that a quirk rewarded can survive, docs/algorithm.md)."""
        live = self.store.engrams_types != EngramType.NULL.value  # [B, N]
        return live if self.paper else torch.ones_like(live)

    def _beyond_stm_capacity(self, shortterm: torch.Tensor) -> torch.Tensor:
        """A row's oldest SHORTTERM engrams beyond ``stm_capacity``, which become LONGTERM: of the bool mask
        ``shortterm`` [BatchSize, N], a bool mask [BatchSize, N]."""
        excess = shortterm.sum(1, keepdim=True) - self.stm_capacity  # [B, 1]
        return shortterm & (shortterm.cumsum(1) <= excess)

    def _read_back_adjust(
        self,
        checks: torch.Tensor,
        survives: torch.Tensor,
        keep: torch.Tensor,
        shortterm: torch.Tensor,
        longterm: torch.Tensor,
    ) -> Dict[str, Any]:
        """The adjust step's one host read-back: the checks of its inputs (raising before anything changes) and
        the widths it needs (padding to store, the new length, the most STM and LTM engrams in a row).

        Args:
            checks: long [4] from :meth:`_check_adjust_inputs`.
            survives, keep: bool [BatchSize, N], the engrams alive after ageing and those kept.
            shortterm, longterm: bool [BatchSize, N], the STM and LTM engrams after promotion.
        """
        store = self.store
        kept = torch.stack([keep.sum(1), (keep & shortterm).sum(1), (keep & longterm).sum(1)], dim=1)  # [B, 3]
        unstored = store.unstored(survives).sum(1).amax()
        figures = torch.cat([checks, unstored[None], kept.amax(0)]).tolist()
        self._raise_on_bad_adjust_inputs(store, *figures[:4])
        length, most_shortterm, most_longterm = figures[5:]
        types = {EngramType.WORKING: 0, EngramType.SHORTTERM: most_shortterm, EngramType.LONGTERM: most_longterm}
        return {"length": length, "unstored": figures[4], "types": types}

    def _bound_longterm(self, keep: torch.Tensor, longterm: torch.Tensor, lifespan: torch.Tensor) -> torch.Tensor:
        """``keep`` [BatchSize, N] less the LTM engrams (of the bool mask ``longterm``) beyond ``max_ltm_per_row``,
        lowest ``lifespan`` first, oldest first among equals."""
        if self.max_ltm_per_row is None:
            return keep
        longterm = keep & longterm
        key = lifespan.masked_fill(~longterm, float("inf"))
        order = torch.sort(key, dim=1, stable=True).indices  # lowest lifespan first, oldest first among equals
        rank = torch.empty_like(order).scatter_(
            1, order, torch.arange(order.size(1), device=order.device).expand_as(order)
        )
        excess = (longterm.sum(1, keepdim=True) - self.max_ltm_per_row).clamp(min=0)
        return keep & ~(longterm & (rank < excess))

    # ------------------------------------------------------------------------------------------ state
    def reset_memory(self, rows: Optional[Rows] = None) -> None:
        """Forget engrams: all of them, or only those of the chosen batch rows.

        A full reset also restarts the step order (the next call is :meth:`add_working_memory`); a reset of some
        rows leaves it where it is, so a model may drop rows between :meth:`add_working_memory` and :meth:`remind`.

        Args:
            rows: None for everything; else a bool mask shaped [BatchSize] or a sequence/tensor of row indices.
                Other rows stay bit-identical.
        """
        if self._static is not None:
            mask = None if rows is None or self.store is None else rows_mask(rows, self.store.batch_size)
            return self._static.reset_memory(mask, everything=rows is None)
        if rows is None:
            if self.store is not None:
                s = self.store
                self.store = EngramStore(s.batch_size, s.hidden_dim, s.device, self.track_age, self.track_id)
            self.histories = [HistoryManager() for _ in self.histories]
            self._expected_call = STEP_ORDER[0]
            return
        if self.store is None:
            return
        mask = rows_mask(rows, self.store.batch_size)
        if self.keep_history:
            for row in mask.nonzero().flatten().tolist():
                self.histories[row] = HistoryManager()
        self.store.clear_rows(mask.to(self.store.device))

    def to(self, device: Union[str, torch.device]) -> "Memoria":
        """Move the engrams (and future storage) to ``device``; returns self.

        Raises:
            ValueError: ``device`` is the meta device (it would drop every value) or a CUDA device this machine
                lacks; the memory stays where it was.
        """
        self.device = _checked_device(device)
        if self.store is not None:
            self.store.to(self.device)
        return self

    def state_dict(self) -> Dict[str, Any]:
        """Everything needed to restore this memory exactly: engrams, counters, the step order and settings
        (tensors on CPU). A model that holds a ``Memoria`` saves this beside its own ``state_dict()``."""
        if self._static is not None:
            return self._static.state_dict(self._settings())
        state: Dict[str, Any] = {
            "settings": self._settings(),
            "output_dtype": str(self._output_dtype),
            "expected_call": self._expected_call,
            "reminded": None if self._reminded is None else self._reminded.cpu().clone(),
        }
        if self.store is not None:
            e = self.store
            state["engrams"] = {
                "batch_size": e.batch_size,
                "hidden_dim": e.hidden_dim,
                "next_id": e.next_id,
                "data": e.data.cpu().clone(),
                "lifespan": e.lifespan.cpu().clone(),
                "engrams_types": e.engrams_types.cpu().clone(),
                "induce_counts": e.induce_counts.cpu().clone(),
                "age": None if e.age is None else e.age.cpu().clone(),
                "engram_ids": None if e.engram_ids is None else e.engram_ids.cpu().clone(),
            }
        if self.keep_history:
            state["histories"] = [h.to_dict() for h in self.histories]
            if self._fired is not None:  # mid-step: the positions that fired, recorded when the step ends
                state["fired"] = self._fired.cpu().clone()
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (onto this memory's device, or the CPU when none is set).

        The whole state is checked before anything changes (:func:`memoria.state.check_state`): a state with a
        missing or unknown field, a tensor of the wrong shape or dtype, NaN/inf, an unknown engram type, an
        impossible next call, other settings (``history_window`` aside), or no histories while this memory keeps
        history raises ``ValueError`` naming the field, and the memory is left exactly as it was.
        """
        if self._static is not None or "static_shapes" in state:
            if self._static is None:
                raise ValueError("state_dict was saved with static_shapes=True: load it into such a Memoria")
            self.store = self._static.load_state_dict(state, self._settings(), self.device)
            return
        checked = check_state(state, self._settings(), self.device or torch.device("cpu"), ("history_window",))
        self.store = checked.store
        self.histories = checked.histories
        self._output_dtype = checked.output_dtype
        self._expected_call = checked.expected_call
        self._reminded = checked.reminded
        self._fired = None if checked.fired is None else checked.fired.to(self.store.device)
        if self.keep_history and self.history_window is not None:
            for history in self.histories:
                history.forget_before(history.timestep - self.history_window)

    # ------------------------------------------------------------------------------------------ checks
    def _settings(self) -> Dict[str, Any]:
        return {
            **{name: getattr(self, name) for name in COUNT_SETTINGS},
            "track_age": self.track_age,
            "track_id": self.track_id,
            "keep_history": self.keep_history,
            "mode": self.mode,
            "max_ltm_per_row": self.max_ltm_per_row,
            "history_window": self.history_window,
        }

    def _check_order(self, call: str, indices: Any = None) -> None:
        """Raise unless ``call`` is the next call of a step (add -> remind -> adjust)."""
        if is_next_call(call, self._expected_call, indices):
            return
        if call != STEP_ORDER[0] and self.store is None:
            raise RuntimeError(f"{call}() needs engrams: call add_working_memory() first")
        raise out_of_order(call, self._expected_call)

    def _check_working_memory(self, data: Any) -> None:
        B, W, D = check_working_memory_form(data)
        if self.store is not None and self.store.length > 0:
            if B != self.store.batch_size:
                raise ValueError(
                    f"data batch size {B} differs from the {self.store.batch_size} rows memory holds; "
                    "call reset_memory() first"
                )
            if D != self.store.hidden_dim:
                raise ValueError(
                    f"data hidden size {D} differs from the memory's {self.store.hidden_dim}; call reset_memory() first"
                )
        _refuse_nonfinite("data", data, NAN_ORIGIN)

    def _check_adjust_inputs(
        self, store: EngramStore, indices: torch.Tensor, lifespan_delta: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Check what the host knows of the inputs (raising now) and return them on the memory's device, with the
        checks of their values as a long tensor [4] (lowest and highest index, how many entries are neither -1 nor
        what remind() returned, whether the deltas are finite) for :meth:`_raise_on_bad_adjust_inputs` after the
        step's one read-back."""
        if not isinstance(indices, torch.Tensor) or not isinstance(lifespan_delta, torch.Tensor):
            raise TypeError("indices and lifespan_delta must be torch.Tensors shaped [BatchSize, RemindedLength]")
        if indices.dim() != 2 or indices.size(0) != store.batch_size:
            raise ValueError(
                f"indices must be shaped [BatchSize={store.batch_size}, RemindedLength], got {tuple(indices.shape)}"
            )
        reminded = self._reminded if self._expected_call == STEP_ORDER[2] else indices.new_empty(indices.size(0), 0)
        if indices.size(1) != reminded.size(1):
            raise ValueError(
                f"indices must be the ones this step's remind() returned, shaped [BatchSize, {reminded.size(1)}], "
                f"got {tuple(indices.shape)}"
            )
        check_adjust_form(indices, lifespan_delta)
        indices = indices.to(store.device, torch.long)
        lifespan_delta = lifespan_delta.to(store.device)
        if indices.numel():
            low, high = indices.amin(), indices.amax()
        else:
            low = high = torch.full((), -1, device=store.device)
        moved = ((indices != reminded.to(store.device)) & (indices != -1)).sum()  # entries naming other positions
        finite = (
            _all_finite(lifespan_delta.float()) if lifespan_delta.is_floating_point() else indices.new_ones(())
        )  # as stored
        return indices, lifespan_delta, torch.stack([low, high, moved, finite.long()])

    @staticmethod
    def _raise_on_bad_adjust_inputs(store: EngramStore, low: int, high: int, moved: int, finite: int) -> None:
        """Raise on the figures of :meth:`_check_adjust_inputs`, read back with the step's widths."""
        if low < -1 or high >= store.length:
            raise ValueError(f"indices must lie in [-1, {store.length}) (-1 = none), got range [{low}, {high}]")
        if moved:
            raise ValueError(
                "indices must be the ones this step's remind() returned (an entry may be -1 instead): indices of "
                "an earlier step name positions that have moved since"
            )
        if not finite:
            raise ValueError(f"lifespan_delta contains NaN or inf as float32{NAN_ORIGIN}")

    def _to_output(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(device=self._output_device, dtype=self._output_dtype)

    # ------------------------------------------------------------------------------------------ history
    def _firings_and_deletions(
        self, keep: torch.Tensor, gain: torch.Tensor
    ) -> Tuple[List[List[Firing]], List[List[int]]]:
        """Per row: the engrams that fired this step with their lifespan gain, and the ids deleted now."""
        ids = self.store.engram_ids.cpu()
        gain = gain.cpu()
        fired, self._fired = self._fired, None
        firings: List[List[Firing]] = []
        deleted: List[List[int]] = []
        for row, history in enumerate(self.histories):
            positions = [] if fired is None else sorted({p for p in fired[row].tolist() if p >= 0})
            firings.append(
                [Firing(history.timestep, int(ids[row, p]), float(gain[row, p])) for p in positions if ids[row, p] >= 0]
            )
            gone = (~keep[row].cpu()) & (ids[row] >= 0)
            deleted.append(ids[row][gone].tolist())
        return firings, deleted

    def _record_step(self, firings: List[List[Firing]], deleted: List[List[int]]) -> None:
        """Close the step in every row's history with a summary of the engrams after it."""
        e = self.store
        ids, types, lifespan, counts = (
            e.engram_ids.cpu(),
            e.engrams_types.cpu(),
            e.lifespan.cpu(),
            e.induce_counts.cpu(),
        )
        age = None if e.age is None else e.age.cpu()
        for row, history in enumerate(self.histories):
            live_mask = (types[row, : e.length] != EngramType.NULL.value) & (ids[row, : e.length] >= 0)  # [N]
            live = live_mask.nonzero().flatten().tolist()
            row_ids, row_types, row_life = ids[row].tolist(), types[row].tolist(), lifespan[row].tolist()
            row_age = None if age is None else age[row].tolist()
            row_counts = counts[row, : e.length, : e.length]  # [N, N]
            fired = row_counts.diagonal()  # [N]
            fired_list = fired.tolist()
            fields = [
                {
                    "id": row_ids[p],
                    "type": EngramType(row_types[p]).name,
                    "lifespan": row_life[p],
                    "age": None if row_age is None else row_age[p],
                    "fire_count": fired_list[p],
                }
                for p in live
            ]
            # links between live engrams i != j that fired together, in row-major order of (i, j)
            linked = (row_counts > 0) & (fired > 0)[:, None] & live_mask[:, None] & live_mask[None, :]
            linked.fill_diagonal_(False)
            edges = {}
            pairs = linked.nonzero()  # [L, 2]
            for (i, j), together in zip(pairs.tolist(), row_counts[pairs[:, 0], pairs[:, 1]].tolist()):
                key = (row_ids[i], row_ids[j])
                edges[key] = EngramConnection(key[0], key[1], together / fired_list[i], together)
            by_type = {
                name: [f["id"] for f in fields if f["type"] == name] for name in ("WORKING", "SHORTTERM", "LONGTERM")
            }
            summary = build_summary(fields, edges, by_type["WORKING"], by_type["SHORTTERM"], by_type["LONGTERM"])
            history.add_step(firings[row], deleted[row], summary)
            if self.history_window is not None:
                history.forget_before(history.timestep - self.history_window)


def _all_finite(t: torch.Tensor) -> torch.Tensor:
    """Whether every entry of a floating tensor is finite, as a 0-d bool tensor, in three launches: x * 0 is 0
    where x is finite and NaN where it is not, and a sum of zeros is 0."""
    return t.mul(0).sum() == 0


def _checked_count(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int >= ``minimum``: an int, a numpy integer or a 0-d integer tensor (not a bool or float)."""
    is_bool = isinstance(value, bool) or type(value).__name__ == "bool_"
    if isinstance(value, torch.Tensor):
        is_bool = value.dtype == torch.bool
        if value.dim() != 0 or value.is_floating_point() or value.is_complex():
            is_bool = True  # refused below, as a non-int
    if is_bool or not isinstance(value, (int, numbers.Integral, torch.Tensor)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = operator.index(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _checked_lifespan(value: Any) -> Union[int, float]:
    """``initial_lifespan`` as a positive finite number: an int, a float, a numpy number or a 0-d real tensor."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and value.dtype != torch.bool and not value.is_complex():
        value = value.item()
    if isinstance(value, bool) or type(value).__name__ == "bool_" or not isinstance(value, numbers.Real):
        raise TypeError(f"initial_lifespan must be a number, got {type(value).__name__}")
    value = operator.index(value) if isinstance(value, numbers.Integral) else float(value)
    if not value > 0 or not math.isfinite(value) or value > FLOAT32_MAX:
        raise ValueError(f"initial_lifespan must be a positive finite number (float32), got {value}")
    return value


def _refuse_nonfinite(name: str, values: torch.Tensor, hint: str = "") -> None:
    """Refuse NaN or inf in ``values`` as they would be stored, in float32 (so float64 beyond float32's range too).

    On the CPU a ``ValueError``; on other devices ``torch._assert_async``, which does not wait for the device:
    the error surfaces at a later synchronisation, and a CUDA device-side assert ends the process's CUDA context.
    """
    if not values.is_floating_point():
        return
    if values.dtype == torch.float64:
        values = values.to(torch.float32)  # beyond float32's range becomes inf
    finite = torch.isfinite(values)
    if not tuned_for_cpu(values.device):
        torch._assert_async(finite.all(), f"{name} contains NaN or inf (as float32)")
        return
    if not bool(finite.all()):
        rows = (~finite.flatten(1).all(1)).nonzero().flatten().tolist() if values.dim() > 1 else []
        where = f" (rows {rows})" if rows else ""
        raise ValueError(f"{name} contains NaN or inf as float32{where}{hint}")


def _checked_device(device: Union[str, torch.device]) -> torch.device:
    """``torch.device(device)``, refused now if it is the meta device or names a CUDA device that this machine
    does not have."""
    device = torch.device(device)
    if device.type == "meta":
        raise ValueError("device 'meta' holds no values: Memoria needs a device its engrams can live on")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {str(device)!r}: CUDA is not available on this machine (torch.cuda.is_available())"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device
