"""Sorting: read a long sequence of symbols segment by segment, then emit the symbols by decreasing frequency.

The paper's task (its generator: random integer weights 1-9 per symbol); the one place that names its data,
models, settings, quick settings and metrics. Verbs: prepare (write a data file), train, eval, compare, analyze
(engrams of a trained Memoria model), time (interleaved step times).
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

from ..settings import RUN_IDENTITY, CompareSettings, EvalSettings, Settings, TrainSettings, option
from . import Model, Setting, Task, causal_models, memoria_ladder, model_table
from .engrams import EngramSettings, analyze
from .timing import TimeSettings, model_config_of, time_models


@dataclass
class SortingData(Settings):
    """The sorting data (the paper's generator)."""

    output: str = option(None, "JSON file to write", required=True)
    sequence_length: int = option(1000, "symbols before the separator (T)")
    vocab_size: int = option(20, "number of symbols (K)")
    num_train: int = option(10000, "training examples")
    num_dev: int = option(500, "dev examples")
    num_test: int = option(1000, "test examples")
    seed: int = option(0, "seed of the generator")
    distribution: str = option(
        "integers", "symbol weights: integers 1-9 (the paper's) or Dirichlet(1)", ("integers", "dirichlet")
    )
    tie_break: str = option("first-appearance", "order of equal counts", ("first-appearance", "symbol-id"))


@dataclass
class SortingTrain(TrainSettings):
    """The sorting data file and how its sequences are cut."""

    data: str = option(None, "JSON data file in the paper's layout (prepare sorting)", required=True)
    segment_alignment: str = option(
        "start", "cut segments from the sequence's start (the paper's) or end", ("start", "end")
    )


@dataclass
class SortingEval(EvalSettings):
    """The checkpoint and the data to evaluate it on."""

    data: str = option(None, "JSON data file in the paper's layout", required=True)
    split: str = option("test", "the split to evaluate", ("train", "dev", "test"))


@dataclass
class SortingCompare(CompareSettings, SortingTrain):
    """The sorting comparison's data: one data file per prompt length."""

    DEFAULTS = {
        "output_dir": "outputs/sorting",
        "segment_length": 32,
        "batch_size": 16,
        "eval_batch_size": 50,
        "learning_rate": 2e-3,
        "max_steps": 200,
        "val_check_interval": 100,
    }
    HIDDEN = CompareSettings.HIDDEN + ("data",)

    sequence_lengths: List[int] = option([128, 512], "symbols before the separator, one data file each")
    vocab_size: int = option(10, "number of symbols (the paper's is 20)")
    num_train: int = option(3200, "training examples")
    num_dev: int = option(100, "dev examples")
    num_test: int = option(300, "test examples")
    data_seed: int = option(0, "seed of the data generator")


@dataclass
class SortingTime(TimeSettings):
    """The generated sequences the models step on."""

    DEFAULTS = {"models": ["memoria", "memoria:erased_every_segment", "transformer"]}

    sequence_length: int = option(128, "symbols before the separator")
    vocab_size: int = option(10, "number of symbols")


@dataclass
class SortingEngrams(EngramSettings):
    """The sorting test episodes."""

    HIDDEN = ("corpus", "dataset", "tokenizer", "episode_segments")
    DEFAULTS = {"name": "sorting"}


def prepare(settings: SortingData) -> Path:
    """Writes the data file; returns its path."""
    from ..data.sorting import generate_sorting_data, save_sorting_data

    data = generate_sorting_data(
        settings.sequence_length,
        settings.vocab_size,
        settings.num_train,
        settings.num_dev,
        settings.num_test,
        settings.seed,
        distribution=settings.distribution,
        tie_break=settings.tie_break,
    )
    save_sorting_data(data, settings.output)
    print(
        f"wrote {settings.output}: {settings.num_train}/{settings.num_dev}/{settings.num_test} examples of "
        f"{settings.sequence_length} symbols from {settings.vocab_size}, seed {settings.seed}"
    )
    return Path(settings.output)


def train(settings: SortingTrain) -> Dict[str, Any]:
    """Trains, tests the final weights and the best checkpoint and writes results.json; returns its contents."""
    from ..tasks import SortingDataModule, SortingTask
    from ..training import load_model_config, train_and_test

    datamodule = SortingDataModule(settings.data, settings.batch_size, settings.eval_batch_size, settings.num_workers)
    config = load_model_config(settings, vocab_size=datamodule.model_vocab_size)

    def make_task() -> SortingTask:
        return SortingTask(
            config.to_dict(),
            settings.segment_length,
            segment_alignment=settings.segment_alignment,
            **settings.optimisation(),
        )

    results = train_and_test(settings, make_task, datamodule)
    if results["rank_zero"]:
        print(
            f"test accuracy {results['test']['accuracy']:.4f} (final weights), "
            f"{results['test_best']['accuracy']:.4f} (best on dev); mean step {results['mean_step_seconds']:.3f} s; "
            f"outputs in {results['output_dir']}"
        )
    return results


def evaluate(settings: SortingEval) -> Dict[str, float]:
    """Loads the checkpoint, prints and returns its loss and accuracy on the split."""
    from ..data.sorting import load_sorting_data
    from ..datasets.sorting import SortingDataset
    from ..tasks import SortingTask
    from ..training import test_checkpoint

    results = test_checkpoint(
        SortingTask, settings, lambda task: SortingDataset(load_sorting_data(settings.data), settings.split)
    )
    print(f"{settings.split} accuracy {results['test/accuracy']:.4f}, loss {results['test/loss']:.4f}")
    return results


def time_training(settings: SortingTime) -> Dict[str, List[float]]:
    """Times the models' training steps interleaved on one batch of generated sequences (see ``timing``)."""
    from torch.utils.data import default_collate

    from ..data.sorting import generate_sorting_data, model_vocab_size
    from ..datasets.sorting import SortingDataset
    from ..tasks import SortingTask

    data = generate_sorting_data(
        settings.sequence_length, settings.vocab_size, settings.batch_size, 1, 1, settings.seed
    )
    dataset = SortingDataset(data, "train")
    batch = default_collate([dataset[index] for index in range(len(dataset))])

    def bench(model: Model):
        config = model_config_of(model, vocab_size=model_vocab_size(settings.vocab_size))
        return SortingTask(config.to_dict(), settings.segment_length, **model.settings), batch

    shape = f"{settings.batch_size} sequences of {settings.sequence_length} symbols"
    return time_models(TASK, settings, bench, shape)


def grid(settings: SortingCompare) -> List[Setting]:
    """One data file per prompt length (written unless it exists) and its counting-rule reference points."""
    from ..data.sorting import counting_rule_accuracy, load_sorting_data, memoryless_floor_accuracy

    settings_list = []
    for length in settings.sequence_lengths:
        name = f"sort-T{length}-K{settings.vocab_size}-n{settings.num_train}-{settings.num_dev}-{settings.num_test}"
        path = Path(settings.output_dir) / "data" / f"{name}-seed{settings.data_seed}.json"
        if not path.exists():
            data = SortingData.create(
                output=str(path),
                sequence_length=length,
                vocab_size=settings.vocab_size,
                num_train=settings.num_train,
                num_dev=settings.num_dev,
                num_test=settings.num_test,
                seed=settings.data_seed,
            )
            prepare(data)
        data = load_sorting_data(path)
        rules = {
            "memoryless floor (uniform over the symbols not yet emitted, H_K / K)": memoryless_floor_accuracy(
                data.vocab_size
            ),
            "count the last segment's symbols, then emit by count": counting_rule_accuracy(
                data.test, data.sequence_length, data.vocab_size, settings.segment_length
            ),
            "count the whole sequence, then emit by count": counting_rule_accuracy(
                data.test, data.sequence_length, data.vocab_size
            ),
        }
        from .compare import narrowed

        epochs = math.ceil(settings.max_steps * settings.batch_size / settings.num_train)
        base = narrowed(settings, SortingTrain, data=str(path), epochs=epochs)
        notes = [
            "",
            "Reference points on the same test set:",
            *[f"- {rule}: {value:.4f}" for rule, value in rules.items()],
        ]
        settings_list.append(Setting(f"T{length}", base, notes))
    return settings_list


MEMORIA = "memoria-gpt2-sort-small.json"
# the quick comparison's models; the full one adds Memoria trained with the paper's algorithm
QUICK_MODELS = [
    *[model.key for model in causal_models("sort-small")],
    "memoria:working_memory_only",
    "memoria:full_width",
]
TASK = Task(
    name="sorting",
    summary="sort symbols by frequency after reading a long sequence",
    verbs={
        "prepare": (SortingData, prepare),
        "train": (SortingTrain, train),
        "eval": (SortingEval, evaluate),
        "compare": (SortingCompare, None),
        "analyze": (SortingEngrams, analyze),
        "time": (SortingTime, time_training),
    },
    models=model_table(
        *causal_models("sort-small"),
        Model("memoria", "memoria-gpt2-sort-small-fullwidth.json", "full_width"),  # the baseline's FFN width
        *memoria_ladder(MEMORIA),
        Model(
            "memoria",
            MEMORIA,
            "two_memory_attentions",
            {"memoria_shared_memory_attention": False},
            directory="memoria-two-attention",
        ),
        Model(
            "memoria",
            MEMORIA,
            "renormalised_lifespan_delta",
            {"memoria_lifespan_delta": "renormalised"},
            directory="memoria-renormalised",
        ),
    ),
    default_models=[*QUICK_MODELS, "memoria:paper_mode"],
    baseline="transformer",
    metrics=("accuracy", "loss"),
    headline=("accuracy", True),
    quick=dict(sequence_lengths=[128], seeds=[42], models=QUICK_MODELS),
    identity=(*RUN_IDENTITY, "data"),
    grid=grid,
)
