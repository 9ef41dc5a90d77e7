"""A torch Dataset over one split of a sorting-data file, shaped for next-token prediction."""

from typing import Dict

import torch
from torch.utils.data import Dataset

from ..data.sorting import SortingData

IGNORE_INDEX = -100


class SortingDataset(Dataset):
    """Next-token prediction examples of the sorting task, with labels only on the target positions.

    For an example ``x_1..x_T, SEP, y_1..y_K`` the input is every token but the last and the label at each
    position is the next token, so the model predicts ``y_1`` after the separator and ``y_k`` after ``y_{k-1}``.
    Every other label is -100 (ignored by the loss and the accuracy).

    Args:
        data: the task's splits.
        split: "train", "dev" or "test".
    """

    def __init__(self, data: SortingData, split: str) -> None:
        self.examples = data.split(split)  # [N, T + 1 + K]
        self.num_targets = data.vocab_size

    def __len__(self) -> int:
        return self.examples.size(0)

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        """One example: ``input_ids`` and ``labels``, both shaped [T + K]."""
        example = self.examples[index]
        input_ids = example[:-1]
        labels = example[1:].clone()
        labels[: -self.num_targets] = IGNORE_INDEX
        return {"input_ids": input_ids, "labels": labels}
