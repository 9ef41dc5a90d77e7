"""Typed settings: each command's settings are a dataclass, filled from its defaults, then a JSON file, then the
command line, and passed in process to the code that uses them under the same name.

A field ``segment_length`` is the option ``--segment-length``, the JSON key ``"segment_length"`` and the attribute
``settings.segment_length`` that the training code reads; a reader follows it with grep. A task's settings class
subclasses :class:`TrainSettings` (or :class:`Settings`) and may change defaults in ``DEFAULTS`` without declaring a
field again. Nothing heavy is imported here, so ``--help`` is fast.
"""

import argparse
import dataclasses
import json
import os
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Tuple, Type, TypeVar, Union

SettingsType = TypeVar("SettingsType", bound="Settings")


def option(default: Any = None, help: str = "", choices: Optional[tuple] = None, required: bool = False) -> Any:
    """A settings field: its default, its help text, its allowed values and whether it must be given."""
    metadata = {"help": help, "choices": choices, "required": required}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class Settings:
    """Base of every command's settings: ``DEFAULTS`` overrides field defaults for a task without redefining them
    (a class's ``DEFAULTS`` over those of the classes it derives from)."""

    DEFAULTS: ClassVar[Dict[str, Any]] = {}
    HIDDEN: ClassVar[Tuple[str, ...]] = ()  # fields the command fills itself: no option, not required

    @classmethod
    def defaults(cls) -> Dict[str, Any]:
        """The ``DEFAULTS`` of ``cls`` and of the classes it derives from (the nearest wins), for its fields."""
        names = {f.name for f in dataclasses.fields(cls)}
        merged: Dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            merged.update(vars(klass).get("DEFAULTS", {}))
        return {name: value for name, value in merged.items() if name in names}

    @classmethod
    def create(cls: Type[SettingsType], file: Optional[str] = None, **values: Any) -> SettingsType:
        """The settings from the defaults, then the JSON ``file`` (if any), then ``values``.

        Raises:
            ValueError: naming the keys that are not fields, or the required fields that are missing.
        """
        from_file = json.loads(Path(file).read_text()) if file else {}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(from_file) - names) + sorted(set(values) - names)
        if unknown:
            raise ValueError(f"{cls.__name__} has no settings {unknown}; it has {sorted(names)}")
        merged = {**cls.defaults(), **from_file, **values}
        missing = [
            f.name
            for f in dataclasses.fields(cls)
            if f.metadata.get("required") and f.name not in cls.HIDDEN and merged.get(f.name) is None
        ]
        if missing:
            raise ValueError(f"missing settings: {', '.join(flag(name) for name in missing)}")
        return cls(**merged)

    def to_dict(self) -> Dict[str, Any]:
        """The settings as JSON-ready values (paths as strings)."""
        return {
            key: str(value) if isinstance(value, Path) else value for key, value in dataclasses.asdict(self).items()
        }

    def replace(self: SettingsType, **changes: Any) -> SettingsType:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)


# the training settings two runs of a comparison share when they are the same run (with the task's data settings)
RUN_IDENTITY = ("config_override", "segment_length", "batch_size", "learning_rate", "warmup_ratio", "max_steps", "seed")


@dataclass
class HardwareSettings(Settings):
    """Where and how a run executes, and what it prints."""

    accelerator: str = option("auto", "cpu, gpu, auto, ...")
    devices: str = option("auto", "number of devices or 'auto'")
    num_nodes: int = option(1, "machines")
    strategy: str = option("auto", "e.g. ddp or ddp_spawn")
    precision: str = option("32-true", "e.g. bf16-mixed")
    num_workers: int = option(0, "data-loader worker processes")
    threads: Optional[int] = option(None, "CPU threads per process (torch.set_num_threads); None keeps torch's")
    no_progress_bar: bool = option(False, "hide the progress bar (hidden anyway without a terminal or under CI)")
    progress_every: int = option(50, "without a progress bar, print a progress line every N training steps")


