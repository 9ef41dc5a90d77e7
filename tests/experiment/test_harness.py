"""The shared harness: segmenting, the segment loop's loss and resets, aux_loss, the schedule, CLI and summary."""

import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from experiment import settings as cli
from experiment.recipes.compare import format_table
from experiment.tasks.base import (
    Segment,
    SegmentLoss,
    SegmentTask,
    graph_segments,
    linear_warmup_decay,
    segment_slices,
)

CONFIG = {"model_type": "gpt2_segment", "n_layer": 1, "n_embd": 8, "n_head": 2, "n_positions": 8, "vocab_size": 5}


class RecordingModel(nn.Module):
    """A stand-in segment model: logits from an embedding of each token; records its calls and resets."""

    def __init__(self, aux_weight: float = 0.0) -> None:
        super().__init__()
        self.config = SimpleNamespace(vocab_size=5, model_type="recording")
        self.embedding = nn.Embedding(5, 5)
        self.aux_weight = aux_weight
        self.calls, self.resets = [], []

    def reset_memory(self, rows=None) -> None:
        self.resets.append(rows)

    def forward(self, input_ids, attention_mask=None):
        self.calls.append((input_ids.clone(), torch.is_grad_enabled()))
        logits = self.embedding(input_ids)  # [B, L, V]
        aux_loss = self.aux_weight * logits.pow(2).mean() if self.aux_weight else None
        return SimpleNamespace(logits=logits, aux_loss=aux_loss)


class TokenTask(SegmentTask):
    """Token-level cross-entropy on the labelled positions; segments without labels build no graph."""

    def __init__(self, aux_weight: float = 0.0, **options) -> None:
        self.aux_weight = aux_weight
        super().__init__(CONFIG, segment_length=4, **options)

    def build_model(self, config):
        return RecordingModel(self.aux_weight)

    def segment_has_loss(self, segment: Segment) -> bool:
        return bool((segment.tensors["labels"] != -100).any())

    def segment_loss(self, output, segment: Segment, split: str):
        labels = segment.tensors["labels"]
        if not bool((labels != -100).any()):
            return None
        total = F.cross_entropy(output.logits.flatten(0, 1), labels.flatten(), reduction="sum")
        return SegmentLoss(total, int((labels != -100).sum()))


def batch(length: int = 10, rows: int = 3, labelled_from: int = 5) -> dict:
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, 5, (rows, length), generator=generator)
    labels = torch.full_like(input_ids, -100)
    labels[:, labelled_from:] = torch.randint(0, 5, (rows, length - labelled_from), generator=generator)
    return {"input_ids": input_ids, "labels": labels, "document_label": torch.arange(rows)}


def test_segments_are_cut_from_the_start_by_default():
    assert segment_slices(10, 4) == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert segment_slices(8, 4) == [slice(0, 4), slice(4, 8)]
    assert segment_slices(3, 4) == [slice(0, 3)]
    assert segment_slices(10, 4, "end") == [slice(0, 2), slice(2, 6), slice(6, 10)]
    assert segment_slices(8, 4, "end") == [slice(0, 4), slice(4, 8)]
    with pytest.raises(ValueError, match="alignment"):
        segment_slices(8, 4, "middle")
    with pytest.raises(ValueError, match="segment_length"):
        segment_slices(8, 0)


def test_split_batch_cuts_sequence_tensors_and_passes_row_tensors_whole():
    task = TokenTask()
    data = batch()
    segments = list(task.split_batch(data))
    assert [segment.index for segment in segments] == [0, 1, 2]
    assert [segment.is_last for segment in segments] == [False, False, True]
    assert torch.equal(torch.cat([s.tensors["input_ids"] for s in segments], 1), data["input_ids"])
    assert all(torch.equal(s.tensors["document_label"], data["document_label"]) for s in segments)


def test_loss_is_the_mean_over_every_labelled_token_and_only_labelled_segments_build_a_graph():
    task = TokenTask()
    data = batch()
    losses = task.run_batch(data, "train")
    logits = task.model.embedding(data["input_ids"])
    expected = F.cross_entropy(logits.flatten(0, 1), data["labels"].flatten())
    torch.testing.assert_close(losses["loss"], expected)
    assert [grad for _, grad in task.model.calls] == [False, True, True]
    assert "aux_loss" not in losses


def test_graphs_span_the_bptt_segments_before_each_segment_with_a_loss():
    has_loss = [False, False, False, True, False, False, True]
    assert graph_segments(has_loss) == has_loss
    assert graph_segments(has_loss, 1) == [False, False, True, True, False, True, True]
    assert graph_segments(has_loss, 2) == [False, True, True, True, True, True, True]
    assert graph_segments(has_loss, 9) == [True] * 7
    with pytest.raises(ValueError, match="bptt_segments"):
        graph_segments(has_loss, -1)


def test_a_model_with_bptt_segments_builds_the_graphs_before_the_labelled_segment():
    task = TokenTask()
    task.model.bptt_segments = 1
    task.run_batch(batch(length=14), "train")  # segments 0-3 of 4 tokens (the last of 2); labels from token 5 on
    assert [grad for _, grad in task.model.calls] == [True, True, True, True]
    task.model.calls.clear()
    task.run_batch(batch(length=14, labelled_from=9), "train")  # labels in segments 2 and 3 only
    assert [grad for _, grad in task.model.calls] == [False, True, True, True]


def test_aux_loss_is_added_and_every_segment_builds_a_graph():
    task = TokenTask(aux_weight=0.5)
    data = batch()
    losses = task.run_batch(data, "train")
    task.model.calls.clear()
    losses = task.run_batch(data, "train")
    auxes = [0.5 * task.model.embedding(s.tensors["input_ids"]).pow(2).mean() for s in task.split_batch(data)]
    torch.testing.assert_close(losses["aux_loss"], torch.stack(auxes).mean())
    torch.testing.assert_close(losses["loss"], losses["task_loss"] + losses["aux_loss"])
    assert [grad for _, grad in task.model.calls] == [True, True, True]


