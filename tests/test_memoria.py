"""Behaviour of Memoria beyond the reference: modes, state, resets, devices, validation, dtypes, bounds."""

import pytest
import torch

from memoria import EngramType, Memoria

SETTINGS = dict(num_reminded_stm=3, stm_capacity=6, ltm_search_depth=3, initial_lifespan=3, num_final_ltms=3)


def run(memoria: Memoria, steps: int, batch: int = 3, width: int = 4, hidden: int = 8, seed: int = 0) -> Memoria:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    for _ in range(steps):
        memoria.add_working_memory(torch.rand(batch, width, hidden, generator=g))
        _, indices = memoria.remind()
        memoria.adjust_lifespan_and_memories(indices, (torch.rand(indices.shape, generator=g) * 4).round())
    return memoria


def snapshot(memoria: Memoria) -> dict:
    e = memoria.store
    return {k: getattr(e, k).clone() for k in ("data", "lifespan", "engrams_types", "induce_counts")}


def assert_same(a: dict, b: dict) -> None:
    for key in a:
        assert torch.equal(a[key], b[key]), key


# ------------------------------------------------------------------------------------------------ paper mode
def test_reference_mode_reminds_phantom_engram_zero_before_any_ltm_exists():
    memoria = run(Memoria(**SETTINGS), 1)
    memoria.add_working_memory(torch.rand(3, 4, 8))
    _, indices = memoria.remind()
    assert not (memoria.store.engrams_types == EngramType.LONGTERM.value).any()
    assert (indices == 0).any(dim=1).all()


def test_paper_mode_reminds_only_stm_before_any_ltm_exists():
    memoria = run(Memoria(**SETTINGS, mode="paper"), 1)
    memoria.add_working_memory(torch.rand(3, 4, 8))
    _, indices = memoria.remind()
    types = memoria.store.engrams_types.gather(1, indices.clamp(min=0))
    assert ((types == EngramType.SHORTTERM.value) | (indices < 0)).all()
    assert (indices >= 0).sum(1).tolist() == [3, 3, 3]


def test_paper_mode_walks_start_only_from_ltms_linked_to_reminded_stms():
    from memoria.recall import seed_longterm

    memoria = run(Memoria(**SETTINGS, mode="paper"), 12)
    store = memoria.store
    stm = store.positions(EngramType.SHORTTERM)
    recalled = torch.full_like(stm, -1)
    recalled[:, -1] = stm[:, -1]  # recall only the newest STM of each row
    seeds = seed_longterm(store, store.longterm_window(), recalled, paper=True)
    for row in range(store.batch_size):
        for seed in seeds[row][seeds[row] >= 0].tolist():
            assert store.engrams_types[row, seed] == EngramType.LONGTERM.value
            assert store.induce_counts[row, recalled[row, -1], seed] > 0
        # a -1 entry of the STM list seeds nothing in paper mode
    none = seed_longterm(store, store.longterm_window(), torch.full_like(stm, -1), paper=True)
    assert (none < 0).all()


@pytest.mark.parametrize("paper", [True, False], ids=["paper", "reference"])
def test_oldest_tie_break_seeds_the_oldest_of_equally_linked_ltms_and_draws_nothing(paper):
    from memoria.recall import seed_longterm

    memoria = run(Memoria(**SETTINGS, mode="paper" if paper else "reference", track_age=True), 12)
    engrams = memoria.engrams
    store = memoria.store
    ltm = store.mask(EngramType.LONGTERM)
    newest_stm = store.positions(EngramType.SHORTTERM)[:, -1]  # [B]
    assert (ltm.sum(1) >= 2).all(), "every row has LTM engrams to tie"
    counts = engrams.induce_counts.view(store.batch_size, store.length, store.length)
    for row in range(store.batch_size):  # the newest STM fired once with every LTM of its row
        counts[row, newest_stm[row]] = torch.where(ltm[row], 1, counts[row, newest_stm[row]])
    memoria.engrams = engrams
    recalled = torch.full_like(store.positions(EngramType.SHORTTERM), -1)
    recalled[:, -1] = newest_stm
    rng = torch.get_rng_state()
    seeds = seed_longterm(memoria.store, memoria.store.longterm_window(), recalled, paper=paper, random_ties=False)
    assert torch.equal(torch.get_rng_state(), rng), "nothing drawn"
    age = memoria.store.age.masked_fill(~ltm, -1)
    for row in range(store.batch_size):
        oldest = int(age[row].argmax())
        assert oldest in seeds[row].tolist() and age[row, oldest] > age[row][ltm[row]].min()


