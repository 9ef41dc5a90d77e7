"""Side by side with memoria-pytorch 1.0.0: our default (reference) mode must give the same engrams, step by step.

One runner (:func:`run_side_by_side`) steps both memories on the same inputs and the same random state and
compares everything observable after every call: reminded indices and data, the generator's state (the seed step
draws noise), counts after firing, and types, lifespans, counts and data after adjusting. Each scenario is named
in the test report. With ``kernel="reference"`` the reference's own kernel formula is passed as the similarity,
so that any mismatch is a difference of design, not of floating-point kernels.
"""

from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import pytest
import torch

from memoria import Memoria
from tests.helpers import reference_kernel

Rewrite = Callable[[int, torch.Tensor], Optional[torch.Tensor]]


@dataclass
class Scenario:
    """A run: Memoria settings, the working memory's shape [B, W, D], steps, and how deltas and counts vary."""

    name: str
    settings: Dict[str, float]
    shape: tuple
    steps: int = 50
    delta_scale: float = 4.0
    seed: int = 0
    kernel: str = "reference"  # or "default": our log-space Gaussian, on unit-scale data
    rewrite: Optional[Rewrite] = field(default=None, repr=False)  # new counts for both memories before a step


def settings(num_stm: int, capacity: int, depth: int, lifespan: float, num_ltm: int) -> Dict[str, float]:
    return dict(
        num_reminded_stm=num_stm,
        stm_capacity=capacity,
        ltm_search_depth=depth,
        initial_lifespan=lifespan,
        num_final_ltms=num_ltm,
    )


def grid_scenario(index: int, shape: tuple, config: tuple, delta_scale: float, steps: int) -> Scenario:
    num_stm, capacity, depth, lifespan, num_ltm = config
    B, W, D = shape
    name = f"B{B}-W{W}-D{D}-stm{num_stm}-cap{capacity}-depth{depth}-life{lifespan}-ltm{num_ltm}"
    return Scenario(name, settings(*config), shape, steps, delta_scale, seed=1000 + index)


GRID = [  # (B, W, D), (num_stm, capacity, depth, lifespan, num_ltm), delta scale, steps
    ((1, 4, 4), (2, 8, 2, 3, 2), 3.0, 50),
    ((2, 8, 64), (4, 16, 5, 3, 4), 5.0, 50),
    ((3, 3, 8), (8, 22, 2, 2, 5), 2.0, 50),
    ((4, 4, 9), (3, 14, 2, 2, 4), 4.0, 50),
    ((4, 4, 6), (7, 5, 1, 3, 8), 6.0, 60),
    ((4, 2, 15), (1, 5, 1, 4, 7), 3.0, 60),
    ((2, 5, 10), (1, 14, 3, 3, 8), 1.0, 50),
    ((1, 8, 32), (6, 6, 4, 2, 6), 8.0, 50),
    ((3, 6, 16), (2, 3, 0, 5, 3), 2.0, 50),
    ((2, 1, 4), (1, 2, 3, 1, 1), 3.0, 60),
    ((4, 7, 8), (4, 23, 4, 3, 6), 5.0, 50),
    ((2, 16, 48), (12, 24, 10, 2, 12), 8.0, 50),
    ((3, 4, 5), (5, 10, 6, 4, 2), 2.0, 60),
    ((1, 2, 64), (3, 4, 2, 3, 5), 6.0, 80),
    ((4, 3, 12), (2, 8, 5, 2, 3), 1.0, 50),
    ((2, 6, 20), (8, 12, 1, 3, 8), 4.0, 50),
    ((3, 5, 7), (3, 9, 7, 1, 4), 7.0, 60),
    ((1, 10, 24), (10, 30, 3, 2, 10), 3.0, 50),
    ((4, 8, 40), (4, 16, 2, 3, 4), 5.0, 50),
    ((2, 3, 4), (2, 6, 8, 3, 6), 8.0, 80),
    ((3, 12, 32), (6, 18, 3, 2, 9), 6.0, 50),
    ((2, 4, 16), (16, 20, 2, 4, 16), 2.0, 50),
]