def test_memory_is_reset_before_each_batch_unless_carried():
    task = TokenTask()
    task.run_batch(batch(), "train")
    task.run_batch(batch(), "val")
    assert task.model.resets == [None, None]

    carried = TokenTask(carry_memory=True)
    carried.run_batch(batch(), "train")
    assert carried.model.resets == []
    rows = torch.tensor([False, True, False])
    carried.run_batch({**batch(), "reset": rows}, "train")
    carried.run_batch({**batch(), "reset": torch.zeros(3, dtype=torch.bool)}, "train")
    assert len(carried.model.resets) == 1 and torch.equal(carried.model.resets[0], rows)
    carried.on_validation_epoch_start()
    assert carried.model.resets[-1] is None and len(carried.model.resets) == 2


def test_learning_rate_rises_from_zero_then_decays_to_zero():
    factor = linear_warmup_decay(total_steps=100, warmup_steps=6)
    assert [factor(step) for step in (0, 3, 6, 53, 100)] == [0.0, 0.5, 1.0, 0.5, 0.0]
    assert linear_warmup_decay(10, 0)(0) == 1.0


def test_bad_task_settings_are_refused():
    with pytest.raises(ValueError, match="warmup_ratio"):
        TokenTask(warmup_ratio=1.5)
    with pytest.raises(ValueError, match="segment_alignment"):
        TokenTask(segment_alignment="middle")


def test_progress_bar_only_in_a_terminal_outside_ci(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.delenv("CI", raising=False)
    assert cli.show_progress_bar() and not cli.show_progress_bar(no_progress_bar=True)
    monkeypatch.setenv("CI", "true")
    assert not cli.show_progress_bar()
    monkeypatch.delenv("CI")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert not cli.show_progress_bar()


def rows(model, ablation, values, metric="accuracy"):
    """Tidy rows of one model: ``values`` per seed 1, 2, ... and a step time and parameter count."""
    base = {"task": "t", "model": model, "ablation": ablation, "setting": "s"}
    result = []
    for seed, value in enumerate(values, 1):
        result += [
            {**base, "seed": seed, "metric": metric, "value": value},
            {**base, "seed": seed, "metric": "step_seconds", "value": 0.2},
            {**base, "seed": seed, "metric": "parameters", "value": 1000},
            {**base, "seed": seed, "metric": "token_parameters", "value": 800},
        ]
    return result


def test_the_table_has_the_difference_the_verdict_and_the_outputs():
    table_rows = rows("memoria", "", [0.5, 0.7]) + rows("transformer", "", [0.4, 0.4])
    text = format_table(table_rows, "accuracy", True, "transformer", "outputs/x")
    memoria_line = next(line for line in text.splitlines() if line.startswith("| memoria"))
    assert "0.6000" in memoria_line and "+0.2000" in memoria_line and "0.1414" in memoria_line
    assert "1,000" in memoria_line and "800" in memoria_line and "0.200" in memoria_line
    assert "| token params |" in text
    assert "Better: memoria, by 0.2000 mean test accuracy over transformer" in text and "2 seeds" in text
    assert "outputs/x" in text and "Quick mode" not in text
    lower = format_table(table_rows, "accuracy", False, "transformer", "outputs/x", quick=True)
    assert "Better: none over transformer" in lower and lower.startswith("Quick mode: a smoke test")
    with pytest.raises(ValueError, match="baseline"):
        format_table(table_rows, "accuracy", False, "gpt2", "outputs/x")


def test_an_ablation_is_its_own_row():
    table_rows = rows("memoria", "", [0.5]) + rows("memoria", "erased_every_segment", [0.3])
    text = format_table(table_rows, "accuracy", True, "memoria:erased_every_segment", "outputs/x")
    assert "| memoria:erased_every_segment |" in text and "+0.2000" in text


def test_help_imports_no_heavy_library():
    code = (
        "import sys, experiment.__main__, experiment.settings, experiment.recipes; "
        "print(sorted(m for m in ('torch', 'lightning', 'transformers', 'numpy') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_front_door_lists_verbs_and_tasks():
    result = subprocess.run([sys.executable, "-m", "experiment", "--help"], capture_output=True, text=True, check=True)
    for word in ("prepare", "train", "eval", "compare", "analyze", "time", "sorting", "language-modeling"):
        assert word in result.stdout
    wrong = subprocess.run([sys.executable, "-m", "experiment", "train", "chess"], capture_output=True, text=True)
    assert wrong.returncode == 2 and "invalid choice: 'chess'" in wrong.stderr


@pytest.mark.parametrize(
    "task, options, models",
    [
        ("sorting", ["--sequence-length=16"], ["memoria", "memoria:erased_every_segment", "transformer"]),
        ("language-modeling", ["--models", "memoria", "rmt", "transformer"], ["memoria", "rmt", "transformer"]),
        ("classification", ["--max-segments=2", "--models", "memoria-bert", "bert:first_segment_only"], None),
    ],
)
def test_time_interleaves_the_models_with_threads_set(task, options, models, capsys):
    from experiment.__main__ import main

    seconds = main(["time", task, "--steps=2", "--segment-length=8", "--batch-size=2", *options])
    assert list(seconds) == (models or ["memoria-bert", "bert:first_segment_only"])
    assert all(len(times) == 2 and min(times) > 0 for times in seconds.values())
    out = capsys.readouterr().out
    assert "threads 1" in out
    assert f"where {list(seconds)[0]}'s step time goes" in out and "Memoria.remind" in out