def test_oldest_tie_break_reminds_without_drawing_from_torchs_generator():
    memoria = Memoria(**SETTINGS, mode="paper", tie_break="oldest")
    assert Memoria(**SETTINGS).tie_break == "random"
    torch.manual_seed(0)
    rng = torch.get_rng_state()
    g = torch.Generator().manual_seed(0)
    for _ in range(12):
        memoria.add_working_memory(torch.rand(3, 4, 8, generator=g))
        _, indices = memoria.remind()
        memoria.adjust_lifespan_and_memories(indices, torch.ones(indices.shape))
    assert memoria.store.mask(EngramType.LONGTERM).any(), "seeds had LTM engrams to pick"
    assert torch.equal(torch.get_rng_state(), rng)


def test_paper_mode_reminded_engrams_are_real_stm_or_ltm():
    memoria = run(Memoria(**SETTINGS, mode="paper"), 15)
    memoria.add_working_memory(torch.rand(3, 4, 8))
    _, indices = memoria.remind()
    types = memoria.store.engrams_types.gather(1, indices.clamp(min=0))
    valid = indices >= 0
    assert ((types[valid] == EngramType.SHORTTERM.value) | (types[valid] == EngramType.LONGTERM.value)).all()


# ------------------------------------------------------------------------------------------------ state
def test_state_dict_round_trip_is_exact_and_continues_identically():
    memoria = run(Memoria(**SETTINGS, track_age=True, track_id=True), 10)
    restored = Memoria(**SETTINGS, track_age=True, track_id=True)
    restored.load_state_dict(memoria.state_dict())
    assert_same(snapshot(memoria), snapshot(restored))
    assert torch.equal(memoria.store.age, restored.store.age)
    assert torch.equal(memoria.store.engram_ids, restored.store.engram_ids)
    run(memoria, 5, seed=3)
    run(restored, 5, seed=3)
    assert_same(snapshot(memoria), snapshot(restored))
    assert torch.equal(memoria.store.engram_ids, restored.store.engram_ids)


def test_load_state_dict_rejects_other_settings_and_leaves_memory_alone():
    memoria = run(Memoria(**SETTINGS), 4)
    before = snapshot(memoria)
    other = Memoria(**{**SETTINGS, "stm_capacity": 7})
    with pytest.raises(ValueError, match="stm_capacity"):
        memoria.load_state_dict(other.state_dict())
    assert_same(before, snapshot(memoria))


def test_reset_of_chosen_rows_leaves_other_rows_bit_identical():
    memoria = run(Memoria(**SETTINGS), 10)
    control = run(Memoria(**SETTINGS), 10)
    memoria.reset_memory(rows=[1])
    e, c = memoria.store, control.store
    assert not (e.engrams_types[1] != EngramType.NULL.value).any()
    for row in (0, 2):
        live_e = e.engrams_types[row] != 0
        live_c = c.engrams_types[row] != 0
        assert torch.equal(e.data[row][live_e], c.data[row][live_c])
        assert torch.equal(e.lifespan[row][live_e], c.lifespan[row][live_c])
        assert torch.equal(e.induce_counts[row][live_e][:, live_e], c.induce_counts[row][live_c][:, live_c])


def test_reset_rows_by_bool_mask_and_full_reset():
    memoria = run(Memoria(**SETTINGS), 6)
    memoria.reset_memory(torch.tensor([True, False, True]))
    types = memoria.store.engrams_types
    assert (types[0] == 0).all() and (types[2] == 0).all() and (types[1] != 0).any()
    memoria.reset_memory()
    assert len(memoria.store) == 0
    with pytest.raises(ValueError, match="rows"):
        memoria.reset_memory(rows=[5])


