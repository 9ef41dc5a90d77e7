"""The recall (search) algorithm: which stored engrams working memory reminds.

``remind`` runs these steps in order (SPEC.md, "One step"):

1. :func:`recall_shortterm`: the STM engrams closest to working memory.
2. :func:`seed_longterm`: for each recalled STM, its most strongly linked LTM engram (the walk starts).
3. :func:`walk_longterm`: greedy walks through the Hebbian graph of LTM engrams.
4. :func:`select_longterm`: the LTM engrams found that are closest to working memory.

Each function takes a ``paper`` switch. ``paper=False`` reproduces memoria-pytorch 1.0.0 exactly, quirks included
(README, "Reference quirks"); ``paper=True`` is the algorithm as the paper describes it. Every function works on
whole batches at once, with no Python loop over engrams: the walk loops over its depth and gathers just the count
rows of the engrams it stands on, and large passes go a few batch rows at a time (``utils.batch_chunks``) so that
their temporaries stay small.
"""

from typing import Tuple

import torch

from .engram import Engrams, EngramType
from .similarity import Closeness
from .utils import (
    FirstMax,
    batch_chunks,
    front_padded_positions,
    positions_mask,
    super_unique,
    unique_from_presence,
    unique_positions,
)


def recall_shortterm(engrams: Engrams, closeness: Closeness, num_reminded: int, paper: bool) -> torch.Tensor:
    """Score STM engrams against working memory and keep the top ``num_reminded`` per row.

    Args:
        engrams: the store.
        closeness: every engram's similarity to this step's working memory.
        num_reminded: how many STM engrams to recall per row.
        paper: exclude padding from the ranking (the reference ranks padding as zero vectors).

    Returns:
        long tensor shaped [BatchSize, S] aligned with the row's STM list (creation order, front-padded): the
        engram position where recalled, -1 elsewhere.
    """
    stm = engrams.positions(EngramType.SHORTTERM)  # [B, S]
    if stm.size(1) == 0:
        return stm
    scores = closeness.at(stm, reduce="mean")  # [B, S]
    if paper:
        scores = scores.masked_fill(stm < 0, float("-inf"))
    chosen = scores.topk(min(num_reminded, stm.size(1)), dim=1).indices  # [B, k]
    is_chosen = torch.zeros_like(stm, dtype=torch.bool).scatter_(1, chosen, True)
    return torch.where(is_chosen, stm, -1)


