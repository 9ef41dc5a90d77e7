"""The step an accelerator runs (fixed widths, whole-batch ops, a few host read-backs; ``utils.accelerator_path``
forces it on CPU) gives the same results as the CPU-tuned step, bit for bit."""

import pytest
import torch

from benchmarks.counting import count
from memoria import Memoria
from memoria.utils import accelerator_path

SETTINGS = dict(num_reminded_stm=3, stm_capacity=6, ltm_search_depth=3, initial_lifespan=4, num_final_ltms=3)


def run(memoria: Memoria, steps: int, seed: int, accelerator: bool) -> list:
    """Steps with random inputs and deltas; what each step returned and the engrams after it."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the seeding noise
    history = []
    for _ in range(steps):
        data = torch.rand(3, 4, 8, generator=generator)
        with accelerator_path() if accelerator else torch.no_grad():
            memoria.add_working_memory(data)
            memories, indices = memoria.remind()
            memoria.adjust_lifespan_and_memories(indices, torch.rand(indices.shape, generator=generator) * 2)
        e = memoria.engrams
        history.append([indices, memories, e.engrams_types, e.lifespan, e.induce_counts, e.age, e.engram_ids])
    return history


@pytest.mark.parametrize(
    "options",
    [
        dict(mode="reference"),
        dict(mode="paper"),
        dict(mode="reference", max_ltm_per_row=5, track_age=True, track_id=True),
        dict(mode="paper", similarity="cosine"),
        dict(mode="reference", similarity="l2"),
    ],
    ids=["reference", "paper", "bounded", "paper-cosine", "reference-l2"],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_the_accelerator_path_reproduces_the_cpu_path(options, seed):
    cpu = run(Memoria(**SETTINGS, **options), 40, seed, accelerator=False)
    accelerator = run(Memoria(**SETTINGS, **options), 40, seed, accelerator=True)
    for step, (expected, got) in enumerate(zip(cpu, accelerator)):
        for name, a, b in zip(["indices", "memories", "types", "lifespan", "counts", "age", "ids"], expected, got):
            assert (a is None and b is None) or torch.equal(a, b), f"step {step}: {name}"


def test_a_steady_state_step_on_the_accelerator_path_reads_back_three_times():
    memoria = Memoria(**SETTINGS)
    run(memoria, 20, 0, accelerator=True)
    data = torch.rand(3, 4, 8)
    with accelerator_path():
        add = count(lambda: memoria.add_working_memory(data))
        reminded = []
        remind = count(lambda: reminded.append(memoria.remind()))
        indices = reminded[0][1]
        adjust = count(lambda: memoria.adjust_lifespan_and_memories(indices, torch.ones(indices.shape)))
    assert (add.syncs, remind.syncs, adjust.syncs) == (0, 2, 1)


def test_a_refused_adjust_on_the_accelerator_path_changes_nothing():
    memoria = Memoria(**SETTINGS)
    run(memoria, 10, 0, accelerator=True)
    with accelerator_path():
        memoria.add_working_memory(torch.rand(3, 4, 8))
        _, indices = memoria.remind()
        before = memoria.state_dict()
        delta = torch.ones(indices.shape)
        delta[1, 0] = float("nan")
        with pytest.raises(ValueError, match="lifespan_delta contains NaN"):
            memoria.adjust_lifespan_and_memories(indices, delta)
        with pytest.raises(ValueError, match="indices must lie in"):
            memoria.adjust_lifespan_and_memories(indices.clamp(min=-5) - 5, torch.ones(indices.shape))
    after = memoria.state_dict()
    for name in ("data", "lifespan", "engrams_types", "induce_counts"):
        assert torch.equal(before["engrams"][name], after["engrams"][name]), name


def test_non_finite_working_memory_fails_a_device_side_check_on_the_accelerator_path():
    memoria = Memoria(**SETTINGS)
    data = torch.rand(3, 4, 8)
    data[2, 1, 3] = float("inf")
    with accelerator_path(), pytest.raises(RuntimeError, match="data contains NaN or inf"):
        memoria.add_working_memory(data)
