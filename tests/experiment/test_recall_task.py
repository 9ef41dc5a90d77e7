"""The recall task: loss on answers only, accuracy by distance, a tiny model end to end; working memory only."""

from types import SimpleNamespace

import pytest
import torch

from experiment.data.recall import IGNORE_INDEX, RecallDataset, RecallSpec
from experiment.tasks.base import Segment
from experiment.tasks.recall import RecallTask
from tests.experiment.tiny import TINY_RECALL

SPEC = RecallSpec(segment_length=8, **TINY_RECALL)
DATA = {field: getattr(SPEC, field) for field in SPEC.__dataclass_fields__}


def make_task(tiny_gpt2_fields, model_type="gpt2_segment", **fields) -> RecallTask:
    config = {"model_type": model_type, **tiny_gpt2_fields, "vocab_size": SPEC.vocab_size, **fields}
    return RecallTask(config, SPEC.segment_length, DATA)


def batch_of(size: int, seed: int = 0) -> dict:
    dataset = RecallDataset(SPEC, "test", size, seed)
    return {key: torch.stack([dataset[i][key] for i in range(size)]) for key in ("input_ids", "labels", "distances")}


def test_the_loss_is_on_the_answers_only_and_accuracy_is_counted_by_distance(tiny_gpt2_fields):
    task = make_task(tiny_gpt2_fields)
    labels = torch.full((1, 8), IGNORE_INDEX)
    distances = torch.full((1, 8), -1)
    labels[0, [2, 5]], distances[0, [2, 5]] = torch.tensor([6, 7]), torch.tensor([1, 2])
    logits = torch.zeros(1, 8, SPEC.vocab_size, requires_grad=True)
    with torch.no_grad():
        logits[0, 2, 6] = 5.0  # right at distance 1
        logits[0, 5, 8] = 5.0  # wrong at distance 2
    segment = Segment(1, False, {"labels": labels, "distances": distances})
    loss = task.segment_loss(SimpleNamespace(logits=logits), segment, "test")
    assert int(loss.count) == 2
    loss.total.backward()
    has_gradient = logits.grad.abs().sum(-1)[0] > 0
    assert has_gradient.tolist() == [index in (2, 5) for index in range(8)]
    metrics = {name: metric.compute().item() for name, metric in task.metrics("test").items()}
    assert (metrics["accuracy"], metrics["accuracy_d1"], metrics["accuracy_d2"]) == (0.5, 1.0, 0.0)
    assert set(metrics) == {"accuracy", "accuracy_d0", "accuracy_d1", "accuracy_d2"}


@pytest.mark.parametrize("model_type", ["gpt2_segment", "gpt2_with_memoria"])
def test_a_tiny_model_runs_a_batch_and_reports_every_distance(model_type, tiny_gpt2_fields):
    memoria = {"memoria_num_memories": 4, "memoria_stm_capacity": 8, "memoria_ltm_search_depth": 2}
    task = make_task(tiny_gpt2_fields, model_type, **(memoria if model_type != "gpt2_segment" else {}))
    batch = batch_of(4)
    losses = task.run_batch(batch, "train")
    assert torch.isfinite(losses["loss"]) and losses["loss"].requires_grad
    metrics = {name: metric.compute().item() for name, metric in task.metrics("train").items()}
    answers = {d: int((batch["distances"] == d).sum()) for d in range(3)}
    assert answers == {0: 4, 1: 8, 2: 8}
    for name, value in metrics.items():
        assert 0.0 <= value <= 1.0, name
    # the overall accuracy is the answers' mean over distances, each weighted by its count
    weighted = sum(metrics[f"accuracy_d{d}"] * count for d, count in answers.items()) / sum(answers.values())
    assert metrics["accuracy"] == pytest.approx(weighted)


def test_working_memory_only_reminds_nothing_and_trains(tiny_gpt2_fields):
    from experiment.recipes import WORKING_MEMORY_ONLY

    fields = {"memoria_num_memories": 4, "memoria_stm_capacity": 8, "memoria_ltm_search_depth": 2}
    for mode in ("reference", "paper"):
        task = make_task(tiny_gpt2_fields, "gpt2_with_memoria", **fields, **WORKING_MEMORY_ONLY, memoria_mode=mode)
        task.model.reset_memory()
        reminded = []
        for segment in task.split_batch(batch_of(3)):
            output = task.model(input_ids=segment.tensors["input_ids"])
            reminded.append(output.reminded_indices)
            output.logits.sum().backward()
        assert all(bool((indices == -1).all()) for indices in reminded)  # padding only, or no column
        assert task.model.transformer.memoria.num_reminded_stm == 0
        abstractor = task.model.transformer.abstractor
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in abstractor.parameters())


def test_the_data_must_have_the_tasks_segment_length(tiny_gpt2_fields):
    with pytest.raises(ValueError, match="data's segment_length 8 differs from segment_length 16"):
        RecallTask({"model_type": "gpt2_segment", **tiny_gpt2_fields, "vocab_size": SPEC.vocab_size}, 16, DATA)