def seed_longterm(engrams: Engrams, recalled_stm: torch.Tensor, paper: bool) -> torch.Tensor:
    """For every recalled STM entry, the LTM engram it fired with most often (ties broken uniformly at random).

    Random tie-breaking draws one float16 uniform tensor shaped [BatchSize, S, N] from torch's generator of the
    store's device, as the reference does, so that ``torch.manual_seed`` reproduces reference runs; only its LTM
    columns are read. An entry picks the LTM with the highest count; the noise breaks ties between equal counts,
    and the lowest position ties between equal noise.

    Args:
        engrams: the store.
        recalled_stm: [BatchSize, S] from :func:`recall_shortterm`. In reference mode -1 entries read the last
            engram's counts (which has none to LTM yet, so they pick a random LTM); in paper mode they are
            skipped, as are STMs with no link to any LTM.

    Returns:
        long tensor shaped [BatchSize, I]: distinct LTM positions per row, -1 padded (reference mode: in
        :func:`super_unique` order, where -1 also stands for "an entry found no LTM").
    """
    B, S = recalled_stm.shape
    n = engrams.length
    noise = engrams.workspace.uniform("seed_noise", (B, S, n), torch.float16, recalled_stm.device)  # = torch.rand
    longterm = engrams.mask(EngramType.LONGTERM)  # [B, N]
    seeds = torch.full_like(recalled_stm, -1)
    if S == 0 or not bool(longterm.any()):
        return unique_positions(seeds, n) if paper else super_unique(seeds)

    # float16 in [0, 1) orders like its int16 bit pattern, which CPUs compare much faster
    bits = noise.view(torch.int16)  # [B, S, N]
    start, end = _slot_window(engrams, longterm)  # LTM columns, in slot order
    ltm_slots = _slot_mask(engrams, longterm)[:, start:end]  # [B, C]
    scored = recalled_stm >= 0  # entries whose score needs their counts
    if not paper:
        # reference: -1 entries read the last engram's counts; while it has none with any LTM (it is working
        # memory that has not fired yet) their score is the noise alone
        last = torch.full_like(recalled_stm[:, :1], n - 1)
        last_links = engrams.slot_rows(last, start, end)[:, 0].ne_(0).logical_and_(ltm_slots)
        if bool(last_links.any()):
            scored = torch.ones_like(scored)
        else:
            seeds = _noise_argmax(bits, longterm)

    entries = front_padded_positions(scored)  # [B, E] indices into the STM list
    if entries.size(1) > 0:
        sources = recalled_stm.gather(1, entries.clamp(min=0))
        sources = torch.where(sources < 0, n - 1, sources)  # [B, E]
        position = engrams.position_of_slot()[:, start:end]  # [B, C]; -1 at holes, which are not LTM slots
        flat_entries = (torch.arange(B, device=entries.device)[:, None] * S + entries.clamp(min=0)).view(B, -1)
        linked = torch.empty(entries.shape, dtype=torch.bool, device=entries.device)
        column = torch.empty_like(entries)
        C, E = end - start, entries.size(1)
        for part in batch_chunks(B, E * C * 16):  # a few rows at a time keeps temporaries in cache
            counts = engrams.slot_rows(sources[part], start, end, batch=part)  # [b, E, C]
            entry_bits = bits.view(B * S, n).index_select(0, flat_entries[part].flatten()).view(-1, E, n)
            entry_bits = entry_bits.gather(2, position[part, None, :].clamp(min=0).expand(-1, E, -1))  # [b, E, C]
            linked[part], column[part] = _best_count_then_noise(
                counts, entry_bits, ltm_slots[part], engrams.count_bound
            )
        entry_seeds = position.gather(1, column)  # [B, E]
        if paper:
            entry_seeds = entry_seeds.masked_fill(~linked, -1)  # linked STMs only
        # write each entry's seed into its slot of the STM list (column S absorbs padding entries)
        seeds = torch.cat([seeds, seeds.new_full((B, 1), -1)], dim=1)
        seeds = seeds.scatter(1, torch.where(entries < 0, S, entries), entry_seeds)[:, :-1]
    seeds = torch.where(longterm.gather(1, seeds.clamp(min=0)) & (seeds >= 0), seeds, -1)
    return unique_positions(seeds, n) if paper else super_unique(seeds)


