"""``SparseTensor`` side by side with memoria-pytorch 1.0.0, and against dense indexing where 1.0.0 is wrong."""

import pytest
import torch

from memoria import SparseTensor


def matrix(cls):
    """3x3, entries not in row-major order, a negative value, default -1."""
    return cls(torch.tensor([[0, 1], [1, 2], [0, 2], [2, 2], [1, 1]]), torch.tensor([5, 6, 7, 8, -1]), default_value=-1)


def cube(cls):
    """2x3x2 with four entries, default 0."""
    return cls(torch.tensor([[0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]]), torch.tensor([1, 2, 3, 4]), shape=(2, 3, 2))


def describe(result):
    """Everything observable of a result: a SparseTensor's fields (entry order included), or a tensor."""
    if isinstance(result, torch.Tensor):
        return ("tensor", tuple(result.shape), result.dtype, result.tolist())
    if hasattr(result, "indices") and hasattr(result, "default_value"):
        values = result.values
        return (
            "sparse",
            tuple(result.shape),
            result.default_value,
            result.indices.tolist(),
            values.dtype,
            values.tolist(),
        )
    return result


MATRIX_KEYS = [
    0, 2, slice(None), slice(0, 2), slice(1, 3), slice(0, 3, 2), (0, 1), (0, 0), (1, slice(None)), (slice(None), 2),
    torch.tensor([1, 0]), [2, 0, 2], (torch.tensor([0, 1]), torch.tensor([1, 2])), ([0, 1], [1, 2]),
    (slice(None), [2, 0]), (slice(None), torch.tensor([2, 2, 0])), (torch.tensor([0, 1]), 2),
    (1, torch.tensor([2, 1, 1])), (slice(0, 2), slice(1, 3)), torch.tensor([[0, 1]]), True,
]  # fmt: skip
CUBE_KEYS = [
    (torch.tensor([1, 0]), slice(None), torch.tensor([1, 0])), (slice(None), torch.tensor([0, 1]), torch.tensor([1, 0])),
    (torch.tensor([1, 1]), torch.tensor([0, 1])), (slice(None), 0), (slice(None), slice(None), [1, 0, 1]),
    (1, [0, 2]), ([1, 0], 1, slice(None)),
]  # fmt: skip


@pytest.mark.parametrize("key", MATRIX_KEYS, ids=repr)
def test_matrix_indexing_matches_reference(reference, key):
    assert describe(matrix(SparseTensor)[key]) == describe(matrix(reference.SparseTensor)[key])


@pytest.mark.parametrize("key", CUBE_KEYS, ids=repr)
def test_cube_indexing_matches_reference(reference, key):
    assert describe(cube(SparseTensor)[key]) == describe(cube(reference.SparseTensor)[key])


