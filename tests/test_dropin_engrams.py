"""``Engrams`` as a value, side by side with memoria-pytorch 1.0.0: every public method on the same inputs.

The inputs mix every engram type with NULL padding, include rows that hold no engram of some type (so the
``get_*_memory`` results are front-padded) and index sets with -1 padding, repeats and empty widths.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memoria import Engrams, EngramType

FIELDS = ("batch_size", "memory_length", "hidden_dim", "data", "induce_counts", "engrams_types", "lifespan")

# rows: 0 mixes every type, NULL padding first; 1 has no WORKING engram; 2 has only NULL and LONGTERM
TYPES = torch.tensor([[0, 1, 2, 3, 2, 1, 3], [3, 3, 2, 2, 2, 3, 2], [0, 0, 0, 3, 3, 0, 3]], dtype=torch.uint8)
MASK = torch.tensor(
    [[True, False, True, False, False, True, True], [False] * 7, [False, True, False, False, True, False, False]]
)
INDEX_SETS = {
    "minus-one-padding": [[0, 2, -1], [5, -1, -1], [-1, -1, -1]],
    "repeats": [[1, 1, 3], [0, 0, 0], [6, 2, 6]],
    "all-minus-one": [[-1, -1], [-1, -1], [-1, -1]],
    "out-of-order": [[3, 1, 6], [5, 0, 2], [4, 3, 0]],
    "every-position": [list(range(7))] * 3,
    "one-row-all": [list(range(7)), [-1] * 7, [6, 5, 4, 3, 2, 1, 0]],
    "empty-width": [[], [], []],
}


def build(cls, seed: int = 0, **overrides):
    """The same engrams built with our ``Engrams`` or 1.0.0's (types, counts with -1s, fractional lifespans)."""
    g = torch.Generator().manual_seed(seed)
    fields = dict(
        data=torch.rand(3, 7, 4, generator=g),
        induce_counts=torch.randint(-1, 9, (3, 7, 7), generator=g, dtype=torch.int32),
        engrams_types=TYPES.clone(),
        lifespan=(torch.rand(3, 7, generator=g) * 6).round() - 1,
    )
    fields.update(overrides)
    return cls(**fields)


