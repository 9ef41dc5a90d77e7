"""Code written against memoria-pytorch 1.0.0's public API runs on ours: names, signatures, ``Memoria``'s public
attributes, and ``memoria.engrams`` as an :class:`Engrams` value equal to 1.0.0's after every call."""

import importlib
import inspect

import pytest
import torch

import memoria as ours_package
from memoria import Engrams, Memoria
from tests.helpers import reference_kernel

SETTINGS = dict(num_reminded_stm=4, stm_capacity=10, ltm_search_depth=3, initial_lifespan=3, num_final_ltms=4)
PUBLIC_CLASSES = ["Abstractor", "Engrams", "Memoria", "SparseTensor"]


def public_members(cls) -> set:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_every_reference_export_is_ours(reference):
    assert set(reference.__all__) <= set(ours_package.__all__)
    for name in reference.__all__:
        assert hasattr(ours_package, name), name
    for module in ("engram", "memoria", "sparse_tensor", "utils", "abstractor"):
        importlib.import_module(f"memoria.{module}")
    from memoria.engram import Engrams as ModuleEngrams  # noqa: F401  (1.0.0's import paths)
    from memoria.engram import EngramType
    from memoria.sparse_tensor import SparseTensor  # noqa: F401

    assert ModuleEngrams is Engrams


def test_1_1_0_module_names_are_ours():
    from memoria.history_manager import HistoryManager
    from memoria.types import EngramsInfo  # noqa: F401

    assert HistoryManager is ours_package.HistoryManager


@pytest.mark.parametrize("name", PUBLIC_CLASSES)
def test_every_public_member_of_reference_classes_is_ours(reference, name):
    missing = public_members(getattr(reference, name)) - public_members(getattr(ours_package, name))
    assert not missing, f"{name} lacks {sorted(missing)}"


def _parameters(function) -> list:
    named = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p for p in inspect.signature(function).parameters.values() if p.name != "self" and p.kind not in named]


def _positional(parameters: list) -> list:
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


@pytest.mark.parametrize("name", PUBLIC_CLASSES)
def test_reference_calls_bind_to_our_signatures(reference, name):
    """Every public method (and the constructor) takes 1.0.0's arguments in 1.0.0's positions and names."""
    ref_cls, our_cls = getattr(reference, name), getattr(ours_package, name)
    methods = ["__init__"] + [m for m in public_members(ref_cls) if inspect.isfunction(getattr(ref_cls, m))]
    for method in methods:
        ref_params, our_params = _parameters(getattr(ref_cls, method)), _parameters(getattr(our_cls, method))
        ref_positional, our_positional = _positional(ref_params), _positional(our_params)
        assert our_positional[: len(ref_positional)] == ref_positional, f"{name}.{method}"
        assert {p.name for p in ref_params} <= {p.name for p in our_params}, f"{name}.{method}"
        required = [p.name for p in our_params if p.default is p.empty]
        assert set(required) <= {p.name for p in ref_params if p.default is p.empty}, f"{name}.{method}"


def test_super_unique_signature_takes_dim(reference):
    assert "dim" in inspect.signature(ours_package.utils.super_unique).parameters


def test_constructor_attributes_match_reference(reference):
    ours, ref = Memoria(*SETTINGS.values(), "cpu"), reference.Memoria(*SETTINGS.values(), "cpu")
    for name in list(SETTINGS) + ["device"]:
        assert getattr(ours, name) == getattr(ref, name), name
    assert isinstance(ours.engrams, Engrams)
    assert bool(ours.engrams == Engrams.empty()) and len(ours.engrams) == len(ref.engrams) == 0
    assert ours.ext_device is ref.ext_device is None


def test_sixth_positional_argument_is_device_and_a_bool_there_is_explained():
    with pytest.raises(TypeError, match="sixth positional argument is device"):
        Memoria(*SETTINGS.values(), True)


def assert_engrams_equal(ours: Engrams, ref, when: str) -> None:
    for name in ("batch_size", "memory_length", "hidden_dim", "data", "induce_counts", "engrams_types", "lifespan"):
        a, b = getattr(ours, name), getattr(ref, name)
        assert (torch.equal(a, b) and a.dtype == b.dtype) if isinstance(b, torch.Tensor) else a == b, f"{when}: {name}"


