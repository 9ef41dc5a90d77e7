"""One comparison for every task: models x seeds x the task's settings, as tidy rows, then a table.

Each run trains in this process with the task's ``train`` and writes its own results.json under
``<output-dir>/<setting>/<model>-seed<seed>``; a finished run with the same settings is read back, and a killed
run resumes from its ``checkpoints/last.ckpt``. Every test metric, the mean training-step time and the parameter
count of every run become rows of ``comparison.json``::

    {"task", "model", "ablation", "seed", "setting", "metric", "value"}

(``ablation`` is "" for the model as trained and tested). The table is made from those rows alone, printed, and
saved as ``comparison.md``. Plain Python until a run trains.
"""

import dataclasses
import json
import math
from pathlib import Path
from statistics import mean, stdev
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type, TypeVar

from ..settings import CompareSettings, Settings, TrainSettings
from . import Model, Setting, Task

TrainType = TypeVar("TrainType", bound=TrainSettings)
STEP_SECONDS, PARAMETERS, TOKEN_PARAMETERS = "step_seconds", "parameters", "token_parameters"


def narrowed(settings: Settings, cls: Type[TrainType], **changes: Any) -> TrainType:
    """The fields of ``cls`` taken from ``settings`` (a compare settings object holding them), with ``changes``."""
    values = {f.name: getattr(settings, f.name) for f in dataclasses.fields(cls) if hasattr(settings, f.name)}
    return cls(**{**values, **changes})


def run_settings(task: Task, setting: Setting, model: Model, seed: int, output_dir: Path) -> TrainSettings:
    """The training settings of one run: the setting's, with the model's configuration, ablation and seed."""
    overrides = {**setting.train_settings.config_override, **model.overrides}  # type: ignore[attr-defined]
    directory = setting.label if setting.directory is None else setting.directory
    return setting.train_settings.replace(  # type: ignore[attr-defined]
        model_config=model.config_path,
        config_override=overrides,
        output_dir=str(output_dir / directory / f"{model.run_name}-seed{seed}"),
        seed=seed,
        **model.settings,
    )


def train_or_read_back(task: Task, settings: TrainSettings, retrain: bool) -> Dict[str, Any]:
    """A finished run's results.json (same ``task.identity`` settings), else trains: from the run's last checkpoint
    when a killed run left one, else afresh (deleting a stale run's outputs)."""
    from ..training import saved_results

    output_dir = Path(settings.output_dir)
    saved = None if retrain else saved_results(output_dir, settings, task.identity)
    if saved is not None:
        print(f"== {output_dir}: finished, read back", flush=True)
        return saved
    last = output_dir / "checkpoints" / "last.ckpt"
    if not retrain and last.exists() and not (output_dir / "results.json").exists():
        print(f"== {output_dir}: resuming from {last}", flush=True)
        return task.verbs["train"][1](settings.replace(resume_from=str(last)))
    print(f"== {output_dir}: training", flush=True)
    return task.verbs["train"][1](settings.replace(overwrite=True))


def test_trained_weights(
    task: Task, setting: Setting, model: Model, seed: int, output_dir: Path, retrain: bool
) -> Dict[str, Any]:
    """An entry that only tests (``model.evaluates``): the trained model's run (read back, or trained now), then its
    final weights tested under ``model``'s configuration in the entry's own directory. Always tested again, so
    that the results follow the weights they name. The weights are looked for in the trained run's directory as
    it is now (the results.json of a run whose outputs were moved still names where it was written)."""
    trained_settings = run_settings(task, setting, task.models[model.evaluates], seed, output_dir)
    trained = train_or_read_back(task, trained_settings, retrain)
    checkpoint = Path(trained_settings.output_dir) / "checkpoints" / Path(trained["last_checkpoint"]).name
    settings = run_settings(task, setting, model, seed, output_dir)
    print(f"== {settings.output_dir}: testing the weights of {checkpoint}", flush=True)
    return task.verbs["train"][1](settings.replace(eval_only=str(checkpoint), overwrite=True))


def mean_se(values: Sequence[float]) -> Tuple[float, Optional[float]]:
    """The mean of ``values`` and its standard error (None with one value)."""
    return mean(values), (stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None)


