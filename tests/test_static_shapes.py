"""``Memoria(static_shapes=True)``: the paper's step on fixed-capacity buffers (memoria/static.py).

Checked against the default path of the same mode (``mode="paper"``, same ``max_ltm_per_row``) on benchmark-style
inputs: the same engrams and the same reminded engrams, compared by engram id, step after step. The static path
breaks ties between equal counts by the oldest engram; the default path it is compared with does too
(``tie_break="oldest"``; its own default is 1.0.0's random noise).
"""

from typing import Dict, List, Set, Tuple

import pytest
import torch
import torch.nn.functional as F

from benchmarks.counting import count
from benchmarks.workload import ALPHA
from memoria import Engrams, EngramType, Memoria

B, W, D = 3, 6, 32
SETTINGS = dict(
    num_reminded_stm=5,
    stm_capacity=18,
    ltm_search_depth=3,
    initial_lifespan=4,
    num_final_ltms=6,
    mode="paper",
    tie_break="oldest",
)


def hidden_states(step: int, batch: int = B, length: int = W, dim: int = D) -> torch.Tensor:
    """LayerNorm-scale hidden states shaped [B, W, D], as benchmarks.workload draws them."""
    generator = torch.Generator().manual_seed(1000 + step)
    return F.layer_norm(torch.randn(batch, length, dim, generator=generator), (dim,))


def attention_delta(indices: torch.Tensor, ids: torch.Tensor, step: int) -> torch.Tensor:
    """Attention-like lifespan deltas for ``indices`` [B, R] (-1 padded) whose engram ids are ``ids`` [B, R]: per
    row a softmax over the reminded engrams times their number times alpha, as benchmarks.workload computes them,
    with each engram's logit drawn from its id (so that both paths give an engram the same delta in any order)."""
    logits = torch.sin(ids.double() * 12.9898 + step * 78.233).mul(43758.5453).frac().mul(4.0).float()  # [B, R]
    valid = indices >= 0
    weights = torch.softmax(logits.masked_fill(~valid, float("-inf")), dim=-1).nan_to_num(0.0)
    return weights * valid.sum(-1, keepdim=True) * ALPHA


def ids_at(memoria: Memoria, indices: torch.Tensor) -> torch.Tensor:
    """Engram ids at ``indices`` [B, R] (-1 where -1)."""
    ids = memoria.store.engram_ids
    return torch.where(indices >= 0, ids.gather(1, indices.clamp(min=0)), -1)


def engrams_by_id(memoria: Memoria) -> List[Dict[int, Tuple[int, float]]]:
    """Per row: engram id -> (type, lifespan) of every live engram."""
    store = memoria.store
    rows = []
    for ids, types, lifespan in zip(store.engram_ids.tolist(), store.engrams_types.tolist(), store.lifespan.tolist()):
        rows.append({i: (t, life) for i, t, life in zip(ids, types, lifespan) if t != EngramType.NULL.value})
    return rows


def counts_by_id(memoria: Memoria) -> torch.Tensor:
    """Hebbian counts among the live engrams of each row, ordered by id: [B, L, L] (rows with fewer are padded -2)."""
    store = memoria.store
    ids = store.engram_ids.masked_fill(store.engrams_types == EngramType.NULL.value, -1)
    live = (ids >= 0).sum(1)
    L = int(live.max())
    out = torch.full((store.batch_size, L, L), -2, dtype=torch.int32)
    for row in range(store.batch_size):
        order = ids[row].argsort()[-int(live[row]) :] if live[row] else ids[row][:0]
        n = order.numel()
        out[row, :n, :n] = store.induce_counts[row][order][:, order]
    return out


def step(memoria: Memoria, index: int) -> torch.Tensor:
    """One step with benchmark-style inputs; returns the reminded engram ids [B, R] (-1 padded)."""
    memoria.add_working_memory(hidden_states(index))
    _, indices = memoria.remind()
    ids = ids_at(memoria, indices)
    memoria.adjust_lifespan_and_memories(indices, attention_delta(indices, ids, index))
    return ids


def as_sets(ids: torch.Tensor) -> List[Set[int]]:
    return [{i for i in row if i >= 0} for row in ids.tolist()]


