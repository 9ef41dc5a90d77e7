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
from .similarity import Similarity
from .utils import front_padded_positions, gather_rows, super_unique


def recall_shortterm(
    engrams: Engrams, working: torch.Tensor, similarity: Similarity, num_reminded: int, paper: bool
) -> torch.Tensor:
    """Score STM engrams against working memory and keep the top ``num_reminded`` per row.

    Args:
        engrams: the store.
        working: this step's working memory shaped [BatchSize, WorkingLength, HiddenDim].
        similarity: the kernel.
        num_reminded: how many STM engrams to recall per row.
        paper: exclude padding from the ranking (the reference ranks padding as zero vectors).

    Returns:
        long tensor shaped [BatchSize, S] aligned with the row's STM list (creation order, front-padded): the
        engram position where recalled, -1 elsewhere.
    """
    stm = engrams.positions(EngramType.SHORTTERM)  # [B, S]
    if stm.size(1) == 0:
        return stm
    scores = similarity.pooled(working, gather_rows(engrams.data, stm, 0.0), reduce="mean")  # [B, S]
    if paper:
        scores = scores.masked_fill(stm < 0, float("-inf"))
    chosen = scores.topk(min(num_reminded, stm.size(1)), dim=1).indices  # [B, k]
    is_chosen = torch.zeros_like(stm, dtype=torch.bool).scatter_(1, chosen, True)
    return torch.where(is_chosen, stm, -1)


def seed_longterm(engrams: Engrams, recalled_stm: torch.Tensor, paper: bool) -> torch.Tensor:
    """For every recalled STM entry, the LTM engram it fired with most often (ties broken uniformly at random).

    Random tie-breaking draws one float16 uniform tensor shaped [BatchSize, S, N] from torch's generator of the
    store's device, as the reference does, so that ``torch.manual_seed`` reproduces reference runs.

    Args:
        engrams: the store.
        recalled_stm: [BatchSize, S] from :func:`recall_shortterm`. In reference mode -1 entries read the last
            engram's counts (which has none to LTM yet, so they pick a random LTM); in paper mode they are
            skipped, as are STMs with no link to any LTM.

    Returns:
        long tensor shaped [BatchSize, I]: distinct LTM positions per row, -1 padded.
    """
    n = engrams.length
    longterm = engrams.mask(EngramType.LONGTERM)  # [B, N]
    source = torch.where(recalled_stm < 0, n - 1, recalled_stm)  # [B, S]
    counts = engrams.induce_counts.gather(1, source[:, :, None].expand(-1, -1, n))  # [B, S, N]
    noise = torch.rand(counts.shape, dtype=torch.float16, device=counts.device)
    scores = (counts.float() + noise.float()).masked_fill(~longterm[:, None, :], float("-inf"))  # [B, S, N]
    best, seeds = scores.max(dim=2)
    picked = longterm.gather(1, seeds)
    if paper:
        picked &= (recalled_stm >= 0) & (best >= 1)
    seeds = torch.where(picked, seeds, -1)
    if paper:
        return _unique_positions(seeds, n)
    return super_unique(seeds)


