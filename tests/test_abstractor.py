"""The memory encoder: 1.0.0's computation by default, the scaled variant by keyword."""

import math

import pytest
import torch

from memoria import Abstractor


def test_abstractor_summarises_into_num_memories_vectors_with_gradients():
    abstractor = Abstractor(num_memories=4, hidden_dim=16, feedforward_dim=32)
    hidden = torch.randn(3, 10, 16, requires_grad=True)
    out = abstractor(hidden)
    assert out.shape == (3, 4, 16)
    out.sum().backward()
    assert hidden.grad is not None and abstractor.query_embeddings.grad is not None


def test_abstractor_ignores_masked_positions():
    abstractor = Abstractor(2, 8, 8)
    hidden = torch.randn(1, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    changed = hidden.clone()
    changed[:, 3:] = 100.0
    assert torch.allclose(abstractor(hidden, mask), abstractor(changed, mask))


def test_abstractor_parameter_names_follow_the_reference(reference):
    ours = Abstractor(4, 8, 16)
    theirs = reference.Abstractor(4, 8, 16)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}


@pytest.mark.parametrize(
    "batch, length, memories, hidden, inner", [(2, 7, 3, 8, 16), (1, 1, 5, 32, 4), (3, 12, 1, 5, 9)]
)
def test_default_abstractor_computes_what_the_reference_computes(reference, batch, length, memories, hidden, inner):
    """1.0.0's weights loaded into ours give the same memories (unscaled scores, no nonlinearity)."""
    torch.manual_seed(batch * 100 + length)
    theirs = reference.Abstractor(memories, hidden, inner)
    with torch.no_grad():
        theirs.query_embeddings.normal_()  # queries of unit scale, so that scaling the scores would show
    ours = Abstractor(memories, hidden, inner)
    ours.load_state_dict(theirs.state_dict())
    states = torch.randn(batch, length, hidden) * 3
    torch.testing.assert_close(ours(states), theirs(states), rtol=1e-6, atol=1e-6)


def test_scaled_variant_differs_from_the_reference_by_its_options(reference):
    torch.manual_seed(0)
    theirs = reference.Abstractor(3, 8, 16)
    with torch.no_grad():
        theirs.query_embeddings.normal_()
    states = torch.randn(2, 6, 8) * 3
    variant = Abstractor(3, 8, 16, scale_scores=True, activation="gelu", query_std=None)
    variant.load_state_dict(theirs.state_dict())
    assert not torch.allclose(variant(states), theirs(states), atol=1e-3)
    # dividing the queries by sqrt(D) and dropping the GELU is the reference again
    scaled_only = Abstractor(3, 8, 16, scale_scores=True)
    scaled_only.load_state_dict(theirs.state_dict())
    with torch.no_grad():
        scaled_only.query_embeddings.mul_(math.sqrt(8))
    torch.testing.assert_close(scaled_only(states), theirs(states), rtol=1e-5, atol=1e-5)


def test_queries_are_initialised_at_the_chosen_scale():
    torch.manual_seed(0)
    default = Abstractor(64, 256, 8).query_embeddings.std().item()
    wide = Abstractor(64, 256, 8, query_std=None).query_embeddings.std().item()
    assert abs(default - 0.02) < 0.002
    assert abs(wide - 256**-0.5) < 0.005


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"activation": "tanh"}, "activation"),
        ({"query_std": 0.0}, "query_std"),
        ({"num_memories": 0}, "num_memories"),
    ],
)
def test_abstractor_rejects_bad_options(kwargs, words):
    args = {"num_memories": 2, "hidden_dim": 8, "feedforward_dim": 8, **kwargs}
    with pytest.raises(ValueError, match=words):
        Abstractor(**args)


def test_abstractor_rejects_wrong_width_and_masks():
    abstractor = Abstractor(2, 8, 8)
    with pytest.raises(ValueError, match="hidden_states"):
        abstractor(torch.randn(1, 3, 7))
    with pytest.raises(ValueError, match="attention_mask must be shaped"):
        abstractor(torch.randn(1, 3, 8), torch.ones(1, 4))
    with pytest.raises(ValueError, match="at least one position"):
        abstractor(torch.randn(2, 3, 8), torch.tensor([[1, 1, 0], [0, 0, 0]]))
