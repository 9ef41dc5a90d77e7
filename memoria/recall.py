"""The recall (search) algorithm: which stored engrams this step's working memory reminds.

``Memoria.remind`` runs these steps in order (docs/algorithm.md, "One step"):

1. :func:`recall_shortterm`: the STM engrams closest to working memory.
2. :func:`seed_longterm`: for each recalled STM, its most strongly linked LTM engram (where the walks start).
3. :func:`walk_longterm`: greedy walks through the Hebbian graph of LTM engrams.
4. :func:`select_longterm`: the LTM engrams found that are closest to working memory.

Each function reads as the paper's algorithm (``paper=True``); where memoria-pytorch 1.0.0 differs, a named helper
applies that reference quirk when ``paper=False`` (docs/algorithm.md, "Reference quirks"). Every function works
on whole batches at once, with no Python loop over engrams: the walk loops over its depth and reads just the
count rows of the engrams it stands on.

On a CPU (:func:`~memoria.utils.tuned_for_cpu`) large passes go a few batch rows at a time
(``utils.batch_chunks``) so that their temporaries stay small, and data-dependent widths are read back exactly.
On an accelerator each pass is one op over the whole batch, lists take a width known on the host that bounds
their contents (padded with -1 beyond it) and loops run to their fixed depth, so a step needs a few host syncs
in all. Both give the same results.
"""

from typing import Tuple

import torch

from .engram import EngramType
from .similarity import WorkingMemoryQuery
from .store import EngramStore, LongTermWindow
from .utils import (
    FirstMax,
    batch_chunks,
    best_count_then_noise,
    front_padded_positions,
    positions_mask,
    super_unique,
    tuned_for_cpu,
    unique_from_presence,
    unique_positions,
)


# ------------------------------------------------------------------------------------------ 1. STM recall
def recall_shortterm(store: EngramStore, query: WorkingMemoryQuery, num_reminded: int, *, paper: bool) -> torch.Tensor:
    """Score STM engrams against working memory and keep the top ``num_reminded`` per row.

    Args:
        store: the engrams.
        query: this step's working memory, scoring the engrams asked for.
        num_reminded: how many STM engrams to recall per row.
        paper: exclude padding from the ranking (the reference ranks padding as a zero vector).

    Returns:
        long tensor shaped [BatchSize, S] aligned with the row's STM list (creation order, front-padded): the
        engram position where recalled, -1 elsewhere.
    """
    stm = store.positions(EngramType.SHORTTERM)  # [B, S]
    if stm.size(1) == 0:
        return stm
    scores = query.scores(stm, reduce="mean")  # [B, S]; padding scores as a zero vector
    if paper:
        scores = _without_padding(scores, stm)
    chosen = scores.topk(min(num_reminded, stm.size(1)), dim=1).indices  # [B, k]
    is_chosen = torch.zeros_like(stm, dtype=torch.bool).scatter_(1, chosen, True)
    return torch.where(is_chosen, stm, -1)


