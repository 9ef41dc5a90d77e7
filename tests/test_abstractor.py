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
    ours.load_state_dict(theirs.state_dict())


def test_abstractor_rejects_wrong_width():
    with pytest.raises(ValueError, match="hidden_states"):
        Abstractor(2, 8, 8)(torch.randn(1, 3, 7))
