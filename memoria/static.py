"""The Memoria step with static shapes: ``Memoria(..., static_shapes=True)`` runs here.

The algorithm is the paper's (``mode="paper"``, docs/algorithm.md "One step"), on a
:class:`~memoria.static_store.StaticEngramStore` whose buffers never change shape. Each step is a fixed
sequence of tensor operations: masks instead of compaction, ``topk`` with a fixed k, walks of a fixed number of
walkers for a fixed depth, ``where`` instead of Python ``if`` on tensors. Nothing is read back to the host, so
a whole step (add -> remind -> adjust) compiles with ``torch.compile(fullgraph=True)`` into one graph and can be
captured in a CUDA graph.

``remind()`` runs these steps (:class:`StaticMemoria`):

1. :func:`recall_shortterm`: the ``num_reminded_stm`` STM engrams closest to working memory.
2. :func:`walk_longterm`: one step from every recalled STM to its most strongly linked LTM engram (the seeds),
   then ``ltm_search_depth`` greedy steps through the LTM Hebbian graph, all walks of a row sharing one visited set.
3. :func:`select_longterm`: the ``num_final_ltms`` engrams found that are closest to working memory.
4. ``StaticEngramStore.fire_together``: working and reminded engrams fire together.

and ``adjust_lifespan_and_memories()``: reward, age, working -> STM, :func:`promote_oldest_shortterm`,
:func:`beyond_longterm_bound`, forget.

Ties between equal counts (seeds and walk steps) go to the oldest engram, not to random noise: the step draws
nothing from torch's generator (docs/algorithm.md, "Static shapes").
"""

from typing import Any, Dict, Optional, Tuple

import torch

from .checks import STEP_ORDER, check_adjust_form, check_working_memory_form, is_next_call, out_of_order
from .engram import Engrams, EngramType
from .similarity import Similarity
from .static_store import StaticEngramStore

RULED_OUT = -(2**31)
"""The walk key of a column a walker may not move to (not LTM, or visited): below every allowed column's key."""


# ------------------------------------------------------------------------------------------ 1. STM recall
def recall_shortterm(store: StaticEngramStore, scores: torch.Tensor, num_reminded: int) -> torch.Tensor:
    """The ``num_reminded`` STM engrams with the best ``scores``, best first.

    Args:
        store: the engrams.
        scores: pooled similarity of every slot to working memory, shaped [BatchSize, C + 1].
        num_reminded: k.

    Returns:
        long tensor shaped [BatchSize, num_reminded]: slots, the sentinel where a row has fewer STM engrams.
    """
    return _best_of(scores, store.mask(EngramType.SHORTTERM), num_reminded, store.sentinel)


# ------------------------------------------------------------------------------------------ 2. LTM walk
def walk_longterm(store: StaticEngramStore, recalled_stm: torch.Tensor, depth: int) -> torch.Tensor:
    """Seed and walk the LTM Hebbian graph: the LTM engrams found, as a mask.

    Step 0 moves every recalled STM engram to the LTM engram it fired with most often (the seeds); each of the
    ``depth`` steps after it moves every walker to the unvisited LTM engram with the highest count from where it
    stands. A move needs a count of at least 1; a walker that cannot move stops (it stands on the sentinel, whose
    counts are 0). Ties go to the oldest engram. All walks of a row share one visited set, updated after every
    walker has chosen its step, so walkers that meet take the same steps from then on (as the paper's frontier of
    distinct engrams does).

    Args:
        store: the engrams.
        recalled_stm: [BatchSize, K] slots from :func:`recall_shortterm` (the sentinel where none).
        depth: ``ltm_search_depth``.

    Returns:
        bool tensor shaped [BatchSize, C + 1]: the LTM engrams reached (seeds included).
    """
    S = store.capacity + 1
    longterm = store.mask(EngramType.LONGTERM)  # [B, C + 1]
    seniority = store.seniority(store.birth_order())  # [B, C + 1] int32, higher for older engrams
    # the key of a move to column c is count * S + column_key[c]: highest count, then oldest
    column_key = seniority.masked_fill(~longterm, RULED_OUT)  # [B, C + 1]
    walkers = recalled_stm
    for _ in range(depth + 1):
        walkers = _strongest_allowed_link(store, walkers, column_key, S)
        column_key.scatter_(1, walkers, RULED_OUT)  # visited (the sentinel column never was allowed)
    return longterm & (column_key == RULED_OUT)


def _strongest_allowed_link(
    store: StaticEngramStore, walkers: torch.Tensor, column_key: torch.Tensor, S: int
) -> torch.Tensor:
    """Each walker's next slot [BatchSize, K]: the allowed column with the highest count from where it stands
    (oldest among equals), or the sentinel when no allowed column has a count >= 1."""
    key = torch.add(column_key[:, None, :], store.counts_from(walkers), alpha=S)  # [B, K, C + 1] int32
    best, column = key.max(dim=2)
    return column.masked_fill_(best < S, store.sentinel)


