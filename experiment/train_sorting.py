"""Trains a segment-recurrent model (Memoria Transformer or GPT-2 baseline) on a sorting-data file.

Writes TensorBoard logs, checkpoints (best by dev accuracy, and last), the final model in Hugging Face format
and results.json (test accuracy of the best checkpoint, mean training-step time) under --output-dir.

Example:
    python -m experiment.train_sorting --data data/sort-1k.pt --model-config experiment/configs/memoria-gpt2-sort.json \\
        --output-dir outputs/memoria-sort-1k --segment-length 256 --devices 4 --strategy ddp --precision bf16-mixed
"""

import argparse
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from .longseq_formers.model import copy_gpt2_weights, load_config
from .longseq_formers.task import SortingDataModule, SortingTask, StepTimer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data and model")
    data.add_argument("--data", required=True, help="file written by experiment.make_sorting_data")
    data.add_argument("--model-config", required=True, help="model configuration JSON (see experiment/configs)")
    data.add_argument("--gpt2-checkpoint", help="local GPT-2 directory to copy starting weights from")
    data.add_argument("--output-dir", required=True)
    data.add_argument("--segment-length", type=int, default=64)
    training = parser.add_argument_group("training")
    training.add_argument("--batch-size", type=int, default=32)
    training.add_argument("--eval-batch-size", type=int)
    training.add_argument("--learning-rate", type=float, default=1e-3)
    training.add_argument("--warmup-steps", type=int, default=50)
    training.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (-1: --epochs)")
    training.add_argument("--epochs", type=int, default=1)
    training.add_argument("--gradient-clip", type=float, default=1.0, help="clip gradient norm (0: no clipping)")
    training.add_argument("--val-check-interval", type=float, default=1.0, help="steps (int) or epoch fraction")
    training.add_argument("--limit-val-batches", type=float, default=1.0)
    training.add_argument("--seed", type=int, default=0)
    training.add_argument("--resume-from", help="Lightning checkpoint to resume training from")
    hardware = parser.add_argument_group("hardware")
    hardware.add_argument("--accelerator", default="auto")
    hardware.add_argument("--devices", default="auto", help="number of devices or 'auto'")
    hardware.add_argument("--num-nodes", type=int, default=1)
    hardware.add_argument("--strategy", default="auto", help="e.g. ddp (ddp_find_unused_parameters_true for 1 segment)")
    hardware.add_argument("--precision", default="32-true", help="e.g. bf16-mixed")
    hardware.add_argument("--num-workers", type=int, default=0)
    hardware.add_argument("--no-progress-bar", action="store_true")
    return parser


def train(args: argparse.Namespace) -> Dict[str, Any]:
    """Trains, tests the best checkpoint and writes results.json; returns its contents."""
    L.seed_everything(args.seed, workers=True)
    output_dir = Path(args.output_dir)
    datamodule = SortingDataModule(args.data, args.batch_size, args.eval_batch_size, args.num_workers)
    config = load_config(args.model_config, vocab_size=datamodule.model_vocab_size)
    if args.segment_length > config.n_positions:
        raise ValueError(f"--segment-length {args.segment_length} exceeds the model's n_positions {config.n_positions}")
    task = SortingTask(config.to_dict(), args.segment_length, args.learning_rate, args.warmup_steps)
    if args.gpt2_checkpoint:
        copied = copy_gpt2_weights(task.model, args.gpt2_checkpoint)
        print(f"copied {len(copied)} parameters from {args.gpt2_checkpoint}")

    checkpoints = ModelCheckpoint(
        dirpath=output_dir / "checkpoints",
        filename="best-{step}",
        monitor="val/accuracy",
        mode="max",
        save_last=True,
    )
    timer = StepTimer()
    devices = int(args.devices) if str(args.devices).isdigit() else args.devices
    trainer = L.Trainer(
        default_root_dir=output_dir,
        logger=TensorBoardLogger(output_dir, name="tensorboard"),
        callbacks=[checkpoints, timer, LearningRateMonitor("step")],
        accelerator=args.accelerator,
        devices=devices,
        num_nodes=args.num_nodes,
        strategy=args.strategy,
        precision=args.precision,
        max_steps=args.max_steps,
        max_epochs=args.epochs if args.max_steps < 0 else None,
        gradient_clip_val=args.gradient_clip or None,
        val_check_interval=args.val_check_interval if args.val_check_interval <= 1 else int(args.val_check_interval),
        limit_val_batches=args.limit_val_batches,
        log_every_n_steps=10,
        enable_progress_bar=not args.no_progress_bar,
    )
    trainer.fit(task, datamodule=datamodule, ckpt_path=args.resume_from)
    task.model.save_pretrained(output_dir / "model")
    tested = trainer.test(task, datamodule=datamodule, ckpt_path=checkpoints.best_model_path or None)[0]
    results = {
        "model_type": config.model_type,
        "parameters": sum(p.numel() for p in task.model.parameters()),
        "test_accuracy": tested["test/accuracy"],
        "test_loss": tested["test/loss"],
        "best_checkpoint": checkpoints.best_model_path,
        "mean_step_seconds": timer.mean_seconds,
        "steps": trainer.global_step,
        "settings": {key: value for key, value in vars(args).items()},
    }
    (output_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def main(argv: Optional[List[str]] = None) -> None:
    results = train(build_parser().parse_args(argv))
    print(f"test accuracy {results['test_accuracy']:.4f}, mean step {results['mean_step_seconds']:.3f} s")


if __name__ == "__main__":
    main()
