"""Figures of recorded Memoria histories: serial-position curves, lag-CRP, and the engram animation.

Needs matplotlib (the ``analysis`` extra). Every function takes the data it draws and a path to write; nothing
here computes statistics (that is :mod:`memoria.analysis`).
"""

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from memoria import HistoryManager
from memoria.analysis import Effect, LagCRP, SerialPositionCurve

TYPE_COLOURS = {"WORKING": "#f28e2b", "SHORTTERM": "#4e79a7", "LONGTERM": "#59a14f"}
TYPE_ROWS = {"SHORTTERM": 1.0, "LONGTERM": 0.0}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _effect_label(name: str, effect: Optional[Effect]) -> str:
    if effect is None:
        return name
    return (
        f"{name}: {effect.value:+.3g} [{effect.ci_low:+.3g}, {effect.ci_high:+.3g}]"
        f" (shuffled {effect.control:+.3g})"
    )


def plot_serial_position(
    curves: Dict[str, SerialPositionCurve],
    path: Union[str, Path],
    measures: Sequence[str] = ("reminder_rate", "p_reminded", "p_alive_at_end"),
    title: str = "",
) -> Path:
    """One panel per measure, one line per labelled curve (e.g. one per model or mode); writes ``path``."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(measures), figsize=(4.2 * len(measures), 3.4), squeeze=False)
    for axis, measure in zip(axes[0], measures):
        for label, curve in curves.items():
            axis.plot(curve.positions, getattr(curve, measure), marker="o", markersize=3, label=label)
        axis.set_xlabel("creation position (fraction of the episode)")
        axis.set_title(measure.replace("_", " "))
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    return _save(figure, path)


def plot_lag_crp(curves: Dict[str, LagCRP], path: Union[str, Path], title: str = "") -> Path:
    """Lag-CRP against lag, one line per labelled curve, lag 0 left out (pairs created in one step); writes ``path``."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5.2, 3.6))
    for label, curve in curves.items():
        crp = np.where(curve.lags == 0, np.nan, curve.crp)  # a gap at lag 0
        axis.plot(curve.lags, crp, marker="o", markersize=3, label=label)
    axis.set_xlabel("lag (creation steps)")
    axis.set_ylabel("conditional response probability")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    axis.set_title(title)
    figure.tight_layout()
    return _save(figure, path)


def _save(figure, path: Union[str, Path]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    _pyplot().close(figure)
    return path


def _frame_layout(history: HistoryManager, step: int) -> Tuple[np.ndarray, np.ndarray, List[str], np.ndarray, List]:
    """Node positions (x = creation step, y = type band plus a spread within the step), types, lifespans, ids.

    Summaries are taken after ``adjust_lifespan_and_memories``, when the step's working memory has become
    short-term: engrams created at ``step`` are reported as WORKING here, so the frame shows them apart."""
    summary = history.summaries[step]
    ids = sorted(summary.engrams)
    per_step: Dict[Tuple[int, str], int] = {}
    x, y, types, lifespans = [], [], [], []
    for engram_id in ids:
        info = summary.engrams[engram_id]
        created = history.engram_creation_times[engram_id]
        kind = "WORKING" if created == step else info.type
        slot = per_step.get((created, info.type), 0)
        per_step[(created, info.type)] = slot + 1
        x.append(created)
        y.append(TYPE_ROWS[info.type] + 0.12 * slot)
        types.append(kind)
        lifespans.append(info.lifespan)
    return np.array(x), np.array(y), types, np.array(lifespans), ids


def animate_history(
    history: HistoryManager,
    path: Union[str, Path],
    max_edges: int = 40,
    fps: int = 4,
    steps: Optional[Sequence[int]] = None,
) -> Path:
    """An animated GIF of one row's engrams over steps; writes ``path``.

    Each frame is the state after a step: engrams at x = their creation step, in bands by type (short-term,
    long-term; this step's working memory, just turned short-term, in its own colour), marker area proportional to
    lifespan, and the ``max_edges`` strongest Hebbian links (co-firing counts) as lines whose opacity follows their
    conditional firing probability.
    """
    plt = _pyplot()
    from matplotlib.animation import FuncAnimation, PillowWriter

    steps = list(range(history.timestep)) if steps is None else list(steps)
    if not steps:
        raise ValueError("history has no completed step to animate")
    figure, axis = plt.subplots(figsize=(8, 4))
    horizon = max(history.engram_creation_times.values()) + 1

    def draw(step: int) -> None:
        axis.clear()
        x, y, types, lifespans, ids = _frame_layout(history, step)
        where = {engram_id: i for i, engram_id in enumerate(ids)}
        edges = sorted(history.summaries[step].edges.values(), key=lambda e: -e.cofire_count)[:max_edges]
        for edge in edges:
            a, b = where[edge.source_id], where[edge.target_id]
            axis.plot([x[a], x[b]], [y[a], y[b]], color="grey", alpha=0.15 + 0.6 * edge.weight, linewidth=0.8)
        colours = [TYPE_COLOURS[t] for t in types]
        axis.scatter(x, y, s=12 * np.clip(lifespans, 0.5, None), c=colours, edgecolors="black", linewidths=0.3)
        counts = {t: types.count(t) for t in TYPE_COLOURS}
        axis.set_title(
            f"step {step + 1}: {counts['WORKING']} new, {counts['SHORTTERM'] + counts['WORKING']} short-term, "
            f"{counts['LONGTERM']} long-term engrams"
        )
        axis.set_xlim(-1, horizon)
        axis.set_ylim(-0.5, 2.0 + 0.12 * max(1, len(ids)) ** 0.5)
        axis.set_yticks(list(TYPE_ROWS.values()), ["short-term", "long-term"])
        axis.set_xlabel("creation step (marker area = lifespan, lines = strongest Hebbian links)")

    animation = FuncAnimation(figure, draw, frames=steps)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    animation.save(path, writer=PillowWriter(fps=fps))
    plt.close(figure)
    return path