CALLS = {
    "to_dense": lambda cls: matrix(cls).to_dense(),
    "tolist": lambda cls: matrix(cls).tolist(),
    "dim": lambda cls: cube(cls).dim(),
    "clone": lambda cls: matrix(cls).clone(),
    "type": lambda cls: matrix(cls).type(torch.float64),
    "to": lambda cls: matrix(cls).to(torch.device("cpu")),
    "unsqueeze-default": lambda cls: matrix(cls).unsqueeze(),
    "unsqueeze-0": lambda cls: matrix(cls).unsqueeze(0),
    "unsqueeze-2": lambda cls: matrix(cls).unsqueeze(2),
    "unsqueeze-minus-2": lambda cls: matrix(cls).unsqueeze(-2),
    "unsqueeze-cube": lambda cls: cube(cls).unsqueeze(-1),
    "diagonal": lambda cls: matrix(cls).diagonal(),
    "diagonal-cube": lambda cls: cube(cls).diagonal(),
    "diagonal-0-2": lambda cls: cube(cls).diagonal(0, 2),
    "diagonal-1-2": lambda cls: cube(cls).diagonal(1, 2),
    "diagonal-1-0": lambda cls: cube(cls).diagonal(1, 0),
    "diagonal-1-minus-1": lambda cls: cube(cls).diagonal(1, -1),
    "empty": lambda cls: cls.empty((2, 3)),
    "empty-float": lambda cls: cls.empty([2, 3], default_value=-1, dtype=torch.float32),
    "empty-dense": lambda cls: cls.empty((2, 3)).to_dense(),
    "from_tensor": lambda cls: cls.from_tensor(torch.tensor([[0, 3, 0], [4, 0, 0]])),
    "from_tensor-default": lambda cls: cls.from_tensor(torch.tensor([[0, 3, 0], [4, 0, 0]]), default_value=3),
    "from_tensor-3d": lambda cls: cls.from_tensor(torch.tensor([[[1, 0], [0, 2]]])),
    "from_tensor-float": lambda cls: cls.from_tensor(torch.tensor([[0.5, 0.0]])),
    "shape-inferred": lambda cls: cls(torch.tensor([[0, 1], [3, 0]]), torch.tensor([1.0, 2.0])),
    "shape-list": lambda cls: cls(torch.tensor([[0, 1]]), torch.tensor([5]), shape=[2, 2]),
    "float-default-int-values": lambda cls: cls(torch.tensor([[1]]), torch.tensor([3]), default_value=0.5).to_dense(),
    "repeated-coordinate-dense": lambda cls: cls(torch.tensor([[0, 0], [0, 0]]), torch.tensor([1, 2]), shape=(2, 2)).to_dense(),
    "repeated-coordinate-item": lambda cls: cls(torch.tensor([[0, 0], [0, 0]]), torch.tensor([1, 2]), shape=(2, 2))[0, 0],
    "eq-self": lambda cls: matrix(cls) == matrix(cls),
    "eq-dense": lambda cls: matrix(cls) == matrix(cls).to_dense(),
    "eq-dense-row-major": lambda cls: cls.from_tensor(matrix(cls).to_dense(), -1) == matrix(cls).to_dense(),
    "eq-dense-other-default": lambda cls: cls.from_tensor(matrix(cls).to_dense(), 0) == matrix(cls).to_dense(),
    "eq-other-dtype": lambda cls: matrix(cls) == matrix(cls).type(torch.float32),
    "eq-other-order": lambda cls: cls.from_tensor(matrix(cls).to_dense(), -1) == matrix(cls),
    "eq-int": lambda cls: matrix(cls) == 3,
    "add-int": lambda cls: matrix(cls) + 1,
    "add-bool": lambda cls: matrix(cls) + True,
    "add-self": lambda cls: matrix(cls) + matrix(cls),
    "add-other-entries": lambda cls: matrix(cls) + cls(torch.tensor([[2, 0], [0, 1]]), torch.tensor([100, 200]), -1, (3, 3)),
}  # fmt: skip


@pytest.mark.parametrize("call", CALLS)
def test_methods_match_reference(reference, call):
    assert describe(CALLS[call](SparseTensor)) == describe(CALLS[call](reference.SparseTensor))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda cls: matrix(cls) + 1.5, "other must be int or SparseTensor"),
        (lambda cls: matrix(cls) + matrix(cls).to_dense(), "other must be int or SparseTensor"),
        (lambda cls: matrix(cls) + cls(torch.tensor([[2, 0]]), torch.tensor([1]), shape=(3, 3)), "default_value"),
        (lambda cls: matrix(cls) + cls(torch.tensor([[2, 0]]), torch.tensor([1]), -1, (4, 3)), "shape"),
    ],
    ids=["float", "dense", "other-default", "other-shape"],
)
def test_refused_additions_match_reference(reference, call, message):
    for cls in (SparseTensor, reference.SparseTensor):
        with pytest.raises(ValueError, match=message):
            call(cls)


def test_repr_matches_reference(reference):
    assert repr(matrix(SparseTensor)) == repr(matrix(reference.SparseTensor))


# ------------------------------------------------- deliberate differences: where 1.0.0 disagrees with its own dense
DENSE_KEYS = [-1, slice(-2, None), (-1, 2), None, (None, 0), Ellipsis, (Ellipsis, 1), torch.tensor([True, False, True])]


