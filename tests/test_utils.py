import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memoria.utils import (
    FirstMax,
    Workspace,
    batch_chunks,
    best_count_then_noise,
    front_padded_positions,
    gather_rows,
    super_unique,
)


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
    with pytest.raises(TypeError, match="integer"):
        super_unique(torch.zeros(2, 3))


def test_front_padded_positions():
    mask = torch.tensor([[True, False, True, True], [False, False, True, False]])
    assert front_padded_positions(mask).tolist() == [[0, 2, 3], [-1, -1, 2]]


def test_gather_rows_reads_padding_as_fill():
    t = torch.arange(6.0).view(1, 3, 2)
    out = gather_rows(t, torch.tensor([[2, -1]]), fill=0.0)
    assert out.tolist() == [[[4.0, 5.0], [0.0, 0.0]]]


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 4), st.integers(0, 30), st.floats(0.0, 1.0), st.integers(0, 2**31 - 1))
def test_front_padded_positions_matches_a_loop(batch, length, density, seed):
    mask = torch.rand(batch, length, generator=torch.Generator().manual_seed(seed)) < density
    rows = [[i for i in range(length) if mask[b, i]] for b in range(batch)]
    width = max(len(r) for r in rows)
    assert front_padded_positions(mask).tolist() == [[-1] * (width - len(r)) + r for r in rows]


def _brute_first_max(values, allowed, fill):
    best, column = [], []
    for b in range(values.size(0)):
        best.append([]), column.append([])
        for k in range(values.size(1)):
            options = [(int(values[b, k, c]), -c) for c in range(values.size(2)) if allowed[b, c]]
            top = max(options) if options else (fill, 0)
            best[-1].append(top[0]), column[-1].append(-top[1])
    return best, column


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 5),
    st.integers(1, 40),
    st.sampled_from([1, 3, 1000, 2**20, 2**31 - 1]),
    st.integers(0, 2**31 - 1),
)
def test_first_max_is_max_over_allowed_columns_lowest_first(batch, rows, columns, bound, seed):
    g = torch.Generator().manual_seed(seed)
    spread = min(bound, 3) if seed % 2 else bound  # small spreads force ties
    values = torch.randint(-spread, spread + 1, (batch, rows, columns), generator=g, dtype=torch.int64)
    values = values.to(torch.int32)
    allowed = torch.rand(batch, columns, generator=g) < 0.6
    allowed[0] = False  # a row with nothing allowed
    first_max = FirstMax(columns, bound, values.device)
    best, column = first_max.decode(first_max.keys(values, first_max.bias(allowed)), fill=-7)
    expected_best, expected_column = _brute_first_max(values, allowed, fill=-7)
    assert best.tolist() == expected_best
    has_any = allowed.any(1)
    assert [c for b, c in enumerate(column.tolist()) if has_any[b]] == [
        c for b, c in enumerate(expected_column) if has_any[b]
    ]


def test_workspace_uniform_draws_what_torch_rand_draws():
    workspace = Workspace()
    for shape in [(2, 3, 50), (2, 3, 70), (1, 1, 10)]:  # grows, then reuses its buffer
        torch.manual_seed(123)
        expected = torch.rand(shape, dtype=torch.float16)
        state = torch.get_rng_state()
        torch.manual_seed(123)
        drawn = workspace.uniform("noise", shape, torch.float16, torch.device("cpu"))
        assert torch.equal(drawn, expected)
        assert torch.equal(torch.get_rng_state(), state)


def test_batch_chunks_cover_the_batch_in_order():
    assert list(batch_chunks(5, bytes_per_row=3, budget=7)) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    assert list(batch_chunks(3, bytes_per_row=10**9)) == [slice(0, 1), slice(1, 2), slice(2, 3)]


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 12), st.booleans(), st.integers(0, 2**31 - 1))
def test_best_count_then_noise_breaks_count_ties_by_noise_then_lowest_column(batch, entries, columns, equal, seed):
    g = torch.Generator().manual_seed(seed)
    counts = None if equal else torch.randint(-1, 3, (batch, entries, columns), generator=g, dtype=torch.int32)
    bits = torch.randint(0, 4, (batch, entries, columns), generator=g, dtype=torch.int32).to(torch.int16)
    allowed = torch.rand(batch, columns, generator=g) < 0.7
    linked, column = best_count_then_noise(counts, bits, allowed, bound=2)
    for b in range(batch):
        if not allowed[b].any():
            continue
        for e in range(entries):
            options = [
                (0 if counts is None else int(counts[b, e, c]), int(bits[b, e, c]), -c)
                for c in range(columns)
                if allowed[b, c]
            ]
            best = max(options)
            assert int(column[b, e]) == -best[2]
            if counts is not None:
                assert bool(linked[b, e]) == (best[0] >= 1)