@dataclass
class TrainSettings(HardwareSettings):
    """Model, outputs, optimisation and schedule of one training run; a task adds its data settings."""

    model_config: Optional[str] = option(None, "model configuration JSON with its model_type", required=True)
    output_dir: Optional[str] = option(None, "where checkpoints, logs, the model and results.json go", required=True)
    segment_length: int = option(64, "tokens per segment")
    config_override: Dict[str, Any] = option(
        {}, "FIELD=VALUE: set a model configuration field (VALUE read as JSON, else text); repeatable"
    )
    gpt2_checkpoint: Optional[str] = option(None, "local GPT-2 directory to copy starting weights from")
    batch_size: int = option(32, "training batch size")
    eval_batch_size: int = option(32, "dev and test batch size")
    learning_rate: float = option(2e-4, "AdamW's peak learning rate")
    warmup_ratio: float = option(0.06, "fraction of steps of linear warm-up from 0")
    weight_decay: float = option(0.0, "AdamW's weight decay")
    max_steps: int = option(-1, "stop after this many steps (-1: run --epochs)")
    epochs: int = option(1, "epochs when --max-steps is -1")
    gradient_clip: float = option(1.0, "clip the gradient norm (0: no clipping)")
    val_check_interval: float = option(1.0, "validate every N steps (N > 1) or epoch fraction")
    limit_val_batches: float = option(1.0, "dev batches per validation (N > 1) or fraction")
    seed: int = option(42, "seed of the weights, the data order and Memoria's ties")
    resume_from: Optional[str] = option(None, "Lightning checkpoint to resume from (its --output-dir may be reused)")
    overwrite: bool = option(False, "delete an earlier run's outputs in --output-dir first")
    save_top_k: int = option(1, "best-on-dev checkpoints kept (0: none; last.ckpt and final.ckpt are always kept)")
    checkpoint_every_minutes: float = option(5.0, "also write last.ckpt after this many minutes of training (0: never)")
    checkpoint_every_steps: int = option(0, "also write last.ckpt every this many steps (0: never)")
    eval_only: Optional[str] = option(
        None, "test this checkpoint's weights without training, built with --model-config and --config-override"
    )

    def optimisation(self) -> Dict[str, float]:
        """The task's optimisation arguments (``SegmentTask``'s): learning_rate, warmup_ratio and weight_decay."""
        return dict(learning_rate=self.learning_rate, warmup_ratio=self.warmup_ratio, weight_decay=self.weight_decay)


@dataclass
class EvalSettings(HardwareSettings):
    """The checkpoint to evaluate, the batch size and the seed."""

    DEFAULTS = {"devices": "1"}

    checkpoint: str = option(None, "Lightning checkpoint written by the task's train", required=True)
    batch_size: int = option(32, "evaluation batch size")
    seed: int = option(42, "seeds the models' random choices (Memoria's ties)")


@dataclass
class CompareSettings(Settings):
    """The grid of a comparison: models x seeds (x the task's settings), written under one directory.

    A task's comparison settings derive from this class and its training settings; every run is on one CPU device
    and thread unless they say otherwise."""

    DEFAULTS = {"accelerator": "cpu", "devices": "1", "threads": 1}
    # the training fields the comparison sets for each run (a task's comparison adds its data fields)
    HIDDEN = ("model_config", "config_override", "gpt2_checkpoint", "resume_from", "overwrite", "seed", "eval_only")

    output_dir: str = option("outputs/compare", "where every run, comparison.json and the table go")
    models: List[str] = option([], "models to compare, MODEL or MODEL:ABLATION; none: the task's default list")
    seeds: List[int] = option([42, 43, 44], "training seeds")
    quick: bool = option(False, "the task's quick settings: a smoke test of the pipeline in minutes, not results")
    retrain: bool = option(False, "train again even where a finished run's results.json exists")
    one_seed: List[str] = option([], "models (MODEL or MODEL:ABLATION) run with the first of --seeds only")


def flag(name: str) -> str:
    """The command-line option of field ``name``."""
    return "--" + name.replace("_", "-")


