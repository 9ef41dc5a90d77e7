import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memoria.utils import front_padded_positions, gather_rows, super_unique


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5), st.integers(1, 40), st.integers(1, 300), st.integers(0, 2**31 - 1))
def test_super_unique_matches_reference_order(reference, batch, length, value_range, seed):
    t = torch.randint(-1, value_range, (batch, length), generator=torch.Generator().manual_seed(seed))
    assert torch.equal(super_unique(t, dim=1), reference.utils.super_unique(t, dim=1))


def test_super_unique_keeps_each_value_once_and_pads_with_minus_one():
    out = super_unique(torch.tensor([[3, 3, 1], [2, 2, 2]]))
    assert sorted(out[0].tolist()) == [1, 3]
    assert out[1].tolist() == [2, -1]


def test_super_unique_rejects_float():
    try:
        super_unique(torch.zeros(2, 3))
    except TypeError as error:
        assert "integer" in str(error)
    else:
        raise AssertionError("expected TypeError")


def test_front_padded_positions():
    mask = torch.tensor([[True, False, True, True], [False, False, True, False]])
    assert front_padded_positions(mask).tolist() == [[0, 2, 3], [-1, -1, 2]]


def test_gather_rows_reads_padding_as_fill():
    t = torch.arange(6.0).view(1, 3, 2)
    out = gather_rows(t, torch.tensor([[2, -1]]), fill=0.0)
    assert out.tolist() == [[[4.0, 5.0], [0.0, 0.0]]]
