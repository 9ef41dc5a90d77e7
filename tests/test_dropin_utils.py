"""``memoria.utils.super_unique`` on tensors of any rank, side by side with memoria-pytorch 1.0.0."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memoria.utils import super_unique


@settings(max_examples=120, deadline=None)
@given(
    st.lists(st.integers(1, 5), min_size=1, max_size=4),
    st.integers(1, 40),
    st.data(),
    st.integers(0, 2**31 - 1),
)
def test_super_unique_matches_reference_on_any_rank_and_dim(reference, shape, value_range, data, seed):
    t = torch.randint(-1, value_range, tuple(shape), generator=torch.Generator().manual_seed(seed))
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    ours, ref = super_unique(t, dim=dim), reference.utils.super_unique(t, dim=dim)
    assert ours.shape == ref.shape and torch.equal(ours, ref)


@pytest.mark.parametrize(
    "t, dim",
    [
        (torch.tensor([3, 1, 3, -1, 5]), 0),
        (torch.tensor([[3, 1, 3, -1], [2, 2, 2, 2]]), 1),
        (torch.tensor([[3, 1, 3, -1], [2, 2, 2, 2]]), 0),
        (torch.tensor([[[1, 1], [2, 2]], [[3, 3], [1, 1]]]), 0),
        (torch.zeros(2, 0, dtype=torch.long), 1),
        (torch.zeros(0, 3, dtype=torch.long), 1),
        (torch.zeros(2, 0, 3, dtype=torch.long), 2),
    ],
    ids=["1d", "rows-with-minus-one", "columns", "3d-first-dim", "empty-rows", "no-rows", "empty-3d"],
)
def test_super_unique_examples_match_reference(reference, t, dim):
    ours, ref = super_unique(t, dim=dim), reference.utils.super_unique(t, dim=dim)
    assert ours.shape == ref.shape and torch.equal(ours, ref)


def test_super_unique_refuses_an_axis_the_tensor_lacks():
    with pytest.raises(ValueError, match=r"dim must be in \[-3, 3\)"):
        super_unique(torch.zeros(2, 2, 2, dtype=torch.long), dim=3)


def test_super_unique_refuses_a_scalar():
    with pytest.raises(ValueError, match="rank >= 1"):
        super_unique(torch.tensor(3))
