"""MemoriaMemory: the working memory, Memoria's step, lifespans, resets and the memory as module state."""

import pytest
import torch

from memoria import Memoria
from memoria.nn import MemoriaMemory, exclude_memory, lifespan_delta, reset_memory
from tests.helpers import saved_and_loaded, small_memory_settings

D = 8
SMALL = small_memory_settings(3)


def make_memory(**settings):
    torch.manual_seed(0)
    return MemoriaMemory(D, **{**SMALL, **settings})


def uniform_weights(memories, num_heads=2, length=5):
    """Attention weights spread evenly over the real reminded engrams, [B, H, L, R]."""
    mask = memories.reminded_mask.float()  # [B, R]
    share = mask / mask.sum(-1, keepdim=True).clamp_min(1)
    return share[:, None, None, :].expand(-1, num_heads, length, -1)


def step(memory, hidden, mask=None):
    """One segment with uniform attention; returns the memories read and the lifespan paid."""
    memories = memory.read(hidden, mask)
    weights = uniform_weights(memories, length=hidden.size(1))
    if memory.working_memory == "previous":
        return memories, memory.write(weights, hidden, mask)
    return memories, memory.write(weights, mask=mask)


# ------------------------------------------------------------------------------------------ lifespan_delta
def test_paper_rule_is_the_mean_attention_times_padded_width_and_alpha():
    weights = [torch.rand(2, 3, 4, 5), torch.rand(2, 3, 4, 5)]
    mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    delta = lifespan_delta(weights, mask, alpha=8.0)
    expected = torch.stack(weights).mean(dim=(0, 2, 3)) * mask * 5 * 8.0
    torch.testing.assert_close(delta, expected)
    assert torch.all(delta[0, 3:] == 0)


def test_renormalised_rule_pays_alpha_per_real_engram():
    weights = [torch.rand(2, 3, 4, 5)]
    mask = torch.tensor([[True, True, False, False, False], [False] * 5])
    delta = lifespan_delta(weights, mask, alpha=2.0, rule="renormalised")
    torch.testing.assert_close(delta.sum(-1), torch.tensor([4.0, 0.0]))
    assert torch.all(delta[0, 2:] == 0)


def test_query_mask_averages_over_real_positions_only():
    weights = torch.rand(1, 2, 4, 3)
    positions = torch.tensor([[True, True, False, False]])
    delta = lifespan_delta([weights], torch.ones(1, 3, dtype=torch.bool), alpha=1.0, query_mask=positions)
    torch.testing.assert_close(delta, weights[:, :, :2].mean(dim=(1, 2)) * 3)


def test_lifespan_delta_refuses_an_unknown_rule():
    with pytest.raises(ValueError, match="rule"):
        lifespan_delta([torch.rand(1, 1, 1, 1)], torch.ones(1, 1).bool(), alpha=1.0, rule="uniform")


# ------------------------------------------------------------------------------------------ the step
def test_first_segment_reads_nothing_and_leaves_memoria_untouched():
    memory = make_memory()
    memories, delta = step(memory, torch.randn(2, 5, D))
    assert memories.working.shape == (2, 0, D) and memories.reminded.shape == (2, 0, D)
    assert delta.shape == (2, 0)
    assert memory.memoria.store is None


def test_previous_segment_is_summarised_into_working_memory_and_stored_detached():
    memory = make_memory()
    first = torch.randn(2, 5, D)
    step(memory, first)
    memories = memory.read(torch.randn(2, 5, D))
    torch.testing.assert_close(memories.working, memory.abstractor(first))
    assert memories.working.requires_grad
    assert torch.equal(memory.memoria.store.data[:, -3:], memories.working.detach())
    assert memory.memoria.store.data.dtype == torch.float32


def test_without_abstractor_each_position_is_an_engram():
    memory = make_memory(num_working_memories=None)
    first = torch.randn(2, 5, D, requires_grad=True)
    step(memory, first)
    memories = memory.read(torch.randn(2, 5, D))
    assert torch.equal(memories.working, first.detach()) and not memories.working.requires_grad


