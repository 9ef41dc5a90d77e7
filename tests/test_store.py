"""Invariants of the engram store under random use (hypothesis), read through its public readers."""

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
        e = memoria.store
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


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 3), capacity=st.integers(1, 5), steps=st.integers(2, 14), seed=st.integers(0, 2**31 - 1))
def test_longterm_window_reads_the_counts_that_induce_counts_shows(batch, capacity, steps, seed):
    memoria = Memoria(3, capacity, 2, 3, 3)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    for _ in range(steps):
        memoria.add_working_memory(torch.rand(batch, 3, 4, generator=g))
        _, indices = memoria.remind()
        memoria.adjust_lifespan_and_memories(indices, (torch.rand(indices.shape, generator=g) * 3).round())
    store = memoria.store
    window = store.longterm_window()
    longterm = store.mask(EngramType.LONGTERM)
    # every LTM engram has exactly one column, in position order, and columns hold nothing else
    assert torch.equal(window.is_longterm.sum(1), longterm.sum(1))
    for row in range(batch):
        columns = window.position[row][window.is_longterm[row]]
        assert columns.tolist() == longterm[row].nonzero().flatten().tolist()
    if window.columns == 0:
        return
    # the counts from any engram to the LTM columns are the LTM columns of induce_counts
    sources = torch.arange(store.length).expand(batch, -1)
    counts = window.counts_from(sources).int()  # [B, N, C]
    expected = store.induce_counts.gather(2, window.position.clamp(min=0)[:, None, :].expand(-1, store.length, -1))
    live = store.engrams_types != EngramType.NULL.value
    mask = live[:, :, None] & window.is_longterm[:, None, :]
    assert torch.equal(counts[mask], expected[mask])
    assert torch.equal(window.column_of(window.position.masked_fill(~window.is_longterm, -1)).ge(0), window.is_longterm)
