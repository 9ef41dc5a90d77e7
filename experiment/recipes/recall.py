"""Recall: key-value pairs in the first segment, queries about them 0 to 8 segments later.

Only memory can answer a query past the fact segment: without it the answer is exactly chance (1 / num-values).
The data are generated when read (experiment/data/recall.py), each run's --seed picking its own stream, so there is
no prepare step. The comparison reports accuracy by distance (``accuracy_d0`` .. ``accuracy_d8``) for Memoria, its
ablation ladder (trained erased every segment; the same weights erased at evaluation; working memory only; the
paper's mode) and the baselines, and draws it against chance. The d = 0 queries sit in the fact segment itself:
they test whether a model learnt the binding at all, and must be near 100% before the distance table means
anything. Verbs: train, eval, compare.
"""

import math
from dataclasses import dataclass
from pathlib import Path
from statistics import mean, stdev
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..settings import CompareSettings, HardwareSettings, Settings, TrainSettings, option
from . import Setting, Task, causal_models, memoria_ladder, model_table
from .compare import markdown_grid, narrowed, row_key

MEMORIA = "memoria-gpt2-recall-small.json"
D0_LEARNT = 0.9  # the d = 0 accuracy below which a model has not learnt the binding
FIGURE = "recall_accuracy_by_distance.png"
RECORDED_DISTANCES = 64  # comparison.json holds accuracy_d0 .. accuracy_d63 (samples of up to 64 segments)


@dataclass
class RecallData(Settings):
    """The recall data (generated when read; the run's --seed picks the stream)."""

    num_pairs: int = option(4, "key-value pairs in the fact segment")
    num_keys: int = option(16, "keys the pairs' distinct keys are drawn from")
    num_values: int = option(16, "values a key may have (chance is 1 / num-values)")
    num_filler: int = option(16, "filler tokens")
    num_segments: int = option(9, "segments per sample with the fact segment (the farthest query: this minus 1 back)")
    fact_queries: int = option(4, "queries at distance 0, in the fact segment after its pairs")
    queries_per_segment: int = option(4, "queries in each later segment")
    num_train: int = option(100000, "training samples per epoch")
    num_dev: int = option(128, "dev samples")
    num_test: int = option(512, "test samples")

    def spec_fields(self, segment_length: int) -> Dict[str, int]:
        """The ``RecallSpec`` fields of these settings with ``segment_length``."""
        names = ("num_pairs", "num_keys", "num_values", "num_filler", "num_segments", "fact_queries")
        fields = {name: getattr(self, name) for name in (*names, "queries_per_segment")}
        return {**fields, "segment_length": segment_length}


@dataclass
class RecallTrain(TrainSettings, RecallData):
    """Training settings with the recall data."""

    DEFAULTS = {
        "segment_length": 32,
        "batch_size": 16,
        "eval_batch_size": 64,
        "learning_rate": 1e-3,
        "max_steps": 2000,
        "val_check_interval": 500,
    }


@dataclass
class RecallEval(HardwareSettings):
    """The checkpoint, the samples to test it on, and what to change in its model at evaluation."""

    DEFAULTS = {"devices": "1"}

    checkpoint: str = option(None, "Lightning checkpoint written by train recall", required=True)
    split: str = option("test", "the split's stream", ("train", "dev", "test"))
    num_samples: int = option(512, "samples")
    seed: int = option(42, "the data stream (a run's --seed gives its own test set) and Memoria's ties")
    batch_size: int = option(64, "evaluation batch size")
    config_override: Dict[str, Any] = option(
        {}, "FIELD=VALUE: set a model configuration field for the evaluation (memoria_reset_period=1: erased)"
    )


@dataclass
class RecallCompare(CompareSettings, RecallTrain):
    """The recall comparison: every model the same number of steps, on each seed's own data stream."""

    DEFAULTS = {
        **RecallTrain.DEFAULTS,
        "output_dir": "outputs/recall",
        "accelerator": "cpu",
        "devices": "1",
        "threads": 1,
    }
    HIDDEN = ("model_config", "config_override", "gpt2_checkpoint", "resume_from", "overwrite", "seed", "eval_only")