def test_current_working_memory_summarises_the_segment_read():
    memory = make_memory(working_memory="current")
    hidden, mask = torch.randn(2, 5, D), torch.tensor([[True] * 5, [True, True, False, False, False]])
    memories, _ = step(memory, hidden, mask)
    torch.testing.assert_close(memories.working, memory.abstractor(hidden, mask))
    assert memory.memoria.store.length == 3


def test_current_working_memory_needs_an_abstractor():
    with pytest.raises(ValueError, match="num_working_memories"):
        MemoriaMemory(D, num_working_memories=None, working_memory="current")


def test_reminded_engrams_earn_the_lifespan_write_returns():
    memory = make_memory(initial_lifespan=2, lifespan_rule="renormalised", lifespan_alpha=1.0)
    for _ in range(2):
        step(memory, torch.randn(1, 5, D))
    memories = memory.read(torch.randn(1, 5, D))
    positions = memories.reminded_indices[0]
    before = memory.memoria.store.lifespan[0, positions].clone()
    delta = memory.write(uniform_weights(memories), torch.randn(1, 5, D))
    assert positions.numel() == 3 and torch.all(positions >= 0)
    torch.testing.assert_close(delta, torch.ones(1, 3))
    # every reminded engram earns 1 and loses 1 by ageing; positions did not move (nothing died among them)
    torch.testing.assert_close(memory.memoria.engrams.lifespan[0, positions], before)


def test_steps_out_of_order_are_refused():
    memory = make_memory()
    with pytest.raises(RuntimeError, match="without read"):
        memory.write(torch.zeros(2, 1, 5, 0), torch.randn(2, 5, D))
    memory.read(torch.randn(2, 5, D))
    with pytest.raises(RuntimeError, match="twice"):
        memory.read(torch.randn(2, 5, D))


def test_write_checks_its_arguments():
    memory = make_memory()
    memory.read(torch.randn(2, 5, D))
    with pytest.raises(ValueError, match="reminded_weights"):
        memory.write(torch.zeros(2, 1, 5, 3), torch.randn(2, 5, D))
    with pytest.raises(ValueError, match="needs hidden"):
        memory.write(torch.zeros(2, 1, 5, 0))
    with pytest.raises(ValueError, match="hidden must be shaped"):
        memory.write(torch.zeros(2, 1, 5, 0), torch.randn(2, 5, D + 1))


def test_a_batch_of_another_size_needs_a_reset():
    memory = make_memory()
    step(memory, torch.randn(2, 5, D))
    with pytest.raises(ValueError, match="reset_memory"):
        memory.read(torch.randn(3, 5, D))
    memory.reset_memory()
    step(memory, torch.randn(3, 5, D))


def test_reset_period_erases_the_memory_every_period():
    memory = make_memory(reset_period=2)
    widths = [step(memory, torch.randn(2, 5, D))[0].working.size(1) for _ in range(5)]
    assert widths == [0, 3, 0, 3, 0]


# ------------------------------------------------------------------------------------------ resets
def test_reset_rows_forgets_those_rows_and_their_previous_segment():
    memory = make_memory()
    for _ in range(3):
        step(memory, torch.randn(2, 5, D))
    memory.reset_memory(rows=[1])
    memories, _ = step(memory, torch.randn(2, 5, D))
    assert memories.working_mask[0].all() and not memories.working_mask[1].any()
    assert torch.all(memories.reminded_indices[1] == -1)
    assert memories.reminded_mask[0].any()
    assert torch.all(memory.memoria.store.engrams_types[1] == 0)  # nothing of the old sample entered Memoria


def test_reset_memory_helper_resets_every_memory_in_a_model():
    model = torch.nn.ModuleList([make_memory(), make_memory()])
    for memory in model:
        step(memory, torch.randn(2, 5, D))
        step(memory, torch.randn(2, 5, D))
    reset_memory(model)
    assert all(memory.memoria.store.length == 0 and memory._previous is None for memory in model)


# ------------------------------------------------------------------------------------------ state
def test_state_dict_round_trip_restores_the_next_read():
    memory = make_memory()
    for _ in range(4):
        step(memory, torch.randn(2, 5, D))
    state = saved_and_loaded(memory.state_dict())
    restored = make_memory()
    restored.load_state_dict(state)
    hidden = torch.randn(2, 5, D)
    torch.manual_seed(1)
    expected = memory.read(hidden)
    torch.manual_seed(1)
    got = restored.read(hidden)
    for a, b in zip(expected, got):
        assert torch.equal(a, b)