def test_reset_frees_batch_and_hidden_size():
    memoria = run(Memoria(**SETTINGS), 2)
    memoria.reset_memory()
    memoria.add_working_memory(torch.rand(5, 2, 16))
    assert memoria.store.data.shape == (5, 2, 16)


# ------------------------------------------------------------------------------------------------ devices, dtypes
def test_results_follow_the_input_dtype():
    memoria = run(Memoria(**SETTINGS), 3)
    memoria.add_working_memory(torch.rand(3, 4, 8, dtype=torch.bfloat16))
    memories, indices = memoria.remind()
    assert memories.dtype == torch.bfloat16 and indices.dtype == torch.int64
    assert memoria.store.data.dtype == torch.float32


def test_memory_device_is_explicit():
    memoria = run(Memoria(**SETTINGS, device="cpu"), 3)
    assert memoria.store.device == torch.device("cpu")
    memoria.to("cpu")
    assert memoria.store.device == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_cuda_device_is_refused_at_construction_without_cuda():
    with pytest.raises(ValueError, match="CUDA is not available"):
        Memoria(**SETTINGS, device="cuda")
    memoria = run(Memoria(**SETTINGS), 2)
    before = snapshot(memoria)
    with pytest.raises(ValueError, match="CUDA is not available"):
        memoria.to("cuda")
    assert_same(before, snapshot(memoria))


@pytest.mark.cuda
def test_results_follow_the_input_device():
    memoria = Memoria(**SETTINGS, device="cuda")
    run(memoria, 5)
    assert memoria.store.device.type == "cuda"
    memoria.add_working_memory(torch.rand(3, 4, 8))
    memories, indices = memoria.remind()
    assert memories.device.type == "cpu" and indices.device.type == "cpu"
    on_cpu = run(Memoria(**SETTINGS, device="cpu"), 3)
    on_cpu.add_working_memory(torch.rand(3, 4, 8, device="cuda"))
    memories, indices = on_cpu.remind()
    assert memories.device.type == "cuda" and indices.device.type == "cuda"


@pytest.mark.cuda
def test_cuda_and_cpu_give_the_same_engrams():
    cpu = run(Memoria(**SETTINGS), 8)
    gpu = Memoria(**SETTINGS, device="cuda")
    gpu.load_state_dict(cpu.state_dict())
    assert_same(snapshot(cpu), {k: v.cpu() for k, v in snapshot(gpu).items()})


# ------------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"stm_capacity": 0}, ValueError, "stm_capacity"),
        ({"num_reminded_stm": -1}, ValueError, "num_reminded_stm"),
        ({"num_final_ltms": -2}, ValueError, "num_final_ltms"),
        ({"ltm_search_depth": -1}, ValueError, "ltm_search_depth"),
        ({"initial_lifespan": 0}, ValueError, "initial_lifespan"),
        ({"num_reminded_stm": 0.5}, TypeError, "num_reminded_stm"),
        ({"mode": "fast"}, ValueError, "mode"),
        ({"similarity": "dot"}, ValueError, "similarity"),
        ({"max_ltm_per_row": 0}, ValueError, "max_ltm_per_row"),
        ({"tie_break": "first"}, ValueError, "tie_break"),
    ],
)
def test_constructor_validation(kwargs, error, words):
    with pytest.raises(error, match=words):
        Memoria(**{**SETTINGS, **kwargs})


@pytest.mark.parametrize(
    "data, error, words",
    [
        (torch.rand(3, 8), ValueError, "BatchSize, WorkingLength, HiddenDim"),
        (torch.ones(3, 4, 8, dtype=torch.long), TypeError, "floating"),
        (torch.rand(2, 4, 8), ValueError, "batch size"),
        (torch.rand(3, 4, 9), ValueError, "hidden size"),
        (torch.full((3, 4, 8), float("nan")), ValueError, "NaN"),
        (torch.full((3, 4, 8), float("inf")), ValueError, "inf"),
        (torch.rand(3, 0, 8), ValueError, "at least one"),
    ],
)
def test_bad_working_memory_is_rejected_before_anything_changes(data, error, words):
    memoria = run(Memoria(**SETTINGS), 3)
    before = snapshot(memoria)
    with pytest.raises(error, match=words):
        memoria.add_working_memory(data)
    assert_same(before, snapshot(memoria))


