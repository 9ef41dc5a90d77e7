"""Training and testing any task with Lightning: Trainer, checkpoints, TensorBoard, progress and results.json.

A task's ``train`` builds its task module and data module from its settings (``experiment.settings.TrainSettings``
and the task's data fields) and calls :func:`train_and_test`; everything else (seeding, threads, callbacks, the
Trainer, the tests of the final and the best checkpoint, the model in Hugging Face format, results.json) is here.
Under DDP every process trains and tests; only rank 0 writes the model and results.json.
"""

import json
import logging
import os
import pickle
import re
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, Checkpoint, LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from transformers import AutoConfig, PretrainedConfig
from transformers.utils import logging as transformers_logging

from memoria.files import atomic_write

from .models.capacity import parameter_counts
from .models.gpt2_weights import copy_gpt2_weights
from .settings import (
    HardwareSettings,
    TrainSettings,
    flag,
    interval,
    parse_devices,
    parse_overrides,
    show_progress_bar,
)
from .tasks.base import SegmentTask, split_loader
from .tasks.timing import StepTimer

QUIET_WARNINGS = (
    ".*does not have many workers.*",
    ".*The number of training batches .* is smaller than the logging interval.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
    ".*Checkpoint directory .* exists and is not empty.*",  # a resumed run's; a reused one is refused before
)
# strategies whose processes must tolerate parameters without a gradient in a step (Memoria's memory attention
# before the memory holds anything, an RMT's read memory in its first segment)
FIND_UNUSED = {"ddp": "ddp_find_unused_parameters_true", "ddp_spawn": "ddp_spawn_find_unused_parameters_true"}


def quiet_lightning() -> None:
    """Silences Lightning's tips and hardware banners, transformers' progress bars for saving and loading a small
    model, and the warnings that do not apply to these runs."""
    transformers_logging.disable_progress_bar()
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


def set_threads(threads: Optional[int]) -> None:
    """Sets torch's CPU threads when ``threads`` is given (step times depend on it; see ``--threads``)."""
    if threads is not None:
        torch.set_num_threads(threads)


class StepProgressBar(TQDMProgressBar):
    """Lightning's bar, described by steps when training is bounded by steps (not "Epoch 0/-2")."""

    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        super().on_train_epoch_start(trainer)
        if trainer.max_steps > 0:
            self.train_progress_bar.set_description(f"step (of {trainer.max_steps})")
            self.train_progress_bar.total = min(self.train_progress_bar.total or trainer.max_steps, trainer.max_steps)


