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

from typing import List, Optional, Tuple

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
    return torch.full_like(stm, -1).scatter_(1, chosen, stm.gather(1, chosen))


def _without_padding(scores: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Scores [BatchSize, K] of ``positions`` [BatchSize, K] with -1 entries ranked last."""
    return scores.masked_fill(positions < 0, float("-inf"))


# ------------------------------------------------------------------------------------------ 2. LTM seeds
def seed_longterm(
    store: EngramStore, longterm: LongTermWindow, recalled_stm: torch.Tensor, *, paper: bool, random_ties: bool = True
) -> torch.Tensor:
    """For every recalled STM engram, the LTM engram it fired with most often: the walks' starting points.

    With ``random_ties``, ties between equal counts are broken by uniform noise, then by the lowest position. The
    noise is one float16 tensor shaped [BatchSize, S, N] drawn from torch's generator in both modes, as the
    reference draws it, so that ``torch.manual_seed`` reproduces reference runs. Without, nothing is drawn and ties
    go to the lowest position, the row's oldest engram.

    Args:
        store: the engrams.
        longterm: ``store.longterm_window()``.
        recalled_stm: [BatchSize, S] from :func:`recall_shortterm`.
        paper: only recalled STMs seed, and only through a link (count >= 1). Reference mode applies
            :func:`_reference_seeds`.
        random_ties: break ties by noise (Memoria's ``tie_break="random"``) or by position (``"oldest"``).

    Returns:
        long tensor shaped [BatchSize, I]: distinct LTM positions per row, -1 padded (reference mode on a CPU: in
        :func:`~memoria.utils.super_unique` order, where -1 also stands for "an entry found no LTM"; on an
        accelerator: ascending, I = min(S, the longest LTM row or 1), so that no width is read back).
    """
    B, S = recalled_stm.shape
    # [B, S, N]; float16 in [0, 1) orders like its int16 bits
    bits = store.seed_noise(S).view(torch.int16) if random_ties else None
    seeds = torch.full_like(recalled_stm, -1)
    if S > 0 and longterm.columns > 0:
        if paper:
            seeds = _strongest_links(longterm, recalled_stm, bits, recalled_stm >= 0, seeds, linked_only=True)
        else:
            seeds = _reference_seeds(store, longterm, recalled_stm, bits)
    is_longterm = store.mask(EngramType.LONGTERM).gather(1, seeds.clamp(min=0))
    seeds = seeds.masked_fill(~is_longterm, -1)
    if not tuned_for_cpu(store.device):  # one column at least where S > 0, as the reference's list has
        return unique_positions(seeds, store.length, width=min(S, max(longterm.most_per_row, 1)))
    return unique_positions(seeds, store.length) if paper else super_unique(seeds)


def _reference_seeds(
    store: EngramStore, longterm: LongTermWindow, recalled_stm: torch.Tensor, bits: Optional[torch.Tensor]
) -> torch.Tensor:
    """Reference quirks of seeding: every entry seeds, linked or not, and a -1 entry reads the counts of the
    row's last engram. While that engram (unfired working memory) has count 0 with every LTM, a -1 entry's pick
    is the LTM with the most noise (the oldest without noise), which :func:`_noisiest_longterm` finds without
    reading counts (on a CPU, where asking which case holds costs nothing)."""
    n = store.length
    sources = recalled_stm.masked_fill(recalled_stm < 0, n - 1)  # [B, S]
    last = torch.full_like(recalled_stm[:, :1], n - 1)  # [B, 1]
    if not tuned_for_cpu(store.device):
        return _strongest_links(longterm, sources, bits, None, recalled_stm, linked_only=False)
    if bool(longterm.counts_from(last)[:, 0].ne(0).logical_and_(longterm.is_longterm).any()):
        scored, seeds = torch.ones_like(recalled_stm, dtype=torch.bool), torch.full_like(recalled_stm, -1)
    else:
        scored = recalled_stm >= 0
        seeds = _noisiest_longterm(bits, store.mask(EngramType.LONGTERM), recalled_stm.size(1))
    return _strongest_links(longterm, sources, bits, scored, seeds, linked_only=False)


def _strongest_links(
    longterm: LongTermWindow,
    sources: torch.Tensor,
    bits: Optional[torch.Tensor],
    scored: Optional[torch.Tensor],
    seeds: torch.Tensor,
    *,
    linked_only: bool,
) -> torch.Tensor:
    """``seeds`` [BatchSize, S] with each ``scored`` entry replaced by the LTM its source fired with most often.

    Args:
        longterm: the LTM window.
        sources: [BatchSize, S] engram positions whose counts are read (where ``scored``).
        bits: the noise's int16 bit patterns [BatchSize, S, N] (position order), or None: ties to the lowest.
        scored: bool [BatchSize, S], or None for every entry.
        seeds: long [BatchSize, S], kept where not ``scored``.
        linked_only: an entry whose highest count is below 1 seeds -1.
    """
    B, S = sources.shape
    noise_columns = longterm.position.clamp(min=0)  # [B, C]: the noise of each column's position
    if scored is None or not tuned_for_cpu(sources.device):  # every entry at once, the batch in one pass
        counts = longterm.counts_from(sources)  # [B, S, C]
        entry_bits = None if bits is None else bits.gather(2, noise_columns[:, None, :].expand(-1, S, -1))
        linked, column = best_count_then_noise(counts, entry_bits, longterm.is_longterm, longterm.count_bound)
        if scored is not None:
            linked &= scored
        keep = linked if linked_only else scored
        entry_seeds = longterm.position.gather(1, column)  # [B, S]
        return entry_seeds if keep is None else torch.where(keep, entry_seeds, seeds)
    entries = front_padded_positions(scored)  # [B, E] indices into the STM list
    if entries.size(1) == 0:
        return seeds
    E, C = entries.size(1), longterm.columns
    entry_sources = sources.gather(1, entries.clamp(min=0))  # [B, E]
    flat_entries = (torch.arange(B, device=entries.device)[:, None] * S + entries.clamp(min=0)).view(B, -1)
    linked = torch.empty(entries.shape, dtype=torch.bool, device=entries.device)
    column = torch.empty_like(entries)
    for part in batch_chunks(B, E * C * 16, device=sources.device):  # a few rows at a time keeps temporaries in cache
        counts = longterm.counts_from(entry_sources[part], batch=part)  # [b, E, C]
        entry_bits = None if bits is None else _entry_bits(bits, flat_entries[part], noise_columns[part])
        linked[part], column[part] = best_count_then_noise(
            counts, entry_bits, longterm.is_longterm[part], longterm.count_bound
        )
    entry_seeds = longterm.position.gather(1, column)  # [B, E]
    if linked_only:
        entry_seeds = entry_seeds.masked_fill(~linked, -1)
    # write each entry's seed into its place in the STM list (column S absorbs padding entries)
    seeds = torch.cat([seeds, seeds.new_full((B, 1), -1)], dim=1)
    return seeds.scatter(1, torch.where(entries < 0, S, entries), entry_seeds)[:, :-1]


def _entry_bits(bits: torch.Tensor, flat_entries: torch.Tensor, noise_columns: torch.Tensor) -> torch.Tensor:
    """The noise [b, E, C] of chosen entries: ``bits`` [BatchSize, S, N] at the flat (row * S + entry) indices
    ``flat_entries`` [b, E], read at the positions of the window's columns ``noise_columns`` [b, C]."""
    B, S, n = bits.shape
    E = flat_entries.size(1)
    entry_bits = bits.view(B * S, n).index_select(0, flat_entries.flatten()).view(-1, E, n)
    return entry_bits.gather(2, noise_columns[:, None, :].expand(-1, E, -1))


def _noisiest_longterm(bits: Optional[torch.Tensor], longterm: torch.Tensor, S: int) -> torch.Tensor:
    """Per row and entry, the LTM position with the most noise (the lowest among equals), -1 without LTMs.

    Args:
        bits: int16 bit patterns of float16 noise in [0, 1), shaped [BatchSize, S, N], or None: every entry takes
            the row's lowest LTM position.
        longterm: bool [BatchSize, N].
        S: the entries per row.

    Returns:
        long tensor shaped [BatchSize, S].
    """
    B = longterm.size(0)
    if bits is None:
        lowest = longterm.int().argmax(1, keepdim=True).expand(B, S)  # [B, S]: the first LTM position of each row
        return torch.where(longterm.any(1, keepdim=True), lowest, -1)
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
    (the lowest position among equals), through a link (count >= 1). All walks of a row share one visited set,
    and every walk ends at the first step where no walker in the batch can move. Walkers standing on the same
    engram take the same step: on a CPU the walk keeps one walker per engram, so that it reads only their count
    rows; on an accelerator it keeps a list of walkers as long as the list of seeds, so that no width is read
    back. Reference mode applies :class:`_ReferenceWalk`.

    Args:
        longterm: ``store.longterm_window()``.
        seeds: [BatchSize, I] distinct LTM positions from :func:`seed_longterm`, -1 padded.
        depth: walk length.

    Returns:
        long tensor shaped [BatchSize, F]: paper mode, the positions of the LTM engrams reached, -1 padded (on an
        accelerator F is the longest LTM row); reference mode, see :meth:`_ReferenceWalk.found`.
    """
    if longterm.columns == 0:
        return seeds.new_empty(seeds.size(0), 0) if paper else _phantom_engram_zero(seeds, depth)
    cpu = tuned_for_cpu(seeds.device)
    C = longterm.columns  # a walker on column C stands nowhere
    walkers = longterm.column_of(seeds, none=C)  # [B, K] window columns
    reached = [walkers]  # the columns walkers stood on after each step (C where none moved), seeds first
    reference = None if paper else _ReferenceWalk(longterm, walkers)
    if reference is not None:
        walkers = reference.start(walkers)
    unvisited = _Unvisited(longterm, walkers)
    nowhere = torch.full((), C, device=seeds.device)  # filled on the device: a copy from the host would wait
    walking = torch.ones((), dtype=torch.bool, device=seeds.device)  # no step has stalled yet
    for _ in range(depth):
        if cpu:  # one walker per engram (the widths read back cost nothing on a CPU)
            walkers = front_padded_positions(positions_mask(walkers, C), fill=C)
            if walkers.size(1) == 0:
                break
        active = walkers < C if cpu else (walkers < C) & walking  # [B, K]
        best, column = unvisited.strongest(walkers)  # [B, K] each
        moved = (best >= (1 if paper else 0)) & active
        targets = torch.where(moved, column, nowhere)
        reached.append(targets)
        if reference is not None:
            targets = reference.stuck_walkers_stand_on_last(targets, moved ^ active)
        unvisited.visit(targets)
        walkers = targets
        if cpu and not bool(moved.any()):
            break
        walking = moved.any()
    found = positions_mask(torch.cat(reached, dim=1), C)  # [B, C]
    if reference is not None:
        return reference.found(found)
    columns = front_padded_positions(found, None if cpu else longterm.most_per_row)  # [B, F]
    return longterm.position.gather(1, columns.clamp(min=0)).masked_fill_(columns < 0, -1).flip(1)


class _Unvisited:
    """The LTM columns a walk has not visited yet, and the strongest link from a walker's column into them.

    On a CPU the set is the bias of :class:`~memoria.utils.FirstMax` (one fused integer key per column, reduced
    with ``amax`` a few batch rows at a time); on an accelerator it is a penalty added to the counts, reduced
    with ``max``, which returns the first column among equals: fewer launches. Both keep a column C that absorbs
    walkers standing nowhere.

    Args:
        longterm: the LTM window.
        walkers: [BatchSize, K] columns visited from the start (C: none).
    """

    def __init__(self, longterm: LongTermWindow, walkers: torch.Tensor) -> None:
        self.longterm = longterm
        C = longterm.columns
        self.first_max = FirstMax(C, longterm.count_bound, walkers.device) if tuned_for_cpu(walkers.device) else None
        if self.first_max is not None:
            self.bias = torch.nn.functional.pad(self.first_max.bias(longterm.is_longterm), (0, 1))  # [B, C + 1]
            self._visited = C - 1 - self.first_max.offset  # the bias of column c once visited: this - c
        else:  # disallowed columns fall below every count (>= -bound)
            self._visited = -(longterm.count_bound + 2)
            allowed = longterm.is_longterm.to(torch.int32 if longterm.count_bound < 2**30 else torch.int64)
            self.bias = torch.nn.functional.pad(allowed.sub_(1).mul_(-self._visited), (0, 1))  # [B, C + 1]
        self.visit(walkers)

    def visit(self, columns: torch.Tensor) -> None:
        """Mark the columns [BatchSize, K] visited (C: none)."""
        if self.first_max is None:
            self.bias.scatter_(1, columns, self._visited)
        else:
            self.bias.scatter_(1, columns, (self._visited - columns).to(self.bias.dtype))

    def strongest(self, walkers: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """From each walker's column [BatchSize, K] (C: none), the highest count to an unvisited LTM column (below
        -1 where there is none) and that column (the lowest among equals): integer tensors [BatchSize, K]."""
        longterm, C = self.longterm, self.longterm.columns
        if self.first_max is None:
            best, column = torch.max(longterm.counts_from_columns(walkers) + self.bias[:, None, :C], dim=2)
            return best, column
        B, K = walkers.shape
        key = torch.empty(walkers.shape, dtype=self.first_max.key_type, device=walkers.device)
        for part in batch_chunks(B, K * C * 8, device=walkers.device):  # temporaries stay in cache
            counts = longterm.counts_from_columns(walkers[part], batch=part)  # [b, K, C]
            key[part] = self.first_max.keys(counts, self.bias[part, :C])
        return self.first_max.decode(key)


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

    def __init__(self, longterm: LongTermWindow, seeds: torch.Tensor) -> None:
        ltm = longterm.is_longterm  # [B, C]
        C = self.columns = longterm.columns
        self.most_ltm = longterm.most_per_row
        num_ltm = ltm.sum(1)  # [B]
        self.local_of = ltm.cumsum(1) - 1 + (self.most_ltm - num_ltm)[:, None]  # [B, C]
        last_ltm = C - 1 - ltm.flip(1).int().argmax(1)  # [B] the row's newest LTM
        self.last_ltm = last_ltm.masked_fill_(num_ltm == 0, C)[:, None]  # [B, 1], C in a row without LTM
        num_seeds = (seeds < C).sum(1)  # [B]
        self.minus_one_found = num_seeds < num_seeds.max()  # [B] front padding of the local seed list
        self.stuck: List[torch.Tensor] = []  # [B, K] per step: the walkers that had nowhere to go

    def start(self, walkers: torch.Tensor) -> torch.Tensor:
        """The padding walker of a row with fewer seeds stands on its last LTM: ``walkers`` [BatchSize, K] with
        it appended, [BatchSize, K + 1]."""
        padding_walker = torch.where(self.minus_one_found[:, None], self.last_ltm, self.columns)  # [B, 1]
        return torch.cat([walkers, padding_walker], dim=1)

    def stuck_walkers_stand_on_last(self, targets: torch.Tensor, stuck: torch.Tensor) -> torch.Tensor:
        """Walkers [BatchSize, K] that had nowhere to go (the bool mask ``stuck``) stand on -1, which reads the
        last LTM: ``targets`` with theirs replaced."""
        self.stuck.append(stuck)
        return torch.where(stuck, self.last_ltm, targets)

    def found(self, found: torch.Tensor) -> torch.Tensor:
        """The local numbers of the ``found`` columns [BatchSize, C], and -1 where recorded: [BatchSize, F]."""
        B = found.size(0)
        minus_one = self.minus_one_found | torch.cat(self.stuck, dim=1).any(1) if self.stuck else self.minus_one_found
        present = torch.zeros(B, self.most_ltm + 1, dtype=torch.bool, device=found.device)  # 0: -1
        present[:, 0] = minus_one
        present.scatter_(1, (self.local_of + 1).mul_(found), found | minus_one[:, None])  # not found: column 0
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
