"""Invariants of the engram store under random use (hypothesis)."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memoria import EngramType, Memoria


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 3),
    width=st.integers(1, 5),
    capacity=st.integers(1, 8),
    num_stm=st.integers(0, 6),
    num_ltm=st.integers(0, 6),
    depth=st.integers(0, 4),
    lifespan=st.integers(1, 4),
    mode=st.sampled_from(["reference", "paper"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_store_invariants_hold_after_every_step(batch, width, capacity, num_stm, num_ltm, depth, lifespan, mode, seed):
    memoria = Memoria(num_stm, capacity, depth, lifespan, num_ltm, track_id=True, mode=mode)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    last_type = {}  # id -> type at the previous observation
    for _ in range(12):
        memoria.add_working_memory(torch.rand(batch, width, 4, generator=g))
        _, indices = memoria.remind()
        memoria.adjust_lifespan_and_memories(indices, (torch.rand(indices.shape, generator=g) * 3).round())
        e = memoria.engrams
        counts, types, ids = e.induce_counts, e.engrams_types, e.engram_ids
        live = types != EngramType.NULL.value
        assert torch.equal(counts, counts.transpose(1, 2)), "counts are symmetric"
        assert torch.equal(e.fire_count, counts.diagonal(dim1=1, dim2=2)), "diagonal is the fire count"
        assert ((types == EngramType.SHORTTERM.value).sum(1) <= capacity).all(), "STM within capacity"
        assert (e.lifespan[live] > 0).all(), "live engrams have positive lifespan"
        assert not (types == EngramType.WORKING.value).any(), "no working memory after adjust"
        live_ids = ids[live].tolist()
        assert len(live_ids) == len(set(live_ids)), "ids unique"
        # working memory becomes SHORTTERM at adjust, and only SHORTTERM engrams are promoted to LONGTERM:
        # an engram is never LONGTERM unless it was WORKING or SHORTTERM before, and types never go back
        for engram_id, engram_type in zip(ids[live].tolist(), types[live].tolist()):
            previous = last_type.get(engram_id, EngramType.WORKING.value)
            assert engram_type >= previous, "types only move forward"
            assert engram_type != EngramType.WORKING.value
            last_type[engram_id] = engram_type
        assert len(e) == batch * e.length