def _best_count_then_noise(
    counts: torch.Tensor, bits: torch.Tensor, allowed: torch.Tensor, bound: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per entry, the allowed column with the highest count, then the most noise, then the lowest column.

    This is the reference's choice at every count (probed up to 2^30): the noise only ever breaks ties between
    equal counts, never rounds away in the sum. Computed with int32 (int64 for huge counts) and int16 passes.

    Args:
        counts: integer [b, E, C] (the store's int16 or int32); bits: the noise as int16 bit patterns [b, E, C];
        allowed: bool [b, C]; bound: a bound on the counts' magnitude.

    Returns:
        linked: bool [b, E], whether the highest allowed count is >= 1; column: long [b, E].
    """
    key_type = torch.int32 if bound < 2**30 else torch.int64
    penalty = torch.where(allowed, 0, -(bound + 2)).to(key_type)  # [b, C]: disallowed columns fall below -1
    key = torch.add(counts.to(key_type), penalty[:, None, :])
    top = key.amax(dim=2, keepdim=True)  # [b, E, 1] the highest allowed count
    column = torch.where(key == top, bits, -1).argmax(dim=2)  # the most noise, then the lowest column
    return top.squeeze(2) >= 1, column


def _noise_argmax(bits: torch.Tensor, longterm: torch.Tensor) -> torch.Tensor:
    """Per row and entry, the LTM position with the largest noise (the lowest among equals), -1 without LTMs.

    Args:
        bits: int16 bit patterns of float16 noise in [0, 1), shaped [BatchSize, S, N].
        longterm: bool [BatchSize, N].

    Returns:
        long tensor shaped [BatchSize, S].
    """
    B, S, _ = bits.shape
    columns = longterm.any(0).nonzero().flatten()
    if columns.numel() == 0:
        return torch.full((B, S), -1, dtype=torch.long, device=bits.device)
    start, end = int(columns[0]), int(columns[-1]) + 1  # the window of positions holding every row's LTMs
    # other columns of the window drop below any noise (bit patterns of [0, 1) are >= 0; this stays in int16)
    penalty = torch.where(longterm[:, start:end], 0, -(2**15)).to(torch.int16)[:, None, :]  # [B, 1, C]
    seeds = torch.empty(B, S, dtype=torch.long, device=bits.device)
    for part in batch_chunks(B, S * (end - start) * 2):  # the penalised copy stays in cache
        seeds[part] = torch.add(bits[part, :, start:end], penalty[part]).argmax(dim=2) + start
    return torch.where(longterm.any(1, keepdim=True), seeds, -1)


def walk_longterm(engrams: Engrams, seeds: torch.Tensor, depth: int, paper: bool) -> torch.Tensor:
    """Greedy walks over the LTM Hebbian graph, ``depth`` steps from every seed.

    Each step moves every walker to the not-yet-visited LTM engram with the highest count from where it
    stands (the lowest position among equals). All walks of a row share one visited set. Walkers standing on the
    same engram take the same step, so the walk advances a frontier of distinct engrams and gathers only their
    count rows, and it stops as soon as no walker can move.

    Reference mode reproduces 1.0.0: walks run in the row's LTM-local numbering (the position among LTM engrams,
    front-padded to the longest row), a row with fewer seeds than the longest starts an extra walker on -1, a
    walker with nowhere left to go stands on -1, and -1 reads (and marks visited) the row's last LTM. The local
    numbers are returned as they are, to be read as engram positions by :func:`select_longterm` (so engram 0 is
    reminded while no LTM exists). Paper mode returns the positions of the LTM engrams reached through links of
    positive count.

    Args:
        engrams: the store.
        seeds: [BatchSize, I] LTM positions from :func:`seed_longterm`, -1 padded.
        depth: walk length.

    Returns:
        long tensor shaped [BatchSize, F], -1 padded.
    """
    B = engrams.batch_size
    longterm = engrams.mask(EngramType.LONGTERM)  # [B, N]
    num_ltm = longterm.sum(1)  # [B]
    L = int(num_ltm.max()) if B else 0
    if L == 0:  # the reference finds the phantom engram 0 (README, quirks)
        return seeds.new_empty(B, 0) if paper else seeds.new_zeros(B, seeds.size(1) * (depth + 1))

    # the walk runs in the window of the slot space that holds every LTM slot, C columns wide; LTM slots increase
    # with position, so column order is position order among LTMs
    start, end = _slot_window(engrams, longterm)
    C = end - start
    ltm = _slot_mask(engrams, longterm)[:, start:end]  # [B, C]
    seed_slots = engrams.slot_of.gather(1, seeds.clamp(min=0)).masked_fill_(seeds < 0, -1)  # [B, I]
    frontier = positions_mask(torch.where(seed_slots < 0, -1, seed_slots - start), C) & ltm  # [B, C] walkers
    found = frontier.clone()
    found_nothing = torch.zeros(B, dtype=torch.bool, device=seeds.device)  # reference: -1 is in the found list
    last_ltm = C - 1 - ltm.flip(1).int().argmax(1)  # [B] the row's newest LTM (local number L - 1)
    has_ltm = num_ltm > 0
    if not paper:
        num_seeds = frontier.sum(1)
        if int(num_seeds.max()) == 0:
            return seeds.new_empty(B, 0)
        found_nothing = num_seeds < num_seeds.max()  # front padding of the local seed list: a walker on -1
        frontier = _stand_on_last_ltm(frontier, found_nothing & has_ltm, last_ltm)
    visited = frontier.clone()

    first_max = FirstMax(C, engrams.count_bound, seeds.device)  # the lowest column among equals: lowest position
    row_base = engrams.flat_slot_rows(torch.full((B, 1), start, dtype=torch.long, device=seeds.device))  # [B, 1]
    for _ in range(depth):
        standing = front_padded_positions(frontier)  # [B, K] window columns
        if standing.size(1) == 0:
            break
        flat = standing.clamp(min=0) + row_base  # [B, K] rows of the flat count store
        bias = first_max.bias(ltm & ~visited)  # [B, C]
        key = torch.empty(standing.shape, dtype=first_max.key_type, device=seeds.device)
        for part in batch_chunks(B, standing.size(1) * C * 8):  # temporaries stay in cache
            key[part] = first_max.keys(engrams.count_rows(flat[part], start, end), bias[part])  # [b, K]
        best, column = first_max.decode(key)
        moved = (best >= (1 if paper else 0)) & (standing >= 0)
        stuck = ((standing >= 0) & ~moved).any(1)  # [B] some walker has nowhere to go
        frontier = positions_mask(torch.where(moved, column, -1), C)
        found |= frontier
        visited |= frontier
        if not paper:
            found_nothing |= stuck
            frontier = _stand_on_last_ltm(frontier, stuck & has_ltm, last_ltm)
            visited |= frontier
        if not bool(moved.any()):
            break

    position = engrams.position_of_slot()[:, start:end]  # [B, C]
    if paper:
        columns = front_padded_positions(found)  # [B, F]
        return position.gather(1, columns.clamp(min=0)).masked_fill_(columns < 0, -1).flip(1)
    local_of = ltm.cumsum(1) - 1 + (L - num_ltm)[:, None]  # [B, C] LTM-local numbers
    present = torch.zeros(B, L + 1, dtype=torch.bool, device=seeds.device)  # column 0 is the value -1
    present[:, 0] = found_nothing
    present.scatter_(1, torch.where(found, local_of + 1, 0), found | found_nothing[:, None])
    return unique_from_presence(present, -1)


def _stand_on_last_ltm(frontier: torch.Tensor, rows: torch.Tensor, last_ltm: torch.Tensor) -> torch.Tensor:
    """Reference: a walker on -1 reads the row's last LTM; add that engram to the frontier of the chosen rows."""
    return frontier.scatter(1, last_ltm[:, None], rows[:, None] | frontier.gather(1, last_ltm[:, None]))


def _slot_mask(engrams: Engrams, mask: torch.Tensor) -> torch.Tensor:
    """A [BatchSize, N] position mask carried to the slot space: [BatchSize, slot_end]."""
    return positions_mask(engrams.slot_of.masked_fill(~mask, -1), engrams.slot_end)


def _slot_window(engrams: Engrams, mask: torch.Tensor) -> Tuple[int, int]:
    """The smallest slot range ``start:end`` holding the slots of every masked position ([BatchSize, N])."""
    slots = engrams.slot_of.masked_fill(~mask, -1)
    if not bool((slots >= 0).any()):
        return 0, 0
    start = int(slots.masked_fill(slots < 0, engrams.slot_end).min())
    return start, int(slots.max()) + 1


def select_longterm(
    engrams: Engrams, closeness: Closeness, found: torch.Tensor, num_final: int, paper: bool
) -> torch.Tensor:
    """Keep the ``num_final`` engrams found by the walks that are closest to working memory.

    Args:
        engrams: the store.
        closeness: every engram's similarity to this step's working memory.
        found: [BatchSize, F] positions from :func:`walk_longterm`. In reference mode -1 entries compete as zero
            vectors (and may be selected, more than once); in paper mode they never are.

    Returns:
        long tensor shaped [BatchSize, min(num_final, F)], best first, -1 padded.
    """
    if found.size(1) == 0:
        return found
    scores = closeness.at(found, reduce="sum")  # [B, F]
    if paper:
        scores = scores.masked_fill(found < 0, float("-inf"))
    best = scores.topk(min(num_final, found.size(1)), dim=1).indices
    return found.gather(1, best)