def longterm_per_row(memoria: Memoria) -> int:
    return int((memoria.store.engrams_types == EngramType.LONGTERM.value).sum(1).max())


def assert_same_engrams(default: Memoria, static: Memoria, when: str) -> None:
    expected, actual = engrams_by_id(default), engrams_by_id(static)
    for row, (e, a) in enumerate(zip(expected, actual)):
        assert e.keys() == a.keys(), f"{when}, row {row}: engram ids"
        assert [e[i][0] for i in e] == [a[i][0] for i in e], f"{when}, row {row}: types"
        assert torch.allclose(torch.tensor([e[i][1] for i in e]), torch.tensor([a[i][1] for i in e]), atol=1e-4), when
    assert torch.equal(counts_by_id(default), counts_by_id(static)), f"{when}: Hebbian counts"


# ------------------------------------------------------------------------------------------ same as the default
@pytest.mark.parametrize("bound", [400, 12], ids=["bound-not-binding", "bound-binding"])
def test_static_path_keeps_and_reminds_the_same_engrams_as_the_default_path(bound):
    default = Memoria(**SETTINGS, max_ltm_per_row=bound, track_id=True)
    static = Memoria(**SETTINGS, max_ltm_per_row=bound, track_id=True, static_shapes=True)
    most_longterm = 0
    for index in range(60):
        expected, actual = step(default, index), step(static, index)
        assert as_sets(expected) == as_sets(actual), f"step {index}: reminded engrams"
        assert_same_engrams(default, static, f"step {index}")
        most_longterm = max(most_longterm, longterm_per_row(default))
    if bound == 400:
        assert 12 < most_longterm < bound, "the bound never bound, and the graph walk had LTM engrams to walk"
    else:
        assert most_longterm == bound, "the bound bound"


def adjust_by_the_rule(
    before: List[Dict[int, Tuple[int, float]]], rewards: List[Dict[int, float]], stm_capacity: int, bound: int
) -> List[Dict[int, Tuple[int, float]]]:
    """docs/algorithm.md's adjust step in plain Python, per row (id -> (type, lifespan)): reward, age, working to
    STM, the oldest STM beyond capacity to LTM, forget the out-of-lifespan, then delete the LTM beyond the bound,
    lowest lifespan first and oldest (lowest id) among equals."""
    rows = []
    for engrams, reward in zip(before, rewards):
        e = {i: [t, life + reward.get(i, 0.0) - 1] for i, (t, life) in engrams.items()}
        for value in e.values():
            value[0] = EngramType.SHORTTERM.value if value[0] == EngramType.WORKING.value else value[0]
        shortterm = sorted(i for i in e if e[i][0] == EngramType.SHORTTERM.value)
        for i in shortterm[: max(0, len(shortterm) - stm_capacity)]:
            e[i][0] = EngramType.LONGTERM.value
        e = {i: v for i, v in e.items() if v[1] > 0}
        longterm = sorted((v[1], i) for i, v in e.items() if v[0] == EngramType.LONGTERM.value)
        for _, i in longterm[: max(0, len(longterm) - bound)]:
            del e[i]
        rows.append({i: (t, life) for i, (t, life) in e.items()})
    return rows


def test_beyond_the_ltm_bound_the_lowest_lifespan_goes_first_and_the_oldest_among_equals():
    bound = 4
    memoria = Memoria(2, 3, 2, 3, 2, mode="paper", max_ltm_per_row=bound, track_id=True, static_shapes=True)
    generator = torch.Generator().manual_seed(0)
    evicted_with_ties = 0
    for index in range(40):
        memoria.add_working_memory(hidden_states(index, 2, 3, 8))
        _, indices = memoria.remind()
        delta = torch.randint(0, 3, indices.shape, generator=generator) * 0.5 * (indices >= 0)  # ties are common
        before = engrams_by_id(memoria)
        ids = ids_at(memoria, indices)
        rewards = [{} for _ in before]
        for row, (row_ids, row_delta) in enumerate(zip(ids.tolist(), delta.tolist())):
            for i, d in zip(row_ids, row_delta):
                if i >= 0:
                    rewards[row][i] = rewards[row].get(i, 0.0) + d
        memoria.adjust_lifespan_and_memories(indices, delta)
        expected = adjust_by_the_rule(before, rewards, stm_capacity=3, bound=bound)
        assert engrams_by_id(memoria) == expected, f"step {index}"
        longterm = [sorted(v[1] for v in row.values() if v[0] == EngramType.LONGTERM.value) for row in expected]
        evicted_with_ties += sum(len(set(row)) < len(row) == bound for row in longterm)
    assert evicted_with_ties > 0, "the bound bound while kept LTM engrams had equal lifespans"


