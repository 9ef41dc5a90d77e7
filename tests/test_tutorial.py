"""The reference README's tutorial, with the values the seed prints (steps 1 to 6 reproduce exactly)."""

import torch

from memoria import EngramType, Memoria


def run_tutorial():
    torch.manual_seed(42)
    memoria = Memoria(num_reminded_stm=4, stm_capacity=16, ltm_search_depth=5, initial_lifespan=3, num_final_ltms=4)
    data = torch.rand(2, 8, 64)
    memoria.add_working_memory(data)
    return memoria


def test_tutorial_steps_1_to_6():
    memoria = run_tutorial()
    assert len(memoria.engrams) == 16
    assert memoria.engrams.data.shape == torch.Size([2, 8, 64])
    assert torch.equal(memoria.engrams.lifespan, torch.full((2, 8), 3.0))

    reminded_memories, reminded_indices = memoria.remind()
    assert reminded_memories.shape == (2, 0, 64) and reminded_indices.shape == (2, 0)
    assert reminded_indices.dtype == torch.int64

    memoria.adjust_lifespan_and_memories(reminded_indices, torch.zeros_like(reminded_indices))
    assert torch.equal(memoria.engrams.lifespan, torch.full((2, 8), 2.0))
    assert torch.equal(memoria.engrams.engrams_types, torch.full((2, 8), 2, dtype=torch.uint8))
    assert repr(EngramType.SHORTTERM) == "<EngramType.SHORTTERM: 2>"

    memoria.add_working_memory(torch.rand(2, 8, 64))
    assert len(memoria.engrams) == 32
    assert memoria.engrams.lifespan.tolist() == [[2.0] * 8 + [3.0] * 8] * 2

    reminded_memories, reminded_indices = memoria.remind()
    assert reminded_memories.shape == torch.Size([2, 6, 64])
    assert reminded_indices.tolist() == [[0, 6, 4, 3, 2, -1], [0, 7, 6, 5, 4, -1]]

    memoria.adjust_lifespan_and_memories(reminded_indices, torch.full_like(reminded_indices, 5))
    assert memoria.engrams.lifespan.tolist() == [
        [6.0, 1.0, 6.0, 6.0, 6.0, 1.0, 6.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0],
        [6.0, 1.0, 1.0, 1.0, 6.0, 6.0, 6.0, 6.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0],
    ]


def test_tutorial_step_7_structure_and_oracle_agreement(reference):
    """Step 7's printed numbers came from an older torch; check its structure and agreement with 1.0.0."""
    torch.manual_seed(42)
    ours = Memoria(num_reminded_stm=4, stm_capacity=16, ltm_search_depth=5, initial_lifespan=3, num_final_ltms=4)
    ref = reference.Memoria(
        num_reminded_stm=4, stm_capacity=16, ltm_search_depth=5, initial_lifespan=3, num_final_ltms=4
    )
    for step in range(12):
        data = torch.rand(2, 8, 64)
        state = torch.get_rng_state()
        ref.add_working_memory(data)
        _, ref_indices = ref.remind()
        torch.set_rng_state(state)
        ours.add_working_memory(data)
        _, indices = ours.remind()
        assert torch.equal(indices, ref_indices), f"step {step}"
        delta = torch.randint_like(indices, 0, 6).float() if step >= 2 else torch.full_like(indices, 5 * (step == 1))
        ref.adjust_lifespan_and_memories(ref_indices, delta)
        ours.adjust_lifespan_and_memories(indices, delta)
    assert torch.equal(ours.engrams.engrams_types, ref.engrams.engrams_types)
    assert torch.equal(ours.engrams.lifespan, ref.engrams.lifespan)
    types = ours.engrams.engrams_types
    assert (types == EngramType.LONGTERM.value).any(), "after 12 steps some engrams are long-term"
    assert ((types == EngramType.SHORTTERM.value).sum(1) <= 16).all()
    assert len(ours.engrams) == types.numel()
