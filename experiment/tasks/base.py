"""The Lightning module every task is built on: the segment loop, memory resets, loss, metrics and optimiser.

A task subclasses :class:`SegmentTask` and implements only what differs between tasks:

- :meth:`SegmentTask.segment_loss` (required): the loss terms of one segment, and the task's metric updates;
- :meth:`SegmentTask.build_metrics`: the torchmetrics the task reports for each split;
- :meth:`SegmentTask.split_batch`: how a batch is cut into segments (default: every sequence-shaped tensor
  cut into ``segment_length`` pieces from the start of the sequence);
- :meth:`SegmentTask.model_inputs`: what the model gets from a segment (default: input_ids, attention_mask);
- :meth:`SegmentTask.segment_has_loss`: whether a segment has loss terms (default: yes); see "Graphs" below;
- :meth:`SegmentTask.rows_to_reset`: with ``carry_memory``, which rows start a new stream in this batch;
- :meth:`SegmentTask.build_model`: the model class (default: ``AutoModelForCausalLM``);
- the class attributes ``monitor`` / ``monitor_mode``: the dev metric that picks the best checkpoint.

The loss of a batch is the sum of every segment's loss terms divided by the number of terms (so a token-level
loss is the mean over all tokens, and a per-segment loss with count 1 is the mean over segments), plus the
mean of the ``aux_loss`` the model returned on the segments that built a graph.

Training resumed from a checkpoint continues exactly: the training loader (:func:`split_loader`) stores its position
in the epoch, and the checkpoint holds every process's random generators (torch's, which dropout and Memoria's
tie-breaking draw from, CUDA's, numpy's and Python's), restored when training starts again. A task that overrides
``on_save_checkpoint``, ``on_load_checkpoint`` or ``on_train_start`` calls ``super()``; one that carries memory
across batches stores it itself (the language-modelling task does, with its stream position).

Graphs: in training, a segment builds an autograd graph when it has a loss or lies within the model's
``bptt_segments`` segments before one that has (:func:`graph_segments`); the others run without one. A model whose
memory carries gradients across segment boundaries says how many with an integer attribute ``bptt_segments``
(absent or 0: its memory is detached at every boundary, so a segment without loss needs no graph); such a model
keeps its memory in the graph until ``detach_memory()``, so the truncation window that ends at a segment with a
loss spans the ``bptt_segments`` segments before it (and every segment between two such windows that overlap or
touch). A model that returns an ``aux_loss`` builds a graph for every segment.
"""

import os
import random
import warnings
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

import lightning as L
import numpy as np
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchmetrics import Metric
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig

from .. import models as _registered_models  # noqa: F401  (registers every model with the Auto classes)
from ..datasets.resumable import ResumableLoader, ResumableSampler

SPLITS = ("train", "val", "test")
ALIGNMENTS = ("start", "end")
RESUME_STATE_KEY = "segment_task_resume"  # the checkpoint entry of every process's random generators


def graph_segments(has_loss: Sequence[bool], bptt_segments: int = 0) -> List[bool]:
    """Which segments build an autograd graph: those with a loss and the ``bptt_segments`` segments before each.

    Args:
        has_loss: per segment, in order, whether it has loss terms.
        bptt_segments: how many segment boundaries the loss of a segment reaches back through the model's memory
            (0: none, the memory is detached at every boundary).

    Returns:
        per segment, whether it builds a graph.
    """
    if bptt_segments < 0:
        raise ValueError(f"bptt_segments must be >= 0, got {bptt_segments}")
    count = len(has_loss)
    return [any(has_loss[index : min(count, index + bptt_segments + 1)]) for index in range(count)]


def segment_slices(length: int, segment_length: int, alignment: str = "start") -> List[slice]:
    """Splits positions 0..length-1 into consecutive segments of at most ``segment_length``.

    Args:
        length: the sequence length.
        segment_length: the longest segment.
        alignment: "start" cuts from the start of the sequence (the paper's: the last segment is the short
            one); "end" cuts from the end (the first segment is the short one, the last holds the most recent
            ``segment_length`` positions).

    Returns:
        the segments' slices, in order.
    """
    if length < 1 or segment_length < 1:
        raise ValueError(f"length and segment_length must be at least 1, got {length} and {segment_length}")
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
    if alignment == "start":
        bounds = list(range(0, length, segment_length)) + [length]
    else:
        bounds = [0] + list(range(length % segment_length or segment_length, length, segment_length)) + [length]
    return [slice(start, end) for start, end in zip(bounds[:-1], bounds[1:])]