def flatten_counts_to(offset: int) -> Rewrite:
    """From step 8 on, every stored count is set to ``offset``: every LTM ties on its count and the noise decides
    (a float32 sum would round the noise away from 2^13 on; the walk's keys switch to int64 near 2^30)."""
    return lambda step, counts: torch.where(counts >= 0, offset, counts) if step >= 8 else None


def raise_counts_once(step: int, counts: torch.Tensor) -> Optional[torch.Tensor]:
    """At step 6 every positive count is raised to just below 2^15, so that firing carries counts past int16."""
    return torch.where(counts > 0, counts + 32_760, counts) if step == 6 else None


SCENARIOS = [grid_scenario(i, *row) for i, row in enumerate(GRID)] + [
    Scenario("tutorial-settings", settings(4, 16, 5, 3, 4), (2, 8, 64), steps=12, delta_scale=5.0, seed=42),
    Scenario("default-log-space-kernel", settings(4, 12, 3, 3, 4), (2, 6, 16), steps=40, seed=7, kernel="default"),
    *[
        Scenario(f"counts-{offset}-depth{depth}", settings(8, 10, depth, 6, 4), (3, 5, 8), 30, seed=offset % 9973,
                 rewrite=flatten_counts_to(offset))
        for offset, depth in [(10_000, 0), (70_000, 0), (2**24 + 3, 0), (2**30 - 100, 0), (2**30 - 100, 3)]
    ],
    Scenario("counts-widen-past-int16", settings(4, 8, 2, 8, 4), (2, 4, 8), 30, seed=5, rewrite=raise_counts_once),
]  # fmt: skip


def assert_same_engrams(ours: Memoria, ref, when: str) -> None:
    for name in ("engrams_types", "lifespan", "induce_counts", "data"):
        expected, actual = getattr(ref.engrams, name), getattr(ours.store, name)
        assert actual.shape == expected.shape, f"{when}: {name} shape"
        assert torch.equal(actual, expected), f"{when}: {name}"
    assert len(ours.store) == len(ref.engrams), f"{when}: number of engrams"


def rewrite_counts(ours: Memoria, ref, counts: torch.Tensor) -> None:
    ref.engrams.induce_counts = counts.clone()
    state = ours.state_dict()
    state["engrams"]["induce_counts"] = counts.clone()
    ours.load_state_dict(state)


def run_side_by_side(reference, scenario: Scenario) -> Memoria:
    """Step 1.0.0 and ours on the same inputs, asserting the same observable state after every call."""
    kernel = reference_kernel if scenario.kernel == "reference" else "gaussian"
    ref, ours = reference.Memoria(**scenario.settings), Memoria(**scenario.settings, similarity=kernel)
    inputs = torch.Generator().manual_seed(scenario.seed)
    torch.manual_seed(scenario.seed)
    for step in range(scenario.steps):
        counts = scenario.rewrite(step, ref.engrams.induce_counts) if scenario.rewrite and step else None
        if counts is not None:
            rewrite_counts(ours, ref, counts)
        data = torch.rand(*scenario.shape, generator=inputs)
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
        assert torch.equal(ours.store.induce_counts, ref.engrams.induce_counts), f"step {step}: fired counts"

        delta = (torch.rand(indices.shape, generator=inputs) * scenario.delta_scale).round()
        ref.adjust_lifespan_and_memories(ref_indices, delta)
        ours.adjust_lifespan_and_memories(indices, delta)
        assert_same_engrams(ours, ref, f"step {step}")
    return ours


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_same_engrams_as_reference_after_every_call(reference, scenario):
    ours = run_side_by_side(reference, scenario)
    if scenario.name == "counts-widen-past-int16":
        assert int(ours.store.induce_counts.max()) > 2**15 - 1, "the scenario reached int32 counts"
    if scenario.name == "tutorial-settings":
        assert (ours.store.engrams_types == 3).any(), "after 12 steps some engrams are long-term"