class LastCheckpoint(Checkpoint):
    """Keeps ``last.ckpt``, the full training state to ``--resume-from``, at most ``minutes`` or ``steps`` old.

    It is written after every validation (a link to the best checkpoint when ``best`` has just written one at that
    step, so the same weights are not written twice), every ``minutes`` of training and every ``steps`` steps; never
    at a step whose validation is still to come (a checkpoint written before it would resume past it) nor at the last
    step (``final.ckpt`` follows). Rank 0 writes a temporary file (or link) and renames it over ``last.ckpt``, so a
    kill during the write leaves the previous one whole, and a link is replaced, never written through.

    Args:
        path: where ``last.ckpt`` goes.
        best: the callback that keeps the best checkpoints.
        minutes: wall-clock minutes between writes during training (0: none by time).
        steps: steps between writes (0: none by count).
    """

    def __init__(self, path: Path, best: ModelCheckpoint, minutes: float = 0.0, steps: int = 0) -> None:
        if minutes < 0 or steps < 0:
            raise ValueError(f"checkpoint minutes and steps must be at least 0, got {minutes} and {steps}")
        self.path, self.best, self.seconds, self.steps = Path(path), best, 60.0 * minutes, steps
        self.saved_step = -1  # the global step last.ckpt holds
        self._last_write = time.monotonic()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_write = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        due = bool(self.steps) and step % self.steps == 0
        if self.seconds:
            late = time.monotonic() - self._last_write >= self.seconds
            due = due or bool(trainer.strategy.broadcast(late, src=0))  # every process saves, or none does
        validating = trainer.fit_loop.epoch_loop._should_check_val_fx(trainer.fit_loop._data_fetcher)
        if due and not validating and not step >= trainer.max_steps > 0:
            self._write(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        if self.best._last_global_step_saved == trainer.global_step and self.best._last_checkpoint_saved:
            self._write(trainer, link_to=Path(self.best._last_checkpoint_saved))
        else:
            self._write(trainer)

    def _write(self, trainer: L.Trainer, link_to: Optional[Path] = None) -> None:
        partial = self.path.with_name(self.path.name + ".partial")
        if link_to is None:
            trainer.save_checkpoint(partial)
        if trainer.is_global_zero:
            if link_to is not None:
                partial.unlink(missing_ok=True)
                partial.symlink_to(os.path.relpath(link_to, self.path.parent))
            os.replace(partial, self.path)
        trainer.strategy.barrier("LastCheckpoint")
        self.saved_step = trainer.global_step
        self._last_write = time.monotonic()


class ProgressLines(Callback):
    """Without a progress bar, prints one line every ``every`` training steps (rank 0): step, loss, time."""

    def __init__(self, every: int) -> None:
        self.every = every
        self._start = time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self.every < 1 or step % self.every or not trainer.is_global_zero:
            return
        loss = trainer.callback_metrics.get("train/loss_step")
        total = f"/{trainer.max_steps}" if trainer.max_steps > 0 else ""
        elapsed = time.perf_counter() - self._start
        loss_text = f", loss {float(loss):.4f}" if loss is not None else ""
        print(f"step {step}{total}{loss_text}, {elapsed:.0f} s", flush=True)


def build_trainer(
    settings: TrainSettings, task: SegmentTask, extra_callbacks: Sequence[Callback] = ()
) -> Tuple[L.Trainer, ModelCheckpoint, "LastCheckpoint"]:
    """The Trainer for ``settings`` and its callbacks that keep the best checkpoints and ``last.ckpt``.

    Checkpoints go to ``<output-dir>/checkpoints``: the ``save_top_k`` best by ``task.monitor``, and ``last.ckpt``
    for resuming, after each validation and every ``--checkpoint-every-minutes`` / ``--checkpoint-every-steps`` in
    between (:class:`LastCheckpoint`). TensorBoard logs go to ``<output-dir>/tensorboard``.
    """
    output_dir = Path(settings.output_dir)
    checkpoints = ModelCheckpoint(
        dirpath=output_dir / "checkpoints",
        filename="best-{step}",
        monitor=task.monitor,
        mode=task.monitor_mode,
        save_top_k=settings.save_top_k,
    )
    last = LastCheckpoint(
        output_dir / "checkpoints" / "last.ckpt",
        checkpoints,
        settings.checkpoint_every_minutes,
        settings.checkpoint_every_steps,
    )
    bar = show_progress_bar(settings.no_progress_bar)
    progress: List[Callback] = [StepProgressBar()] if bar else [ProgressLines(settings.progress_every)]
    trainer = L.Trainer(
        default_root_dir=output_dir,
        logger=TensorBoardLogger(output_dir, name="tensorboard"),
        callbacks=[checkpoints, last, LearningRateMonitor("step"), *progress, *extra_callbacks],
        accelerator=settings.accelerator,
        devices=parse_devices(settings.devices),
        num_nodes=settings.num_nodes,
        strategy=FIND_UNUSED.get(settings.strategy, settings.strategy),
        precision=settings.precision,
        max_steps=settings.max_steps,
        max_epochs=settings.epochs if settings.max_steps < 0 else None,
        gradient_clip_val=settings.gradient_clip or None,
        val_check_interval=interval(settings.val_check_interval),
        limit_val_batches=interval(settings.limit_val_batches),
        log_every_n_steps=10,
        enable_progress_bar=bar,
        enable_model_summary=False,
    )
    return trainer, checkpoints, last


def _tested(trainer: L.Trainer, task: SegmentTask, datamodule: L.LightningDataModule, checkpoint: str) -> Dict:
    """The test metrics of one checkpoint, without the "test/" prefix."""
    metrics = trainer.test(task, datamodule=datamodule, ckpt_path=checkpoint, verbose=False, weights_only=True)[0]
    return {key.removeprefix("test/"): value for key, value in metrics.items()}


RUN_OUTPUTS = ("checkpoints", "tensorboard", "model", "results.json")


def prepare_output_dir(output_dir: Path, resuming: bool = False, overwrite: bool = False) -> None:
    """Refuses to write a run into a directory that holds another run's outputs, unless it resumes that run or
    ``overwrite`` asks to delete them first (so that files of two runs never mix).

    Raises:
        FileExistsError: naming the directory, what it holds and the two ways on.
    """
    present = [name for name in RUN_OUTPUTS if (output_dir / name).exists()]
    if not present or resuming:
        return
    if not overwrite:
        raise FileExistsError(
            f"--output-dir {output_dir} already holds a run ({', '.join(present)}); pass --resume-from "
            f"{output_dir / 'checkpoints' / 'last.ckpt'} to continue it, --overwrite to replace it, or another "
            "--output-dir"
        )
    for name in present:
        path = output_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def check_checkpoint(path: str, option: str) -> None:
    """Refuses a checkpoint that holds anything but tensors and plain containers, before Lightning reads it.

    Every checkpoint these commands write holds only tensors, numbers, strings and containers of them, so it loads
    with ``torch.load(..., weights_only=True)``; a file that needs more (a pickled object, which could run code when
    loaded) is refused without running anything.

    Raises:
        FileNotFoundError: naming the option when the file does not exist.
        ValueError: naming the option and the file when it holds other objects.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"{option} {path}: no such file")
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as error:
        reason = str(error).splitlines()[-1] if str(error) else type(error).__name__
        raise ValueError(
            f"{option} {path} holds objects other than tensors and plain containers, and loading them could run "
            f"code; it is refused ({reason})"
        ) from None


def load_checkpoint(cls: type, settings: Any) -> SegmentTask:
    """The task module of ``settings.checkpoint`` (refused unless it holds only tensors and plain values), after
    seeding with ``settings.seed`` and setting ``settings.threads``."""
    quiet_lightning()
    set_threads(settings.threads)
    L.seed_everything(settings.seed, verbose=False)
    check_checkpoint(settings.checkpoint, "--checkpoint")
    return cls.load_from_checkpoint(settings.checkpoint, map_location="cpu", weights_only=True)


def test_checkpoint(cls: type, settings: Any, make_dataset: Callable[[SegmentTask], Any]) -> Dict[str, float]:
    """The test metrics of ``settings.checkpoint`` on the dataset ``make_dataset(task)`` builds, batched by
    ``settings.batch_size`` (under DDP each example read once), as {"test/<metric>": value}."""
    task = load_checkpoint(cls, settings)
    dataset = make_dataset(task)
    trainer = evaluation_trainer(settings)
    collate = getattr(dataset, "collate", None)
    loader = split_loader(trainer, dataset, settings.batch_size, False, collate_fn=collate)
    return trainer.test(task, dataloaders=loader, verbose=False)[0]


def evaluation_trainer(settings: HardwareSettings) -> L.Trainer:
    """A Trainer that only tests: no logger, no checkpoints, no progress bar."""
    return L.Trainer(
        accelerator=settings.accelerator,
        devices=parse_devices(settings.devices),
        num_nodes=settings.num_nodes,
        strategy=settings.strategy,
        precision=settings.precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def load_model_config(settings: TrainSettings, **fields: Any) -> PretrainedConfig:
    """The model configuration of ``--model-config`` with ``fields`` and then ``--config-override`` applied.

    Raises:
        ValueError: when an override names a field the configuration does not have, when a field is out of
            range (the configuration's own checks), or when ``--segment-length`` exceeds the positions the model
            has (``n_positions`` or ``max_segment_length``).
    """
    overrides = dict(settings.config_override)
    config = AutoConfig.from_pretrained(settings.model_config)
    unknown = sorted(field for field in overrides if not hasattr(config, field))
    if unknown:
        raise ValueError(f"--config-override names fields {unknown} that {config.model_type} configurations lack")
    config = AutoConfig.for_model(**{**config.to_dict(), **fields, **overrides})  # validated on construction
    positions = getattr(config, "n_positions", None) or getattr(config, "max_segment_length", None)
    if positions is not None and settings.segment_length > positions:
        raise ValueError(f"--segment-length {settings.segment_length} exceeds the model's {positions} positions")
    return config


def train_and_test(
    settings: TrainSettings,
    make_task: Callable[[], SegmentTask],
    datamodule: L.LightningDataModule,
    extra_results: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Seeds, trains, tests the final weights and the best checkpoint and writes ``<output-dir>/results.json``.

    Args:
        settings: the run's settings.
        make_task: builds the task module (called after seeding, so initial weights follow ``--seed``).
        datamodule: the task's data.
        extra_results: more fields for results.json.

    Returns:
        results.json's contents: "test" (the metrics of the weights at the end of training, the headline figure),
        "test_best" (the best-on-dev checkpoint's), "parameters" and "token_parameters" (see
        ``experiment.models.capacity``), "steps", "mean_step_seconds", "threads", the
        paths and the settings. Every process returns them; only rank 0 writes.
    """
    quiet_lightning()
    set_threads(settings.threads)
    output_dir = Path(settings.output_dir)
    for name in ("checkpoint_every_minutes", "checkpoint_every_steps"):
        if getattr(settings, name) < 0:
            raise ValueError(f"{flag(name)} must be at least 0 (0: never), got {getattr(settings, name)}")
    if settings.resume_from:
        check_checkpoint(settings.resume_from, "--resume-from")
    if os.environ.get("LOCAL_RANK", "0") == "0":  # a DDP child process finds the directory its parent prepared
        prepare_output_dir(output_dir, resuming=bool(settings.resume_from), overwrite=settings.overwrite)
    L.seed_everything(settings.seed, workers=True, verbose=False)
    task = make_task()
    if settings.eval_only:
        return _test_weights(settings, task, datamodule, extra_results)
    if settings.gpt2_checkpoint:
        copied = copy_gpt2_weights(task.model, settings.gpt2_checkpoint)
        print(f"copied {len(copied)} parameters from {settings.gpt2_checkpoint}")
    timer = StepTimer()
    trainer, checkpoints, last = build_trainer(settings, task, [timer])
    trainer.fit(task, datamodule=datamodule, ckpt_path=settings.resume_from, weights_only=True)
    final_checkpoint = _final_checkpoint(trainer, last, output_dir)
    results = {
        "model_type": task.model.config.model_type,
        **parameter_counts(task.model),  # "parameters" and "token_parameters"
        "steps": trainer.global_step,
        "mean_step_seconds": timer.mean_seconds,
        "threads": torch.get_num_threads(),
        "test": _tested(trainer, task, datamodule, final_checkpoint),
        "test_best": _tested(trainer, task, datamodule, checkpoints.best_model_path or final_checkpoint),
        "last_checkpoint": final_checkpoint,
        "best_checkpoint": checkpoints.best_model_path,
        "output_dir": str(output_dir),
        **(extra_results or {}),
        "settings": settings.to_dict(),
    }
    if trainer.is_global_zero:
        task.model.save_pretrained(output_dir / "model")
        write_results(output_dir / "results.json", results)
    results["rank_zero"] = trainer.is_global_zero
    return results


def _test_weights(
    settings: TrainSettings, task: SegmentTask, datamodule: L.LightningDataModule, extra_results: Optional[Dict]
) -> Dict[str, Any]:
    """Tests the weights of the checkpoint ``settings.eval_only`` in ``task``, built from this run's configuration
    (its ``--config-override`` applied, e.g. ``memoria_reset_period=1`` erases Memoria's memory every segment),
    without training; writes results.json as :func:`train_and_test` does ("test" and "test_best" are the same,
    "mean_step_seconds" is NaN). The memory saved with the weights is left out (each test batch starts empty)."""
    checkpoint = load_weights(task, settings.eval_only, "--eval-only")
    trainer = evaluation_trainer(settings)
    metrics = trainer.test(task, datamodule=datamodule, verbose=False)[0]
    test = {key.removeprefix("test/"): value for key, value in metrics.items()}
    results = {
        "model_type": task.model.config.model_type,
        **parameter_counts(task.model),  # "parameters" and "token_parameters"
        "steps": checkpoint.get("global_step", 0),
        "mean_step_seconds": float("nan"),
        "threads": torch.get_num_threads(),
        "test": test,
        "test_best": test,
        "evaluated_checkpoint": settings.eval_only,
        "output_dir": settings.output_dir,
        **(extra_results or {}),
        "settings": settings.to_dict(),
    }
    if trainer.is_global_zero:
        write_results(Path(settings.output_dir) / "results.json", results)
    results["rank_zero"] = trainer.is_global_zero
    return results


def load_weights(task: SegmentTask, path: str, option: str = "--checkpoint") -> Dict[str, Any]:
    """Loads the weights of the Lightning checkpoint ``path`` into ``task`` (refused unless the file holds only
    tensors and plain values), leaving out the memory saved with them: ``task``'s memory is emptied, and may have
    other settings than the saved one's. Returns the checkpoint.

    Raises:
        FileNotFoundError, ValueError: see :func:`check_checkpoint`; RuntimeError: when the weights do not fit.
    """
    from .models.with_memoria import MEMORY_STATE_PATTERN

    check_checkpoint(path, option)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = {key: value for key, value in checkpoint["state_dict"].items() if not re.search(MEMORY_STATE_PATTERN, key)}
    task.load_state_dict(state)
    return checkpoint


def _final_checkpoint(trainer: L.Trainer, last: LastCheckpoint, output_dir: Path) -> str:
    """``checkpoints/final.ckpt``, the weights at the end of training with the full state (optimiser and loops
    too, so that it can be resumed). When ``last.ckpt`` holds the last step, no weights are written again: final.ckpt
    links to the best checkpoint last.ckpt links to, or last.ckpt's file becomes final.ckpt and last.ckpt links to
    it. Else it is written now."""
    final = output_dir / "checkpoints" / "final.ckpt"
    if last.saved_step != trainer.global_step or not last.path.exists():
        trainer.save_checkpoint(final)
        return str(final)
    if trainer.is_global_zero:
        final.unlink(missing_ok=True)
        if last.path.is_symlink():
            final.symlink_to(os.readlink(last.path))
        else:
            os.replace(last.path, final)
            partial = last.path.with_name(last.path.name + ".partial")
            partial.unlink(missing_ok=True)
            partial.symlink_to(final.name)
            os.replace(partial, last.path)
    trainer.strategy.barrier()
    return str(final)


def write_results(path: Path, results: Any) -> None:
    """Writes ``results`` as indented JSON, creating the directory; atomically (a temporary file, then a rename),
    so that a killed run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        f.write(json.dumps(results, indent=2) + "\n")


def saved_results(output_dir: Path, settings: TrainSettings, keys: Sequence[str]) -> Optional[Dict[str, Any]]:
    """The results.json in ``output_dir`` if that run had the same settings ``keys`` as ``settings``, else None.

    Paths are compared resolved (so relative and absolute spellings of one path agree); a run written before
    ``config_override`` became a dict (a list of FIELD=VALUE strings) reads back too.
    """
    path = Path(output_dir) / "results.json"
    if not path.exists():
        return None
    saved = read_results([path])[0]
    recorded = dict(saved.get("settings", {}))
    if isinstance(recorded.get("config_override"), list):
        recorded["config_override"] = parse_overrides(recorded["config_override"])
    current = settings.to_dict()

    def same(key: str) -> bool:
        old, new = recorded.get(key), current.get(key)
        if isinstance(old, str) and isinstance(new, str) and (os.sep in old or os.sep in new):
            return Path(old).resolve() == Path(new).resolve()
        return old == new

    return saved if all(same(key) for key in keys) else None


def read_results(paths: List[Path]) -> List[Dict[str, Any]]:
    """Reads results.json files."""
    return [json.loads(Path(path).read_text()) for path in paths]
