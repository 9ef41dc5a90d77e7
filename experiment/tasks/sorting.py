"""The sorting task: read the symbols segment by segment with fresh memory, then predict them sorted by count."""

from typing import Any, Dict, Optional

import lightning as L
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy

from ..data.sorting import load_sorting_data, model_vocab_size
from ..datasets.sorting import IGNORE_INDEX, SortingDataset
from .base import Segment, SegmentLoss, SegmentTask, split_loader


class SortingTask(SegmentTask):
    """Each batch holds whole samples: memory is reset before it, and the loss is on the targets after the separator.

    The loss is the cross-entropy averaged over every target token of the batch; the metric is their accuracy.
    In training, the segments that hold targets build an autograd graph, and so do the ``bptt_segments`` segments
    before them for a model whose memory carries gradients (the RMT's memory tokens); the others run without one,
    since no gradient could reach them (see ``experiment.tasks.base.graph_segments``).

    Args:
        model_config: the model's configuration as a dict, with its model_type.
        segment_length: tokens per segment.
        learning_rate: AdamW's peak learning rate.
        warmup_ratio: fraction of the steps of linear warm-up from 0.
        weight_decay: AdamW's weight decay.
        segment_alignment: "start" (the paper's) or "end", see ``segment_slices``.
    """

    monitor = "val/accuracy"
    monitor_mode = "max"

    def __init__(
        self,
        model_config: Dict[str, Any],
        segment_length: int,
        learning_rate: float = 2e-4,
        warmup_ratio: float = 0.06,
        weight_decay: float = 0.0,
        segment_alignment: str = "start",
    ) -> None:
        super().__init__(
            model_config,
            segment_length,
            learning_rate=learning_rate,
            warmup_ratio=warmup_ratio,
            weight_decay=weight_decay,
            carry_memory=False,
            segment_alignment=segment_alignment,
        )

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


class SortingDataModule(L.LightningDataModule):
    """Loaders over a sorting-data file in the paper's JSON layout.

    Args:
        data_path: the file.
        batch_size: training batch size.
        eval_batch_size: dev and test batch size.
        num_workers: loader worker processes.
    """

    def __init__(self, data_path: str, batch_size: int, eval_batch_size: int = 32, num_workers: int = 0) -> None:
        super().__init__()
        self.data = load_sorting_data(data_path)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers

    @property
    def model_vocab_size(self) -> int:
        """How many token ids the model needs."""
        return model_vocab_size(self.data.vocab_size)

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        trainer = getattr(self, "trainer", None)
        return split_loader(trainer, SortingDataset(self.data, split), batch_size, shuffle, self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("dev", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)
