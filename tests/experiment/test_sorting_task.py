"""The sorting task on the harness: segments from the start, fresh memory per sample, learning on tiny data."""

import pytest
import torch

from experiment.data.sorting import generate_sorting_data
from experiment.datasets.sorting import IGNORE_INDEX, SortingDataset
from experiment.models.gpt2_segment import GPT2SegmentConfig
from experiment.tasks import SortingTask


def tiny_batch(size: int = 8, sequence_length: int = 24) -> dict:
    dataset = SortingDataset(generate_sorting_data(sequence_length, 8, size, 1, 1, seed=0), "train")
    items = [dataset[i] for i in range(size)]
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


@pytest.fixture
def tiny_task(tiny_memoria_config, tiny_gpt2_fields):
    """Makes a sorting task around a tiny Memoria Transformer ("memoria") or baseline ("baseline")."""

    def make(model_type: str, **options) -> SortingTask:
        config = tiny_memoria_config() if model_type == "memoria" else GPT2SegmentConfig(**tiny_gpt2_fields)
        torch.manual_seed(0)
        return SortingTask(config.to_dict(), segment_length=8, **options)

    return make


def test_when_the_prompt_fills_whole_segments_the_last_holds_only_the_separator_and_targets(tiny_task):
    task = tiny_task("baseline")
    segments = list(task.split_batch(tiny_batch(sequence_length=24)))  # 24 symbols + separator + 7 targets
    assert [s.tensors["input_ids"].size(1) for s in segments] == [8, 8, 8, 8]
    last = segments[-1].tensors
    assert torch.all(last["input_ids"][:, 0] == 8)  # the separator opens the last segment
    assert torch.all(last["labels"] != IGNORE_INDEX)
    assert all(torch.all(s.tensors["labels"] == IGNORE_INDEX) for s in segments[:-1])


def test_each_batch_starts_with_fresh_memory(tiny_task):
    task = tiny_task("memoria").eval()
    batch = tiny_batch()
    torch.manual_seed(0)
    first = task.run_batch(batch, "val")["loss"]
    torch.manual_seed(0)
    again = task.run_batch(batch, "val")["loss"]
    torch.testing.assert_close(first, again)


def test_accuracy_is_over_the_target_tokens(tiny_task):
    task = tiny_task("baseline").eval()
    batch = tiny_batch()
    task.run_batch(batch, "test")
    # the baseline has no memory, so the last segment alone gives its predictions of the targets
    last = list(task.split_batch(batch))[-1].tensors
    predictions = task.model(input_ids=last["input_ids"]).logits.argmax(-1)  # [B, L]
    expected = (predictions == last["labels"]).float().mean()
    torch.testing.assert_close(task.metrics("test")["accuracy"].compute(), expected)


@pytest.mark.parametrize("model_type", ["memoria", "baseline"])
def test_a_few_training_steps_lower_the_loss(model_type, tiny_task):
    task = tiny_task(model_type).train()
    batch = tiny_batch()
    optimizer = torch.optim.Adam(task.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = task.run_batch(batch, "train")["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.3
