"""Recall: key-value pairs in a segment, queries about them 0 to 8 segments later.

Only memory can answer a query past the segment that gives its pair: without it the answer is exactly chance
(1 / num-values). The data are generated when read (experiment/data/recall.py), each run's --seed picking its own
stream, so there is no prepare step; the model's vocabulary is the generator's (``vocab_size`` is set from the data
settings, whatever the configuration file says). The comparison reports accuracy by distance (``accuracy_d0`` ..
``accuracy_d8``) for Memoria, its ablation ladder (trained erased every segment; the same weights erased at
evaluation; the same weights with nothing reminded at evaluation, ``working_memory_only``; trained with nothing
reminded; the reference mode beside the paper's; the Abstractor) and the baselines, and draws it against chance.
The d = 0 queries sit in the segment that gives the pair: they test whether a model learnt the binding at all, and
must be near 100% before the distance table means anything.

The defaults are the full mode: one pair in segment 0, filler between it and the one segment that asks about it
(``--facts first``), 200 steps of batch 32, every model of the ladder and the baselines on 3 seeds. ``compare
--quick`` runs the same data and steps for fewer models and seeds. Here a model can relay the fact through its
working memory from segment to segment, so Memoria beating its erased self at d = 8 is read against
``working_memory_only``: where that matches full Memoria, the gain is carried by the working memory (relay), not by
long-term engrams. ``--facts stream`` (every segment gives its own pair and asks about it, so only the latest pair
can be relayed) is the variant that isolates the engrams; at these budgets no model learns its far queries.
Verbs: train, eval, compare, analyze (engram analysis and what the working memory carries).
"""

import math
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from ..settings import CompareSettings, HardwareSettings, Settings, TrainSettings, option
from . import ERASED, WORKING_MEMORY_ONLY, Model, Setting, Task, model_table
from .compare import markdown_grid, mean_se, narrowed, paired_verdict, row_key
from .engrams import EngramSettings, analyze, training_settings

if TYPE_CHECKING:
    from ..data.recall import RecallSpec

MEMORIA = "memoria-gpt2-recall-small.json"  # no Abstractor: the previous segment's hidden states are the working memory
ABSTRACTOR = "memoria-gpt2-recall-small-abstractor.json"  # the same with the paper's Abstractor (16 working memories)
D0_LEARNT = 0.9  # the d = 0 accuracy below which a model has not learnt the binding
FIGURE = "recall_accuracy_by_distance.png"
RECORDED_DISTANCES = 64  # comparison.json holds accuracy_d0 .. accuracy_d63 (samples of up to 64 segments)


QUERY = ("one", "all")
FACTS = ("first", "stream")
SPEC_FIELDS = (
    "num_pairs",
    "num_keys",
    "num_values",
    "num_filler",
    "num_segments",
    "fact_queries",
    "queries_per_segment",
    "query_distances",
    "facts",
)


@dataclass
class RecallData(Settings):
    """The recall data (generated when read; the run's --seed picks the stream)."""

    num_pairs: int = option(1, "key-value pairs each fact segment gives")
    num_keys: int = option(16, "keys a sample's distinct keys are drawn from")
    num_values: int = option(8, "values a key may have (chance is 1 / num-values)")
    num_filler: int = option(4, "filler tokens")
    num_segments: int = option(9, "segments per sample with the fact segment (the farthest query: this minus 1 back)")
    fact_queries: int = option(4, "queries at distance 0 in each segment that gives pairs, after them")
    queries_per_segment: int = option(4, "queries about segment 0 in each segment that asks about it")
    query_distances: str = option(
        "one", "one: each sample asks about segment 0 in one segment d*, none between; all: every segment asks", QUERY
    )
    facts: str = option("first", "first: segment 0 alone gives pairs; stream: every segment its own (needs one)", FACTS)
    num_train: int = option(100000, "training samples per epoch")
    num_dev: int = option(128, "dev samples")
    num_test: int = option(512, "test samples")

    def spec_fields(self, segment_length: int) -> Dict[str, Any]:
        """The ``RecallSpec`` fields of these settings with ``segment_length``."""
        return {name: getattr(self, name) for name in SPEC_FIELDS} | {"segment_length": segment_length}