class _Overrides(argparse.Action):
    """Collects repeated ``FIELD=VALUE`` into a dict (VALUE read as JSON, else kept as text)."""

    def __call__(self, parser, namespace, value, option_string=None):
        fields = dict(getattr(namespace, self.dest, None) or {})
        fields.update(parse_overrides([value]))
        setattr(namespace, self.dest, fields)


def parse_overrides(overrides: List[str]) -> Dict[str, Any]:
    """``FIELD=VALUE`` strings as a dict; each VALUE is read as JSON (1, 0.5, true, null, "x") or else kept as text.

    Raises:
        ValueError: naming the override when it has no ``=`` or an empty field.
    """
    fields: Dict[str, Any] = {}
    for override in overrides:
        name, equals, value = override.partition("=")
        if not equals or not name.strip():
            raise ValueError(f"an override must look like FIELD=VALUE, got {override!r}")
        try:
            fields[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            fields[name.strip()] = value
    return fields


def shown(value: Any) -> str:
    """A default as --help prints it: lists space-separated, dicts as FIELD=VALUE."""
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value)) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{key}={json.dumps(item)}" for key, item in value.items()) or "none"
    return str(value)


def add_arguments(parser: argparse.ArgumentParser, cls: Type[Settings]) -> None:
    """One option per field of ``cls``, grouped by the class that declares it, each help ending in its default.

    Options default to "not given" so that :func:`settings_from` can layer defaults < --settings file < options.
    """
    hints = typing.get_type_hints(cls)
    groups: Dict[type, argparse._ArgumentGroup] = {}
    defaults = cls.defaults()
    parser.add_argument(
        "--settings", metavar="FILE.json", help="settings as JSON {field: value}; options given here override it"
    )
    for item in dataclasses.fields(cls):
        if item.name in cls.HIDDEN:
            continue
        owner = next(klass for klass in cls.__mro__ if item.name in getattr(klass, "__annotations__", {}))
        if owner not in groups:
            groups[owner] = parser.add_argument_group((owner.__doc__ or owner.__name__).splitlines()[0].rstrip("."))
        default = defaults.get(item.name, item.default)
        if default is dataclasses.MISSING:
            default = item.default_factory()  # type: ignore[misc]
        help_text = item.metadata.get("help", "")
        help_text += " (required)" if item.metadata.get("required") else f" (default: {shown(default)})"
        kwargs: Dict[str, Any] = dict(default=argparse.SUPPRESS, help=help_text.replace("%", "%%"))
        kind = hints[item.name]
        if typing.get_origin(kind) is Union:
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        if kind is bool:
            kwargs["action"] = "store_true"
        elif typing.get_origin(kind) in (dict, Dict):
            kwargs.update(action=_Overrides, metavar="FIELD=VALUE")
        elif typing.get_origin(kind) in (list, List):
            kwargs.update(nargs="+", type=typing.get_args(kind)[0])
        else:
            kwargs["type"] = kind
        if item.metadata.get("choices"):
            kwargs["choices"] = item.metadata["choices"]
        groups[owner].add_argument(flag(item.name), **kwargs)


def settings_from(cls: Type[SettingsType], namespace: argparse.Namespace) -> SettingsType:
    """The settings of ``cls`` from parsed options (those :func:`add_arguments` made) and their --settings file."""
    values = {key: value for key, value in vars(namespace).items() if key in {f.name for f in dataclasses.fields(cls)}}
    return cls.create(file=getattr(namespace, "settings", None), **values)


def show_progress_bar(no_progress_bar: bool = False) -> bool:
    """Whether to draw a progress bar: not when asked not to, when stderr is not a terminal, or under CI."""
    return not no_progress_bar and sys.stderr.isatty() and not os.environ.get("CI")


def parse_devices(value: Union[str, int]) -> Union[str, int]:
    """``--devices`` as Lightning takes it: an int when it is a number, else the string (e.g. "auto")."""
    return int(value) if str(value).isdigit() else value


def interval(value: float) -> Union[int, float]:
    """A Lightning interval: a count when above 1, else a fraction of an epoch."""
    return int(value) if value > 1 else value
