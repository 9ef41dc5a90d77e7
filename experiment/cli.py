"""Command-line helpers shared by every task's scripts; nothing heavy is imported here, so ``--help`` is fast.

A task's train script builds its parser with :func:`make_parser`, adds its own data arguments, then
:func:`add_model_arguments`, :func:`add_training_arguments` (with the task's defaults) and
:func:`add_hardware_arguments`; ``experiment.training.train_and_test`` reads them all.
"""

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional, Union


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every argument's default and keeps the description's line breaks (its examples)."""


def make_parser(description: Optional[str]) -> argparse.ArgumentParser:
    """An argument parser whose ``--help`` shows the description as written and every default."""
    return argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)


def add_model_arguments(parser: argparse.ArgumentParser, default_config: Optional[str] = None) -> None:
    """--model-config, --output-dir, --segment-length, --gpt2-checkpoint, --config-override."""
    group = parser.add_argument_group("model and outputs")
    group.add_argument(
        "--model-config",
        required=default_config is None,
        default=default_config,
        help="model configuration JSON with its model_type (see experiment/configs)",
    )
    group.add_argument("--output-dir", required=True, help="where checkpoints, logs, the model and results.json go")
    group.add_argument("--segment-length", type=int, default=64, help="tokens per segment")
    group.add_argument("--gpt2-checkpoint", help="local GPT-2 directory to copy starting weights from")
    group.add_argument(
        "--config-override",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="set a field of the model configuration (VALUE read as JSON, else as a string); repeatable, "
        "e.g. memoria_reset_period=1 for the erase-every-segment ablation",
    )


def add_training_arguments(
    parser: argparse.ArgumentParser,
    learning_rate: float = 2e-4,
    batch_size: int = 32,
    eval_batch_size: int = 1,
    warmup_ratio: float = 0.06,
    seed: int = 42,
) -> None:
    """Optimisation, schedule, validation and seed; the defaults are the paper's unless a task passes its own."""
    group = parser.add_argument_group("training")
    group.add_argument("--batch-size", type=int, default=batch_size)
    group.add_argument("--eval-batch-size", type=int, default=eval_batch_size, help="dev and test batch size")
    group.add_argument("--learning-rate", type=float, default=learning_rate, help="AdamW's peak learning rate")
    group.add_argument(
        "--warmup-ratio", type=float, default=warmup_ratio, help="fraction of steps of linear warm-up from 0"
    )
    group.add_argument("--weight-decay", type=float, default=0.0, help="AdamW's weight decay")
    group.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (-1: run --epochs)")
    group.add_argument("--epochs", type=int, default=1)
    group.add_argument("--gradient-clip", type=float, default=1.0, help="clip the gradient norm (0: no clipping)")
    group.add_argument(
        "--val-check-interval", type=float, default=1.0, help="validate every N steps (N > 1) or epoch fraction"
    )
    group.add_argument("--limit-val-batches", type=float, default=1.0, help="dev batches (N > 1) or fraction")
    group.add_argument("--seed", type=int, default=seed)
    group.add_argument(
        "--resume-from", help="Lightning checkpoint to resume training from (its run's --output-dir may be reused)"
    )
    group.add_argument(
        "--overwrite", action="store_true", help="delete the outputs of an earlier run in --output-dir first"
    )


def add_hardware_arguments(parser: argparse.ArgumentParser) -> None:
    """--accelerator, --devices, --num-nodes, --strategy, --precision, --num-workers, --no-progress-bar."""
    group = parser.add_argument_group("hardware and display")
    group.add_argument("--accelerator", default="auto", help="cpu, gpu, auto, ...")
    group.add_argument("--devices", default="auto", help="number of devices or 'auto'")
    group.add_argument("--num-nodes", type=int, default=1)
    group.add_argument("--strategy", default="auto", help="e.g. ddp")
    group.add_argument("--precision", default="32-true", help="e.g. bf16-mixed")
    group.add_argument("--num-workers", type=int, default=0, help="data-loader worker processes")
    group.add_argument(
        "--no-progress-bar",
        action="store_true",
        help="hide the progress bar (it is also hidden when stderr is not a terminal or CI is set)",
    )


def parse_overrides(overrides: List[str]) -> Dict[str, Any]:
    """``FIELD=VALUE`` strings as a dict; each VALUE is read as JSON (1, 0.5, true, null, "x") or else kept as text.

    Raises:
        ValueError: naming the override when it has no ``=`` or an empty field.
    """
    fields: Dict[str, Any] = {}
    for override in overrides:
        field, equals, value = override.partition("=")
        if not equals or not field.strip():
            raise ValueError(f"--config-override must look like FIELD=VALUE, got {override!r}")
        try:
            fields[field.strip()] = json.loads(value)
        except json.JSONDecodeError:
            fields[field.strip()] = value
    return fields


def parse_devices(value: Union[str, int]) -> Union[str, int]:
    """``--devices`` as Lightning takes it: an int when it is a number, else the string (e.g. "auto")."""
    return int(value) if str(value).isdigit() else value


def show_progress_bar(no_progress_bar: bool = False) -> bool:
    """Whether to draw a progress bar: not when asked not to, when stderr is not a terminal, or under CI."""
    return not no_progress_bar and sys.stderr.isatty() and not os.environ.get("CI")


def interval(value: float) -> Union[int, float]:
    """A Lightning interval: a count when above 1, else a fraction of an epoch."""
    return int(value) if value > 1 else value


def namespace_to_dict(args: argparse.Namespace) -> dict:
    """The arguments as a JSON-ready dict (paths as strings)."""
    plain = (int, float, str, bool, type(None), list)
    return {key: value if isinstance(value, plain) else str(value) for key, value in vars(args).items()}


def override_arguments(overrides: Dict[str, Any]) -> List[str]:
    """``--config-override=FIELD=VALUE`` arguments, each value written as JSON so that :func:`parse_overrides`
    reads back the same type (False -> false, "renormalised" -> a string)."""
    return [f"--config-override={field}={json.dumps(value)}" for field, value in overrides.items()]


def arguments(**values: Any) -> list:
    """``--key=value`` arguments from keyword arguments (underscores become dashes; True becomes a bare flag)."""
    result = []
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            result.append(flag)
        elif value is not None and value is not False:
            result.append(f"{flag}={value}")
    return result
