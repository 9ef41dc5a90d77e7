"""Differential tests: our default mode against memoria-pytorch 1.0.0, compared after every step.

The reference's kernel is passed as the similarity callable, so that the only difference left is our design:
any mismatch in reminded indices, lifespans, types, counts or data is a behavioural difference.
"""

import pytest
import torch

from memoria import Memoria
from tests.helpers import reference_kernel

# (batch, working, hidden, num_reminded_stm, stm_capacity, depth, lifespan, num_final_ltms, delta scale, steps)
SCENARIOS = [
    (1, 4, 4, 2, 8, 2, 3, 2, 3.0, 50),
    (2, 8, 64, 4, 16, 5, 3, 4, 5.0, 50),
    (3, 3, 8, 8, 22, 2, 2, 5, 2.0, 50),
    (4, 4, 9, 3, 14, 2, 2, 4, 4.0, 50),
    (4, 4, 6, 7, 5, 1, 3, 8, 6.0, 60),
    (4, 2, 15, 1, 5, 1, 4, 7, 3.0, 60),
    (2, 5, 10, 1, 14, 3, 3, 8, 1.0, 50),
    (1, 8, 32, 6, 6, 4, 2, 6, 8.0, 50),
    (3, 6, 16, 2, 3, 0, 5, 3, 2.0, 50),
    (2, 1, 4, 1, 2, 3, 1, 1, 3.0, 60),
    (4, 7, 8, 4, 23, 4, 3, 6, 5.0, 50),
    (2, 16, 48, 12, 24, 10, 2, 12, 8.0, 50),
    (3, 4, 5, 5, 10, 6, 4, 2, 2.0, 60),
    (1, 2, 64, 3, 4, 2, 3, 5, 6.0, 80),
    (4, 3, 12, 2, 8, 5, 2, 3, 1.0, 50),
    (2, 6, 20, 8, 12, 1, 3, 8, 4.0, 50),
    (3, 5, 7, 3, 9, 7, 1, 4, 7.0, 60),
    (1, 10, 24, 10, 30, 3, 2, 10, 3.0, 50),
    (4, 8, 40, 4, 16, 2, 3, 4, 5.0, 50),
    (2, 3, 4, 2, 6, 8, 3, 6, 8.0, 80),
    (3, 12, 32, 6, 18, 3, 2, 9, 6.0, 50),
    (2, 4, 16, 16, 20, 2, 4, 16, 2.0, 50),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[f"scenario{i}" for i in range(len(SCENARIOS))])
def test_same_engram_state_as_reference_every_step(reference, scenario):
    B, W, D, num_stm, capacity, depth, lifespan, num_ltm, scale, steps = scenario
    settings = dict(
        num_reminded_stm=num_stm,
        stm_capacity=capacity,
        ltm_search_depth=depth,
        initial_lifespan=lifespan,
        num_final_ltms=num_ltm,
    )
    ref = reference.Memoria(**settings)
    ours = Memoria(**settings, similarity=reference_kernel)
    inputs = torch.Generator().manual_seed(hash(scenario) % 2**31)
    torch.manual_seed(len(SCENARIOS) + steps)
    for step in range(steps):
        data = torch.rand(B, W, D, generator=inputs)
        rng = torch.get_rng_state()
        ref.add_working_memory(data)
        ref_memories, ref_indices = ref.remind()
        ref_rng = torch.get_rng_state()
        torch.set_rng_state(rng)
        ours.add_working_memory(data)
        memories, indices = ours.remind()
        assert torch.equal(torch.get_rng_state(), ref_rng), f"step {step}: different draws from the generator"
        assert torch.equal(indices, ref_indices), f"step {step}: reminded indices"
        assert torch.equal(memories, ref_memories), f"step {step}: reminded data"
        # between remind and adjust too: padding's implied counts (0 with working memory, +1 where it fired)
        assert torch.equal(ours.engrams.induce_counts, ref.engrams.induce_counts), f"step {step}: fired counts"

        delta = (torch.rand(indices.shape, generator=inputs) * scale).round()
        ref.adjust_lifespan_and_memories(ref_indices, delta)
        ours.adjust_lifespan_and_memories(indices, delta)
        for field in ("engrams_types", "lifespan", "induce_counts", "data"):
            expected, actual = getattr(ref.engrams, field), getattr(ours.engrams, field)
            assert actual.shape == expected.shape, f"step {step}: {field} shape"
            assert torch.equal(actual, expected), f"step {step}: {field}"
        assert len(ours.engrams) == len(ref.engrams)