def paired_verdict(differences: Sequence[float]) -> Tuple[float, Optional[float], str]:
    """The mean of paired differences (first minus second), its standard error (None under 2 pairs) and the
    reading: "level" when the mean is within 2 standard errors of 0, "higher" or "lower" (the first) beyond them,
    "" without a standard error."""
    average, error = mean_se(differences)
    if error is None:
        return average, None, ""
    if abs(average) <= 2 * error:
        return average, error, "level"
    return average, error, "higher" if average > 0 else "lower"


def recorded(task: Task, metric: str) -> bool:
    """Whether comparison.json records the test metric ``metric`` (named in ``task.metrics``, or by a prefix there)."""
    return any(metric == name or (name.endswith("*") and metric.startswith(name[:-1])) for name in task.metrics)


def tidy_rows(task: Task, model: Model, seed: int, setting: str, results: Dict[str, Any]) -> List[Dict[str, Any]]:
    """One row per test metric, plus the step time (not for an entry that only tests) and the parameter counts (all,
    and those that process tokens)."""
    values = {metric: value for metric, value in results["test"].items() if recorded(task, metric)}
    if not math.isnan(results["mean_step_seconds"]):
        values[STEP_SECONDS] = results["mean_step_seconds"]
    values[PARAMETERS] = results["parameters"]
    if TOKEN_PARAMETERS in results:  # runs finished before it was recorded lack it
        values[TOKEN_PARAMETERS] = results[TOKEN_PARAMETERS]
    base = {"task": task.name, "model": model.name, "ablation": model.ablation, "seed": seed, "setting": setting}
    return [{**base, "metric": metric, "value": value} for metric, value in values.items()]


def compare(task: Task, settings: CompareSettings) -> List[Dict[str, Any]]:
    """Runs (or reads back) every model x seed x setting; writes comparison.json and comparison.md, prints the
    table; returns the rows. Under DDP only rank 0 writes and prints the table.

    Raises:
        ValueError: naming the unknown models.
    """
    if settings.quick:
        settings = settings.replace(**task.quick)
    keys = settings.models or task.default_models
    unknown = [key for key in [*keys, *settings.one_seed] if key not in task.models]
    if unknown:
        raise ValueError(f"--models {unknown} are not models of {task.name}; choose from {list(task.models)}")
    output_dir = Path(settings.output_dir)
    rows: List[Dict[str, Any]] = []
    notes: Dict[str, List[str]] = {}
    rank_zero = True
    for setting in task.grid(settings) if task.grid else []:
        notes[setting.label] = setting.notes
        for index, seed in enumerate(settings.seeds):
            for key in keys:
                model = task.models[key]
                if index > 0 and key in settings.one_seed:
                    continue
                if model.evaluates:
                    results = test_trained_weights(task, setting, model, seed, output_dir, settings.retrain)
                else:
                    run = run_settings(task, setting, model, seed, output_dir)
                    results = train_or_read_back(task, run, settings.retrain)
                rank_zero = results.get("rank_zero", True)
                rows.extend(tidy_rows(task, model, seed, setting.label, results))
    baseline = task.baseline if task.baseline in keys else keys[-1]
    metric, higher_is_better = task.headline
    table = format_table(
        rows, metric, higher_is_better, baseline, str(output_dir), settings.quick, notes, also=task.also_tabled
    )
    if rank_zero and task.report is not None:
        table += "\n\n" + task.report(rows, settings)
    if rank_zero:
        from ..training import write_results

        write_results(output_dir / "comparison.json", rows)
        (output_dir / "comparison.md").write_text(table + "\n")
        print("\n" + table, flush=True)
    return rows


def row_key(row: Dict[str, Any]) -> str:
    """The model key (MODEL or MODEL:ABLATION) of a comparison.json row."""
    return f"{row['model']}:{row['ablation']}" if row["ablation"] else row["model"]


def markdown_grid(header: List[str], body: List[List[str]]) -> str:
    """A Markdown table with aligned columns."""
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |" for row in [header, *body]]
    return "\n".join([lines[0], "|" + "|".join("-" * (width + 2) for width in widths) + "|", *lines[1:]])


