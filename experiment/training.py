"""Training and testing any task with Lightning: Trainer, checkpoints, TensorBoard and results.json.

A task's train script parses the arguments of ``experiment.cli`` and calls :func:`train_and_test` with its task
module and data module; everything else (seeding, callbacks, the Trainer, the tests of the last and the best
checkpoint, the model in Hugging Face format, results.json) is done here.
"""

import argparse
import json
import logging
import pickle
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from transformers import AutoConfig, PretrainedConfig
from transformers.utils import logging as transformers_logging

from .cli import interval, namespace_to_dict, parse_devices, parse_overrides, show_progress_bar
from .models.gpt2_weights import copy_gpt2_weights
from .tasks.base import SegmentTask
from .tasks.timing import StepTimer

QUIET_WARNINGS = (
    ".*does not have many workers.*",
    ".*The number of training batches .* is smaller than the logging interval.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
)


def quiet_lightning() -> None:
    """Silences Lightning's tips and hardware banners, transformers' progress bars for saving and loading a small
    model, and the warnings that do not apply to these runs."""
    transformers_logging.disable_progress_bar()
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


def build_trainer(
    args: argparse.Namespace, task: SegmentTask, extra_callbacks: Sequence[Callback] = ()
) -> Tuple[L.Trainer, ModelCheckpoint]:
    """The Trainer for ``args`` (see ``experiment.cli``) and its checkpoint callback.

    Checkpoints go to ``<output-dir>/checkpoints`` (the best by ``task.monitor``, and ``last.ckpt`` at each
    validation, for resuming), TensorBoard logs to ``<output-dir>/tensorboard``. The weights at the end of training
    are saved by :func:`train_and_test` as ``final.ckpt``.
    """
    output_dir = Path(args.output_dir)
    checkpoints = ModelCheckpoint(
        dirpath=output_dir / "checkpoints",
        filename="best-{step}",
        monitor=task.monitor,
        mode=task.monitor_mode,
        save_last=True,
    )
    trainer = L.Trainer(
        default_root_dir=output_dir,
        logger=TensorBoardLogger(output_dir, name="tensorboard"),
        callbacks=[checkpoints, LearningRateMonitor("step"), *extra_callbacks],
        accelerator=args.accelerator,
        devices=parse_devices(args.devices),
        num_nodes=args.num_nodes,
        strategy=args.strategy,
        precision=args.precision,
        max_steps=args.max_steps,
        max_epochs=args.epochs if args.max_steps < 0 else None,
        gradient_clip_val=args.gradient_clip or None,
        val_check_interval=interval(args.val_check_interval),
        limit_val_batches=interval(args.limit_val_batches),
        log_every_n_steps=10,
        enable_progress_bar=show_progress_bar(args.no_progress_bar),
        enable_model_summary=False,
    )
    return trainer, checkpoints


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


def load_model_config(args: argparse.Namespace, **fields: Any) -> PretrainedConfig:
    """The model configuration of ``--model-config`` with ``fields`` and then ``--config-override`` applied.

    Raises:
        ValueError: when an override names a field the configuration does not have, when a field is out of
            range (the configuration's own checks), or when ``--segment-length`` exceeds the positions the model
            has (``n_positions`` or ``max_segment_length``).
    """
    overrides = parse_overrides(getattr(args, "config_override", []) or [])
    config = AutoConfig.from_pretrained(args.model_config)
    unknown = sorted(field for field in overrides if not hasattr(config, field))
    if unknown:
        raise ValueError(f"--config-override names fields {unknown} that {config.model_type} configurations lack")
    config = AutoConfig.for_model(**{**config.to_dict(), **fields, **overrides})  # validated on construction
    positions = getattr(config, "n_positions", None) or getattr(config, "max_segment_length", None)
    if positions is not None and args.segment_length > positions:
        raise ValueError(f"--segment-length {args.segment_length} exceeds the model's {positions} positions")
    return config


def train_and_test(
    args: argparse.Namespace,
    make_task: Callable[[], SegmentTask],
    datamodule: L.LightningDataModule,
    extra_results: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Seeds, trains, tests the last and the best checkpoints and writes ``<output-dir>/results.json``.

    Args:
        args: the parsed arguments of ``experiment.cli``'s groups.
        make_task: builds the task module (called after seeding, so initial weights follow ``--seed``).
        datamodule: the task's data.
        extra_results: more fields for results.json.

    Returns:
        results.json's contents: "test" (the metrics of the weights at the end of training, the headline figure), "test_best" (the
        best-on-dev checkpoint's), "parameters", "steps", "mean_step_seconds", the paths and the settings.
    """
    quiet_lightning()
    output_dir = Path(args.output_dir)
    prepare_output_dir(output_dir, resuming=bool(args.resume_from), overwrite=getattr(args, "overwrite", False))
    L.seed_everything(args.seed, workers=True, verbose=False)
    task = make_task()
    if getattr(args, "gpt2_checkpoint", None):
        copied = copy_gpt2_weights(task.model, args.gpt2_checkpoint)
        print(f"copied {len(copied)} parameters from {args.gpt2_checkpoint}")
    timer = StepTimer()
    trainer, checkpoints = build_trainer(args, task, [timer])
    if args.resume_from:
        check_checkpoint(args.resume_from, "--resume-from")
    trainer.fit(task, datamodule=datamodule, ckpt_path=args.resume_from, weights_only=True)
    # ModelCheckpoint writes last.ckpt when it validates, so it holds the final weights only when training ends on
    # a validation: save those explicitly and test them.
    final_checkpoint = str(output_dir / "checkpoints" / "final.ckpt")
    trainer.save_checkpoint(final_checkpoint)  # the full state (optimiser and loops too), so that it can be resumed
    task.model.save_pretrained(output_dir / "model")
    results = {
        "model_type": task.model.config.model_type,
        "parameters": sum(p.numel() for p in task.model.parameters()),
        "steps": trainer.global_step,
        "mean_step_seconds": timer.mean_seconds,
        "test": _tested(trainer, task, datamodule, final_checkpoint),
        "test_best": _tested(trainer, task, datamodule, checkpoints.best_model_path or final_checkpoint),
        "last_checkpoint": final_checkpoint,
        "best_checkpoint": checkpoints.best_model_path,
        "output_dir": str(output_dir),
        **(extra_results or {}),
        "settings": namespace_to_dict(args),
    }
    write_results(output_dir / "results.json", results)
    return results


def write_results(path: Path, results: Dict[str, Any]) -> None:
    """Writes ``results`` as indented JSON, creating the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def saved_results(
    output_dir: Path, train_args: argparse.Namespace, settings: Sequence[str], path_settings: Sequence[str] = ()
) -> Optional[Dict[str, Any]]:
    """The results.json in ``output_dir`` if that run had the same ``settings`` as ``train_args``, else None.

    Paths are compared as strings, those named in ``path_settings`` resolved (so relative and absolute spellings
    of one path agree).
    """
    path = Path(output_dir) / "results.json"
    if not path.exists():
        return None
    saved = read_results([path])[0]
    recorded = saved.get("settings", {})

    def same(key: str) -> bool:
        old, new = recorded.get(key), getattr(train_args, key)
        new = str(new) if isinstance(new, Path) else new
        if key in path_settings and isinstance(old, str) and isinstance(new, str):
            return Path(old).resolve() == Path(new).resolve()
        return old == new

    return saved if all(same(key) for key in settings) else None


def read_results(paths: List[Path]) -> List[Dict[str, Any]]:
    """Reads results.json files."""
    return [json.loads(Path(path).read_text()) for path in paths]