def test_bad_adjust_inputs_are_rejected_before_anything_changes():
    memoria = run(Memoria(**SETTINGS), 3)
    memoria.add_working_memory(torch.rand(3, 4, 8))
    _, indices = memoria.remind()
    before = snapshot(memoria)
    n = memoria.store.length
    cases = [
        (indices, torch.ones(3, indices.size(1) + 1), ValueError, "shaped like indices"),
        (indices.float(), torch.ones(indices.shape), TypeError, "integer"),
        (torch.full_like(indices, n), torch.ones(indices.shape), ValueError, r"\[-1, "),
        (torch.full_like(indices, -2), torch.ones(indices.shape), ValueError, r"\[-1, "),
        (indices, torch.full(indices.shape, float("nan")), ValueError, "NaN"),
        (indices[:2], torch.ones(2, indices.size(1)), ValueError, "BatchSize"),
    ]
    for bad_indices, bad_delta, error, words in cases:
        with pytest.raises(error, match=words):
            memoria.adjust_lifespan_and_memories(bad_indices, bad_delta)
        assert_same(before, snapshot(memoria))


def test_remind_before_any_input_explains_itself():
    with pytest.raises(RuntimeError, match="add_working_memory"):
        Memoria(**SETTINGS).remind()


# ------------------------------------------------------------------------------------------------ bound, similarity
def test_ltm_bound_keeps_at_most_the_bound_evicting_lowest_lifespan():
    bounded = run(Memoria(**{**SETTINGS, "stm_capacity": 2}, max_ltm_per_row=4), 20)
    ltm = bounded.store.engrams_types == EngramType.LONGTERM.value
    assert (ltm.sum(1) <= 4).all()
    unbounded = run(Memoria(**{**SETTINGS, "stm_capacity": 2}), 20)
    assert ((unbounded.store.engrams_types == EngramType.LONGTERM.value).sum(1) > 4).any()


def test_recall_on_layernorm_scale_vectors_returns_the_truly_nearest_stm(reference):
    """Width-768 LayerNorm outputs: exp(-d^2) underflows to 0 in the reference, which then recalls index order."""
    torch.manual_seed(0)
    settings = dict(num_reminded_stm=5, stm_capacity=100, ltm_search_depth=0, initial_lifespan=10, num_final_ltms=0)
    stored = torch.nn.functional.layer_norm(torch.randn(1, 40, 768), (768,))
    query = torch.nn.functional.layer_norm(stored[:, 25:26] + 0.6 * torch.randn(1, 1, 768), (768,))
    ours, ref = Memoria(**settings), reference.Memoria(**settings)
    for memoria in (ours, ref):
        memoria.add_working_memory(stored)
        memoria.remind()
        memoria.adjust_lifespan_and_memories(torch.zeros(1, 0, dtype=torch.long), torch.zeros(1, 0))
        memoria.add_working_memory(query)
    distances = ((stored[0] - query[0]) ** 2).sum(-1)  # brute force
    nearest = set(distances.topk(5, largest=False).indices.tolist())
    _, indices = ours.remind()
    assert set(indices[0][indices[0] >= 0].tolist()) - {0} <= nearest | {0}
    assert nearest <= set(indices[0].tolist())
    _, ref_indices = ref.remind()
    assert set(ref_indices[0][ref_indices[0] >= 0].tolist()) != nearest  # the reference's underflow


@pytest.mark.parametrize("similarity", ["gaussian", "l2", "cosine"])
def test_named_similarities_run_a_full_loop(similarity):
    memoria = run(Memoria(**SETTINGS, similarity=similarity), 8)
    assert memoria.store.length > 0


# ------------------------------------------------------------------------------------------------ call order
def add(memoria: Memoria) -> None:
    memoria.add_working_memory(torch.rand(3, 4, 8, generator=torch.Generator().manual_seed(5)))


