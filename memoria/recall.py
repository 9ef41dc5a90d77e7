"""The recall (search) algorithm: which stored engrams working memory reminds.

``remind`` runs these steps in order (SPEC.md, "One step"):

1. :func:`recall_shortterm`: the STM engrams closest to working memory.
2. :func:`seed_longterm`: for each recalled STM, its most strongly linked LTM engram (the walk starts).
3. :func:`walk_longterm`: greedy walks through the Hebbian graph of LTM engrams.
4. :func:`select_longterm`: the LTM engrams found that are closest to working memory.

Each function takes a ``paper`` switch. ``paper=False`` reproduces memoria-pytorch 1.0.0 exactly, quirks included
(README, "Reference quirks"); ``paper=True`` is the algorithm as the paper describes it. Every function works on
whole batches at once: no Python loop over rows or engrams; the walk loops over its depth only and gathers just
the count rows of the engrams it stands on.
"""

import torch

from .engram import Engrams, EngramType
from .similarity import Closeness
from .utils import front_padded_positions, positions_mask, super_unique, unique_from_presence, unique_positions


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
    columns are read.

    Args:
        engrams: the store.
        recalled_stm: [BatchSize, S] from :func:`recall_shortterm`. In reference mode -1 entries read the last
            engram's counts (which has none to LTM yet, so they pick a random LTM); in paper mode they are
            skipped, as are STMs with no link to any LTM.

    Returns:
        long tensor shaped [BatchSize, I]: distinct LTM positions per row, -1 padded (reference mode: in
        :func:`super_unique` order, where -1 also stands for "an entry found no LTM").
    """
    n = engrams.length
    noise = torch.rand(recalled_stm.shape + (n,), dtype=torch.float16, device=recalled_stm.device)  # [B, S, N]
    longterm = engrams.mask(EngramType.LONGTERM)  # [B, N]
    ltm_positions = engrams.positions(EngramType.LONGTERM)  # [B, L]
    seeds = torch.full_like(recalled_stm, -1)
    if ltm_positions.size(1) == 0 or recalled_stm.size(1) == 0:
        return unique_positions(seeds, n) if paper else super_unique(seeds)

    scored = recalled_stm >= 0  # entries whose score needs their counts
    if not paper:
        # reference: -1 entries read the last engram's counts; while it has none with any LTM (it is working
        # memory that has not fired yet) their score is the noise alone, taken over LTM columns in one pass
        last = torch.full_like(recalled_stm[:, :1], n - 1)
        linked = engrams.counts_between(last, ltm_positions).masked_fill_((ltm_positions < 0)[:, None, :], 0)
        if bool((linked != 0).any()):
            scored = torch.ones_like(scored)
        else:
            # float16 in [0, 1) orders like its int16 bit pattern, which CPUs compare much faster
            bits = noise.view(torch.int16).masked_fill_(~longterm[:, None, :], -1)  # only LTM columns are read later
            seeds = bits.argmax(dim=2)  # [B, S]

    entries = front_padded_positions(scored)  # [B, E] indices into the STM list
    sources = recalled_stm.gather(1, entries.clamp(min=0))
    sources = torch.where(sources < 0, n - 1, sources)  # [B, E]
    counts = engrams.counts_between(sources, ltm_positions)  # [B, E, L]; padding columns are masked below
    B, S = recalled_stm.shape
    rows = (torch.arange(B, device=entries.device)[:, None] * S + entries.clamp(min=0)).flatten()
    entry_noise = noise.view(B * S, n).index_select(0, rows).view(B, -1, n)  # [B, E, N]
    entry_noise = entry_noise.gather(2, ltm_positions.clamp(min=0)[:, None, :].expand_as(counts))  # [B, E, L]
    scores = counts.float().add_(entry_noise).masked_fill_((ltm_positions < 0)[:, None, :], float("-inf"))
    best, column = scores.max(dim=2)
    entry_seeds = ltm_positions.gather(1, column)  # [B, E]
    if paper:
        entry_seeds = entry_seeds.masked_fill(best < 1, -1)  # linked STMs only
    # write each entry's seed into its slot of the STM list (column S absorbs padding entries)
    seeds = torch.cat([seeds, seeds.new_full((seeds.size(0), 1), -1)], dim=1)
    seeds = seeds.scatter(1, torch.where(entries < 0, recalled_stm.size(1), entries), entry_seeds)[:, :-1]
    seeds = torch.where(longterm.gather(1, seeds.clamp(min=0)) & (seeds >= 0), seeds, -1)
    return unique_positions(seeds, n) if paper else super_unique(seeds)


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
    n, B = engrams.length, engrams.batch_size
    longterm = engrams.mask(EngramType.LONGTERM)  # [B, N]
    num_ltm = longterm.sum(1)  # [B]
    L = int(num_ltm.max()) if B else 0
    if not paper and L == 0:
        return torch.zeros(B, seeds.size(1) * (depth + 1), dtype=torch.long, device=seeds.device)

    frontier = positions_mask(seeds, n) & longterm  # [B, N] engrams walkers stand on
    found = frontier.clone()
    found_nothing = torch.zeros(B, dtype=torch.bool, device=seeds.device)  # reference: -1 is in the found list
    last_ltm = n - 1 - longterm.flip(1).int().argmax(1)  # [B] the row's newest LTM (local number L - 1)
    has_ltm = num_ltm > 0
    if not paper:
        num_seeds = frontier.sum(1)
        if int(num_seeds.max()) == 0:
            return seeds.new_empty(B, 0)
        found_nothing = num_seeds < num_seeds.max()  # front padding of the local seed list: a walker on -1
        frontier = _stand_on_last_ltm(frontier, found_nothing & has_ltm, last_ltm)
    visited = frontier.clone()
    position_of_slot = engrams.position_of_slot()  # [B, slot_end]

    for _ in range(depth):
        standing = front_padded_positions(frontier)  # [B, K]
        if standing.size(1) == 0:
            break
        rows = engrams.slot_rows(standing)  # [B, K, slot_end]: count rows in slot order
        rows.masked_fill_(~_slot_mask(engrams, longterm & ~visited)[:, None, :], -1)
        best, slot = rows.max(dim=2)  # the lowest slot among equals is the lowest position among LTMs
        best.masked_fill_(standing < 0, -1)
        nxt = position_of_slot.gather(1, slot)
        moved = best >= (1 if paper else 0)
        stuck = ((standing >= 0) & ~moved).any(1)  # [B] some walker has nowhere to go
        frontier = positions_mask(torch.where(moved, nxt, -1), n)
        found |= frontier
        visited |= frontier
        if not paper:
            found_nothing |= stuck
            frontier = _stand_on_last_ltm(frontier, stuck & has_ltm, last_ltm)
            visited |= frontier
        if not bool(moved.any()):
            break

    if paper:
        return front_padded_positions(found).flip(1)
    local_of = longterm.cumsum(1) - 1 + (L - num_ltm)[:, None]  # [B, N] LTM-local numbers
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