@dataclass
class RecallTrain(TrainSettings, RecallData):
    """Training settings with the recall data."""

    DEFAULTS = {
        "segment_length": 16,
        "batch_size": 32,
        "eval_batch_size": 64,
        "learning_rate": 1e-3,
        "warmup_ratio": 0.25,  # 50 of 200 steps
        "gradient_clip": 1.0,
        "max_steps": 200,
        "val_check_interval": 200,
        "num_dev": 64,
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


@dataclass
class RecallEngrams(EngramSettings):
    """The recall run's own test samples (its data settings and seed, read from the results.json beside --model)."""

    HIDDEN = ("sorting_data", "corpus", "dataset", "tokenizer", "episode_segments")
    DEFAULTS = {"name": "recall", "num_episodes": 512, "batch_size": 64}

    data_seed: Optional[int] = option(None, "the data stream (None: the run's --seed, its own test set)")

    def episodes(self, vocab_size: int) -> Tuple[Any, Any]:
        """The first --num-episodes test samples of the run's data: input_ids and labels, int64 [NumEpisodes, L].

        Raises:
            ValueError: when the run's data settings give another vocabulary than the model's.
        """
        import torch

        from ..data.recall import RecallDataset, RecallSpec

        run = training_settings(Path(self.model), "data settings")
        spec = RecallSpec(**{name: run[name] for name in SPEC_FIELDS}, segment_length=run["segment_length"])
        if spec.vocab_size != vocab_size:
            raise ValueError(
                f"the run's data settings give {spec.vocab_size} token ids but --model {self.model} has "
                f"{vocab_size}: pass a model trained by train recall"
            )
        seed = run["seed"] if self.data_seed is None else self.data_seed
        dataset = RecallDataset(spec, "test", self.num_episodes, seed)
        rows = [dataset[index] for index in range(len(dataset))]
        return torch.stack([row["input_ids"] for row in rows]), torch.stack([row["labels"] for row in rows])


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
    check_vocabulary(settings.config_override, spec)
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


def check_vocabulary(config_override: Dict[str, Any], spec: "RecallSpec") -> None:
    """Refuses a ``vocab_size`` override other than the generator's (the task sets the model's vocabulary).

    Raises:
        ValueError: naming both sizes and the data settings that fix the generator's.
    """
    wanted = config_override.get("vocab_size", spec.vocab_size)
    if wanted != spec.vocab_size:
        raise ValueError(
            f"--config-override vocab_size={wanted} differs from the generator's {spec.vocab_size} (num-filler "
            f"{spec.num_filler} + num-keys {spec.num_keys} + num-values {spec.num_values} + 2 for ? and _): the task "
            "sets the model's vocabulary from the data settings"
        )


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


def _cell(values: Sequence[float]) -> str:
    if not values:
        return "-"
    average, error = mean_se(values)
    return f"{average:.3f}" if error is None else f"{average:.3f} ± {error:.3f}"


def accuracy_by_distance(rows: Sequence[Dict[str, Any]]) -> Dict[str, Dict[int, Dict[int, float]]]:
    """{model key: {distance: {seed: accuracy}}} from comparison.json's rows."""
    table: Dict[str, Dict[int, Dict[int, float]]] = {}
    for row in rows:
        if row["metric"].startswith("accuracy_d"):
            distance = int(row["metric"].removeprefix("accuracy_d"))
            table.setdefault(row_key(row), {}).setdefault(distance, {})[row["seed"]] = row["value"]
    return table


def ablation_key(name: str, ablation: str) -> str:
    """The key of ``name``'s evaluation-only ``ablation``: "memoria:erased_at_eval", and for a named variant
    "memoria:abstractor_erased_at_eval"."""
    return f"{name}_{ablation}" if ":" in name else f"{name}:{ablation}"


def paired_difference(full: Dict[int, float], other: Dict[int, float]) -> Tuple[float, Optional[float]]:
    """The mean of ``full`` minus ``other`` over the seeds both have, and its standard error (None with one seed;
    (nan, None) with none)."""
    seeds = sorted(set(full) & set(other))
    if not seeds:
        return math.nan, None
    return mean_se([full[seed] - other[seed] for seed in seeds])


def memory_verdict(
    full: Dict[int, float],
    other: Dict[int, float],
    distance: int,
    name: str = "memoria",
    ablation: str = "erased_at_eval",
) -> Tuple[str, str]:
    """Whether ``name`` beats ``name:ablation`` (the same weights tested otherwise) at ``distance``: the mean
    difference over the seeds both have (paired: same weights, same test samples), with 2 standard errors.

    Returns:
        the sentence, and its reading: "level" (within 2 standard errors), "higher", "lower" or "" (no verdict).
    """
    other_key = ablation_key(name, ablation)
    seeds = sorted(set(full) & set(other))
    if not seeds:
        return f"{name} and {other_key} share no seed: no verdict at d = {distance}.", ""
    average, error, reading = paired_verdict([full[seed] - other[seed] for seed in seeds])
    head = f"At d = {distance}, {name} minus {other_key} (same weights): {average:+.4f}"
    if error is None:
        return f"{head} over 1 seed: no standard error, no verdict.", ""
    words = {"level": "level (within 2 standard errors)", "higher": f"{name} is higher"}.get(
        reading, f"{other_key} is higher"
    )
    return f"{head} ± {2 * error:.4f} (2 SE, {len(seeds)} seeds): {words}.", reading


RELAY = (
    "When working_memory_only (nothing reminded at evaluation, same weights) matches full Memoria, the gain over "
    "erased_at_eval is carried by the working memory (each segment reading the previous one and passing the fact "
    "on: relay), not by long-term engrams."
)


def memory_lines(table: Dict[str, Dict[int, Dict[int, float]]], distance: int, name: str = "memoria") -> List[str]:
    """``name`` at ``distance`` against its erased self and against its working memory alone, and what they say."""
    full = table.get(name, {}).get(distance, {})
    lines = []
    erased_reading = ""
    erased_key, working_key = ablation_key(name, "erased_at_eval"), ablation_key(name, "working_memory_only")
    if erased_key in table:
        sentence, erased_reading = memory_verdict(full, table[erased_key].get(distance, {}), distance, name)
        lines.append(sentence + (" Memory helps." if erased_reading == "higher" else ""))
    if working_key in table:
        working = table[working_key].get(distance, {})
        sentence, reading = memory_verdict(full, working, distance, name, "working_memory_only")
        lines.append(sentence)
        gain, _ = paired_difference(full, table.get(erased_key, {}).get(distance, {}))
        engram_share, error = paired_difference(full, working)
        if erased_reading == "higher" and reading == "level" and engram_share + 2 * (error or 0.0) >= gain / 2:
            lines.append(
                f"Here {working_key} is level with {name} at d = {distance} only within a wide interval (the "
                f"engrams' share could be up to {engram_share + 2 * (error or 0.0):+.4f} of the {gain:+.4f} gain): "
                "more seeds are needed to tell relay from engrams."
            )
        elif erased_reading == "higher" and reading in ("level", "lower"):
            lines.append(
                f"Here {working_key} is {'level with' if reading == 'level' else 'above'} {name} at "
                f"d = {distance}: the gain is relay through the working memory, not long-term engrams."
            )
        elif erased_reading == "higher" and reading == "higher":
            lines.append(
                f"Here {name} is above {working_key} at d = {distance}: the reminded engrams carry part "
                "of the answer."
            )
        elif erased_reading == "level":
            lines.append(f"Here {name} is level with {erased_key} at d = {distance}: no memory effect to attribute.")
    return lines


def report(rows: List[Dict[str, Any]], settings: RecallCompare) -> str:
    """The recall report from comparison.json's rows: accuracy by distance per model (mean ± standard error over
    seeds), the d = 0 control, Memoria at the farthest distance against its erased self and its working memory
    alone, and the figure (written to the comparison's output directory)."""
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
    control = {key: mean(values[0].values()) for key, values in table.items() if 0 in values}
    if control:
        listed = ", ".join(f"{key} {value:.3f}" for key, value in control.items())
        lines.append(f"The d = 0 control (the pair and its query in the same segment): {listed}.")
    unlearnt = {key: value for key, value in control.items() if value < D0_LEARNT}
    if unlearnt:
        lines.append(
            f"Below {D0_LEARNT:.0%} for {', '.join(unlearnt)}: those models have not learnt the binding, so their "
            "accuracy at d >= 1 says nothing about memory."
        )
    elif control:
        lines.append(f"The d = 0 control is at least {D0_LEARNT:.0%} for every model: the binding is learnt.")
    for name in ("memoria", "memoria:abstractor"):
        if name in table:
            lines += memory_lines(table, farthest, name)
    if any(ablation_key(name, "working_memory_only") in table for name in ("memoria", "memoria:abstractor")):
        lines.append(RELAY)
    figure = draw(table, chance, Path(settings.output_dir) / FIGURE)
    lines.append(f"Figure: {figure}")
    return "\n".join(lines)


def draw(table: Dict[str, Dict[int, Dict[int, float]]], chance: float, path: Path) -> Path:
    """Accuracy against distance, one line per model (mean, error bars of one standard error), chance dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9.5, 4.8))
    colours, markers = plt.get_cmap("tab20").colors, "os^vDP*Xhp<>d"
    for index, (key, by_distance) in enumerate(table.items()):
        distances = sorted(by_distance)
        stats = [mean_se(list(by_distance[d].values())) for d in distances]
        errors = [error or 0.0 for _, error in stats]
        # tab20 pairs a dark and a light shade: the first ten lines take the dark ones, the next ten the light
        style = dict(color=colours[(2 * index) % 20 + (index // 10) % 2], marker=markers[index % len(markers)])
        evaluated = key.endswith(("erased_at_eval", "working_memory_only"))  # the same weights tested otherwise
        axes.errorbar(
            distances,
            [average for average, _ in stats],
            yerr=errors,
            capsize=3,
            linestyle="--" if evaluated else "-",
            label=key,
            **style,
        )
    axes.axhline(chance, color="black", linestyle="--", linewidth=1, label=f"chance ({chance:.3f})")
    axes.set_xlabel("distance (segments between the pair and its query)")
    axes.set_ylabel("test accuracy")
    axes.set_ylim(0, 1.02)
    axes.set_title("Recall accuracy by distance")
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


MODELS = [
    Model("memoria", MEMORIA),
    Model("memoria", MEMORIA, "erased_every_segment", ERASED),
    Model("memoria", MEMORIA, "erased_at_eval", ERASED, evaluates="memoria"),
    Model("memoria", MEMORIA, "working_memory_only", WORKING_MEMORY_ONLY, evaluates="memoria"),
    Model("memoria", MEMORIA, "working_memory_only_trained", WORKING_MEMORY_ONLY),
    Model("memoria", MEMORIA, "reference_mode", {"memoria_mode": "reference"}),
    Model("memoria", ABSTRACTOR, "abstractor"),
    Model("memoria", ABSTRACTOR, "abstractor_erased_at_eval", ERASED, evaluates="memoria:abstractor"),
    Model("memoria", ABSTRACTOR, "abstractor_working_memory_only", WORKING_MEMORY_ONLY, evaluates="memoria:abstractor"),
    *[Model(name, f"{name}-recall-small.json") for name in ("transfo-xl", "compressive", "infinity-former", "rmt")],
    Model("transformer", "gpt2-recall-small.json"),
]
QUICK_MEMORIA = ["memoria", "memoria:erased_at_eval", "memoria:working_memory_only"]
QUICK_ABSTRACTOR = ["memoria:abstractor", "memoria:abstractor_erased_at_eval", "memoria:abstractor_working_memory_only"]
QUICK_ONE_SEED = ["transformer", "transfo-xl"]
TASK = Task(
    name="recall",
    summary="answer queries about key-value pairs given 0-8 segments back",
    verbs=dict(
        train=(RecallTrain, train),
        eval=(RecallEval, evaluate),
        compare=(RecallCompare, None),
        analyze=(RecallEngrams, analyze),
    ),
    models=model_table(*MODELS),
    default_models=[model.key for model in MODELS if model.ablation != "working_memory_only_trained"],
    baseline="memoria:erased_at_eval",
    metrics=("accuracy", *(f"accuracy_d{d}" for d in range(RECORDED_DISTANCES)), "loss"),
    headline=("accuracy", True),
    quick=dict(
        seeds=[42, 43],
        models=[*QUICK_MEMORIA, *QUICK_ONE_SEED, *QUICK_ABSTRACTOR],
        one_seed=QUICK_ONE_SEED,
    ),
    identity=(
        "config_override",
        "segment_length",
        "batch_size",
        "learning_rate",
        "warmup_ratio",
        "gradient_clip",
        "max_steps",
        "seed",
        *SPEC_FIELDS,
        "num_train",
        "num_dev",
        "num_test",
    ),
    grid=grid,
    report=report,
)