def train(settings: RecallTrain) -> Dict[str, Any]:
    """Trains, tests the final weights and the best checkpoint and writes results.json; returns its contents."""
    from ..data.recall import RecallSpec
    from ..tasks.recall import RecallDataModule, RecallTask
    from ..training import load_model_config, train_and_test

    fields = settings.spec_fields(settings.segment_length)
    spec = RecallSpec(**fields)
    datamodule = RecallDataModule(
        spec,
        settings.seed,
        settings.num_train,
        settings.num_dev,
        settings.num_test,
        settings.batch_size,
        settings.eval_batch_size,
        settings.num_workers,
    )
    config = load_model_config(settings, vocab_size=spec.vocab_size)

    def make_task() -> RecallTask:
        return RecallTask(
            config.to_dict(),
            settings.segment_length,
            fields,
            learning_rate=settings.learning_rate,
            warmup_ratio=settings.warmup_ratio,
            weight_decay=settings.weight_decay,
        )

    results = train_and_test(settings, make_task, datamodule, extra_results={"chance": spec.chance})
    if results["rank_zero"]:
        print(f"test {by_distance_line(results['test'], spec.max_distance)}; outputs in {results['output_dir']}")
    return results


def by_distance_line(metrics: Dict[str, float], max_distance: int) -> str:
    """The line "accuracy A; by distance 0-N: a0 a1 ... aN" of the test metrics."""
    distances = " ".join(f"{metrics.get(f'accuracy_d{d}', math.nan):.3f}" for d in range(max_distance + 1))
    return f"accuracy {metrics['accuracy']:.4f}; by distance 0-{max_distance}: {distances}"


def evaluate(settings: RecallEval) -> Dict[str, float]:
    """Tests the checkpoint's weights (with ``config_override`` applied to its model) on fresh samples of the data
    it was trained on; prints and returns the metrics."""
    import lightning as L
    import torch

    from ..data.recall import RecallDataset
    from ..tasks.base import split_loader
    from ..tasks.recall import RecallTask
    from ..training import check_checkpoint, evaluation_trainer, load_weights, quiet_lightning, set_threads

    quiet_lightning()
    set_threads(settings.threads)
    check_checkpoint(settings.checkpoint, "--checkpoint")
    hparams = torch.load(settings.checkpoint, map_location="cpu", weights_only=True)["hyper_parameters"]
    L.seed_everything(settings.seed, verbose=False)
    task = RecallTask(
        {**hparams["model_config"], **settings.config_override}, hparams["segment_length"], hparams["data"]
    )
    load_weights(task, settings.checkpoint)
    trainer = evaluation_trainer(settings)
    dataset = RecallDataset(task.spec, settings.split, settings.num_samples, settings.seed)
    loader = split_loader(trainer, dataset, settings.batch_size, False)
    metrics = trainer.test(task, dataloaders=loader, verbose=False)[0]
    results = {key.removeprefix("test/"): value for key, value in metrics.items()}
    print(f"{settings.split}: {by_distance_line(results, task.spec.max_distance)} (chance {task.spec.chance:.4f})")
    return results


def grid(settings: RecallCompare) -> List[Setting]:
    """One setting: the data as the settings give them."""
    from ..data.recall import RecallSpec, describe

    spec = RecallSpec(**settings.spec_fields(settings.segment_length))
    notes = ["", *describe(spec), f"Every model trains {settings.max_steps} steps of batch {settings.batch_size}."]
    if settings.one_seed:
        notes.append(f"Run with the first seed only: {', '.join(settings.one_seed)}.")
    return [Setting("recall", narrowed(settings, RecallTrain), notes, directory="")]


# ---- the report: accuracy by distance, the d = 0 control, Memoria against its erased self, the figure ----------


def _mean_se(values: Sequence[float]) -> Tuple[float, Optional[float]]:
    """The mean and its standard error (None with one value)."""
    return mean(values), (stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None)


def _cell(values: Sequence[float]) -> str:
    if not values:
        return "-"
    average, error = _mean_se(values)
    return f"{average:.3f}" if error is None else f"{average:.3f} ± {error:.3f}"


def accuracy_by_distance(rows: Sequence[Dict[str, Any]]) -> Dict[str, Dict[int, Dict[int, float]]]:
    """{model key: {distance: {seed: accuracy}}} from comparison.json's rows."""
    table: Dict[str, Dict[int, Dict[int, float]]] = {}
    for row in rows:
        if row["metric"].startswith("accuracy_d"):
            distance = int(row["metric"].removeprefix("accuracy_d"))
            table.setdefault(row_key(row), {}).setdefault(distance, {})[row["seed"]] = row["value"]
    return table


def memory_verdict(full: Dict[int, float], erased: Dict[int, float], distance: int, name: str = "memoria") -> str:
    """Whether ``name`` beats its erased-at-evaluation self at ``distance``: the mean difference over the seeds both
    have (paired: same weights, same test samples), with 2 standard errors; within them it is "level"."""
    seeds = sorted(set(full) & set(erased))
    if not seeds:
        return f"{name} and {name}:erased_at_eval share no seed: no verdict at d = {distance}."
    differences = [full[seed] - erased[seed] for seed in seeds]
    average, error = _mean_se(differences)
    head = f"At d = {distance}, {name} minus {name}:erased_at_eval (same weights): {average:+.4f}"
    if error is None:
        return f"{head} over 1 seed: no standard error, no verdict."
    if abs(average) <= 2 * error:
        reading = "level (within 2 standard errors)"
    else:
        reading = "memory helps" if average > 0 else "erasing memory helps"
    return f"{head} ± {2 * error:.4f} (2 SE, {len(seeds)} seeds): {reading}."


