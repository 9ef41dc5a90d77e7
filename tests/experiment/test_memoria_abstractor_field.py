"""``memoria_abstractor``: the Abstractor of the paper by default, the scaled ablation on request, and checked."""

import json

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError

from tests.experiment.fixtures.make_memoria_models_checkpoint import build, segments


@pytest.mark.parametrize("kind", ["gpt2", "bert"])
def test_the_default_is_the_papers_abstractor(kind):
    abstractor = build(kind, {}).base_model.abstractor
    assert not abstractor.scale_scores and abstractor.activation is None


@pytest.mark.parametrize("kind", ["gpt2", "bert"])
def test_scaled_builds_the_scaled_abstractor_with_the_same_shapes(kind):
    torch.manual_seed(0)
    reference = build(kind, {}).base_model.abstractor
    scaled = build(kind, {"memoria_abstractor": "scaled"}).base_model.abstractor
    assert scaled.scale_scores and scaled.activation == "gelu"
    shapes = {name: p.shape for name, p in reference.named_parameters()}
    assert {name: p.shape for name, p in scaled.named_parameters()} == shapes
    # queries from N(0, 1/D) instead of N(0, 0.02^2)
    assert scaled.query_embeddings.std() > 3 * reference.query_embeddings.std()


def test_the_field_survives_the_configuration_round_trip():
    model = build("gpt2", {"memoria_abstractor": "scaled"})
    config = type(model.config).from_dict(json.loads(model.config.to_json_string()))
    assert config.memoria_abstractor == "scaled"
    assert type(model)(config).base_model.abstractor.scale_scores


def test_the_scaled_abstractor_learns_from_the_next_segments_loss():
    torch.manual_seed(0)
    model = build("gpt2", {"memoria_abstractor": "scaled"}).train()
    first, second = segments("gpt2")[:2]
    model(input_ids=first)
    model(input_ids=second, labels=second).loss.backward()
    grads = [p.grad for p in model.base_model.abstractor.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(memoria_abstractor="big"), "memoria_abstractor must be one of"),
        (dict(memoria_abstractor="scaled", memoria_num_memories=None), "memoria_num_memories must be an int"),
    ],
)
def test_the_field_is_checked(fields, message):
    with pytest.raises(StrictDataclassClassValidationError, match=message):
        build("gpt2", fields)