# ------------------------------------------------------------------------------------------ fixed shapes, no syncs
def static_memoria(**overrides) -> Memoria:
    return Memoria(**{**SETTINGS, "max_ltm_per_row": 30, "track_id": True, "static_shapes": True, **overrides})


def test_remind_returns_a_fixed_width_padded_with_minus_one_from_the_first_step():
    memoria = static_memoria()
    widths, minus_one = set(), []
    for index in range(12):
        memoria.add_working_memory(hidden_states(index))
        memories, indices = memoria.remind()
        widths.add(tuple(indices.shape) + tuple(memories.shape))
        minus_one.append(bool((indices == -1).any()))
        assert torch.equal(
            memories,
            memoria.engrams.data.gather(1, indices.clamp(min=0)[..., None].expand(-1, -1, D))
            * (indices >= 0)[..., None],
        )
        memoria.adjust_lifespan_and_memories(indices, torch.ones(indices.shape))
    R = SETTINGS["num_reminded_stm"] + SETTINGS["num_final_ltms"]
    assert widths == {(B, R, B, R, D)}
    assert minus_one[0], "the first step has nothing to remind: every index is -1"


def test_a_steady_state_step_makes_no_host_sync():
    memoria = static_memoria()
    for index in range(20):
        step(memoria, index)
    hidden, logits = hidden_states(20), torch.randn(B, 11)

    def one_step():
        memoria.add_working_memory(hidden)
        _, indices = memoria.remind()
        memoria.adjust_lifespan_and_memories(indices, torch.softmax(logits, -1).masked_fill(indices < 0, 0.0))

    counted = count(one_step)
    assert counted.syncs == 0, counted.sync_ops
    assert counted.ops > 50


