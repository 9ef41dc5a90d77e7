"""The sorting task's segment loop: segmentation, memory reset per sample, and learning on tiny data."""

import pytest
import torch
from transformers import GPT2Config

from experiment.longseq_formers.data.sorting import generate_sorting_data
from experiment.longseq_formers.dataset.sorting import SortingDataset
from experiment.longseq_formers.task import SortingTask, segment_slices


def test_segments_are_aligned_to_the_end():
    assert segment_slices(20, 8) == [slice(0, 4), slice(4, 12), slice(12, 20)]
    assert segment_slices(16, 8) == [slice(0, 8), slice(8, 16)]
    assert segment_slices(5, 8) == [slice(0, 5)]


def tiny_batch(size: int = 8) -> dict:
    dataset = SortingDataset(generate_sorting_data(24, 8, size, 1, 1, seed=0), "train")
    items = [dataset[i] for i in range(size)]
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


@pytest.fixture
def tiny_task(tiny_memoria_config, tiny_gpt2_fields):
    """Makes a sorting task around a tiny Memoria Transformer ("memoria") or baseline ("baseline")."""

    def make(model_type: str) -> SortingTask:
        config = tiny_memoria_config() if model_type == "memoria" else GPT2Config(**tiny_gpt2_fields)
        torch.manual_seed(0)
        return SortingTask(config.to_dict(), segment_length=8, learning_rate=3e-3, warmup_steps=0)

    return make


def test_run_sample_starts_each_sample_with_fresh_memory(tiny_task):
    task = tiny_task("memoria").eval()
    batch = tiny_batch()
    torch.manual_seed(0)
    first, labels = task.run_sample(batch["input_ids"], batch["labels"])
    torch.manual_seed(0)
    again, _ = task.run_sample(batch["input_ids"], batch["labels"])
    torch.testing.assert_close(first, again)
    assert first.shape == (8 * 8, 9) and labels.shape == (8 * 8,)


@pytest.mark.parametrize("model_type", ["memoria", "baseline"])
def test_a_few_training_steps_lower_the_loss(model_type, tiny_task):
    task = tiny_task(model_type).train()
    batch = tiny_batch()
    optimizer = torch.optim.Adam(task.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        logits, labels = task.run_sample(batch["input_ids"], batch["labels"])
        loss = torch.nn.functional.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.3