def report(rows: List[Dict[str, Any]], settings: RecallCompare) -> str:
    """The recall report from comparison.json's rows: accuracy by distance per model (mean ± standard error over
    seeds), the d = 0 control, Memoria at the farthest distance against its erased self, and the figure (written to
    the comparison's output directory)."""
    table = accuracy_by_distance(rows)
    if not table:
        return "No accuracy by distance in the rows."
    distances = sorted({distance for by_distance in table.values() for distance in by_distance})
    farthest = distances[-1]
    chance = 1.0 / settings.num_values
    header = ["model", "seeds", *[f"d={d}" for d in distances]]
    body = []
    for key, by_distance in table.items():
        seeds = len({seed for values in by_distance.values() for seed in values})
        body.append([key, str(seeds), *[_cell(list(by_distance.get(d, {}).values())) for d in distances]])
    lines = [
        "### recall: test accuracy by distance (segments back; mean ± standard error over seeds)",
        "",
        markdown_grid(header, body),
        "",
        f"Chance: {chance:.4f} (1 / number of values) at every distance d >= 1.",
    ]
    unlearnt = {key: mean(values[0].values()) for key, values in table.items() if 0 in values}
    unlearnt = {key: value for key, value in unlearnt.items() if value < D0_LEARNT}
    if unlearnt:
        listed = ", ".join(f"{key} {value:.3f}" for key, value in unlearnt.items())
        lines.append(
            f"The d = 0 control (the pair and its query in the same segment) is below {D0_LEARNT:.0%} for {listed}: "
            "those models have not learnt the binding, so their accuracy at d >= 1 says nothing about memory."
        )
    elif 0 in distances:
        lines.append(f"The d = 0 control is at least {D0_LEARNT:.0%} for every model: the binding is learnt.")
    if "memoria" in table and "memoria:erased_at_eval" in table:
        lines.append(
            memory_verdict(
                table["memoria"].get(farthest, {}), table["memoria:erased_at_eval"].get(farthest, {}), farthest
            )
        )
    figure = draw(table, chance, Path(settings.output_dir) / FIGURE)
    lines.append(f"Figure: {figure}")
    return "\n".join(lines)


def draw(table: Dict[str, Dict[int, Dict[int, float]]], chance: float, path: Path) -> Path:
    """Accuracy against distance, one line per model (mean, error bars of one standard error), chance dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for key, by_distance in table.items():
        distances = sorted(by_distance)
        stats = [_mean_se(list(by_distance[d].values())) for d in distances]
        errors = [error or 0.0 for _, error in stats]
        axes.errorbar(distances, [average for average, _ in stats], yerr=errors, marker="o", capsize=3, label=key)
    axes.axhline(chance, color="black", linestyle="--", linewidth=1, label=f"chance ({chance:.3f})")
    axes.set_xlabel("distance (segments between the pair and its query)")
    axes.set_ylabel("test accuracy")
    axes.set_ylim(0, 1.02)
    axes.set_title("Recall accuracy by distance")
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


MODELS = [*causal_models("recall-small"), *memoria_ladder(MEMORIA)]
QUICK_BASELINES = ["transformer"]
TASK = Task(
    name="recall",
    summary="answer queries about key-value pairs given 0-8 segments back",
    verbs={"train": (RecallTrain, train), "eval": (RecallEval, evaluate), "compare": (RecallCompare, None)},
    models=model_table(*MODELS),
    default_models=[model.key for model in MODELS],
    baseline="memoria:erased_at_eval",
    metrics=("accuracy", *(f"accuracy_d{d}" for d in range(RECORDED_DISTANCES)), "loss"),
    headline=("accuracy", True),
    quick=dict(
        seeds=[42, 43],
        models=["memoria", "memoria:erased_at_eval", *QUICK_BASELINES],
        one_seed=QUICK_BASELINES,
        max_steps=600,
        num_dev=64,
        num_test=256,
        val_check_interval=600,
    ),
    identity=(
        "config_override",
        "segment_length",
        "batch_size",
        "learning_rate",
        "warmup_ratio",
        "max_steps",
        "seed",
        "num_pairs",
        "num_keys",
        "num_values",
        "num_filler",
        "num_segments",
        "fact_queries",
        "queries_per_segment",
        "num_train",
        "num_dev",
        "num_test",
    ),
    grid=grid,
    report=report,
)
