"""The sorting task: read the symbols segment by segment with fresh memory, then predict them sorted by count."""

from typing import Any, Dict, Optional

import torch.nn.functional as F
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy

from ..data.sorting import load_sorting_data, model_vocab_size
from ..datasets.sorting import IGNORE_INDEX, SortingDataset
from .base import Segment, SegmentLoss, SegmentTask, SplitsDataModule


class SortingTask(SegmentTask):
    """Each batch holds whole samples: memory is reset before it, and the loss is on the targets after the separator.

    The loss is the cross-entropy averaged over every target token of the batch; the metric is their accuracy.
    In training, the segments that hold targets build an autograd graph, and so do the ``bptt_segments`` segments
    before them for a model whose memory carries gradients (the RMT's memory tokens); the others run without one,
    since no gradient could reach them (see ``experiment.tasks.base.graph_segments``).

    Args: those of :class:`SegmentTask` (``segment_alignment`` "start" is the paper's); memory is never carried.
    """

    monitor = "val/accuracy"
    monitor_mode = "max"

    def build_metrics(self) -> Dict[str, Metric]:
        return {
            "accuracy": MulticlassAccuracy(
                num_classes=self.model.config.vocab_size, average="micro", ignore_index=IGNORE_INDEX
            )
        }

    def segment_has_loss(self, segment: Segment) -> bool:
        return bool((segment.tensors["labels"] != IGNORE_INDEX).any())

    def segment_loss(self, output: Any, segment: Segment, split: str) -> Optional[SegmentLoss]:
        labels = segment.tensors["labels"]  # [B, L]
        is_target = labels != IGNORE_INDEX  # [B, L]
        if not bool(is_target.any()):
            return None
        logits = output.logits[is_target].float()  # [NumTargets, VocabSize]
        targets = labels[is_target]  # [NumTargets]
        self.metrics(split)["accuracy"].update(logits, targets)
        return SegmentLoss(F.cross_entropy(logits, targets, reduction="sum"), targets.numel())


class SortingDataModule(SplitsDataModule):
    """Loaders over a sorting-data file in the paper's JSON layout.

    Args:
        data_path: the file.
        batch_size: training batch size.
        eval_batch_size: dev and test batch size.
        num_workers: loader worker processes.
    """

    def __init__(self, data_path: str, batch_size: int, eval_batch_size: int = 32, num_workers: int = 0) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers)
        self.data = load_sorting_data(data_path)
        self.datasets = {split: SortingDataset(self.data, split) for split in ("train", "dev", "test")}

    @property
    def model_vocab_size(self) -> int:
        """How many token ids the model needs."""
        return model_vocab_size(self.data.vocab_size)