def test_default_log_space_kernel_matches_reference_on_unit_scale_data(reference):
    """Where the reference's kernel does not underflow, the default log-space kernel gives the same engrams."""
    settings = dict(num_reminded_stm=4, stm_capacity=12, ltm_search_depth=3, initial_lifespan=3, num_final_ltms=4)
    ref, ours = reference.Memoria(**settings), Memoria(**settings)
    torch.manual_seed(7)
    for _ in range(40):
        data = torch.rand(2, 6, 16)
        rng = torch.get_rng_state()
        ref.add_working_memory(data)
        _, ref_indices = ref.remind()
        torch.set_rng_state(rng)
        ours.add_working_memory(data)
        _, indices = ours.remind()
        assert torch.equal(indices, ref_indices)
        delta = torch.randint_like(indices, 0, 4).float()
        ref.adjust_lifespan_and_memories(ref_indices, delta)
        ours.adjust_lifespan_and_memories(indices, delta)
    assert torch.equal(ours.engrams.induce_counts, ref.engrams.induce_counts)


def _run_with_counts_rewritten(reference, settings, shape, seed, steps, rewrite):
    """Step the reference and ours side by side on the same inputs, comparing reminded indices, counts and types
    after every step; before step ``i``, ``rewrite(i, counts)`` may return new counts for both memories."""
    ref, ours = reference.Memoria(**settings), Memoria(**settings, similarity=reference_kernel)
    inputs = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    for step in range(steps):
        rewritten = rewrite(step, ref.engrams.induce_counts) if ref.engrams is not None else None
        if rewritten is not None:
            ref.engrams.induce_counts = rewritten.clone()
            state = ours.state_dict()
            state["engrams"]["induce_counts"] = rewritten.clone()
            ours.load_state_dict(state)
        data = torch.rand(*shape, generator=inputs)
        rng = torch.get_rng_state()
        ref.add_working_memory(data)
        _, ref_indices = ref.remind()
        torch.set_rng_state(rng)
        ours.add_working_memory(data)
        _, indices = ours.remind()
        assert torch.equal(indices, ref_indices), f"step {step}: reminded indices"
        delta = (torch.rand(indices.shape, generator=inputs) * 4).round()
        ref.adjust_lifespan_and_memories(ref_indices, delta)
        ours.adjust_lifespan_and_memories(indices, delta)
        assert torch.equal(ours.engrams.induce_counts, ref.engrams.induce_counts), f"step {step}: counts"
        assert torch.equal(ours.engrams.engrams_types, ref.engrams.engrams_types), f"step {step}: types"
    return ours


@pytest.mark.parametrize(
    "offset, depth", [(10_000, 0), (70_000, 0), (2**24 + 3, 0), (2**30 - 100, 0), (2**30 - 100, 3)]
)
def test_same_engrams_as_reference_when_counts_are_large(reference, offset, depth):
    """The seed step's noise breaks ties between equal counts at any count (a float32 sum would round it away
    from 2^13 on), and the walk's fused keys switch to int64 for huge counts. Before every step, every stored
    count is set to ``offset`` in both memories, so that every LTM ties on its count and the noise decides."""
    settings = dict(num_reminded_stm=8, stm_capacity=10, ltm_search_depth=depth, initial_lifespan=6, num_final_ltms=4)

    def flatten(step, counts):
        return torch.where(counts >= 0, offset, counts) if step >= 8 else None

    _run_with_counts_rewritten(reference, settings, (3, 5, 8), offset, 30, flatten)


def test_counts_widen_past_int16_exactly(reference):
    """Counts are stored as int16 until one may pass 2^15 - 1; raised once to just below it, firing carries them
    past it, where the store widens to int32 and keeps matching the reference."""
    settings = dict(num_reminded_stm=4, stm_capacity=8, ltm_search_depth=2, initial_lifespan=8, num_final_ltms=4)

    def raise_once(step, counts):
        return torch.where(counts > 0, counts + 32_760, counts) if step == 6 else None

    ours = _run_with_counts_rewritten(reference, settings, (2, 4, 8), 5, 30, raise_once)
    assert int(ours.engrams.induce_counts.max()) > 2**15 - 1