def walk_longterm(engrams: Engrams, seeds: torch.Tensor, depth: int, paper: bool) -> torch.Tensor:
    """Greedy walks over the LTM Hebbian graph, ``depth`` steps from every seed.

    Each step moves every walker to the not-yet-visited LTM engram with the highest count from where it
    stands (the lowest position among equals). All walks of a row share one visited set.

    Reference mode reproduces 1.0.0: walks run in the row's LTM-local numbering (the position among LTM engrams,
    front-padded to the longest row), a walker with nowhere left to go stands on -1, which reads the row's last
    LTM, and the local numbers are returned as they are, to be read as engram positions by
    :func:`select_longterm` (so engram 0 is reminded while no LTM exists). Paper mode returns engram positions
    of the LTM engrams reached through links of positive count.

    Args:
        engrams: the store.
        seeds: [BatchSize, I] LTM positions from :func:`seed_longterm`, -1 padded.
        depth: walk length.

    Returns:
        long tensor shaped [BatchSize, F], -1 padded.
    """
    n = engrams.length
    B = engrams.batch_size
    longterm = engrams.mask(EngramType.LONGTERM)  # [B, N]
    num_ltm = longterm.sum(1)  # [B]
    if paper:
        return _walk_paper(engrams, seeds, depth, longterm)
    L = int(num_ltm.max()) if B else 0
    if L == 0:
        return torch.zeros(B, seeds.size(1) * (depth + 1), dtype=torch.long, device=seeds.device)

    # local number of each LTM engram: rank among the row's LTMs after front padding to L
    local_of = longterm.cumsum(1) - 1 + (L - num_ltm)[:, None]  # [B, N] (meaningful where longterm)
    last_ltm = torch.where(num_ltm > 0, n - 1 - longterm.flip(1).int().argmax(1), -1)  # [B] position of local L-1

    is_seed = torch.zeros(B, n + 1, dtype=torch.bool, device=seeds.device)
    is_seed.scatter_(1, torch.where(seeds < 0, n, seeds), True)
    current = front_padded_positions(is_seed[:, :n] & longterm)  # [B, I'] positions, -1 padded

    visited = torch.zeros(B, n + 1, dtype=torch.bool, device=seeds.device)  # column n absorbs padding
    found = []
    for step in range(depth + 1):
        standing = torch.where(current < 0, last_ltm[:, None], current)  # [B, I']: -1 reads local L-1
        visited.scatter_(1, torch.where(standing < 0, n, standing), True)
        found.append(torch.where(current < 0, -1, local_of.gather(1, current.clamp(min=0))))
        if step == depth:
            break
        rows = engrams.induce_counts.gather(1, standing.clamp(min=0)[:, :, None].expand(-1, -1, n))  # [B, I', N]
        open_ = longterm & ~visited[:, :n]
        rows = rows.masked_fill(~open_[:, None, :] | (standing < 0)[:, :, None], -1)
        best, nxt = rows.max(dim=2)
        current = torch.where(best >= 0, nxt, -1)
    return super_unique(torch.cat(found, dim=1))


def _walk_paper(engrams: Engrams, seeds: torch.Tensor, depth: int, longterm: torch.Tensor) -> torch.Tensor:
    n = engrams.length
    B = engrams.batch_size
    visited = torch.zeros(B, n + 1, dtype=torch.bool, device=seeds.device)
    current = seeds
    found = [seeds]
    visited.scatter_(1, torch.where(current < 0, n, current), True)
    for _ in range(depth):
        rows = engrams.induce_counts.gather(1, current.clamp(min=0)[:, :, None].expand(-1, -1, n))  # [B, I, N]
        open_ = longterm & ~visited[:, :n]
        rows = rows.masked_fill(~open_[:, None, :] | (current < 0)[:, :, None], 0)
        best, nxt = rows.max(dim=2)
        current = torch.where(best > 0, nxt, -1)
        visited.scatter_(1, torch.where(current < 0, n, current), True)
        found.append(current)
    return _unique_positions(torch.cat(found, dim=1), n)


def select_longterm(
    engrams: Engrams, working: torch.Tensor, found: torch.Tensor, similarity: Similarity, num_final: int, paper: bool
) -> torch.Tensor:
    """Keep the ``num_final`` engrams found by the walks that are closest to working memory.

    Args:
        engrams: the store.
        working: [BatchSize, WorkingLength, HiddenDim].
        found: [BatchSize, F] positions from :func:`walk_longterm`. In reference mode -1 entries compete as zero
            vectors (and may be selected, more than once); in paper mode they never are.

    Returns:
        long tensor shaped [BatchSize, min(num_final, F)], best first, -1 padded.
    """
    if found.size(1) == 0:
        return found
    scores = similarity.pooled(working, gather_rows(engrams.data, found, 0.0), reduce="sum")  # [B, F]
    if paper:
        scores = scores.masked_fill(found < 0, float("-inf"))
    best = scores.topk(min(num_final, found.size(1)), dim=1).indices
    return found.gather(1, best)


def _unique_positions(indices: torch.Tensor, n: int) -> torch.Tensor:
    """Distinct non-negative positions per row in ascending order, padded at the end with -1: [BatchSize, K]."""
    present = torch.zeros(indices.size(0), n + 1, dtype=torch.bool, device=indices.device)
    present.scatter_(1, torch.where(indices < 0, n, indices), True)
    present = present[:, :n]
    count = int(present.sum(1).max()) if present.numel() else 0
    order = torch.sort(present.to(torch.uint8), dim=1, descending=True, stable=True).indices[:, :count]
    return torch.where(present.gather(1, order), order, -1)
