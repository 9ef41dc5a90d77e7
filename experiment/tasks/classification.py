"""Long-document classification: read each document segment by segment with fresh memory, then classify it."""

from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score
from torchmetrics.utilities import dim_zero_cat
from transformers import AutoModelForSequenceClassification, PretrainedConfig

from ..data.classification import ClassificationData
from ..data.tokenization import SegmentTokenizer
from ..datasets.classification import ClassificationDataset
from .base import Segment, SegmentLoss, SegmentTask, SplitsDataModule

PREDICTIONS = ("last", "mean")
LOSSES = ("segments", "last")


class GroupCounts(Metric):
    """Documents and correctly classified documents per group (the play of an excerpt: the unit a test's
    interval resamples, since a play's excerpts are not independent)."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("groups", default=[], dist_reduce_fx="cat")
        self.add_state("correct", default=[], dist_reduce_fx="cat")

    def update(self, groups: torch.Tensor, correct: torch.Tensor) -> None:
        """Adds documents: their groups and whether each was classified correctly, both shaped [B]."""
        self.groups.append(groups.long())
        self.correct.append(correct.long())

    def compute(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Documents and correct documents per group index, each shaped [NumGroups] (groups up to the largest seen)."""
        empty = torch.zeros(0, dtype=torch.long)
        if isinstance(self.groups, list) and not self.groups:  # nothing seen (after a sync the states are tensors)
            return empty, empty
        groups, correct = dim_zero_cat(self.groups), dim_zero_cat(self.correct)
        if groups.numel() == 0:
            return empty, empty
        size = int(groups.max()) + 1
        return torch.bincount(groups, minlength=size), torch.bincount(groups, weights=correct, minlength=size).long()


class ClassificationTask(SegmentTask):
    """Each batch holds whole documents: memory is reset before it, and every segment is classified.

    Batches come from :class:`ClassificationDataModule`: ``input_ids`` and ``attention_mask`` shaped
    [BatchSize, NumSegments * SegmentLength], ``labels`` and ``num_segments`` shaped [BatchSize]. A document
    shorter than the batch's longest is followed by segments of padding only, which count for nothing. With a
    ``group`` tensor shaped [BatchSize] (the document's play), the test also logs ``documents_group<g>`` and
    ``correct_group<g>`` for every group g: what an interval that resamples groups needs.

    Args:
        model_config: the model's configuration as a dict, with its model_type and ``num_labels``.
        segment_length: tokens per segment (special tokens included).
        prediction: "last" (the paper's): a document's class is scored by its last segment's logits; "mean":
            by the mean of its segments' logits (the segment-averaging baseline).
        loss: "segments" (the paper's): the cross-entropy of every segment against the document's label,
            averaged over the document's segments and then over the documents of the batch; "last": the
            cross-entropy of each document's last segment only.
        **options: the optimisation settings of :class:`SegmentTask` (``learning_rate``, ``warmup_ratio``,
            ``weight_decay``); memory is never carried.
    """

    monitor = "val/macro_f1"
    monitor_mode = "max"

    def __init__(
        self,
        model_config: Dict[str, Any],
        segment_length: int,
        prediction: str = "last",
        loss: str = "segments",
        **options: Any,
    ) -> None:
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        super().__init__(model_config, segment_length, **options)
        self._logit_sum: Optional[torch.Tensor] = None  # [B, NumLabels]: the running sum of a batch's logits
        self.group_counts = GroupCounts()  # the test's documents and correct documents per group

    def build_model(self, config: PretrainedConfig) -> nn.Module:
        return AutoModelForSequenceClassification.from_config(config)

    def build_metrics(self) -> Dict[str, Metric]:
        num_classes = self.model.config.num_labels
        return {
            "accuracy": MulticlassAccuracy(num_classes=num_classes, average="micro"),
            "macro_f1": MulticlassF1Score(num_classes=num_classes, average="macro"),
        }

    def segment_has_loss(self, segment: Segment) -> bool:
        num_segments = segment.tensors["num_segments"]
        if self.hparams.loss == "last":
            return bool((num_segments == segment.index + 1).any())
        return bool((num_segments > segment.index).any())

    def segment_loss(self, output: Any, segment: Segment, split: str) -> Optional[SegmentLoss]:
        labels = segment.tensors["labels"]  # [B]
        num_segments = segment.tensors["num_segments"]  # [B]
        logits = output.logits.float()  # [B, NumLabels]
        real = num_segments > segment.index  # [B]: rows whose document has this segment
        ending = num_segments == segment.index + 1  # [B]: rows whose document ends with it
        if segment.index == 0:
            self._logit_sum = torch.zeros_like(logits)
        self._logit_sum = self._logit_sum + logits.detach() * real[:, None]
        if bool(ending.any()):
            if self.hparams.prediction == "last":
                scores = logits.detach()
            else:
                scores = self._logit_sum / num_segments[:, None]
            for metric in self.metrics(split).values():
                metric.update(scores[ending], labels[ending])
            if split == "test" and "group" in segment.tensors:
                correct = scores[ending].argmax(dim=-1) == labels[ending]
                self.group_counts.update(segment.tensors["group"][ending], correct)
        if self.hparams.loss == "last":
            if not bool(ending.any()):
                return None
            total = F.cross_entropy(logits[ending], labels[ending], reduction="sum")
            return SegmentLoss(total, int(ending.sum()))
        if not bool(real.any()):
            return None
        per_row = F.cross_entropy(logits, labels, reduction="none") * real / num_segments  # [B]
        # every document's terms add up to its mean over its segments; the batch divides by its documents once
        return SegmentLoss(per_row.sum(), labels.numel() if segment.index == 0 else 0)

    def on_test_epoch_end(self) -> None:
        documents, correct = self.group_counts.compute()
        for group in range(documents.numel()):
            if documents[group] > 0:
                self.log(f"test/documents_group{group}", documents[group].float())
                self.log(f"test/correct_group{group}", correct[group].float())
        self.group_counts.reset()


class ClassificationDataModule(SplitsDataModule):
    """Loaders over tokenised documents.

    Args:
        data: the documents and their splits.
        tokenizer: see ``data.tokenization``.
        segment_length: tokens per segment, special tokens included.
        batch_size: training batch size (documents).
        eval_batch_size: dev and test batch size.
        max_segments: keep only each document's first this many segments (1: the truncation baseline).
        num_workers: loader worker processes.
    """

    def __init__(
        self,
        data: ClassificationData,
        tokenizer: SegmentTokenizer,
        segment_length: int,
        batch_size: int,
        eval_batch_size: int = 8,
        max_segments: Optional[int] = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers)
        self.data = data
        self.datasets = {
            split: ClassificationDataset(data.split(split), tokenizer, segment_length, max_segments)
            for split in ("train", "dev", "test")
        }
