"""The recall task: read a sample's segments with fresh memory; answer each query ``? key _`` at ``_``."""

from typing import Any, Dict, Optional

import torch.nn.functional as F
from torchmetrics import MeanMetric, Metric

from ..data.recall import IGNORE_INDEX, RecallDataset, RecallSpec
from .base import Segment, SegmentLoss, SegmentTask, SplitsDataModule


def distance_metric(distance: int) -> str:
    """The name of the accuracy at ``distance`` segments back: "accuracy_d<distance>"."""
    return f"accuracy_d{distance}"


class RecallTask(SegmentTask):
    """Each batch holds whole samples: memory is reset before it; the loss is on the answers only.

    The loss is the cross-entropy averaged over every answer of the batch. Metrics: ``accuracy`` over every answer
    and ``accuracy_d<d>`` over the answers d segments after the fact segment, d = 0 .. ``data``'s farthest. Every
    segment builds an autograd graph (a model whose memory keeps the graph, like RMT's, gets gradients from the
    later segments' answers into the segments before).

    Args:
        model_config: the model's configuration as a dict, with its model_type.
        segment_length: tokens per segment.
        data: the :class:`RecallSpec` fields of the data it is trained on (kept in the checkpoint, so that
            ``eval recall`` makes the same kind of samples); its ``segment_length`` must be ``segment_length``.
        **options: the optimisation settings of :class:`SegmentTask` (``learning_rate``, ``warmup_ratio``,
            ``weight_decay``); memory is never carried.
    """

    monitor = "val/accuracy"
    monitor_mode = "max"

    def __init__(self, model_config: Dict[str, Any], segment_length: int, data: Dict[str, Any], **options: Any) -> None:
        spec = RecallSpec(**data)
        if spec.segment_length != segment_length:
            raise ValueError(
                f"data's segment_length {spec.segment_length} differs from segment_length {segment_length}"
            )
        self.spec = spec
        super().__init__(model_config, segment_length, carry_memory=False, **options)

    def build_metrics(self) -> Dict[str, Metric]:
        names = ["accuracy", *(distance_metric(d) for d in range(self.spec.max_distance + 1))]
        return {name: MeanMetric() for name in names}

    def segment_loss(self, output: Any, segment: Segment, split: str) -> Optional[SegmentLoss]:
        labels = segment.tensors["labels"]  # [B, L]
        distances = segment.tensors["distances"]  # [B, L], -1 where there is no answer
        logits = output.logits.float()  # [B, L, VocabSize]
        is_answer = labels != IGNORE_INDEX  # [B, L]
        correct = (logits.argmax(dim=-1) == labels).float()  # [B, L]
        metrics = self.metrics(split)
        metrics["accuracy"].update(correct, is_answer.float())
        for distance in range(self.spec.max_distance + 1):
            metrics[distance_metric(distance)].update(correct, (distances == distance).float())
        total = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX, reduction="sum")
        return SegmentLoss(total, is_answer.sum())


class RecallDataModule(SplitsDataModule):
    """Loaders over generated recall samples; ``seed`` picks the data stream of every split.

    Args:
        spec: the task's shape.
        seed: the data stream (a run passes its own seed).
        num_train: training samples per epoch.
        num_dev: dev samples.
        num_test: test samples.
        batch_size: training batch size.
        eval_batch_size: dev and test batch size.
        num_workers: loader worker processes.
    """

    def __init__(
        self,
        spec: RecallSpec,
        seed: int,
        num_train: int,
        num_dev: int,
        num_test: int,
        batch_size: int,
        eval_batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers)
        self.spec = spec
        self.datasets = {
            split: RecallDataset(spec, split, size, seed)
            for split, size in (("train", num_train), ("dev", num_dev), ("test", num_test))
        }
