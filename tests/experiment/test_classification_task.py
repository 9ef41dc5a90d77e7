"""ClassificationTask: the paper's loss, the last-segment and mean predictions, padding segments, metrics."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from experiment.tasks import ClassificationTask
from tests.experiment import tiny

TINY_BERT = {"model_type": "bert_segment", "vocab_size": 20, **tiny.TINY_BERT}


class ScriptedModel(torch.nn.Module):
    """Returns preset logits for each segment, in order, and counts resets."""

    def __init__(self, logits_per_segment):
        super().__init__()
        self.logits = logits_per_segment
        self.weight = torch.nn.Parameter(torch.ones(()))
        self.calls = 0
        self.resets = 0

    def reset_memory(self, rows=None):
        self.resets += 1
        self.calls = 0

    def forward(self, input_ids, attention_mask=None):
        logits = self.logits[self.calls] * self.weight
        self.calls += 1
        return SimpleNamespace(logits=logits)


def make_task(logits_per_segment, **options):
    task = ClassificationTask(TINY_BERT, segment_length=4, **options)
    scripted = ScriptedModel(logits_per_segment)
    task.model = scripted
    return task, scripted


def batch(num_segments, labels):
    rows, longest = len(num_segments), max(num_segments)
    mask = torch.zeros(rows, longest * 4, dtype=torch.long)
    for row, count in enumerate(num_segments):
        mask[row, : count * 4] = 1
    return {
        "input_ids": torch.ones(rows, longest * 4, dtype=torch.long),
        "attention_mask": mask,
        "labels": torch.tensor(labels),
        "num_segments": torch.tensor(num_segments),
    }


LOGITS = [
    torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
    torch.tensor([[0.0, 0.0, 3.0], [9.0, 9.0, 9.0]]),  # row 1 has ended: its logits must count for nothing
]


def test_the_paper_loss_averages_each_documents_segments_then_the_documents():
    task, scripted = make_task(LOGITS)
    result = task.run_batch(batch([2, 1], [2, 1]), "train")
    row0 = (F.cross_entropy(LOGITS[0][:1], torch.tensor([2])) + F.cross_entropy(LOGITS[1][:1], torch.tensor([2]))) / 2
    row1 = F.cross_entropy(LOGITS[0][1:], torch.tensor([1]))
    assert torch.allclose(result["loss"], (row0 + row1) / 2)
    assert scripted.resets == 1  # fresh memory for the batch


def test_the_last_segment_loss():
    task, _ = make_task(LOGITS, loss="last")
    result = task.run_batch(batch([2, 1], [2, 1]), "train")
    expected = F.cross_entropy(LOGITS[1][:1], torch.tensor([2])) + F.cross_entropy(LOGITS[0][1:], torch.tensor([1]))
    assert torch.allclose(result["loss"], expected / 2)


@pytest.mark.parametrize(
    "prediction, expected",
    [
        ("last", [2, 1]),  # row 0 by its last segment (class 2), row 1 by its only segment (class 1)
        ("mean", [0, 1]),  # row 0 by the mean of its segments' logits (class 0), row 1 as above
    ],
)
def test_predictions_and_metrics_against_hand_counts(prediction, expected):
    logits = [
        torch.tensor([[4.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
        torch.tensor([[0.0, 0.0, 3.0], [9.0, 9.0, 9.0]]),
    ]
    # row 0: last segment says class 2; the mean [2, 0, 1.5] says class 0. Row 1 says class 1 either way.
    task, _ = make_task(logits, prediction=prediction)
    task.run_batch(batch([2, 1], [2, 1]), "val")
    metrics = task.metrics("val")
    predicted = expected
    labels = [2, 1]
    accuracy = sum(p == y for p, y in zip(predicted, labels)) / 2
    assert metrics["accuracy"].compute().item() == pytest.approx(accuracy)
    # macro-F1 over the classes that occur in the predictions or labels (torchmetrics averages over those)
    f1s = []
    for cls in sorted(set(predicted) | set(labels)):
        tp = sum(p == cls and y == cls for p, y in zip(predicted, labels))
        fp = sum(p == cls and y != cls for p, y in zip(predicted, labels))
        fn = sum(p != cls and y == cls for p, y in zip(predicted, labels))
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    assert metrics["macro_f1"].compute().item() == pytest.approx(sum(f1s) / len(f1s))


def test_padding_segments_build_no_graph_and_bad_options_are_refused():
    task, _ = make_task(LOGITS)
    segments = list(task.split_batch(batch([2, 1], [0, 0])))
    assert [task.segment_has_loss(segment) for segment in segments] == [True, True]
    only_first = list(task.split_batch(batch([1, 1], [0, 0])))
    assert [task.segment_has_loss(segment) for segment in only_first] == [True]
    with pytest.raises(ValueError, match="prediction"):
        ClassificationTask(TINY_BERT, segment_length=4, prediction="max")
    with pytest.raises(ValueError, match="loss"):
        ClassificationTask(TINY_BERT, segment_length=4, loss="mean")


def test_the_real_model_runs_through_the_task():
    memoria = {**TINY_BERT, **tiny.TINY_MEMORIA, "model_type": "memoria_bert", "memory_layer_index": 1}
    task = ClassificationTask(memoria, segment_length=4)
    result = task.run_batch(batch([3, 1], [0, 2]), "train")
    result["loss"].backward()
    assert torch.isfinite(result["loss"])
    assert task.model.bert.abstractor is not None
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in task.model.bert.memory_reads.parameters())


# ---- per-play counts and the play-level intervals --------------------------------------------------------------


def group_rows(model, ablation, seed, documents, correct):
    """comparison.json rows of one run's per-play counts (lists indexed by play)."""
    base = {"task": "classification", "model": model, "ablation": ablation, "seed": seed, "setting": "genre"}
    return [
        {**base, "metric": f"{name}{group}", "value": float(value)}
        for name, values in (("documents_group", documents), ("correct_group", correct))
        for group, value in enumerate(values)
    ]