@dataclass
class Segment:
    """One segment of a batch.

    Args:
        index: its position among the batch's segments, from 0.
        is_last: whether it is the batch's last segment.
        tensors: the batch's tensors cut to this segment, each shaped [BatchSize, SegmentLength, ...]; tensors
            that are not sequence-shaped (e.g. document labels [BatchSize]) are passed whole.
    """

    index: int
    is_last: bool
    tensors: Dict[str, torch.Tensor]


@dataclass
class SegmentLoss:
    """The loss terms of one segment.

    Args:
        total: their sum, a scalar tensor.
        count: how many terms were summed (tokens for a token-level loss; 1 for one loss per segment).
    """

    total: torch.Tensor
    count: Union[int, torch.Tensor]


class SegmentTask(L.LightningModule):
    """Runs a segment-recurrent model over long samples, segment by segment, and trains it.

    Args:
        model_config: the model's configuration as a dict (``PretrainedConfig.to_dict()``), with its model_type.
        segment_length: tokens per segment.
        learning_rate: AdamW's peak learning rate.
        warmup_ratio: fraction of the training steps over which the rate rises linearly from 0; it then decays
            linearly to 0 at the last step.
        weight_decay: AdamW's decoupled weight decay.
        carry_memory: False: every row's memory is reset before each batch (each batch holds whole samples).
            True: memory is carried from batch to batch (a batch is the next stretch of each row's stream);
            only the rows :meth:`rows_to_reset` names are reset, and every row at the start of each epoch of
            training, validation and test.
        segment_alignment: "start" or "end", see :func:`segment_slices`.
    """

    monitor: str = "val/loss"
    monitor_mode: str = "min"

    def __init__(
        self,
        model_config: Dict[str, Any],
        segment_length: int,
        learning_rate: float = 2e-4,
        warmup_ratio: float = 0.06,
        weight_decay: float = 0.0,
        carry_memory: bool = False,
        segment_alignment: str = "start",
    ) -> None:
        super().__init__()
        if segment_length < 1:
            raise ValueError(f"segment_length must be at least 1, got {segment_length}")
        if not 0.0 <= warmup_ratio <= 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1], got {warmup_ratio}")
        if segment_alignment not in ALIGNMENTS:
            raise ValueError(f"segment_alignment must be one of {ALIGNMENTS}, got {segment_alignment!r}")
        self.save_hyperparameters()
        self.model = self.build_model(AutoConfig.for_model(**model_config))
        self.split_metrics = nn.ModuleDict(
            {f"{split}_metrics": nn.ModuleDict(self.build_metrics()) for split in SPLITS}
        )
        self._returns_aux_loss = False
        self._resume_state: Optional[Dict[str, Any]] = None  # the random generators of a loaded checkpoint

    # ---- hooks for tasks -------------------------------------------------------------------------------------

    def build_model(self, config: PretrainedConfig) -> nn.Module:
        """The model for ``config``; override for another head (e.g. ``AutoModelForSequenceClassification``)."""
        return AutoModelForCausalLM.from_config(config)

    def build_metrics(self) -> Dict[str, Metric]:
        """Fresh torchmetrics by name (e.g. {"accuracy": ...}); one copy per split, logged per epoch as ``<split>/<name>``.

        Update them with ``self.metrics(split)[name].update(...)`` in :meth:`segment_loss`.
        """
        return {}

    def metrics(self, split: str) -> nn.ModuleDict:
        """The metrics of ``split`` ("train", "val" or "test") by name."""
        return self.split_metrics[f"{split}_metrics"]

    def split_batch(self, batch: Dict[str, torch.Tensor]) -> Iterator[Segment]:
        """Cuts a batch into segments along dimension 1 of its sequence-shaped tensors (those shaped like input_ids)."""
        input_ids = batch["input_ids"]  # [B, L]
        slices = segment_slices(input_ids.size(1), self.hparams.segment_length, self.hparams.segment_alignment)
        for index, positions in enumerate(slices):
            tensors = {
                key: value[:, positions] if value.dim() >= 2 and value.shape[:2] == input_ids.shape else value
                for key, value in batch.items()
            }
            yield Segment(index, index == len(slices) - 1, tensors)

    def model_inputs(self, segment: Segment) -> Dict[str, Any]:
        """The keyword arguments of the model call for ``segment``."""
        return {"input_ids": segment.tensors["input_ids"], "attention_mask": segment.tensors.get("attention_mask")}

    def segment_has_loss(self, segment: Segment) -> bool:
        """Whether ``segment`` has loss terms (:meth:`segment_loss` returns some): it then builds an autograd graph in
        training, and so do the model's ``bptt_segments`` segments before it (see :func:`graph_segments`)."""
        return True

    @property
    def bptt_segments(self) -> int:
        """How many segment boundaries the model's memory lets a loss reach back: its ``bptt_segments``, else 0."""
        return int(getattr(self.model, "bptt_segments", 0) or 0)

    def segment_loss(self, output: Any, segment: Segment, split: str) -> Optional[SegmentLoss]:
        """The loss terms of ``segment`` given the model's ``output``, or None when it has none.

        Update the task's metrics here (``self.metrics(split)[name]``).

        Args:
            output: the model's output for this segment (``.logits`` and perhaps ``.aux_loss``).
            segment: the segment.
            split: "train", "val" or "test".
        """
        raise NotImplementedError(f"{type(self).__name__} must implement segment_loss")

    def rows_to_reset(self, batch: Dict[str, torch.Tensor]) -> Optional[torch.Tensor]:
        """With ``carry_memory``: the rows whose stream starts anew in ``batch`` (indices or a bool mask [B]).

        Default: ``batch["reset"]`` when the batch has it, else None (no row).
        """
        return batch.get("reset")

    # ---- the segment loop --------------------------------------------------------------------------------------

    def reset_before_batch(self, batch: Dict[str, torch.Tensor]) -> None:
        """Applies the reset policy before ``batch`` (see ``carry_memory``)."""
        if not self.hparams.carry_memory:
            self.model.reset_memory()
            return
        rows = self.rows_to_reset(batch)
        if rows is not None and rows.numel() > 0 and (rows.dtype != torch.bool or bool(rows.any())):
            self.model.reset_memory(rows)

    def run_batch(self, batch: Dict[str, torch.Tensor], split: str) -> Dict[str, torch.Tensor]:
        """Runs every segment of ``batch`` in order; returns the "loss" to optimise, "task_loss" and "aux_loss".

        Args:
            batch: tensors shaped [BatchSize, SequenceLength, ...] (and per-row tensors shaped [BatchSize, ...]).
            split: "train", "val" or "test".
        """
        self.reset_before_batch(batch)
        losses: List[SegmentLoss] = []
        aux_losses: List[torch.Tensor] = []
        segments = list(self.split_batch(batch))
        graphs = [True] * len(segments)
        if torch.is_grad_enabled() and not self._returns_aux_loss:
            graphs = graph_segments([self.segment_has_loss(segment) for segment in segments], self.bptt_segments)
        for segment, graph in zip(segments, graphs):
            with torch.set_grad_enabled(torch.is_grad_enabled() and graph):
                output = self.model(**self.model_inputs(segment))
                loss = self.segment_loss(output, segment, split)
            if loss is not None:
                losses.append(loss)
            aux_loss = getattr(output, "aux_loss", None)
            if aux_loss is not None:
                self._returns_aux_loss = True
                aux_losses.append(aux_loss)
        if not losses:
            raise ValueError(f"{type(self).__name__}.segment_loss returned None for every segment of the batch")
        task_loss = sum(loss.total for loss in losses) / sum(loss.count for loss in losses)
        result = {"loss": task_loss, "task_loss": task_loss}
        if aux_losses:
            result["aux_loss"] = torch.stack(aux_losses).mean()
            result["loss"] = task_loss + result["aux_loss"]
        return result

    def _step(self, batch: Dict[str, torch.Tensor], split: str) -> torch.Tensor:
        losses = self.run_batch(batch, split)
        batch_size = batch["input_ids"].size(0)
        on_step = split == "train"
        options = dict(on_step=on_step, on_epoch=True, batch_size=batch_size, sync_dist=not on_step)
        self.log(f"{split}/loss", losses["task_loss"], prog_bar=True, **options)
        if "aux_loss" in losses:
            self.log(f"{split}/aux_loss", losses["aux_loss"], **options)
        for name, metric in self.metrics(split).items():
            self.log(f"{split}/{name}", metric, prog_bar=True, on_step=False, on_epoch=True, batch_size=batch_size)
        return losses["loss"]

    def training_step(self, batch: Dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def _reset_carried_memory(self) -> None:
        if self.hparams.carry_memory:
            self.model.reset_memory()

    def on_train_epoch_start(self) -> None:
        self._reset_carried_memory()

    def on_validation_epoch_start(self) -> None:
        self._reset_carried_memory()

    def on_validation_epoch_end(self) -> None:
        self._reset_carried_memory()  # training resumes with fresh memory (its batch size may differ)

    def on_test_epoch_start(self) -> None:
        self._reset_carried_memory()

    # ---- resuming exactly -------------------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        """Stores every process's random generators (gathered under DDP) and whether the model returns an aux_loss."""
        checkpoint[RESUME_STATE_KEY] = {
            "processes": self._gathered(random_states()),
            "returns_aux_loss": self._returns_aux_loss,
        }

    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        self._resume_state = checkpoint.get(RESUME_STATE_KEY)
        if self._resume_state is not None:
            self._returns_aux_loss = bool(self._resume_state["returns_aux_loss"])

    def on_train_start(self) -> None:
        """When training resumes from a checkpoint, sets this process's random generators to where they were."""
        state, self._resume_state = self._resume_state, None
        if state is None:
            return
        processes = state["processes"]
        if len(processes) != self.trainer.world_size:
            warnings.warn(
                f"the checkpoint holds the random generators of {len(processes)} processes, this run has "
                f"{self.trainer.world_size}: they are not restored, and the resumed run is not the one interrupted"
            )
            return
        restore_random_states(processes[self.trainer.global_rank])

    def _gathered(self, value: Any) -> List[Any]:
        """``value`` of every process, by rank (every process saves a checkpoint's state, rank 0 writes it)."""
        trainer = getattr(self, "_trainer", None)
        world = trainer.world_size if trainer is not None else 1
        if world == 1 or not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return [value]
        values: List[Any] = [None] * world
        torch.distributed.all_gather_object(values, value)
        return values

    # ---- optimisation ------------------------------------------------------------------------------------------

    def configure_optimizers(self) -> Dict[str, Any]:
        """AdamW with linear warm-up from 0 over ``warmup_ratio`` of the steps, then linear decay to 0."""
        optimizer = torch.optim.AdamW(
            self.parameters(), lr=self.hparams.learning_rate, weight_decay=self.hparams.weight_decay
        )
        total_steps = max(int(self.trainer.estimated_stepping_batches), 1)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, linear_warmup_decay(total_steps, round(self.hparams.warmup_ratio * total_steps))
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def split_loader(
    trainer: Optional[L.Trainer],
    dataset: Dataset,
    batch_size: int,
    train: bool,
    num_workers: int = 0,
    seed: Optional[int] = None,
    **kwargs: Any,
) -> DataLoader:
    """The loader of one split. Training: a :class:`ResumableLoader`, shuffled in an order that depends only on the
    seed and the epoch, each process reading its own share under DDP, its position in the epoch kept in checkpoints.
    Dev and test: in order; under DDP each process reads its own share with none repeated (Lightning's default
    sampler pads the shares with repeated examples, which would then count twice in the metrics).

    Args:
        trainer: the Trainer the loader is for (None outside one).
        dataset: the split's examples.
        batch_size: examples per batch and process.
        train: whether this is the training split.
        num_workers: loader worker processes.
        seed: the seed of the training order; default: the seed Lightning's ``seed_everything`` set (0 without).
        kwargs: more DataLoader arguments (e.g. ``collate_fn``).
    """
    world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
    if train:
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0)) if seed is None else seed
        sampler = ResumableSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
        return ResumableLoader(dataset, batch_size, sampler, num_workers=num_workers, **kwargs)
    sampler = None
    if world > 1:
        sampler = UnrepeatedDistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=False)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, **kwargs)


