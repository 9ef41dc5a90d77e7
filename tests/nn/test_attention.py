"""MemoryCrossAttention and MemoryReader: the reads of memory, finite for rows with nothing to read."""

import pytest
import torch
import torch.nn.functional as F

from memoria.nn import Memories, MemoryCrossAttention, MemoryReader


def make_attention(hidden_size=8, num_heads=2):
    torch.manual_seed(0)
    return MemoryCrossAttention(hidden_size, num_heads)


def test_read_equals_scaled_dot_product_attention_over_real_memories():
    attention = make_attention()
    hidden, memories = torch.randn(2, 5, 8), torch.randn(2, 3, 8)
    mask = torch.tensor([[True, False, True], [True, True, True]])
    read, weights = attention(hidden, memories, mask)

    B, L, H, E = 2, 5, 2, 4
    query = attention.q_proj(hidden).view(B, L, H, E).transpose(1, 2)
    key, value = (x.view(B, 3, H, E).transpose(1, 2) for x in attention.kv_proj(memories).split(8, dim=-1))
    expected = F.scaled_dot_product_attention(query, key, value, attn_mask=mask[:, None, None, :])
    expected = attention.out_proj(expected.transpose(1, 2).reshape(B, L, 8))
    torch.testing.assert_close(read, expected)
    assert weights.shape == (2, 2, 5, 3)
    assert torch.all(weights[0, :, :, 1] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 5))


def written_out_read(attention, hidden, memories, mask):
    """The read as the formula writes it: softmax(q k^T / sqrt(D/H)) over the kept memories, times v, projected."""
    B, L, D = hidden.shape
    H, E, M = attention.num_heads, attention.head_dim, memories.size(1)
    query = attention.q_proj(hidden).view(B, L, H, E).transpose(1, 2)
    key, value = (x.view(B, M, H, E).transpose(1, 2) for x in attention.kv_proj(memories).split(D, dim=-1))
    scores = (query @ key.transpose(-1, -2) / E**0.5).masked_fill(~mask[:, None, None, :], torch.finfo().min)
    weights = scores.softmax(-1) * mask[:, None, None, :]
    read = attention.out_proj((weights @ value).transpose(1, 2).reshape(B, L, D))
    return read * mask.any(-1)[:, None, None], weights


def test_fused_read_gives_the_written_out_formulas_output_gradients_and_weights():
    """The read is one scaled_dot_product_attention call: the same function as the formula, rounded differently
    in the last bits at most; rows with some, all and no memories."""
    attention = make_attention(hidden_size=16, num_heads=4)
    hidden = torch.randn(3, 7, 16, requires_grad=True)
    memories = torch.randn(3, 5, 16)
    mask = torch.tensor([[True, False, True, True, False], [True] * 5, [False] * 5])
    read, weights = attention(hidden, memories, mask)
    gradients = torch.autograd.grad(read.square().sum(), [hidden, *attention.parameters()])
    expected, expected_weights = written_out_read(attention, hidden, memories, mask)
    expected_gradients = torch.autograd.grad(expected.square().sum(), [hidden, *attention.parameters()])
    torch.testing.assert_close(read, expected, rtol=1e-6, atol=1e-6)
    for got, want in zip(gradients, expected_gradients):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(weights, expected_weights, rtol=0, atol=0)
    assert not weights.requires_grad, "the weights are what Memoria pays lifespan from: no gradient"


def test_with_attention_dropout_the_weights_returned_are_the_ones_that_read():
    torch.manual_seed(0)
    attention = MemoryCrossAttention(8, 2, attention_dropout=0.5).train()
    hidden, memories, mask = torch.randn(2, 5, 8), torch.randn(2, 3, 8), torch.ones(2, 3, dtype=torch.bool)
    read, weights = attention(hidden, memories, mask)
    assert (weights == 0).any() and (weights > 1).any(), "dropped out and rescaled"
    value = attention.kv_proj(memories).split(8, dim=-1)[1].view(2, 3, 2, 4).transpose(1, 2)
    expected = attention.out_proj((weights @ value).transpose(1, 2).reshape(2, 5, 8))
    torch.testing.assert_close(read, expected)