def test_a_refused_state_leaves_the_memory_as_it_was():
    memory = make_memory()
    for _ in range(3):
        step(memory, torch.randn(2, 5, D))
    before = memory.memoria.state_dict()
    state = memory.state_dict()
    state["_extra_state"]["memory"]["previous"] = torch.randn(2, 5, D + 1)
    with pytest.raises(ValueError, match="previous segment"):
        memory.load_state_dict(state)
    other = MemoriaMemory(D, **{**SMALL, "stm_capacity": 7}).state_dict()
    with pytest.raises(ValueError, match="settings"):
        memory.load_state_dict({**memory.state_dict(), "_extra_state": other["_extra_state"]})
    after = memory.memoria.state_dict()
    assert torch.equal(before["engrams"]["data"], after["engrams"]["data"])
    assert torch.equal(before["engrams"]["lifespan"], after["engrams"]["lifespan"])


def test_exclude_memory_saves_parameters_only_and_loading_that_empties_the_memory():
    memory = make_memory()
    for _ in range(3):
        step(memory, torch.randn(2, 5, D))
    with exclude_memory(memory):
        state = saved_and_loaded(memory.state_dict())
    assert isinstance(state["_extra_state"], torch.Tensor) and state["_extra_state"].numel() == 0
    assert memory.save_memory
    memory.load_state_dict(state)
    assert memory.memoria.store.length == 0 and memory._previous is None


def test_to_dtype_keeps_engrams_float32_and_reads_in_the_hidden_dtype():
    memory = make_memory()
    step(memory, torch.randn(2, 5, D))
    step(memory, torch.randn(2, 5, D))
    memory.to(torch.float64)
    assert memory._previous.dtype == torch.float64
    memories, _ = step(memory, torch.randn(2, 5, D, dtype=torch.float64))
    assert memories.working.dtype == torch.float64 and memories.reminded.dtype == torch.float64
    assert memory.memoria.store.data.dtype == torch.float32


@pytest.mark.cuda
def test_to_cuda_moves_the_engrams_and_the_previous_segment():
    memory = make_memory()
    step(memory, torch.randn(2, 5, D))
    step(memory, torch.randn(2, 5, D))
    memory.to("cuda")
    assert memory._previous.is_cuda and memory.memoria.store.device.type == "cuda"
    memories, _ = step(memory, torch.randn(2, 5, D, device="cuda"))
    assert memories.reminded.is_cuda
    restored = make_memory().cuda()
    restored.load_state_dict(saved_and_loaded(memory.state_dict()))
    assert restored.memoria.store.device.type == "cuda" and restored._previous.is_cuda


def test_memoria_settings_pass_through():
    memory = make_memory(mode="reference", max_ltm_per_row=4, similarity="cosine")
    assert isinstance(memory.memoria, Memoria)
    assert memory.memoria.mode == "reference" and memory.memoria.max_ltm_per_row == 4
    assert memory.memoria.num_final_ltms == SMALL["num_reminded_ltm"]


@pytest.mark.parametrize(
    "settings, named",
    [
        ({"lifespan_rule": "mean"}, "lifespan_rule"),
        ({"working_memory": "next"}, "working_memory"),
        ({"mode": "fast"}, "mode"),
        ({"reset_period": 0}, "reset_period"),
        ({"lifespan_alpha": -1.0}, "lifespan_alpha"),
        ({"stm_capacity": 0}, "stm_capacity"),
        ({"num_working_memories": 0}, "num_working_memories"),
        ({"abstractor_feedforward_size": 0}, "abstractor_feedforward_size"),
    ],
)
def test_bad_settings_are_refused_naming_them(settings, named):
    with pytest.raises(ValueError, match=named):
        MemoriaMemory(D, **{**SMALL, **settings})


def test_lifespan_delta_takes_one_reads_weights_as_a_tensor():
    weights = torch.rand(2, 3, 4, 5)
    mask = torch.ones(2, 5, dtype=torch.bool)
    assert torch.equal(lifespan_delta(weights, mask, alpha=8.0), lifespan_delta([weights], mask, alpha=8.0))