def adjust_with(indices: torch.Tensor):
    return lambda memoria: memoria.adjust_lifespan_and_memories(indices, torch.zeros(indices.shape))


def remind_and_adjust(memoria: Memoria) -> None:
    _, indices = memoria.remind()
    memoria.adjust_lifespan_and_memories(indices, torch.zeros(indices.shape))


@pytest.mark.parametrize(
    "calls, expected",
    [
        ([add, add], "expected remind"),
        ([add, Memoria.remind, Memoria.remind], "expected adjust_lifespan_and_memories"),
        ([add, adjust_with(torch.zeros(3, 2, dtype=torch.long))], "expected remind"),
        ([add, remind_and_adjust, Memoria.remind], "expected add"),
    ],
    ids=["add-twice", "remind-twice", "adjust-without-remind", "remind-after-adjust"],
)
def test_out_of_order_calls_are_refused_and_change_nothing(calls, expected):
    memoria = run(Memoria(**SETTINGS), 3)
    torch.manual_seed(1)
    for call in calls[:-1]:
        call(memoria)
    before, rng = snapshot(memoria), torch.get_rng_state()
    with pytest.raises(RuntimeError, match=expected):
        calls[-1](memoria)
    assert_same(before, snapshot(memoria))
    assert torch.equal(torch.get_rng_state(), rng), "a refused remind draws no noise"


def test_adjust_right_after_add_with_no_indices_is_a_step_that_reminded_nothing(reference):
    """1.0.0 accepts add -> adjust; we accept it only with indices shaped [B, 0], and agree with 1.0.0 on it."""
    settings = dict(SETTINGS)
    ours, ref = Memoria(**settings), reference.Memoria(**settings)
    empty = torch.zeros(3, 0, dtype=torch.long)
    for _ in range(3):
        data = torch.rand(3, 4, 8)
        for memoria in (ours, ref):
            memoria.add_working_memory(data)
            memoria.adjust_lifespan_and_memories(empty, torch.zeros(3, 0))
    assert torch.equal(ours.store.engrams_types, ref.engrams.engrams_types)
    assert torch.equal(ours.store.lifespan, ref.engrams.lifespan)


def test_indices_from_another_step_are_refused():
    memoria = run(Memoria(**SETTINGS), 4)
    add(memoria)
    _, indices = memoria.remind()
    before = snapshot(memoria)
    with pytest.raises(ValueError, match="this step's remind"):
        memoria.adjust_lifespan_and_memories(indices[:, :-1], torch.zeros(3, indices.size(1) - 1))
    shifted = torch.where(indices >= 0, (indices + 1) % memoria.store.length, -1)  # like an earlier step's
    with pytest.raises(ValueError, match="this step's remind"):
        memoria.adjust_lifespan_and_memories(shifted, torch.zeros(indices.shape))
    assert_same(before, snapshot(memoria))
    dropped = indices.clone()
    dropped[:, 0] = -1  # an entry may be dropped
    memoria.adjust_lifespan_and_memories(dropped, torch.ones(indices.shape))


def test_full_reset_restarts_the_step_order_and_state_dict_keeps_it():
    memoria = run(Memoria(**SETTINGS), 3)
    add(memoria)
    restored = Memoria(**SETTINGS)
    restored.load_state_dict(memoria.state_dict())
    restored.remind()  # the restored memory expects remind(), as the saved one did
    memoria.reset_memory()
    add(memoria)  # a full reset starts a new step
    _, indices = memoria.remind()
    memoria.adjust_lifespan_and_memories(indices, torch.zeros(indices.shape))


def test_nan_in_inputs_is_refused_with_where_it_usually_comes_from():
    memoria = run(Memoria(**SETTINGS), 2)
    data = torch.rand(3, 4, 8)
    data[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match=r"rows \[1\].*softmax over reminded memories"):
        memoria.add_working_memory(data)
    add(memoria)
    _, indices = memoria.remind()
    with pytest.raises(ValueError, match="lifespan_delta contains NaN.*softmax over reminded memories"):
        memoria.adjust_lifespan_and_memories(indices, torch.full(indices.shape, float("nan")))