def test_without_need_weights_no_weights_are_returned():
    attention = make_attention()
    hidden, memories, mask = torch.randn(2, 5, 8), torch.randn(2, 3, 8), torch.ones(2, 3, dtype=torch.bool)
    read, weights = attention(hidden, memories, mask, need_weights=False)
    assert weights is None
    torch.testing.assert_close(read, attention(hidden, memories, mask)[0], rtol=0, atol=0)


def test_row_without_memory_reads_zeros_with_zero_weights_and_finite_gradients():
    attention = make_attention()
    hidden = torch.randn(2, 5, 8, requires_grad=True)
    memories = torch.randn(2, 3, 8)
    mask = torch.tensor([[True, True, False], [False, False, False]])
    read, weights = attention(hidden, memories, mask)
    assert torch.all(read[1] == 0) and torch.all(weights[1] == 0)
    assert read[0].abs().sum() > 0
    read.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in attention.parameters())
    assert torch.isfinite(hidden.grad).all()


def test_memories_of_width_zero_read_zeros():
    attention = make_attention()
    read, weights = attention(torch.randn(2, 5, 8), torch.randn(2, 0, 8), torch.ones(2, 0, dtype=torch.bool))
    assert read.shape == (2, 5, 8) and torch.all(read == 0)
    assert weights.shape == (2, 2, 5, 0)


def test_memories_are_cast_to_the_queries_dtype():
    attention = make_attention().double()
    read, _ = attention(torch.randn(1, 2, 8, dtype=torch.float64), torch.randn(1, 3, 8), torch.ones(1, 3).bool())
    assert read.dtype == torch.float64


@pytest.mark.parametrize(
    "hidden, memories, mask, named",
    [
        (torch.randn(2, 5, 6), torch.randn(2, 3, 8), torch.ones(2, 3).bool(), "hidden"),
        (torch.randn(2, 5, 8), torch.randn(3, 3, 8), torch.ones(3, 3).bool(), "memories"),
        (torch.randn(2, 5, 8), torch.randn(2, 3, 8), torch.ones(2, 3), "memory_mask"),
        (torch.randn(2, 5, 8), torch.randn(2, 3, 8), torch.ones(2, 4).bool(), "memory_mask"),
    ],
)
def test_bad_shapes_are_refused_naming_the_argument(hidden, memories, mask, named):
    with pytest.raises(ValueError, match=named):
        make_attention()(hidden, memories, mask)


def test_hidden_size_must_be_a_multiple_of_num_heads():
    with pytest.raises(ValueError, match="multiple of num_heads"):
        MemoryCrossAttention(10, 3)


def reader_memories(batch_size=2, hidden_size=8):
    working = torch.randn(batch_size, 4, hidden_size)
    reminded = torch.randn(batch_size, 3, hidden_size)
    reminded_mask = torch.tensor([[True, True, False], [False, False, False]])
    indices = torch.where(reminded_mask, torch.arange(3), -1)
    return Memories(working, torch.ones(batch_size, 4, dtype=torch.bool), reminded, reminded_mask, indices)


def test_reader_reads_working_memory_then_reminded_as_residual_steps():
    torch.manual_seed(0)
    reader = MemoryReader(8, 2)
    hidden, memories = torch.randn(2, 5, 8), reader_memories()
    out, weights = reader(hidden, memories)

    attention = reader.attention[0]
    after_working = hidden + attention(reader.ln_working(hidden), memories.working, memories.working_mask)[0]
    read, expected_weights = attention(reader.ln_reminded(after_working), memories.reminded, memories.reminded_mask)
    assert torch.equal(out, after_working + read)
    assert torch.equal(weights, expected_weights)


def test_reader_shares_one_attention_or_has_one_per_read():
    shared, separate = MemoryReader(8, 2), MemoryReader(8, 2, shared_attention=False)
    assert len(shared.attention) == 1 and len(separate.attention) == 2
    hidden, memories = torch.randn(2, 5, 8), reader_memories()
    separate(hidden, memories)[0].sum().backward()
    assert all(p.grad is not None for p in separate.parameters())
