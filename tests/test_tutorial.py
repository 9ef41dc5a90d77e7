"""The reference README's tutorial, with the values its seed prints (steps 1 to 6 reproduce exactly; step 7's
printed numbers came from an older torch, and its agreement with 1.0.0 is the "tutorial-settings" scenario of
tests/test_reference_parity.py)."""

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