@pytest.mark.parametrize("key", DENSE_KEYS, ids=repr)
def test_indexing_agrees_with_dense_indexing_where_reference_does_not(reference, key):
    ours, dense = matrix(SparseTensor), matrix(SparseTensor).to_dense()[key]
    assert torch.equal(ours[key].to_dense().reshape(dense.shape), dense)  # an int per dim gives a 1-element tensor
    try:
        ref = matrix(reference.SparseTensor)[key]
    except (ValueError, IndexError, RuntimeError):
        return  # 1.0.0 refuses this key
    assert ref.to_dense().shape != dense.shape or not torch.equal(ref.to_dense(), dense)


@pytest.mark.parametrize("key", [(1, slice(None), 1), (0, 1), (slice(None), slice(None), -1)], ids=repr)
def test_cube_indexing_agrees_with_dense_indexing(key):
    ours, dense = cube(SparseTensor), cube(SparseTensor).to_dense()[key]
    assert torch.equal(ours[key].to_dense().reshape(dense.shape), dense)


def test_out_of_range_index_is_refused_not_read_as_empty():
    with pytest.raises(IndexError, match="out of range for dimension 0 with size 3"):
        matrix(SparseTensor)[5]


def test_bad_construction_is_refused_naming_the_argument():
    with pytest.raises(ValueError, match="indices must be a tensor shaped"):
        SparseTensor(torch.tensor([0, 2]), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="values must be a tensor shaped"):
        SparseTensor(torch.tensor([[0, 2]]), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="shape is required"):
        SparseTensor(torch.zeros(0, 2, dtype=torch.long), torch.zeros(0))


# ------------------------------------------------------------------------------------------ item assignment
ASSIGNMENTS = [
    ((0, 1), 9), ((2, 0), 4), ((1, 2), torch.tensor(3)), ((0, 1), -1), ((2, 1), -1), (0, 2), ((slice(None), 2), 0),
    ((torch.tensor([0, 2]), torch.tensor([2, 0])), 6)
]  # fmt: skip


@pytest.mark.parametrize("key, value", ASSIGNMENTS, ids=repr)
def test_item_assignment_matches_reference(reference, key, value):
    """Entries at the selection are dropped, the selection appended (unless it is the default value)."""
    ours, ref = matrix(SparseTensor), matrix(reference.SparseTensor)
    ours[key] = value
    ref[key] = value
    assert describe(ours) == describe(ref)


@pytest.mark.parametrize(
    "key, value",
    ASSIGNMENTS
    + [
        ((-1, -2), 5),
        ((slice(None), [0, 2]), 8),
        ((1, slice(0, 2)), torch.tensor([10, 11])),
        ((1, torch.tensor([0, 2])), torch.tensor([10, 11])),
    ],
    ids=repr,
)
def test_item_assignment_agrees_with_dense_assignment(key, value):
    sparse, dense = matrix(SparseTensor), matrix(SparseTensor).to_dense()
    sparse[key] = value
    dense[key] = value
    assert torch.equal(sparse.to_dense(), dense)


def test_item_assignment_with_negative_indices_replaces_the_entry_they_name(reference):
    """1.0.0 stores (-1, -2) as given beside the (2, 1) entry it names: the dense values agree, the entries not."""
    ours, ref = matrix(SparseTensor), matrix(reference.SparseTensor)
    ours[-1, -1] = 4
    ref[-1, -1] = 4
    assert torch.equal(ours.to_dense(), ref.to_dense())
    assert ours.indices.tolist() == [[0, 1], [1, 2], [0, 2], [1, 1], [2, 2]]


def test_bad_item_assignments_are_refused_and_change_nothing():
    t = matrix(SparseTensor)
    before = describe(t)
    with pytest.raises(TypeError, match="fractional"):
        t[0, 1] = 2.5
    with pytest.raises(ValueError, match=r"cannot fill a selection shaped \(\)"):
        t[0, 1] = torch.tensor([1, 2])
    with pytest.raises(IndexError):
        t[3, 0] = 1
    assert describe(t) == before