def step_both(ours: Memoria, ref, data: torch.Tensor, delta_scale: float, inputs: torch.Generator, step: int):
    rng = torch.get_rng_state()
    ref.add_working_memory(data)
    ours.add_working_memory(data)
    assert_engrams_equal(ours.engrams, ref.engrams, f"step {step} after add")
    _, ref_indices = ref.remind()
    torch.set_rng_state(rng)
    _, indices = ours.remind()
    assert torch.equal(indices, ref_indices)
    assert_engrams_equal(ours.engrams, ref.engrams, f"step {step} after remind")
    delta = (torch.rand(indices.shape, generator=inputs) * delta_scale).round()
    ref.adjust_lifespan_and_memories(ref_indices, delta)
    ours.adjust_lifespan_and_memories(indices, delta)
    assert_engrams_equal(ours.engrams, ref.engrams, f"step {step} after adjust")


def seeded_pair(reference, seed):
    """Ours (with the reference's exact kernel) and 1.0.0's Memoria, a generator of inputs seeded with ``seed``, and
    torch's generator (their tie-break noise) seeded alike."""
    inputs = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    return Memoria(**SETTINGS, similarity=reference_kernel), reference.Memoria(**SETTINGS), inputs


def test_engrams_snapshot_and_its_methods_equal_reference_after_every_call(reference):
    ours, ref, inputs = seeded_pair(reference, 3)
    for step in range(14):
        step_both(ours, ref, torch.rand(3, 4, 8, generator=inputs), 4.0, inputs, step)
        snapshot, ref_engrams = ours.engrams, ref.engrams
        for getter in ("get_working_memory", "get_shortterm_memory", "get_longterm_memory"):
            (a, a_indices), (b, b_indices) = getattr(snapshot, getter)(), getattr(ref_engrams, getter)()
            assert torch.equal(a_indices, b_indices), f"step {step}: {getter} indices"
            assert_engrams_equal(a, b, f"step {step}: {getter}")
        assert torch.equal(snapshot.fire_count, ref_engrams.fire_count)
    assert (ours.engrams.engrams_types == 3).any(), "the run reached long-term memory"
    assert ours.ext_device == ref.ext_device == torch.device("cpu")
    ours.reset_memory()
    ref.reset_memory()
    assert_engrams_equal(ours.engrams, ref.engrams, "after reset")


def test_changing_the_snapshot_does_not_change_the_memory():
    memoria = Memoria(**SETTINGS)
    memoria.add_working_memory(torch.rand(2, 3, 4))
    before = memoria.engrams
    snapshot = memoria.engrams
    snapshot.lifespan += 100
    snapshot.delete(torch.tensor([[0], [1]]))
    assert bool(memoria.engrams == before)


def test_assigning_engrams_replaces_the_memory_as_in_reference(reference):
    """1.0.0 code may set ``memoria.engrams``; after it both memories go on identically."""
    ours, ref, inputs = seeded_pair(reference, 5)
    for step in range(6):
        step_both(ours, ref, torch.rand(2, 3, 8, generator=inputs), 5.0, inputs, step)
    edited = ref.engrams.select(ref.engrams.get_indices_with_mask(ref.engrams.lifespan > 1))  # keep long-lived ones
    ref.engrams = edited
    ours.engrams = Engrams(edited.data, edited.induce_counts, edited.engrams_types, edited.lifespan)
    assert_engrams_equal(ours.engrams, ref.engrams, "after assignment")
    for step in range(6, 12):
        step_both(ours, ref, torch.rand(2, 3, 8, generator=inputs), 5.0, inputs, step)


def test_track_engram_id_is_accepted_as_in_1_1_0():
    memoria = Memoria(**SETTINGS, track_engram_id=True)
    memoria.add_working_memory(torch.rand(2, 3, 4))
    assert memoria.track_id and memoria.engrams.engram_ids.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_assigning_something_else_is_refused():
    with pytest.raises(TypeError, match="must be set to an Engrams"):
        Memoria(**SETTINGS).engrams = torch.zeros(1, 2, 3)