def assert_same(ours, ref) -> None:
    """Every 1.0.0 field equal, dtype and shape included (or both raise for the same call)."""
    if isinstance(ref, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(ref)
        for a, b in zip(ours, ref):
            assert_same(a, b)
        return
    if isinstance(ref, torch.Tensor):
        assert ours.dtype == ref.dtype and ours.shape == ref.shape and torch.equal(ours, ref)
        return
    assert isinstance(ours, Engrams)
    for name in FIELDS:
        a, b = getattr(ours, name), getattr(ref, name)
        if isinstance(b, torch.Tensor):
            assert a.dtype == b.dtype and a.shape == b.shape, name
            assert torch.equal(a, b), name
        else:
            assert a == b, name


def both(reference, call):
    """``call(cls)`` with our Engrams and 1.0.0's."""
    return call(Engrams), call(reference.Engrams)


@pytest.mark.parametrize(
    "construct",
    [
        lambda cls: cls(torch.rand(2, 3, 4, generator=torch.Generator().manual_seed(1))),
        lambda cls: cls(torch.ones(2, 3, 4), lifespan=3),
        lambda cls: cls(torch.ones(2, 3, 4), lifespan=torch.tensor([[1, 2, 3], [4, 5, 6]])),
        lambda cls: cls(torch.ones(2, 3, 4, dtype=torch.float64), induce_counts=torch.ones(2, 3, 3, dtype=torch.long)),
        lambda cls: cls(torch.ones(2, 3, 4, requires_grad=True) * 2),
        lambda cls: cls.empty(),
    ],
    ids=["defaults", "lifespan-number", "lifespan-int-tensor", "dtypes-converted", "detached", "empty"],
)
def test_construction_matches_reference(reference, construct):
    ours, ref = both(reference, construct)
    assert_same(ours, ref)
    assert len(ours) == len(ref)
    assert ours.data.requires_grad is False


def test_engram_type_argument_fills_every_engram(reference):
    ours = Engrams(torch.zeros(2, 3, 1), engrams_types=EngramType.LONGTERM)
    ref = reference.Engrams(torch.zeros(2, 3, 1), engrams_types=reference.EngramType.LONGTERM)
    assert_same(ours, ref)
    assert [(t.name, t.value) for t in EngramType] == [(t.name, t.value) for t in reference.EngramType]


@pytest.mark.parametrize("prop", ["working_memory_mask", "shortterm_memory_mask", "longterm_memory_mask", "fire_count"])
def test_masks_and_fire_count_match_reference(reference, prop):
    ours, ref = both(reference, build)
    assert_same(getattr(ours, prop), getattr(ref, prop))


@pytest.mark.parametrize("getter", ["get_working_memory", "get_shortterm_memory", "get_longterm_memory"])
def test_memory_getters_return_padded_engrams_and_indices_like_reference(reference, getter):
    ours, ref = both(reference, build)
    assert_same(getattr(ours, getter)(), getattr(ref, getter)())


@pytest.mark.parametrize("mask", [MASK, torch.zeros(3, 7, dtype=torch.bool), TYPES > 0], ids=["mixed", "none", "live"])
def test_mask_reads_match_reference(reference, mask):
    ours, ref = both(reference, build)
    assert_same(ours.get_indices_with_mask(mask), ref.get_indices_with_mask(mask))
    assert_same(ours.mask_select(mask), ref.mask_select(mask))


@pytest.mark.parametrize("name", INDEX_SETS)
def test_index_reads_match_reference(reference, name):
    indices = torch.tensor(INDEX_SETS[name], dtype=torch.long).view(3, -1)
    ours, ref = both(reference, build)
    assert_same(ours.get_mask_with_indices(indices), ref.get_mask_with_indices(indices))
    assert_same(ours.select(indices), ref.select(indices))
    for mask in (ours.working_memory_mask, ours.shortterm_memory_mask, ours.longterm_memory_mask, MASK):
        expected = ref.get_local_indices_from_global_indices(mask, indices)
        assert_same(ours.get_local_indices_from_global_indices(mask, indices), expected)


@pytest.mark.parametrize("name", INDEX_SETS)
@pytest.mark.parametrize("method", ["fire_together_wire_together", "delete", "extend_lifespan"])
def test_in_place_updates_match_reference(reference, name, method):
    indices = torch.tensor(INDEX_SETS[name], dtype=torch.long).view(3, -1)
    args = (
        (indices,)
        if method != "extend_lifespan"
        else (indices, torch.arange(indices.numel()).view(indices.shape) + 0.5)
    )
    ours, ref = both(reference, build)
    assert getattr(ours, method)(*args) is None
    getattr(ref, method)(*args)
    assert_same(ours, ref)


def test_decrease_lifespan_matches_reference(reference):
    ours, ref = both(reference, build)
    ours.decrease_lifespan()
    ref.decrease_lifespan()
    assert_same(ours, ref)


def test_extend_lifespan_takes_integer_deltas_like_reference(reference):
    ours, ref = both(reference, build)
    indices, delta = torch.tensor([[0], [1], [-1]]), torch.tensor([[2], [3], [4]])
    ours.extend_lifespan(indices, delta)
    ref.extend_lifespan(indices, delta)
    assert_same(ours, ref)


def test_add_concatenates_like_reference(reference):
    def add(cls):
        other = cls(torch.rand(3, 2, 4, generator=torch.Generator().manual_seed(3)), lifespan=2)
        return build(cls) + other

    assert_same(*both(reference, add))
    assert_same(*both(reference, lambda cls: cls.empty() + build(cls)))
    assert_same(*both(reference, lambda cls: build(cls) + cls.empty()))


def test_equality_matches_reference(reference):
    ours_eq, ref_eq = both(reference, lambda cls: build(cls) == build(cls))
    assert bool(ours_eq) is bool(ref_eq) is True
    for field, value in [("lifespan", torch.zeros(3, 7)), ("engrams_types", torch.ones(3, 7, dtype=torch.uint8))]:
        ours_eq, ref_eq = both(reference, lambda cls: build(cls) == build(cls, **{field: value}))
        assert bool(ours_eq) is bool(ref_eq) is False
    ours_eq, ref_eq = both(reference, lambda cls: build(cls) == build(cls, seed=1))
    assert bool(ours_eq) is bool(ref_eq) is False
    assert isinstance(ours_eq, torch.Tensor) and ours_eq.dim() == 0, "== gives a 0-d bool tensor, as in 1.0.0"


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 9), st.integers(0, 6), st.integers(0, 2**31 - 1))
def test_random_engrams_and_indices_match_reference(reference, batch, length, width, seed):
    g = torch.Generator().manual_seed(seed)
    fields = dict(
        data=torch.rand(batch, length, 3, generator=g),
        induce_counts=torch.randint(-1, 5, (batch, length, length), generator=g, dtype=torch.int32),
        engrams_types=torch.randint(0, 4, (batch, length), generator=g, dtype=torch.uint8),
        lifespan=torch.randint(-1, 5, (batch, length), generator=g).float(),
    )
    indices = torch.randint(-1, length, (batch, width), generator=g)
    delta = torch.rand(batch, width, generator=g) * 4
    mask = torch.rand(batch, length, generator=g) < 0.5
    ours, ref = Engrams(**fields), reference.Engrams(**{k: v.clone() for k, v in fields.items()})
    assert_same(ours.select(indices), ref.select(indices))
    assert_same(ours.mask_select(mask), ref.mask_select(mask))
    assert_same(
        ours.get_local_indices_from_global_indices(mask, indices),
        ref.get_local_indices_from_global_indices(mask, indices),
    )
    assert_same(ours.get_shortterm_memory(), ref.get_shortterm_memory())
    assert_same(ours.get_longterm_memory(), ref.get_longterm_memory())
    for method, args in [
        ("fire_together_wire_together", (indices,)),
        ("extend_lifespan", (indices, delta)),
        ("delete", (indices,)),
    ]:
        getattr(ours, method)(*args)
        getattr(ref, method)(*args)
        assert_same(ours, ref)