# ------------------------------------------------------------------------------------------ 3. LTM selection
def select_longterm(
    store: StaticEngramStore, scores: torch.Tensor, found: torch.Tensor, num_final: int
) -> torch.Tensor:
    """The ``num_final`` engrams of the ``found`` mask [BatchSize, C + 1] with the best ``scores``, best first:
    long [BatchSize, num_final], the sentinel where fewer were found."""
    return _best_of(scores, found, num_final, store.sentinel)


def _best_of(scores: torch.Tensor, allowed: torch.Tensor, k: int, sentinel: int) -> torch.Tensor:
    """The k allowed columns with the highest scores [BatchSize, C + 1], best first, the sentinel where fewer."""
    best = scores.masked_fill(~allowed, float("-inf")).topk(min(k, scores.size(1)), dim=1)
    chosen = best.indices.masked_fill_(best.values == float("-inf"), sentinel)  # [B, min(k, C + 1)]
    if k > scores.size(1):  # more asked for than there are slots
        chosen = torch.cat([chosen, chosen.new_full((chosen.size(0), k - scores.size(1)), sentinel)], dim=1)
    return chosen


# ------------------------------------------------------------------------------------------ adjust
def promote_oldest_shortterm(store: StaticEngramStore, order: torch.Tensor, capacity: int) -> torch.Tensor:
    """The oldest STM engrams of each row beyond ``capacity``, as a mask [BatchSize, C + 1].

    Args:
        order: :meth:`StaticEngramStore.birth_order`.
    """
    return _first_in_order(store.mask(EngramType.SHORTTERM), order, capacity)


def beyond_longterm_bound(
    store: StaticEngramStore, keep: torch.Tensor, order: torch.Tensor, bound: int
) -> torch.Tensor:
    """The kept LTM engrams beyond ``bound`` per row: the lowest lifespan first, the oldest among equals (the rule
    of the default path's ``max_ltm_per_row``). A mask [BatchSize, C + 1].

    Args:
        keep: bool [BatchSize, C + 1], the engrams that survive this step otherwise.
        order: :meth:`StaticEngramStore.birth_order`.
    """
    longterm = keep & store.mask(EngramType.LONGTERM)  # [B, C + 1]
    lifespan = store.lifespans().gather(1, order)  # in birth order
    by_lifespan = lifespan.masked_fill(~longterm.gather(1, order), float("inf")).sort(dim=1, stable=True).indices
    return _first_in_order(longterm, order.gather(1, by_lifespan), bound)


def _first_in_order(mask: torch.Tensor, order: torch.Tensor, limit: int) -> torch.Tensor:
    """The entries of ``mask`` [BatchSize, C + 1] beyond the ``limit`` last ones, counted along ``order``
    (a permutation of the columns): a mask [BatchSize, C + 1] of the first ``count - limit`` in that order."""
    in_order = mask.gather(1, order)  # [B, C + 1]
    excess = mask.sum(1, keepdim=True) - limit  # [B, 1]
    first = in_order & (in_order.cumsum(1) <= excess)
    return torch.zeros_like(mask).scatter_(1, order, first)