def format_table(
    rows: Sequence[Dict[str, Any]],
    metric: str,
    higher_is_better: bool,
    baseline: str,
    output_dir: str,
    quick: bool = False,
    notes: Optional[Dict[str, List[str]]] = None,
    also: Sequence[str] = (),
) -> str:
    """The comparison as Markdown from comparison.json's rows: per setting, each model's ``metric`` per seed, the
    mean (and standard deviation), the difference from ``baseline``, the mean of each metric in ``also``, parameters
    (all, and those that process tokens: ``experiment.models.capacity``) and step time; then which model is better,
    by how much and over how many seeds, and where the outputs are.

    Raises:
        ValueError: when ``baseline`` has no rows in a setting.
    """
    sections = []
    if quick:
        sections.append("Quick mode: a smoke test of the pipeline (few steps, few seeds); these are not results.")
    for setting in dict.fromkeys(row["setting"] for row in rows):
        mine = [row for row in rows if row["setting"] == setting]
        seeds = list(dict.fromkeys(row["seed"] for row in mine))
        models = list(dict.fromkeys(row_key(row) for row in mine))
        value = {(row_key(row), row["seed"], row["metric"]): row["value"] for row in mine}
        per_model = {
            key: [value[(key, seed, metric)] for seed in seeds if (key, seed, metric) in value] for key in models
        }
        if not per_model.get(baseline):
            raise ValueError(f"baseline {baseline!r} has no {metric} in setting {setting!r}")
        reference = mean(per_model[baseline])
        header = ["model", *[f"seed {seed}" for seed in seeds], "mean", *(["std"] if len(seeds) > 1 else [])]
        header += [f"vs {baseline}", *[f"mean {name}" for name in also], "params", "token params", "step (s)"]
        body = []
        for key in models:
            values = per_model[key]
            per_seed = [f"{value[(key, seed, metric)]:.4f}" if (key, seed, metric) in value else "-" for seed in seeds]
            cells = [key, *per_seed, f"{mean(values):.4f}"]
            cells += [f"{stdev(values):.4f}" if len(values) > 1 else "-"] if len(seeds) > 1 else []
            cells.append("-" if key == baseline else f"{mean(values) - reference:+.4f}")
            for name in also:
                others = [value[(key, seed, name)] for seed in seeds if (key, seed, name) in value]
                cells.append(f"{mean(others):.4f}" if others else "-")
            steps = [value[(key, seed, STEP_SECONDS)] for seed in seeds if (key, seed, STEP_SECONDS) in value]
            parameters = []  # all, and those that process tokens; the same in every seed's run
            for name in (PARAMETERS, TOKEN_PARAMETERS):
                found = [value[(key, seed, name)] for seed in seeds if (key, seed, name) in value]
                parameters.append(f"{int(found[0]):,}" if found else "-")
            body.append([*cells, *parameters, f"{mean(steps):.3f}" if steps else "-"])
        best = (max if higher_is_better else min)(models, key=lambda key: mean(per_model[key]))
        direction = "higher" if higher_is_better else "lower"
        shared = min(len(per_model[best]), len(per_model[baseline]))
        count = f"{shared} seed{'s' if shared > 1 else ''}"
        if best == baseline or mean(per_model[best]) == reference:
            verdict = f"Better: none over {baseline} (mean test {metric}, {direction} is better; {count})."
        else:
            verdict = (
                f"Better: {best}, by {abs(mean(per_model[best]) - reference):.4f} mean test {metric} over {baseline} "
                f"({direction} is better; {count})."
            )
            if shared > 1:
                spread = max(stdev(per_model[best]), stdev(per_model[baseline]))
                larger = "larger" if abs(mean(per_model[best]) - reference) > spread else "not larger"
                verdict += f" The difference is {larger} than the seed spread (the larger std, {spread:.4f})."
        extra = (notes or {}).get(setting, [])
        sections.append(
            "\n".join([f"### {setting}: test {metric}", "", markdown_grid(header, body), "", verdict, *extra])
        )
    where = f"Outputs: {output_dir} (comparison.json, comparison.md; per run: results.json, checkpoints/, model/)"
    return "\n\n".join([*sections, where])


def read_comparison(path: Path) -> List[Dict[str, Any]]:
    """The rows of a comparison.json."""
    return json.loads(Path(path).read_text())
