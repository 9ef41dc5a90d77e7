"""The summary table printed at the end of a comparison: every model's figure per seed, the mean, the
difference from the baseline, which model is better and where the outputs went. Plain Python (no torch)."""

from dataclasses import dataclass
from statistics import mean, stdev
from typing import List, Sequence


@dataclass
class ComparisonRow:
    """One model's results across seeds.

    Args:
        name: the model's name as printed.
        values: the compared figure, one per seed.
        parameters: the model's parameter count.
        step_seconds: its mean training-step time in seconds.
    """

    name: str
    values: List[float]
    parameters: int
    step_seconds: float

    @property
    def mean(self) -> float:
        """The mean over seeds."""
        return mean(self.values)


def _table(header: List[str], rows: List[List[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join([lines[0], "  ".join("-" * width for width in widths), *lines[1:]])


def format_comparison(
    rows: Sequence[ComparisonRow],
    seeds: Sequence[int],
    metric: str,
    higher_is_better: bool,
    baseline: str,
    output_dir: str,
) -> str:
    """The table, the verdict and the outputs' location.

    Args:
        rows: the models, the baseline among them.
        seeds: the training seeds, in the order of each row's values.
        metric: what the values are, e.g. "test accuracy".
        higher_is_better: whether a larger value is better.
        baseline: the name of the row the difference column is taken against.
        output_dir: where the runs wrote their outputs.
    """
    by_name = {row.name: row for row in rows}
    if baseline not in by_name:
        raise ValueError(f"baseline {baseline!r} is not one of the rows {list(by_name)}")
    reference = by_name[baseline].mean
    header = ["model", *[f"seed {seed}" for seed in seeds], "mean", f"vs {baseline}", "params", "step (s)"]
    if len(seeds) > 1:
        header.insert(len(seeds) + 2, "std")
    body = []
    for row in rows:
        cells = [row.name, *[f"{value:.4f}" for value in row.values], f"{row.mean:.4f}"]
        if len(seeds) > 1:
            cells.append(f"{stdev(row.values):.4f}")
        difference = "-" if row.name == baseline else f"{row.mean - reference:+.4f}"
        body.append([*cells, difference, f"{row.parameters:,}", f"{row.step_seconds:.3f}"])
    best = (max if higher_is_better else min)(rows, key=lambda row: row.mean)
    direction = "higher" if higher_is_better else "lower"
    if best.name == baseline or best.mean == reference:
        verdict = f"Better: none over {baseline} (mean {metric}, {direction} is better)."
    else:
        verdict = (
            f"Better: {best.name}, by {abs(best.mean - reference):.4f} mean {metric} over {baseline} "
            f"({direction} is better; {len(seeds)} seed{'s' if len(seeds) > 1 else ''})."
        )
        if len(seeds) > 1:
            spread = max(stdev(best.values), stdev(by_name[baseline].values))
            larger = "larger" if abs(best.mean - reference) > spread else "not larger"
            verdict += f" The difference is {larger} than the seed spread (the larger std, {spread:.4f})."
    where = f"Outputs: {output_dir} (per run: results.json, checkpoints/, tensorboard/, model/)"
    return "\n".join([_table(header, body), "", verdict, where])