# ------------------------------------------------------------------------------------------ the engine
class StaticMemoria:
    """The state and the step of ``Memoria(static_shapes=True)``; ``Memoria`` dispatches its public calls here.

    Buffers are allocated at the first :meth:`add_working_memory`, which fixes B, W and D; they keep their
    shapes and addresses from then on (:meth:`reset_memory` clears them in place).

    Args:
        settings: ``Memoria``'s constructor settings (``num_reminded_stm``, ``stm_capacity``, ``ltm_search_depth``,
            ``initial_lifespan``, ``num_final_ltms``, ``max_ltm_per_row``, ``track_age``, ``track_id``).
        similarity: the kernel and its pooling.
    """

    def __init__(self, settings: Dict[str, Any], similarity: Similarity) -> None:
        self.settings = dict(settings)
        self.similarity = similarity
        self.store: Optional[StaticEngramStore] = None
        self.reminded_length = settings["num_reminded_stm"] + settings["num_final_ltms"]
        self.expected_call = STEP_ORDER[0]
        self.output_device: Optional[torch.device] = None
        self.output_dtype = torch.float32

    # ------------------------------------------------------------------------------------------ the step
    def add_working_memory(self, data: torch.Tensor, device: Optional[torch.device]) -> StaticEngramStore:
        """Store W new WORKING engrams per row (see ``Memoria.add_working_memory``); returns the store.

        Args:
            data: floating tensor shaped [BatchSize, WorkingLength, HiddenDim]; the first call fixes all three.
            device: where the engrams live (None: ``data``'s device, at the first call).
        """
        self._check_order("add_working_memory")
        self._check_working_memory(data)
        if self.store is None:
            self.store = self._allocate(*data.shape, device=device or data.device)
        store = self.store
        torch._assert_async(torch.isfinite(data).all(), "data contains NaN or inf")
        self.output_device, self.output_dtype = data.device, data.dtype
        store.add_working(data.detach().to(device=store.device, dtype=torch.float32), self.settings["initial_lifespan"])
        self.expected_call = "remind"
        return store

    def remind(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Recall, walk, select and fire (see ``Memoria.remind``).

        Returns:
            memories: [BatchSize, R, HiddenDim] (zeros where the index is -1), on the latest input's device and dtype.
            indices: long [BatchSize, R] slots, R = ``num_reminded_stm + num_final_ltms``: the recalled STM engrams
                (best first) in the first ``num_reminded_stm`` columns, the selected LTM engrams (best first) in the
                rest, -1 where a part has fewer.
        """
        self._check_order("remind")
        store, s = self.store, self.settings
        scores = self._scores(store)  # [B, C + 1]
        recalled_stm = recall_shortterm(store, scores, s["num_reminded_stm"])  # 1)
        found = walk_longterm(store, recalled_stm, s["ltm_search_depth"])  # 2)
        recalled_ltm = select_longterm(store, scores, found, s["num_final_ltms"])  # 3)
        reminded = torch.cat([recalled_stm, recalled_ltm], dim=1)  # [B, R]
        store.fire_together(torch.cat([store.working, reminded], dim=1))  # 4)
        store.reminded.copy_(reminded)
        self.expected_call = "adjust_lifespan_and_memories"
        memories = store.data_at(reminded).to(device=self.output_device, dtype=self.output_dtype)
        indices = reminded.masked_fill(reminded == store.sentinel, -1)
        return memories, indices.to(self.output_device)

    def adjust_lifespan_and_memories(self, indices: torch.Tensor, lifespan_delta: torch.Tensor) -> None:
        """Reward, age, promote, forget (see ``Memoria.adjust_lifespan_and_memories``)."""
        self._check_order("adjust_lifespan_and_memories", indices)
        store, s = self.store, self.settings
        slots, delta = self._checked_adjust_inputs(store, indices, lifespan_delta)
        store.add_lifespan(slots, delta)  # 1) reward the reminded engrams
        live = store.live()  # [B, C + 1]
        store.grow_older(live)  # 2) every engram loses 1 lifespan
        store.retype(store.mask(EngramType.WORKING), EngramType.SHORTTERM)  # 3)
        order = store.birth_order()
        store.retype(promote_oldest_shortterm(store, order, s["stm_capacity"]), EngramType.LONGTERM)  # 4)
        keep = live & (store.lifespans() > 0)
        keep &= ~beyond_longterm_bound(store, keep, order, s["max_ltm_per_row"])
        store.free(live & ~keep)  # 5) engrams out of lifespan, and LTM beyond the bound, are deleted
        self.expected_call = "add_working_memory"

    def _scores(self, store: StaticEngramStore) -> torch.Tensor:
        """Similarity of every slot to this step's working memory, pooled over it: [BatchSize, C + 1].

        One pooling ranks both STM recall (the mean) and LTM selection (the sum): they differ by the factor W.
        """
        working = store.data_at(store.working)  # [B, W, D]
        similarity = self.similarity
        if similarity.named:
            pairwise = similarity.scores(working, store.vectors(), store.sqnorms())  # [B, W, C + 1]
        else:
            pairwise = similarity.scores(working, store.vectors())
        return similarity.pool(pairwise, "mean")

    # ------------------------------------------------------------------------------------------ state
    def reset_memory(self, rows: Optional[torch.Tensor], everything: bool) -> None:
        """Free every slot (``everything``, which also restarts the step order) or those of the rows of the bool
        mask ``rows`` [BatchSize] (None: no store yet); buffers keep their addresses."""
        if everything:
            self.expected_call = STEP_ORDER[0]
            if self.store is not None:
                self.store.clear()
        elif rows is not None and self.store is not None:
            self.store.clear(rows.to(self.store.device))

    def engrams(self) -> Engrams:
        """A snapshot of the C slots of every row as :class:`Engrams` (free slots are NULL engrams): positions are
        slots, the indices ``remind()`` returns."""
        store = self.store
        if store is None:
            return Engrams.empty(track_age=self.settings["track_age"], track_engram_id=self.settings["track_id"])
        return Engrams(
            store.data.clone(),
            store.induce_counts.clone(),
            store.engrams_types.clone(),
            store.lifespan.clone(),
            None if store.age is None else store.age.clone(),
            None if store.engram_ids is None else store.engram_ids.clone(),
            track_age=self.settings["track_age"],
            track_engram_id=self.settings["track_id"],
        )

    def state_dict(self, settings: Dict[str, Any]) -> Dict[str, Any]:
        """Everything needed to restore this memory exactly (tensors on CPU), with ``Memoria``'s ``settings``."""
        store = self.store
        shape = None if store is None else [store.batch_size, store.working_length, store.hidden_dim]
        return {
            "settings": settings,
            "output_dtype": str(self.output_dtype),
            "expected_call": self.expected_call,
            "static_shapes": {"shape": shape, "engrams": None if store is None else store.state()},
        }

    def load_state_dict(
        self, state: Dict[str, Any], settings: Dict[str, Any], device: Optional[torch.device]
    ) -> Optional[StaticEngramStore]:
        """Restore a :meth:`state_dict` (onto ``device``, or the CPU); returns the store. Raises ``ValueError``
        and changes nothing if the state was saved with other settings or without static shapes."""
        saved = state.get("static_shapes")
        if not isinstance(saved, dict):
            raise ValueError("state_dict was saved without static_shapes=True: load it into such a Memoria")
        different = {k: (state["settings"].get(k), v) for k, v in settings.items() if state["settings"].get(k) != v}
        if different:
            raise ValueError(f"state_dict was saved with other settings (saved, current): {different}")
        store = None
        if saved["shape"] is not None:
            B, W, D = saved["shape"]
            store = self.store
            if store is None or [store.batch_size, store.working_length, store.hidden_dim] != [B, W, D]:
                store = self._allocate(B, W, D, device=device or torch.device("cpu"))
            store.load_state(saved["engrams"])
        self.store = store
        self.output_dtype = getattr(torch, state["output_dtype"].replace("torch.", ""))
        self.expected_call = state["expected_call"]
        return store

    def _allocate(self, B: int, W: int, D: int, device: torch.device) -> StaticEngramStore:
        """Buffers for rows of W working engrams of width D: C = W + stm_capacity + max_ltm_per_row slots."""
        s = self.settings
        return StaticEngramStore(
            B,
            W,
            D,
            capacity=W + s["stm_capacity"] + s["max_ltm_per_row"],
            reminded_length=self.reminded_length,
            device=torch.device(device),
            track_age=s["track_age"],
            track_id=s["track_id"],
        )

    # ------------------------------------------------------------------------------------------ checks
    def _check_order(self, call: str, indices: Any = None) -> None:
        """Raise unless ``call`` is the next call of a step (add -> remind -> adjust; adjust may follow add with
        indices shaped [BatchSize, 0])."""
        if not is_next_call(call, self.expected_call, indices):
            raise out_of_order(call, self.expected_call)

    def _check_working_memory(self, data: Any) -> None:
        check_working_memory_form(data)
        store = self.store
        if store is not None and tuple(data.shape) != (store.batch_size, store.working_length, store.hidden_dim):
            raise ValueError(
                f"with static_shapes=True every step's data has the shape of the first, [BatchSize, WorkingLength, "
                f"HiddenDim] = {[store.batch_size, store.working_length, store.hidden_dim]}, got {list(data.shape)}; "
                "build a new Memoria for another shape"
            )

    def _checked_adjust_inputs(
        self, store: StaticEngramStore, indices: torch.Tensor, lifespan_delta: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The slots and deltas [BatchSize, K] to reward, on the store's device; value checks run on the device."""
        if not isinstance(indices, torch.Tensor) or not isinstance(lifespan_delta, torch.Tensor):
            raise TypeError("indices and lifespan_delta must be torch.Tensors shaped [BatchSize, RemindedLength]")
        width = 0 if self.expected_call == STEP_ORDER[1] else self.reminded_length
        if tuple(indices.shape) != (store.batch_size, width):
            raise ValueError(
                f"indices must be the ones this step's remind() returned, shaped [{store.batch_size}, {width}], "
                f"got {tuple(indices.shape)}"
            )
        check_adjust_form(indices, lifespan_delta)
        indices = indices.to(store.device, torch.long)
        delta = lifespan_delta.to(store.device, torch.float32)
        if width == 0:
            return indices, delta
        slots = indices.masked_fill(indices < 0, store.sentinel)  # [B, R]
        torch._assert_async(
            ((slots == store.reminded) | (slots == store.sentinel)).all(),
            "indices must be the ones this step's remind() returned (an entry may be -1 instead)",
        )
        torch._assert_async(torch.isfinite(delta).all(), "lifespan_delta contains NaN or inf")
        return slots, delta