def _without_padding(scores: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Scores [BatchSize, K] of ``positions`` [BatchSize, K] with -1 entries ranked last."""
    return scores.masked_fill(positions < 0, float("-inf"))


# ------------------------------------------------------------------------------------------ 2. LTM seeds
def seed_longterm(
    store: EngramStore, longterm: LongTermWindow, recalled_stm: torch.Tensor, *, paper: bool
) -> torch.Tensor:
    """For every recalled STM engram, the LTM engram it fired with most often: the walks' starting points.

    Ties between equal counts are broken by uniform noise, then by the lowest position. The noise is one float16
    tensor shaped [BatchSize, S, N] drawn from torch's generator in both modes, as the reference draws it, so
    that ``torch.manual_seed`` reproduces reference runs.

    Args:
        store: the engrams.
        longterm: ``store.longterm_window()``.
        recalled_stm: [BatchSize, S] from :func:`recall_shortterm`.
        paper: only recalled STMs seed, and only through a link (count >= 1). Reference mode applies
            :func:`_reference_seeds`.

    Returns:
        long tensor shaped [BatchSize, I]: distinct LTM positions per row, -1 padded (reference mode on a CPU: in
        :func:`~memoria.utils.super_unique` order, where -1 also stands for "an entry found no LTM"; on an
        accelerator: ascending, I = min(S, the longest LTM row or 1), so that no width is read back).
    """
    B, S = recalled_stm.shape
    bits = store.seed_noise(S).view(torch.int16)  # [B, S, N]; float16 in [0, 1) orders like its int16 bits
    seeds = torch.full_like(recalled_stm, -1)
    if S > 0 and longterm.columns > 0:
        if paper:
            seeds = _strongest_links(longterm, recalled_stm, bits, recalled_stm >= 0, seeds, linked_only=True)
        else:
            seeds = _reference_seeds(store, longterm, recalled_stm, bits)
    is_longterm = store.mask(EngramType.LONGTERM).gather(1, seeds.clamp(min=0))
    seeds = torch.where(is_longterm & (seeds >= 0), seeds, -1)
    if not tuned_for_cpu(store.device):  # one column at least where S > 0, as the reference's list has
        return unique_positions(seeds, store.length, width=min(S, max(longterm.most_per_row, 1)))
    return unique_positions(seeds, store.length) if paper else super_unique(seeds)


def _reference_seeds(
    store: EngramStore, longterm: LongTermWindow, recalled_stm: torch.Tensor, bits: torch.Tensor
) -> torch.Tensor:
    """Reference quirks of seeding: every entry seeds, linked or not, and a -1 entry reads the counts of the
    row's last engram. While that engram (unfired working memory) has count 0 with every LTM, a -1 entry's pick
    is the LTM with the most noise, which :func:`_noisiest_longterm` finds without reading counts (on a CPU,
    where asking which case holds costs nothing)."""
    n = store.length
    sources = torch.where(recalled_stm < 0, n - 1, recalled_stm)  # [B, S]
    last = torch.full_like(recalled_stm[:, :1], n - 1)  # [B, 1]
    if not tuned_for_cpu(store.device):
        scored = torch.ones_like(recalled_stm, dtype=torch.bool)
        return _strongest_links(longterm, sources, bits, scored, torch.full_like(recalled_stm, -1), linked_only=False)
    if bool(longterm.counts_from(last)[:, 0].ne(0).logical_and_(longterm.is_longterm).any()):
        scored, seeds = torch.ones_like(recalled_stm, dtype=torch.bool), torch.full_like(recalled_stm, -1)
    else:
        scored, seeds = recalled_stm >= 0, _noisiest_longterm(bits, store.mask(EngramType.LONGTERM))
    return _strongest_links(longterm, sources, bits, scored, seeds, linked_only=False)


def _strongest_links(
    longterm: LongTermWindow,
    sources: torch.Tensor,
    bits: torch.Tensor,
    scored: torch.Tensor,
    seeds: torch.Tensor,
    *,
    linked_only: bool,
) -> torch.Tensor:
    """``seeds`` [BatchSize, S] with each ``scored`` entry replaced by the LTM its source fired with most often.

    Args:
        longterm: the LTM window.
        sources: [BatchSize, S] engram positions whose counts are read (where ``scored``).
        bits: the noise's int16 bit patterns [BatchSize, S, N] (position order).
        scored: bool [BatchSize, S].
        seeds: long [BatchSize, S], kept where not ``scored``.
        linked_only: an entry whose highest count is below 1 seeds -1.
    """
    B, S, n = bits.shape
    cpu = tuned_for_cpu(sources.device)
    entries = front_padded_positions(scored, None if cpu else S)  # [B, E] indices into the STM list
    if entries.size(1) == 0:
        return seeds
    E, C = entries.size(1), longterm.columns
    entry_sources = sources.gather(1, entries.clamp(min=0))  # [B, E]
    flat_entries = (torch.arange(B, device=entries.device)[:, None] * S + entries.clamp(min=0)).view(B, -1)
    noise_columns = longterm.position.clamp(min=0)  # [B, C]: the noise of each column's position
    linked = torch.empty(entries.shape, dtype=torch.bool, device=entries.device)
    column = torch.empty_like(entries)
    for part in batch_chunks(B, E * C * 16, device=sources.device):  # a few rows at a time keeps temporaries in cache
        counts = longterm.counts_from(entry_sources[part], batch=part)  # [b, E, C]
        entry_bits = bits.view(B * S, n).index_select(0, flat_entries[part].flatten()).view(-1, E, n)
        entry_bits = entry_bits.gather(2, noise_columns[part, None, :].expand(-1, E, -1))  # [b, E, C]
        linked[part], column[part] = best_count_then_noise(
            counts, entry_bits, longterm.is_longterm[part], longterm.count_bound
        )
    entry_seeds = longterm.position.gather(1, column)  # [B, E]
    if linked_only:
        entry_seeds = entry_seeds.masked_fill(~linked, -1)
    # write each entry's seed into its place in the STM list (column S absorbs padding entries)
    seeds = torch.cat([seeds, seeds.new_full((B, 1), -1)], dim=1)
    return seeds.scatter(1, torch.where(entries < 0, S, entries), entry_seeds)[:, :-1]


def _noisiest_longterm(bits: torch.Tensor, longterm: torch.Tensor) -> torch.Tensor:
    """Per row and entry, the LTM position with the most noise (the lowest among equals), -1 without LTMs.

    Args:
        bits: int16 bit patterns of float16 noise in [0, 1), shaped [BatchSize, S, N].
        longterm: bool [BatchSize, N].

    Returns:
        long tensor shaped [BatchSize, S].
    """
    B, S, _ = bits.shape
    columns = longterm.any(0).nonzero().flatten()
    start, end = int(columns[0]), int(columns[-1]) + 1  # the positions holding every row's LTMs
    seeds = torch.empty(B, S, dtype=torch.long, device=bits.device)
    for part in batch_chunks(B, S * (end - start) * 2):
        _, column = best_count_then_noise(None, bits[part, :, start:end], longterm[part, start:end], bound=0)
        seeds[part] = column + start
    return torch.where(longterm.any(1, keepdim=True), seeds, -1)


# ------------------------------------------------------------------------------------------ 3. LTM walk
def walk_longterm(longterm: LongTermWindow, seeds: torch.Tensor, depth: int, *, paper: bool) -> torch.Tensor:
    """Greedy walks over the LTM Hebbian graph, ``depth`` steps from every seed.

    Each step moves every walker to the not-yet-visited LTM engram with the highest count from where it stands
    (the lowest position among equals), through a link (count >= 1). All walks of a row share one visited set.
    Walkers standing on the same engram take the same step, so the walk advances a frontier of distinct engrams
    and reads only their count rows, and it stops as soon as no walker can move. Reference mode applies
    :class:`_ReferenceWalk`.

    Args:
        longterm: ``store.longterm_window()``.
        seeds: [BatchSize, I] LTM positions from :func:`seed_longterm`, -1 padded.
        depth: walk length.

    Returns:
        long tensor shaped [BatchSize, F]: paper mode, the positions of the LTM engrams reached, -1 padded (on an
        accelerator F is the longest LTM row, so that no width is read back); reference mode, see
        :meth:`_ReferenceWalk.found`.
    """
    if longterm.columns == 0:
        return seeds.new_empty(seeds.size(0), 0) if paper else _phantom_engram_zero(seeds, depth)
    cpu = tuned_for_cpu(seeds.device)
    frontier = positions_mask(longterm.column_of(seeds), longterm.columns) & longterm.is_longterm  # [B, C]
    found = frontier.clone()
    reference = None if paper else _ReferenceWalk(longterm, frontier)
    if reference is not None:
        frontier = reference.start(frontier)
    visited = frontier.clone()
    # no more walkers than seeds (and the reference's walker on -1) ever stand anywhere, and only on LTMs
    walkers = None if cpu else min(seeds.size(1) + (reference is not None), longterm.most_per_row)
    first_max = FirstMax(longterm.columns, longterm.count_bound, seeds.device)  # lowest column: lowest position
    walking = torch.ones((), dtype=torch.bool, device=seeds.device)  # off the CPU: no step has stalled yet
    for _ in range(depth):
        standing = front_padded_positions(frontier, walkers)  # [B, K] window columns
        if standing.size(1) == 0:
            break
        allowed = first_max.bias(longterm.is_longterm & ~visited)  # [B, C] unvisited LTM columns
        best, column = _strongest_unvisited(longterm, standing, first_max, allowed)
        active = standing >= 0 if cpu else (standing >= 0) & walking  # [B, K]
        moved = (best >= (1 if paper else 0)) & active
        frontier = positions_mask(torch.where(moved, column, -1), longterm.columns)
        found |= frontier
        visited |= frontier
        if reference is not None:
            frontier = reference.stuck_walkers_stand_on_last(frontier, (active & ~moved).any(1))
            visited |= frontier
        if cpu and not bool(moved.any()):  # a step where no walker in the batch moved ends every walk
            break
        walking = moved.any()
    if reference is not None:
        return reference.found(found)
    columns = front_padded_positions(found, None if cpu else longterm.most_per_row)  # [B, F]
    return longterm.position.gather(1, columns.clamp(min=0)).masked_fill_(columns < 0, -1).flip(1)


def _strongest_unvisited(
    longterm: LongTermWindow, standing: torch.Tensor, first_max: FirstMax, bias: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """For each walker's column [BatchSize, K], the highest count to an allowed column and that column.

    Args:
        first_max: the walk's argmax (lowest column among equals).
        bias: ``first_max.bias`` of the allowed (unvisited LTM) columns, [BatchSize, C].

    Returns:
        best (long [BatchSize, K], -1 where nothing is allowed) and column (long [BatchSize, K]).
    """
    B, K = standing.shape
    key = torch.empty(standing.shape, dtype=first_max.key_type, device=standing.device)
    for part in batch_chunks(B, K * longterm.columns * 8, device=standing.device):  # temporaries stay in cache
        key[part] = first_max.keys(longterm.counts_from_columns(standing[part], batch=part), bias[part])  # [b, K]
    return first_max.decode(key)


def _phantom_engram_zero(seeds: torch.Tensor, depth: int) -> torch.Tensor:
    """Reference quirk: with no LTM in the batch, the walk "finds" position 0 for every walker and step, so
    engram 0 (whatever it is) competes in the final selection: zeros shaped [BatchSize, 1] (the reference finds
    it I * (depth + 1) times, which selects nothing else), or [BatchSize, 0] without walkers."""
    return seeds.new_zeros(seeds.size(0), min(seeds.size(1), 1))


class _ReferenceWalk:
    """Reference quirks of the walk (1.0.0 walks in the row's LTM-local numbering, -1 included).

    - A row with fewer seeds than the longest starts an extra walker on -1; a walker with nowhere left to go
      stands on -1 (a link of count 0 is enough to move); -1 reads (and marks visited) the row's last LTM.
    - The result is the set of local numbers found, -1 among them when a walker stood on -1, in
      :func:`~memoria.utils.super_unique` order; :func:`select_longterm` reads them as engram positions.
    """

    def __init__(self, longterm: LongTermWindow, frontier: torch.Tensor) -> None:
        ltm = longterm.is_longterm  # [B, C]
        self.most_ltm = longterm.most_per_row
        self.num_ltm = ltm.sum(1)  # [B]
        self.local_of = ltm.cumsum(1) - 1 + (self.most_ltm - self.num_ltm)[:, None]  # [B, C]
        self.last_ltm = longterm.columns - 1 - ltm.flip(1).int().argmax(1)  # [B] the row's newest LTM
        num_seeds = frontier.sum(1)
        self.minus_one_found = num_seeds < num_seeds.max()  # [B] front padding of the local seed list

    def start(self, frontier: torch.Tensor) -> torch.Tensor:
        """The padding walker of a row with fewer seeds stands on its last LTM."""
        return self.stuck_walkers_stand_on_last(frontier, self.minus_one_found.clone(), record=False)

    def stuck_walkers_stand_on_last(
        self, frontier: torch.Tensor, stuck: torch.Tensor, record: bool = True
    ) -> torch.Tensor:
        """Rows [BatchSize] with a walker that had nowhere to go: it stands on -1, which reads the last LTM."""
        if record:
            self.minus_one_found |= stuck
        rows = stuck & (self.num_ltm > 0)
        last = self.last_ltm[:, None]
        return frontier.scatter(1, last, rows[:, None] | frontier.gather(1, last))

    def found(self, found: torch.Tensor) -> torch.Tensor:
        """The local numbers of the ``found`` columns [BatchSize, C], and -1 where recorded: [BatchSize, F]."""
        B = found.size(0)
        present = torch.zeros(B, self.most_ltm + 1, dtype=torch.bool, device=found.device)  # 0: -1
        present[:, 0] = self.minus_one_found
        present.scatter_(1, torch.where(found, self.local_of + 1, 0), found | self.minus_one_found[:, None])
        return unique_from_presence(present, -1)


# ------------------------------------------------------------------------------------------ 4. LTM selection
def select_longterm(query: WorkingMemoryQuery, found: torch.Tensor, num_final: int, *, paper: bool) -> torch.Tensor:
    """Keep the ``num_final`` engrams found by the walks that are closest to working memory.

    Args:
        query: this step's working memory, scoring the engrams asked for.
        found: [BatchSize, F] positions from :func:`walk_longterm`. In reference mode -1 entries compete as zero
            vectors (and may be selected, more than once); in paper mode they never are.

    Returns:
        long tensor shaped [BatchSize, min(num_final, F)], best first, -1 padded.
    """
    if found.size(1) == 0:
        return found
    scores = query.scores(found, reduce="sum")  # [B, F]
    if paper:
        scores = _without_padding(scores, found)
    best = scores.topk(min(num_final, found.size(1)), dim=1).indices
    return found.gather(1, best)