# ---------------------------------------------------------------------------------------- deliberate differences
def test_type_getters_work_on_empty_engrams_where_reference_raises():
    engrams, indices = Engrams.empty().get_working_memory()
    assert len(engrams) == 0 and indices.shape == (0, 0)


def test_selecting_padding_from_a_memory_without_positions_gives_padding_where_reference_raises():
    picked = Engrams(torch.zeros(2, 0, 3), track_age=True).select(torch.full((2, 2), -1))
    assert picked.lifespan.tolist() == [[-1.0, -1.0]] * 2 and picked.age.tolist() == [[-1, -1]] * 2
    assert picked.induce_counts.tolist() == [[[-1, -1], [-1, -1]]] * 2 and not picked.data.any()


def test_equality_of_different_shapes_is_false_not_an_error():
    assert not bool(build(Engrams) == Engrams(torch.zeros(3, 2, 4)))
    assert build(Engrams) != "engrams"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(data=torch.zeros(3, 4)), "data must be a tensor shaped"),
        (dict(data=torch.zeros(2, 3, 4), lifespan=torch.zeros(2, 4)), "lifespan must be a tensor shaped"),
        (dict(data=torch.zeros(2, 3, 4), induce_counts=torch.zeros(2, 3, 4)), "induce_counts must be a tensor shaped"),
        (dict(data=torch.zeros(2, 3, 4), engrams_types=torch.zeros(3, 3)), "engrams_types must be a tensor shaped"),
    ],
)
def test_bad_fields_are_refused_naming_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Engrams(**kwargs)


