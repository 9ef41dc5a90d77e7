"""Training and evaluation of a segment-recurrent LM on the sorting task, as a Lightning module."""

from typing import Any, Dict, List, Optional, Tuple

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchmetrics.classification import MulticlassAccuracy

from ..data.sorting import load_sorting_data, model_vocab_size
from ..dataset.sorting import IGNORE_INDEX, SortingDataset
from ..model import build_model, config_from_dict


def segment_slices(length: int, segment_length: int) -> List[slice]:
    """Splits positions 0..length-1 into segments of ``segment_length``, aligned to the end of the sequence.

    The first segment takes the remainder, so the last segment always holds the ``segment_length`` most recent
    tokens: the separator and the targets share it with the end of the symbol sequence.
    """
    starts = list(range(length - segment_length, 0, -segment_length))[::-1]
    bounds = [0] + starts + [length] if starts else [0, length]
    return [slice(start, end) for start, end in zip(bounds[:-1], bounds[1:])]


class SortingTask(L.LightningModule):
    """Reads each sample segment by segment with fresh memory, and learns the targets after the separator.

    Only segments that hold targets build an autograd graph: memory between segments is detached, so the
    others could not receive gradients anyway.

    Args:
        model_config: the model's configuration as a dict (``PretrainedConfig.to_dict()``), with its model_type.
        segment_length: tokens per segment.
        learning_rate: Adam's peak learning rate.
        warmup_steps: steps of linear warm-up from 0; after it the rate decays linearly to 0 at the last step.
    """

    def __init__(self, model_config: Dict[str, Any], segment_length: int, learning_rate: float, warmup_steps: int):
        super().__init__()
        self.save_hyperparameters()
        self.model = build_model(config_from_dict(model_config))
        num_classes = self.model.config.vocab_size
        self.accuracies = torch.nn.ModuleDict(
            {
                f"{split}_accuracy": MulticlassAccuracy(
                    num_classes=num_classes, average="micro", ignore_index=IGNORE_INDEX
                )
                for split in ("train", "val", "test")
            }
        )

    def run_sample(self, input_ids: torch.Tensor, labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Resets memory and reads whole samples, returning the logits and labels at the target positions.

        Args:
            input_ids: shaped [BatchSize, SequenceLength].
            labels: shaped [BatchSize, SequenceLength], IGNORE_INDEX off the targets.

        Returns:
            logits shaped [NumTargets, VocabSize] and their labels shaped [NumTargets].
        """
        self.model.reset_memory()
        target_logits, target_labels = [], []
        for segment in segment_slices(input_ids.size(1), self.hparams.segment_length):
            segment_labels = labels[:, segment]
            is_target = segment_labels != IGNORE_INDEX  # [B, L]
            has_targets = bool(is_target.any())
            with torch.set_grad_enabled(torch.is_grad_enabled() and has_targets):
                logits = self.model(input_ids=input_ids[:, segment]).logits  # [B, L, V]
            if has_targets:
                target_logits.append(logits[is_target])
                target_labels.append(segment_labels[is_target])
        return torch.cat(target_logits).float(), torch.cat(target_labels)

    def _step(self, batch: Dict[str, torch.Tensor], split: str) -> torch.Tensor:
        logits, labels = self.run_sample(batch["input_ids"], batch["labels"])
        loss = F.cross_entropy(logits, labels)
        accuracy = self.accuracies[f"{split}_accuracy"]
        accuracy(logits, labels)
        on_step = split == "train"
        batch_size = batch["input_ids"].size(0)
        self.log(
            f"{split}/loss", loss, prog_bar=True, on_step=on_step, on_epoch=True, batch_size=batch_size, sync_dist=True
        )
        self.log(f"{split}/accuracy", accuracy, prog_bar=True, on_step=on_step, on_epoch=True, batch_size=batch_size)
        return loss

    def training_step(self, batch: Dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self) -> Dict[str, Any]:
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.learning_rate)
        total_steps = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup_steps = min(self.hparams.warmup_steps, total_steps)

        def rate(step: int) -> float:
            if step < warmup_steps:
                return (step + 1) / warmup_steps
            return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class SortingDataModule(L.LightningDataModule):
    """Loaders over a sorting-data file written by ``make_sorting_data``.

    Args:
        data_path: the file.
        batch_size: training batch size.
        eval_batch_size: dev and test batch size.
        num_workers: loader worker processes.
    """

    def __init__(self, data_path: str, batch_size: int, eval_batch_size: Optional[int] = None, num_workers: int = 0):
        super().__init__()
        self.data = load_sorting_data(data_path)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers

    @property
    def model_vocab_size(self) -> int:
        """How many token ids the model needs."""
        return model_vocab_size(self.data.vocab_size)

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        return DataLoader(
            SortingDataset(self.data, split), batch_size=batch_size, shuffle=shuffle, num_workers=self.num_workers
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("dev", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)