class SplitsDataModule(L.LightningDataModule):
    """Loaders over a task's train, dev and test datasets, for batches of whole samples.

    A subclass fills :attr:`datasets` in its constructor; a dataset with a ``collate`` method batches with it.

    Args:
        batch_size: training batch size.
        eval_batch_size: dev and test batch size.
        num_workers: loader worker processes.
    """

    def __init__(self, batch_size: int, eval_batch_size: int, num_workers: int = 0) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.datasets: Dict[str, Dataset] = {}  # "train", "dev", "test"

    def _loader(self, split: str, batch_size: int, train: bool) -> DataLoader:
        dataset, trainer = self.datasets[split], getattr(self, "trainer", None)
        collate = getattr(dataset, "collate", None)
        return split_loader(trainer, dataset, batch_size, train, self.num_workers, collate_fn=collate)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("dev", self.eval_batch_size, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, train=False)


def linear_warmup_decay(total_steps: int, warmup_steps: int):
    """The learning-rate factor at each step: 0 to 1 over ``warmup_steps``, then down to 0 at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


def random_states() -> Dict[str, Any]:
    """This process's random generators as tensors and plain values (loadable with ``weights_only=True``):
    torch's (dropout and Memoria's tie-breaking draw from it), CUDA's when initialised, numpy's and Python's."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    version, python_state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {"version": version, "state": torch.tensor(python_state, dtype=torch.int64), "gauss": gauss},
    }


def restore_random_states(states: Dict[str, Any]) -> None:
    """Sets this process's random generators to ``states`` (from :func:`random_states`)."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    numpy_state = states["numpy"]
    np.random.set_state(
        (
            numpy_state["name"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    python_state = states["python"]
    random.setstate((python_state["version"], tuple(python_state["state"].tolist()), python_state["gauss"]))