def test_indices_out_of_range_are_refused():
    with pytest.raises(ValueError, match=r"indices must lie below MemoryLength=7"):
        build(Engrams).select(torch.tensor([[7], [0], [0]]))
    with pytest.raises(ValueError, match=r"indices must lie in \[-7, 7\)"):
        build(Engrams).select(torch.tensor([-8]))
    with pytest.raises(ValueError, match=r"indices must be shaped \[BatchSize=3, K\], \[1, K\] or \[K\]"):
        build(Engrams).select(torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        build(Engrams).delete(torch.zeros(3, 1))


def test_adding_engrams_of_other_batch_sizes_is_refused():
    with pytest.raises(ValueError, match="share BatchSize and HiddenDim"):
        build(Engrams) + Engrams(torch.zeros(2, 1, 4))


# ---------------------------------------------------------------------------------------- 1.1.0's tracked fields
def test_tracked_age_and_ids_default_and_pad_as_in_1_1_0():
    engrams = Engrams(torch.zeros(2, 3, 1), track_age=True, track_engram_id=True)
    assert engrams.age.tolist() == [[0, 0, 0]] * 2
    assert engrams.engram_ids.tolist() == [[0, 1, 2]] * 2
    assert Engrams(torch.zeros(2, 3, 1), engram_ids=7, track_engram_id=True).engram_ids.tolist() == [[7, 8, 9]] * 2
    picked = engrams.select(torch.tensor([[2, -1], [0, 1]]))
    assert picked.age.tolist() == [[0, -1], [0, 0]] and picked.engram_ids.tolist() == [[2, -1], [0, 1]]
    engrams.increase_age()
    assert engrams.age.tolist() == [[1, 1, 1]] * 2
    assert Engrams(torch.zeros(2, 3, 1), engram_ids=torch.zeros(2, 3, dtype=torch.long)).engram_ids is None


def test_tracked_fields_take_part_in_equality_and_addition():
    a = Engrams(torch.zeros(1, 2, 1), track_engram_id=True)
    assert not bool(a == Engrams(torch.zeros(1, 2, 1), engram_ids=5, track_engram_id=True))
    assert (a + a).engram_ids.tolist() == [[0, 1, 0, 1]]
    assert Engrams.empty(track_engram_id=True).engram_ids.shape == (0, 0)


# ------------------------------------------------------------------------------------------ 1.0.0's index forms
# 1.0.0 also takes one list of positions for every row ([K] or [1, K]), Python lists where it converts them, and
# any negative index as "none" (in a 1-D ``select``, a negative index counts from the end like a list index).
SHARED_INDICES = {
    "one-row-1d": torch.tensor([6, 0, 3]),
    "one-row-2d": torch.tensor([[2, 5]]),
    "one-row-negative": torch.tensor([-1, -7, 2]),
    "one-row-empty": torch.zeros(0, dtype=torch.long),
    "below-minus-one": torch.tensor([[-2, 1, -7], [0, -3, 6], [-6, 4, 4]]),
}


@pytest.mark.parametrize("indices", SHARED_INDICES.values(), ids=SHARED_INDICES.keys())
def test_select_takes_the_index_forms_of_reference(reference, indices):
    ours, ref = both(reference, lambda cls: build(cls).select(indices.clone()))
    assert_same(ours, ref)


@pytest.mark.parametrize("method", ["fire_together_wire_together", "delete"])
@pytest.mark.parametrize("indices", SHARED_INDICES.values(), ids=SHARED_INDICES.keys())
def test_in_place_updates_take_the_index_forms_of_reference(reference, method, indices):
    """Negative indices are ignored, as in 1.0.0 (which also overwrites them with -1 in the caller's tensor:
    ours leaves the caller's tensor alone)."""
    ours, ref = both(reference, build)
    given = indices.clone()
    getattr(ours, method)(given)
    getattr(ref, method)(indices.clone())
    assert_same(ours, ref)
    assert torch.equal(given, indices)


@pytest.mark.parametrize("indices", SHARED_INDICES.values(), ids=SHARED_INDICES.keys())
def test_extend_lifespan_takes_the_index_forms_of_reference(reference, indices):
    ours, ref = both(reference, build)
    delta = torch.arange(indices.numel(), dtype=torch.float32).view(indices.shape) + 0.5
    ours.extend_lifespan(indices.clone(), delta.clone())
    ref.extend_lifespan(indices.clone(), delta.clone())
    assert_same(ours, ref)


LOCAL_INDICES = {
    "one-row-1d": torch.tensor([6, 0, 3]),
    "one-row-list": [6, 2, 0, 4],
    "nested-list": [[0, 2], [5, 1], [4, 3]],
    "one-row-2d-list": [[1, 4, 6]],
    "int": 4,
    "0-d": torch.tensor(1),
    "minus-one": torch.tensor([[-1, 0, 2], [-1, -1, 5], [1, 4, -1]]),
    "minus-one-1d": [-1],
}


@pytest.mark.parametrize("indices", LOCAL_INDICES.values(), ids=LOCAL_INDICES.keys())
def test_local_indices_take_the_index_forms_of_reference(reference, indices):
    ours, ref = both(
        reference, lambda cls: build(cls).get_local_indices_from_global_indices(MASK.clone(), _copy(indices))
    )
    assert_same(ours, ref)


def _copy(indices):
    return indices.clone() if isinstance(indices, torch.Tensor) else indices


def test_local_indices_below_minus_one_are_refused_where_reference_reads_them_from_the_end(reference):
    """1.0.0 reads -2 as the last position here (and -1 as none): an accident we refuse to guess at."""
    ref = build(reference.Engrams).get_local_indices_from_global_indices(MASK.clone(), torch.tensor([-2]))
    assert ref.tolist() == [[3], [-1], [-1]]  # position 6 is the 4th engram of row 0's part
    with pytest.raises(ValueError, match=r"global_indices must lie in \[-1, 7\)"):
        build(Engrams).get_local_indices_from_global_indices(MASK.clone(), torch.tensor([-2]))


def test_float_and_bool_indices_are_refused_naming_the_argument():
    with pytest.raises(TypeError, match="indices must be an integer tensor"):
        build(Engrams).select([0.5, 1.0])
    with pytest.raises(TypeError, match="indices must be an integer tensor"):
        build(Engrams).fire_together_wire_together(torch.tensor([True, False]))
