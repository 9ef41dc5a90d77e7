"""Language modelling: B contiguous token streams read one window per step, memory carried from step to step."""

import math
import warnings
from typing import Any, Dict, Iterator, List, Optional, Tuple

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, IterableDataset
from torchmetrics import MeanMetric, Metric

from ..data.language_modeling import BOUNDARY_MODES, IGNORE_INDEX, Windows, make_windows
from .base import Segment, SegmentLoss, SegmentTask

STREAM_STATE_KEY = "language_modeling_stream"  # the checkpoint entry holding the stream position and the memory


class CorpusPerplexity(Metric):
    """exp of the token-weighted mean cross-entropy over everything it was updated with (the corpus perplexity).

    ``bits`` gives the same mean in bits per token (bits per character when tokens are bytes).
    """

    full_state_update = False

    def __init__(self, bits: bool = False) -> None:
        super().__init__()
        self.bits = bits
        self.add_state("loss_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("tokens", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, loss_sum: torch.Tensor, tokens: int) -> None:
        """Adds ``loss_sum`` (summed cross-entropy in nats, a scalar) over ``tokens`` tokens."""
        self.loss_sum += loss_sum.detach().double()
        self.tokens += int(tokens)

    def compute(self) -> torch.Tensor:
        mean = self.loss_sum / self.tokens.clamp(min=1)
        return (mean / math.log(2) if self.bits else mean.exp()).float()


class TokenMeanLoss(Metric):
    """The token-weighted mean cross-entropy (nats) over everything it was updated with."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("loss_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("tokens", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, losses: torch.Tensor) -> None:
        """Adds per-token losses, shaped [NumTokens]."""
        self.loss_sum += losses.detach().double().sum()
        self.tokens += losses.numel()

    def compute(self) -> torch.Tensor:
        """The mean, or NaN before any token."""
        return (self.loss_sum / self.tokens).float()


# recurrence buckets: (metric name, fewest segments back, most segments back) of a token's previous occurrence
RECURRENCE_BUCKETS = (
    ("loss_recur_same_segment", 0, 0),
    ("loss_recur_1", 1, 1),
    ("loss_recur_2_4", 2, 4),
    ("loss_recur_5_16", 5, 16),
    ("loss_recur_over_16", 17, None),
    ("loss_first_occurrence", -1, -1),
)


class RecurrenceTracker:
    """For each predicted token of a stream, how many segments back the same token id last occurred in its stream.

    Distances count segments of ``unit`` tokens laid on the stream from its first token: a label at stream position
    i whose id last occurred as an input at position j <= i is ``i // unit - j // unit`` segments back. With
    ``unit`` equal to the model's segment length this is the segment index; a model reading longer segments is
    measured in the same units, so that two models reading the same streams put the same tokens in each bucket.

    Fed the segments of B streams in order (:meth:`distances`), it keeps, per stream and token id, the position of its
    last occurrence. A stream's history starts at :meth:`reset` (of its row, or of every row).

    Args:
        vocab_size: the token ids are in [0, vocab_size).
        unit: tokens per counted segment.
    """

    def __init__(self, vocab_size: int, unit: int) -> None:
        if unit < 1:
            raise ValueError(f"unit must be at least 1, got {unit}")
        self.vocab_size = vocab_size
        self.unit = unit
        self.last_seen: Optional[torch.Tensor] = None  # [B, V] long: the stream position, -1 for never
        self.position = 0  # the stream position of the next segment's first token

    def reset(self, rows: Optional[torch.Tensor] = None) -> None:
        """Forgets every stream's history (``rows`` None) or the chosen rows' (bool mask or indices)."""
        if rows is None or self.last_seen is None:
            self.last_seen = None
            self.position = 0
            return
        self.last_seen[rows] = -1

    def distances(self, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The previous occurrence of each label, then records the segment's input.

        Args:
            input_ids: the segment's input, shaped [B, L].
            labels: the next tokens, shaped [B, L] (negative where not scored).

        Returns:
            shaped [B, L]: d >= 0 when the label last occurred (up to its own position) d segments of ``unit`` tokens
            back (0: in the same one), -1 when it never occurred in the stream.
        """
        batch, length = input_ids.shape
        if self.last_seen is None or self.last_seen.size(0) != batch:
            self.last_seen = torch.full((batch, self.vocab_size), -1, dtype=torch.long, device=input_ids.device)
        positions = self.position + torch.arange(length, device=input_ids.device)  # [L]
        causal = torch.ones(length, length, dtype=torch.bool, device=input_ids.device).tril()  # [L, L]: j <= i
        matches = (labels[:, :, None] == input_ids[:, None, :]) & causal  # [B, L, L]
        in_segment = torch.where(matches, positions, -1).amax(dim=-1)  # [B, L]: the latest j <= i, or -1
        earlier = self.last_seen.gather(1, labels.clamp(min=0))  # [B, L]
        previous = torch.where(in_segment >= 0, in_segment, earlier)
        distance = positions // self.unit - previous.clamp(min=0) // self.unit
        self.last_seen.scatter_reduce_(1, input_ids, positions.expand(batch, length), reduce="amax")
        self.position += length
        return torch.where(previous >= 0, distance, torch.full_like(distance, -1))


def recurrence_bucket(distances: torch.Tensor) -> torch.Tensor:
    """The index in :data:`RECURRENCE_BUCKETS` of each distance (:meth:`RecurrenceTracker.distances`), same shape."""
    index = torch.full_like(distances, -1)
    for bucket, (_, fewest, most) in enumerate(RECURRENCE_BUCKETS):
        chosen = distances >= fewest if most is None else (distances >= fewest) & (distances <= most)
        index = torch.where(chosen, bucket, index)
    return index


def work_metric_names(bucket: str, work: int) -> Tuple[str, str]:
    """The test metrics of one recurrence bucket (a name of :data:`RECURRENCE_BUCKETS`) in document ``work``: its
    summed loss (nats) and its token count, e.g. ``loss_sum_recur_5_16_work0`` and ``tokens_recur_5_16_work0``."""
    short = bucket.removeprefix("loss_")
    return f"loss_sum_{short}_work{work}", f"tokens_{short}_work{work}"


class WorkBucketSums(Metric):
    """The summed loss and token count of every (document, recurrence bucket) pair it was updated with."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        # one [K, 4] float64 tensor per update: document, bucket, summed loss, tokens
        self.add_state("rows", default=[], dist_reduce_fx="cat")

    def update(self, documents: torch.Tensor, buckets: torch.Tensor, losses: torch.Tensor) -> None:
        """Adds per-token losses, each token's document and bucket index, all shaped [NumTokens]."""
        count = len(RECURRENCE_BUCKETS)
        keys, inverse = torch.unique(documents * count + buckets, return_inverse=True)
        sums = torch.zeros(len(keys), dtype=torch.float64, device=losses.device)
        sums.index_add_(0, inverse, losses.detach().double())
        tokens = torch.zeros_like(sums).index_add_(0, inverse, torch.ones_like(losses, dtype=torch.float64))
        self.rows.append(torch.stack([(keys // count).double(), (keys % count).double(), sums, tokens], dim=1))

    def compute(self) -> Dict[Tuple[int, int], Tuple[float, int]]:
        """{(document, bucket index): (summed loss, tokens)}."""
        rows = self.rows if isinstance(self.rows, torch.Tensor) else torch.cat(self.rows or [torch.zeros(0, 4)])
        totals: Dict[Tuple[int, int], Tuple[float, int]] = {}
        for document, bucket, loss_sum, tokens in rows.tolist():
            key = (int(document), int(bucket))
            previous_sum, previous_tokens = totals.get(key, (0.0, 0))
            totals[key] = (previous_sum + loss_sum, previous_tokens + int(tokens))
        return totals


class LanguageModelingTask(SegmentTask):
    """Next-token prediction on token streams, with memory carried across batches.

    Each batch is the next window of every row's stream (``segments_per_batch`` segments): memory is carried from
    batch to batch and reset only for the rows whose ``reset`` flag is set (a new stream, or a new document with
    ``document_boundaries="reset"``), and for every row at the start of each epoch. Gradients flow through the
    window's segments as far as the model lets them (the memories of every model here are detached at segment
    boundaries, except the RMT's memory tokens); a model that keeps its memory in the graph has it cut before each
    batch through its ``detach_memory()``, so one window is one truncated-BPTT span: the loss of the window's k-th
    segment reaches k - 1 boundaries back. A model with ``bptt_segments`` > 0 therefore needs windows of at least
    ``bptt_segments + 1`` segments (``segments_per_batch``), or no gradient reaches what its memory writes; the task
    warns otherwise.

    Metrics, per split: ``ppl`` (corpus perplexity: exp of the token-weighted mean loss over the whole split),
    ``bits_per_token`` (the same mean in bits: bits per character for bytes) and ``segment_ppl`` (the mean over
    segments of each segment's perplexity, the average the paper's code reported; only for comparison). In
    validation and test also the mean loss (nats) on the tokens whose previous occurrence in their stream lies in
    the same segment, 1, 2-4, 5-16 or more than 16 segments back, or nowhere (:data:`RECURRENCE_BUCKETS`,
    :class:`RecurrenceTracker`): where only memory can recall a token, a memory that helps lowers the far buckets.
    A stream's history starts when its memory is reset (so with ``document_boundaries="carry"`` it spans works).
    Distances count segments of ``recurrence_segment_length`` tokens (default: ``segment_length``) laid on the stream,
    so models with different segment lengths that read the same test streams are scored on the same tokens per
    bucket. The test also logs, per document of the split (its index in the split's order) and bucket, the summed
    loss and the token count (:func:`work_metric_names`), for comparisons paired by document.

    Checkpoints hold the position in the training streams, every process's carried memory (the model's
    ``memory_state()``) and random generators, so training resumed in the middle of an epoch continues exactly.

    Args:
        *args, **options: those of :class:`SegmentTask`: ``model_config`` (the model's configuration as a dict,
            with its model_type), ``segment_length`` and the optimisation settings; memory is always carried.
        data_settings: how the data was read and tokenised (dataset, data_dir, tokenizer, segments_per_batch,
            document_boundaries, ...), kept in the checkpoint so that evaluation reads it the same way.
        recurrence_segment_length: tokens per segment of the recurrence distances; None: ``segment_length``.
    """

    monitor = "val/ppl"
    monitor_mode = "min"

    def __init__(
        self,
        *args: Any,
        data_settings: Optional[Dict[str, Any]] = None,
        recurrence_segment_length: Optional[int] = None,
        **options: Any,
    ) -> None:
        options["carry_memory"] = True  # set here, also when a checkpoint's hyperparameters pass it back
        super().__init__(*args, **options)
        self._train_windows_done = 0  # windows of the current training epoch already trained on
        unit = recurrence_segment_length or self.hparams.segment_length
        self._recurrence = RecurrenceTracker(self.model.config.vocab_size, unit)  # evaluation streams' histories
        self.work_buckets = WorkBucketSums()  # the test's loss per document and recurrence bucket
        segments_per_window = (data_settings or {}).get("segments_per_batch")
        if segments_per_window is not None and segments_per_window <= self.bptt_segments:
            warnings.warn(
                f"{type(self.model).__name__} backpropagates through {self.bptt_segments} segment boundaries "
                f"(bptt_segments), but a window holds {segments_per_window} segment(s): set --segments-per-batch to "
                f"at least {self.bptt_segments + 1}, or no gradient reaches the path that writes its memory"
            )
        self._resume: Optional[Dict[str, Any]] = None  # the stream position and memory of a loaded checkpoint

    def build_metrics(self) -> Dict[str, Metric]:
        recurrence = {name: TokenMeanLoss() for name, _, _ in RECURRENCE_BUCKETS}
        return {
            "ppl": CorpusPerplexity(),
            "bits_per_token": CorpusPerplexity(bits=True),
            "segment_ppl": MeanMetric(),
            **recurrence,
        }

    def _reset_carried_memory(self) -> None:
        super()._reset_carried_memory()
        self._recurrence.reset()

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self.work_buckets.reset()

    def on_test_epoch_end(self) -> None:
        """Logs the summed loss and the token count of each recurrence bucket in each test document."""
        for (work, bucket), (loss_sum, tokens) in sorted(self.work_buckets.compute().items()):
            loss_name, tokens_name = work_metric_names(RECURRENCE_BUCKETS[bucket][0], work)
            self.log(f"test/{loss_name}", loss_sum)
            self.log(f"test/{tokens_name}", float(tokens))
        self.work_buckets.reset()

    def reset_before_batch(self, batch: Dict[str, torch.Tensor]) -> None:
        super().reset_before_batch(batch)
        rows = self.rows_to_reset(batch)
        if rows is not None:
            self._recurrence.reset(rows)
        detach_memory = getattr(self.model, "detach_memory", None)
        if callable(detach_memory):
            detach_memory()  # the previous batch's graph is gone: cut what the memory still holds of it

    def training_step(self, batch: Dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        self._train_windows_done += 1
        self._train_window_shape = list(batch["input_ids"].shape)  # [Streams, Window] of this process
        return loss

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self._train_windows_done = 0

    # ---- resuming in the middle of the streams -----------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        """Stores how many windows of the training epoch were trained on and, for every process (gathered under
        DDP), the memory its model carries (the random generators are stored by :class:`SegmentTask`)."""
        super().on_save_checkpoint(checkpoint)
        detach_memory = getattr(self.model, "detach_memory", None)
        if callable(detach_memory):
            detach_memory()  # as before the next batch: a checkpoint holds no autograd graph
        try:
            memory = self.model.memory_state()
        except NotImplementedError:
            memory = None  # such a checkpoint resumes only at the start of an epoch
        checkpoint[STREAM_STATE_KEY] = {
            "train_windows_done": self._train_windows_done,
            "window_shape": getattr(self, "_train_window_shape", None),
            "processes": self._gathered({"memory": memory}),
        }

    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self._resume = checkpoint.get(STREAM_STATE_KEY)

    def on_train_start(self) -> None:
        """When training resumes in the middle of an epoch, skips the windows already trained on and restores the
        memory carried at that point (and :class:`SegmentTask` the random generators), so that the next steps are the
        ones the interrupted run would have taken."""
        super().on_train_start()
        resume, self._resume = self._resume, None
        if resume is None or not self.trainer.fit_loop.restarted_mid_epoch:
            return
        done = int(resume["train_windows_done"])
        processes = resume["processes"]
        if len(processes) != self.trainer.world_size:
            raise ValueError(
                f"the checkpoint was saved {done} windows into an epoch by {len(processes)} processes; resume it "
                f"with as many (--devices), not {self.trainer.world_size}, or from a checkpoint at the end of an epoch"
            )
        process = processes[self.trainer.global_rank]
        if process["memory"] is None:
            raise ValueError(
                f"the checkpoint was saved {done} windows into an epoch without the memory of "
                f"{type(self.model).__name__} (it declares no memory_attributes); resume from a checkpoint saved "
                "at the end of an epoch"
            )
        dataset = getattr(self.trainer.train_dataloader, "dataset", None)
        if not isinstance(dataset, WindowStream):
            raise TypeError(
                f"resuming in the middle of an epoch needs the training data as a WindowStream, got {type(dataset)}"
            )
        shape = list(dataset.windows.input_ids.shape[1:])  # [Streams, Window]
        if resume.get("window_shape") is not None and resume["window_shape"] != shape:
            raise ValueError(
                f"the checkpoint was saved {done} windows into an epoch of windows shaped {resume['window_shape']} "
                f"(streams per process, tokens per window); this run reads {shape}: resume with the same "
                "--batch-size, --segment-length and --segments-per-batch, or from a checkpoint at the end of an epoch"
            )
        dataset.skip_windows(done)
        self.model.load_memory_state(process["memory"])
        self._train_windows_done = done
        # Lightning sees a loader without state_dict and warns that the epoch restarts: here it does not
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")

    def segment_loss(self, output: Any, segment: Segment, split: str) -> Optional[SegmentLoss]:
        labels = segment.tensors["labels"]  # [B, L]
        scored = labels != IGNORE_INDEX  # [B, L]
        distances = None if split == "train" else self._recurrence.distances(segment.tensors["input_ids"], labels)
        tokens = int(scored.sum())
        if tokens == 0:
            return None
        losses = F.cross_entropy(output.logits[scored].float(), labels[scored], reduction="none")  # [NumScored]
        total = losses.sum()
        metrics = self.metrics(split)
        metrics["ppl"].update(total, tokens)
        metrics["bits_per_token"].update(total, tokens)
        metrics["segment_ppl"].update((total.detach() / tokens).exp())
        if distances is not None:
            buckets = recurrence_bucket(distances[scored])  # [NumScored]
            for index, (name, _, _) in enumerate(RECURRENCE_BUCKETS):
                metrics[name].update(losses[buckets == index])
            documents = segment.tensors.get("document")
            if split == "test" and documents is not None:
                self.work_buckets.update(documents[scored], buckets, losses)
        return SegmentLoss(total, tokens)


class WindowStream(IterableDataset):
    """Yields a split's windows in order, each a batch: input_ids and labels [NumStreams, Window], reset [NumStreams]
    and, when the windows record it, document [NumStreams, Window] (each label's document).

    :meth:`skip_windows` makes the next pass start further in (for a run resumed in the middle of an epoch).
    """

    def __init__(self, windows: Windows) -> None:
        self.windows = windows
        self._start = 0

    def __len__(self) -> int:
        return self.windows.input_ids.shape[0]

    def skip_windows(self, count: int) -> None:
        """Makes the next pass (only) start at window ``count`` (0 to ``len(self)``)."""
        if not 0 <= count <= len(self):
            raise ValueError(f"count must be in [0, {len(self)}] (the windows of this split), got {count}")
        self._start = count

    def __iter__(self) -> Iterator[Dict[str, torch.Tensor]]:
        start, self._start = self._start, 0
        for index in range(start, len(self)):
            batch = {
                "input_ids": torch.from_numpy(self.windows.input_ids[index]),
                "labels": torch.from_numpy(self.windows.labels[index]),
                "reset": torch.from_numpy(self.windows.reset[index]),
            }
            if self.windows.documents is not None:
                batch["document"] = torch.from_numpy(self.windows.documents[index])
            yield batch


class LanguageModelingDataModule(L.LightningDataModule):
    """Stream loaders over tokenised splits; under DDP each process reads its own streams.

    Each split is cut into ``batch_size x world_size`` streams (``eval_batch_size x world_size`` for valid and
    test) and process ``rank`` reads streams rank, rank + world_size, ... (see ``Windows.rank_share``), so every
    process steps through the same number of windows.

    Args:
        splits: {"train", "valid", "test"}: each split's documents as token ids (int [NumTokens] each).
        batch_size: training streams per process.
        eval_batch_size: validation and test streams per process.
        segment_length: tokens per segment.
        segments_per_batch: segments per window (per optimiser step).
        eos_id: the end-of-text id, or None (bytes).
        document_boundaries: "carry" (memory flows across documents, the paper's) or "reset".
        rank: this process's rank, or None to ask the Trainer (0 without one).
        world_size: the number of processes, or None to ask the Trainer (1 without one).
    """

    def __init__(
        self,
        splits: Dict[str, List[np.ndarray]],
        batch_size: int,
        eval_batch_size: int,
        segment_length: int,
        segments_per_batch: int = 1,
        eos_id: Optional[int] = None,
        document_boundaries: str = "carry",
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
    ) -> None:
        super().__init__()
        missing = [split for split in ("train", "valid", "test") if split not in splits]
        if missing:
            raise ValueError(f"splits lacks {missing}")
        if segments_per_batch < 1:
            raise ValueError(f"--segments-per-batch must be at least 1, got {segments_per_batch}")
        if document_boundaries not in BOUNDARY_MODES:
            raise ValueError(f"--document-boundaries must be one of {BOUNDARY_MODES}, got {document_boundaries!r}")
        self.splits = splits
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.window = segment_length * segments_per_batch
        self.eos_id = eos_id
        self.document_boundaries = document_boundaries
        self.rank = rank
        self.world_size = world_size

    def _process(self) -> tuple:
        trainer = getattr(self, "trainer", None)
        rank = self.rank if self.rank is not None else (trainer.global_rank if trainer is not None else 0)
        world = self.world_size if self.world_size is not None else (trainer.world_size if trainer is not None else 1)
        return rank, world

    def windows(self, split: str) -> Windows:
        """This process's windows of ``split`` ("train", "valid" or "test")."""
        rank, world = self._process()
        streams = (self.batch_size if split == "train" else self.eval_batch_size) * world
        windows = make_windows(self.splits[split], streams, self.window, self.eos_id, self.document_boundaries)
        return windows.rank_share(rank, world)

    def _loader(self, split: str) -> DataLoader:
        return DataLoader(WindowStream(self.windows(split)), batch_size=None)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("valid")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