def test_the_play_interval_is_exact_where_every_resample_agrees_and_spans_zero_where_plays_disagree():
    from experiment.recipes.classification import ClassificationCompare, report

    rows = []
    for seed in (1, 2):
        rows += group_rows("memoria-bert", "", seed, [10, 10], [8, 8])
        rows += group_rows("memoria-bert", "erased_at_eval", seed, [10, 10], [4, 4])  # 0.4 lower on every play
        rows += group_rows("bert", "first_segment_only", seed, [10, 10], [3, 10])  # +0.5 on play 0, -0.2 on play 1
    text = report(rows, ClassificationCompare())
    assert "over the 2 test plays" in text
    assert "| memoria-bert " in text and "0.800" in text and "[0.800, 0.800]" in text  # every resample: 0.8
    # every resample of the plays gives 0.8 - 0.4: the interval is that one point
    assert "memoria-bert minus memoria-bert:erased_at_eval: +0.400, 95% interval [+0.400, +0.400] (2 seeds): " in text
    assert "memoria-bert higher." in text
    # resamples {0, 0}: +0.5, {1, 1}: -0.2, {0, 1}: +0.15, so the 95% interval is [-0.2, +0.5] and holds 0
    assert "memoria-bert minus bert:first_segment_only: +0.150, 95% interval [-0.200, +0.500] (2 seeds): level." in text


def test_group_counts_add_up_per_group_across_updates():
    from experiment.tasks.classification import GroupCounts

    counts = GroupCounts()
    counts.update(torch.tensor([0, 2, 2]), torch.tensor([True, False, True]))
    counts.update(torch.tensor([2, 0]), torch.tensor([True, True]))
    documents, correct = counts.compute()
    assert documents.tolist() == [2, 0, 3] and correct.tolist() == [2, 0, 2]