# ------------------------------------------------------------------------------------------ one compiled graph
def model_step(memoria: Memoria):
    """A model's step on ``memoria``: add, remind, attention-like deltas from ``logits`` [B, R], adjust."""

    def run(hidden: torch.Tensor, logits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        memoria.add_working_memory(hidden)
        memories, indices = memoria.remind()
        weights = torch.softmax(logits.masked_fill(indices < 0, float("-inf")), dim=-1).nan_to_num(0.0)
        memoria.adjust_lifespan_and_memories(indices, weights * (indices >= 0).sum(-1, keepdim=True) * ALPHA)
        return memories, indices

    return run


def step_inputs(steps: int) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(7)
    R = SETTINGS["num_reminded_stm"] + SETTINGS["num_final_ltms"]
    return [(hidden_states(index), torch.randn(B, R, generator=generator)) for index in range(steps)]


def test_a_whole_step_is_one_graph_without_breaks():
    memoria = static_memoria()
    inputs = step_inputs(2)
    model_step(memoria)(*inputs[0])  # the first step allocates the buffers
    explanation = torch._dynamo.explain(model_step(memoria))(*inputs[1])
    assert explanation.graph_count == 1
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_steps_compiled_with_fullgraph_compile_once_and_never_recompile():
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    memoria = static_memoria()
    inputs = step_inputs(12)
    model_step(memoria)(*inputs[0])
    counter = CompileCounter()
    compiled = torch.compile(model_step(memoria), backend=counter, fullgraph=True, dynamic=False)
    for hidden, logits in inputs[1:]:
        compiled(hidden, logits)
    assert counter.frame_count == 1, "one compilation for eleven steps"


def test_compiled_steps_give_the_same_results_as_eager_steps():
    torch._dynamo.reset()
    eager, compiled = static_memoria(track_age=True), static_memoria(track_age=True)
    inputs = step_inputs(25)
    for memoria in (eager, compiled):
        model_step(memoria)(*inputs[0])
    run_eager = model_step(eager)
    run_compiled = torch.compile(model_step(compiled), backend="aot_eager", fullgraph=True, dynamic=False)
    for index, (hidden, logits) in enumerate(inputs[1:]):
        expected, actual = run_eager(hidden, logits), run_compiled(hidden, logits)
        assert torch.equal(expected[1], actual[1]), f"step {index}: indices"
        assert torch.equal(expected[0], actual[0]), f"step {index}: memories"
    for name in ("data", "lifespan", "engrams_types", "induce_counts", "age", "engram_ids"):
        assert torch.equal(getattr(eager.store, name), getattr(compiled.store, name)), name
    assert (compiled.store.engrams_types == EngramType.LONGTERM.value).any(), "the walk had LTM engrams"


@pytest.mark.cuda
def test_a_step_captured_in_a_cuda_graph_replays_like_eager_steps():
    eager, captured = static_memoria(device="cuda"), static_memoria(device="cuda")
    inputs = [(h.cuda(), l.cuda()) for h, l in step_inputs(30)]
    run_eager, run_captured = model_step(eager), model_step(captured)
    for hidden, logits in inputs[:3]:  # warm-up: allocation, and the steps before capture
        run_eager(hidden, logits)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            run_captured(hidden, logits)
        torch.cuda.current_stream().wait_stream(side)
    static_hidden, static_logits = inputs[3][0].clone(), inputs[3][1].clone()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):  # records one step without running it
        memories, indices = run_captured(static_hidden, static_logits)
    for index, (hidden, logits) in enumerate(inputs[3:]):
        static_hidden.copy_(hidden)
        static_logits.copy_(logits)
        graph.replay()
        expected = run_eager(hidden, logits)
        assert torch.equal(expected[1], indices), f"step {index}: indices"
        assert torch.equal(expected[0], memories), f"step {index}: memories"
    for name in ("data", "lifespan", "engrams_types", "induce_counts", "engram_ids"):
        assert torch.equal(getattr(eager.store, name), getattr(captured.store, name)), name


# ------------------------------------------------------------------------------------------ settings and state
@pytest.mark.parametrize(
    "overrides, named",
    [
        (dict(mode="reference"), "mode='paper'"),
        (dict(max_ltm_per_row=None), "max_ltm_per_row"),
        (dict(keep_history=True), "keep_history"),
        (dict(tie_break="random"), "tie_break must be 'oldest'"),
    ],
)
def test_static_shapes_refuses_settings_it_cannot_run(overrides, named):
    with pytest.raises(ValueError, match="static_shapes=True") as raised:
        static_memoria(**overrides)
    assert named in str(raised.value)
    with pytest.raises(TypeError, match="static_shapes must be a bool"):
        static_memoria(static_shapes=1)


def test_every_step_must_have_the_shape_of_the_first():
    memoria = static_memoria()
    step(memoria, 0)
    with pytest.raises(ValueError, match=r"shape of the first.*\[3, 6, 32\]"):
        memoria.add_working_memory(hidden_states(1, length=W + 1))
    step(memoria, 1)  # the refused call changed nothing


def test_indices_other_than_remind_returned_are_refused():
    memoria = static_memoria()
    for index in range(8):
        step(memoria, index)
    memoria.add_working_memory(hidden_states(8))
    _, indices = memoria.remind()
    moved = torch.where(indices >= 0, (indices + 1) % memoria.store.capacity, -1)
    with pytest.raises(RuntimeError, match="indices must be the ones this step's remind"):
        memoria.adjust_lifespan_and_memories(moved, torch.ones(indices.shape))
    with pytest.raises(ValueError, match=r"shaped \[3, 11\]"):
        memoria.adjust_lifespan_and_memories(indices[:, :4], torch.ones(B, 4))
    with pytest.raises(RuntimeError, match="lifespan_delta contains NaN"):
        memoria.adjust_lifespan_and_memories(indices, torch.full(indices.shape, float("nan")))


def test_state_dict_round_trip_continues_step_for_step():
    memoria = static_memoria(track_age=True)
    for index in range(15):
        step(memoria, index)
    restored = static_memoria(track_age=True)
    restored.load_state_dict(memoria.state_dict())
    for index in range(15, 25):
        assert torch.equal(step(memoria, index), step(restored, index)), f"step {index}"
    for name in ("data", "lifespan", "engrams_types", "induce_counts", "age", "engram_ids"):
        assert torch.equal(getattr(memoria.store, name), getattr(restored.store, name)), name


def test_state_dicts_do_not_cross_between_static_and_default_memories():
    static, default = static_memoria(), Memoria(**SETTINGS, max_ltm_per_row=30, track_id=True)
    for memoria in (static, default):
        step(memoria, 0)
    with pytest.raises(ValueError, match="saved with static_shapes=True"):
        default.load_state_dict(static.state_dict())
    with pytest.raises(ValueError, match="saved without static_shapes=True"):
        static.load_state_dict(default.state_dict())
    with pytest.raises(ValueError, match="other settings"):
        static_memoria(num_final_ltms=4).load_state_dict(static.state_dict())


def test_engrams_read_the_slots_and_cannot_be_assigned():
    memoria = static_memoria(track_age=True)
    for index in range(10):
        step(memoria, index)
    engrams = memoria.engrams
    assert isinstance(engrams, Engrams) and engrams.data.shape == (B, memoria.store.capacity, D)
    live = engrams.engrams_types != EngramType.NULL.value
    assert bool((engrams.engram_ids[live] >= 0).all()) and bool((engrams.engram_ids[~live] == -1).all())
    assert bool((engrams.lifespan[~live] == -1).all()) and bool((engrams.age[live] >= 0).all())
    with pytest.raises(ValueError, match="cannot be assigned with static_shapes=True"):
        memoria.engrams = engrams


def test_reset_of_some_rows_frees_their_slots_and_leaves_the_others():
    memoria = static_memoria()
    for index in range(10):
        step(memoria, index)
    before = memoria.engrams
    buffer = memoria.store.data.data_ptr()
    memoria.reset_memory([1])
    after = memoria.engrams
    assert bool((after.engrams_types[1] == EngramType.NULL.value).all())
    for row in (0, 2):
        assert torch.equal(before.engrams_types[row], after.engrams_types[row])
        assert torch.equal(before.lifespan[row], after.lifespan[row])
    memoria.reset_memory()
    assert len(memoria.engrams) == B * memoria.store.capacity and not bool(memoria.engrams.engrams_types.any())
    assert memoria.store.data.data_ptr() == buffer, "buffers keep their address (a captured CUDA graph stays valid)"
    step(memoria, 10)
    assert int(memoria.store.engram_ids.max()) == B * W - 1, "ids restart at 0 after a full reset"


def test_first_steps_and_steps_without_remind_work_like_the_default_path():
    default = Memoria(**SETTINGS, max_ltm_per_row=30, track_id=True)
    static = static_memoria()
    for memoria in (default, static):
        for index in range(6):  # fill memory the cheap way: adjust right after add, nothing reminded
            memoria.add_working_memory(hidden_states(100 + index))
            memoria.adjust_lifespan_and_memories(torch.empty(B, 0, dtype=torch.long), torch.empty(B, 0))
    assert_same_engrams(default, static, "after adds without remind")
    for index in range(10):
        assert as_sets(step(default, index)) == as_sets(step(static, index)), f"step {index}"
    assert_same_engrams(default, static, "after full steps")


def test_nan_data_is_refused_on_the_device_and_changes_nothing():
    memoria = static_memoria()
    step(memoria, 0)
    before = memoria.engrams
    with pytest.raises(RuntimeError, match="data contains NaN or inf"):
        memoria.add_working_memory(torch.full((B, W, D), float("nan")))
    assert torch.equal(before.engrams_types, memoria.engrams.engrams_types)
    assert torch.equal(before.data, memoria.engrams.data)
    step(memoria, 1)


def test_to_moves_the_buffers_and_the_steps_go_on():
    memoria = static_memoria(track_age=True)
    step(memoria, 0)
    assert memoria.to("cpu") is memoria and memoria.store.device == torch.device("cpu")
    step(memoria, 1)
    assert memoria.ext_device == torch.device("cpu")
