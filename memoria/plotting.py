"""Figures of recorded Memoria histories: serial-position curves, lag-CRP, and the engram animation.

Needs matplotlib and pillow (``pip install "memoria-pytorch[analysis]"``); they are imported when a function is
called, so ``import memoria.plotting`` works without them. Nothing here computes statistics (that is
:mod:`memoria.analysis`): each function draws what it is given.

Figures are built with matplotlib's object-oriented API (no pyplot state, no global backend change), so they
work in scripts, tests and notebooks alike. ``plot_*`` functions return the ``Figure`` when ``path`` is None and
otherwise write the file and return its ``Path``.
"""

from pathlib import Path
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from .analysis import LagCRP, SerialPositionCurve
from .history import HistoryManager

__all__ = ["plot_serial_position", "plot_lag_crp", "plot_engrams", "animate_history"]

PathLike = Union[str, Path]

TYPE_COLOURS = {"WORKING": "#f28e2b", "SHORTTERM": "#4e79a7", "LONGTERM": "#59a14f"}
TYPE_LABELS = {"WORKING": "new (working memory)", "SHORTTERM": "short-term", "LONGTERM": "long-term"}
BAND_BOTTOM = {"LONGTERM": 0.0, "SHORTTERM": 1.25}  # each type's band is 1 high
REMINDED_EDGE = "#d62728"
SMALLEST_MARKER = 0.05  # the smallest marker, as a fraction of the largest's area

_MEASURE_TITLES = {
    "reminder_rate": "reminders per step alive",
    "p_reminded": "P(reminded at least once)",
    "mean_times_reminded": "mean times reminded",
    "p_alive_at_end": "P(alive at the end)",
}


def _require_matplotlib():
    """matplotlib's Figure and Agg canvas, or an ImportError naming the extra that installs them."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - exercised only without matplotlib
        raise ImportError(
            "memoria.plotting needs matplotlib and pillow: pip install 'memoria-pytorch[analysis]'"
        ) from error
    return Figure, FigureCanvasAgg


def _new_figure(size: Tuple[float, float], dpi: int = 100):
    figure_class, canvas_class = _require_matplotlib()
    figure = figure_class(figsize=size, dpi=dpi)
    canvas_class(figure)  # attaches an Agg canvas: the figure can be drawn and saved without pyplot
    return figure


def _finish(figure, path: Optional[PathLike], dpi: int):
    if path is None:
        return figure
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    return path


def _labelled(curves, kind: type, name: str) -> Dict[str, object]:
    """A single curve or a mapping label -> curve, checked, as a dict."""
    if isinstance(curves, kind):
        return {"": curves}
    if not isinstance(curves, Mapping) or not curves:
        raise TypeError(f"{name} must be a {kind.__name__} or a non-empty mapping of labels to them")
    for label, curve in curves.items():
        if not isinstance(curve, kind):
            raise TypeError(f"{name}[{label!r}] must be a {kind.__name__}, got {type(curve).__name__}")
    return dict(curves)


# ------------------------------------------------------------------------------------------ curves
def plot_serial_position(
    curves: Union[SerialPositionCurve, Mapping[str, SerialPositionCurve]],
    path: Optional[PathLike] = None,
    measures: Sequence[str] = ("reminder_rate", "p_reminded", "p_alive_at_end"),
    controls: Optional[Mapping[str, SerialPositionCurve]] = None,
    title: str = "",
    dpi: int = 120,
):
    """Serial-position curves: one panel per measure, one line per labelled curve.

    Args:
        curves: a :class:`~memoria.analysis.SerialPositionCurve`, or label -> curve (e.g. one per mode or model).
        path: where to write the figure (format from the suffix); None returns the Figure.
        measures: fields of ``SerialPositionCurve`` to draw, one panel each, y against ``positions``.
        controls: label -> the curve of the shuffled control, drawn dashed in the colour of ``curves[label]``.
        title: the figure's title.
        dpi: resolution of the written file.

    Returns:
        the ``matplotlib.figure.Figure`` when ``path`` is None, else the written ``Path``.
    """
    curves = _labelled(curves, SerialPositionCurve, "curves")
    controls = {} if controls is None else _labelled(controls, SerialPositionCurve, "controls")
    unknown = [m for m in measures if m not in _MEASURE_TITLES]
    if not measures or unknown:
        raise ValueError(f"measures must name fields among {tuple(_MEASURE_TITLES)}, got {tuple(measures)}")
    figure = _new_figure((4.2 * len(measures), 3.5))
    axes = figure.subplots(1, len(measures), squeeze=False)[0]
    for axis, measure in zip(axes, measures):
        for index, (label, curve) in enumerate(curves.items()):
            colour = f"C{index}"
            axis.plot(curve.positions, getattr(curve, measure), marker="o", markersize=3, color=colour, label=label)
            if label in controls:
                control = controls[label]
                axis.plot(
                    control.positions,
                    getattr(control, measure),
                    linestyle="--",
                    linewidth=1,
                    color=colour,
                    label=f"{label} shuffled".strip(),
                )
        axis.set_xlabel("creation position (fraction of the episode)")
        axis.set_title(_MEASURE_TITLES[measure], fontsize=10)
        axis.set_xlim(0, 1)
        axis.grid(alpha=0.3)
    if len(curves) > 1 or controls:
        axes[0].legend(fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return _finish(figure, path, dpi)


def plot_lag_crp(
    curves: Union[LagCRP, Mapping[str, LagCRP]],
    path: Optional[PathLike] = None,
    controls: Optional[Mapping[str, LagCRP]] = None,
    title: str = "",
    dpi: int = 120,
):
    """Lag-CRP against lag, one line per labelled curve; lag 0 (engrams created in the same step) is left as a gap.

    Args:
        curves: a :class:`~memoria.analysis.LagCRP`, or label -> LagCRP.
        path: where to write the figure; None returns the Figure.
        controls: label -> the LagCRP of the shuffled control, drawn dashed in the colour of ``curves[label]``.
        title: the axes' title.
        dpi: resolution of the written file.

    Returns:
        the ``matplotlib.figure.Figure`` when ``path`` is None, else the written ``Path``.
    """
    curves = _labelled(curves, LagCRP, "curves")
    controls = {} if controls is None else _labelled(controls, LagCRP, "controls")
    figure = _new_figure((5.4, 3.7))
    axis = figure.subplots()
    for index, (label, curve) in enumerate(curves.items()):
        colour = f"C{index}"
        axis.plot(
            curve.lags,
            np.where(curve.lags == 0, np.nan, curve.crp),
            marker="o",
            markersize=3,
            color=colour,
            label=label,
        )
        if label in controls:
            control = controls[label]
            crp = np.where(control.lags == 0, np.nan, control.crp)
            axis.plot(control.lags, crp, linestyle="--", linewidth=1, color=colour, label=f"{label} shuffled".strip())
    axis.set_xlabel("lag (creation steps)")
    axis.set_ylabel("conditional response probability")
    axis.grid(alpha=0.3)
    if len(curves) > 1 or controls:
        axis.legend(fontsize=8)
    if title:
        axis.set_title(title, fontsize=10)
    figure.tight_layout()
    return _finish(figure, path, dpi)


# ------------------------------------------------------------------------------------------ engrams
class _Canvas(NamedTuple):
    """What every frame of one history shares, so that frames line up."""

    slots: int  # the most engrams created in one step: the height a band is divided into
    horizon: int  # creation steps on the x axis
    longest: float  # the longest lifespan of any engram at any step: drawn at the largest marker
    largest_area: float  # marker area (points^2) of the longest lifespan: fills a slot


def _canvas(history: HistoryManager) -> _Canvas:
    counts = np.bincount(np.fromiter(history.engram_creation_times.values(), dtype=np.int64))
    slots = max(int(counts.max()), 1)
    longest = max((e.lifespan for s in history.summaries for e in s.engrams.values()), default=1.0)
    band_points = 90.0  # a band is about 90 points high in the 8 x 4 inch figure
    return _Canvas(slots, len(counts), max(float(longest), 1e-6), (0.9 * band_points / slots) ** 2)


def _marker_areas(lifespans: np.ndarray, canvas: _Canvas) -> np.ndarray:
    """Marker area (points^2) per engram: log(1 + lifespan), scaled so that the longest lifespan of the history
    fills a slot (lifespans are heavy-tailed: a linear scale would shrink most engrams to dots)."""
    scaled = np.log1p(np.maximum(np.asarray(lifespans, dtype=np.float64), 0.0)) / np.log1p(canvas.longest)
    return canvas.largest_area * np.clip(scaled, SMALLEST_MARKER, 1.0)


def _layout(history: HistoryManager, step: int, slots: int):
    """Where each engram alive after ``step`` is drawn, and how.

    x is the engram's creation step; y is its type's band (long-term below, short-term above), ordered within
    the band by id. An engram created at ``step`` is drawn as new working memory (the summary, taken after the
    step, already calls it short-term).

    Returns:
        ids [N] (list), positions [N, 2], kinds [N] (list of type names), lifespans [N].
    """
    summary = history.summaries[step]
    ids = sorted(summary.engrams)
    filled: Dict[Tuple[int, str], int] = {}
    positions, kinds, lifespans = [], [], []
    for engram_id in ids:
        info = summary.engrams[engram_id]
        created = history.engram_creation_times[engram_id]
        slot = filled.get((created, info.type), 0)
        filled[(created, info.type)] = slot + 1
        positions.append((created, BAND_BOTTOM[info.type] + (slot + 0.5) / slots))
        kinds.append("WORKING" if created == step else info.type)
        lifespans.append(info.lifespan)
    return ids, np.asarray(positions, dtype=np.float64).reshape(-1, 2), kinds, np.asarray(lifespans, np.float64)


def _strongest_links(history: HistoryManager, step: int, max_links: int) -> List[Tuple[int, int, int, float]]:
    """The ``max_links`` engram pairs that fired together most often, as (a, b, co-firings, weight), weight the
    larger of the two conditional firing probabilities."""
    pairs: Dict[Tuple[int, int], Tuple[int, float]] = {}
    for (source, target), edge in history.summaries[step].edges.items():
        if source == target:
            continue
        key = (min(source, target), max(source, target))
        count, weight = pairs.get(key, (0, 0.0))
        pairs[key] = (max(count, edge.cofire_count), max(weight, edge.weight))
    ranked = sorted(pairs.items(), key=lambda item: (-item[1][0], -item[1][1], item[0]))[:max_links]
    return [(a, b, count, weight) for (a, b), (count, weight) in ranked]


def _arc(start: np.ndarray, end: np.ndarray, points: int = 16) -> np.ndarray:
    """A quadratic Bezier arc from ``start`` to ``end`` bulging to the left of the chord: shaped [points, 2]."""
    chord = end - start
    control = (start + end) / 2 + 0.25 * np.array([-chord[1], chord[0]])
    t = np.linspace(0, 1, points)[:, None]
    return (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end


def _draw_engrams(axis, history: HistoryManager, step: int, max_links: int, canvas: _Canvas) -> None:
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    ids, positions, kinds, lifespans = _layout(history, step, canvas.slots)
    where = {engram_id: index for index, engram_id in enumerate(ids)}
    links = [link for link in _strongest_links(history, step, max_links) if link[0] in where and link[1] in where]
    if links:
        arcs = [_arc(positions[where[a]], positions[where[b]]) for a, b, _, _ in links]
        colours = [(0.25, 0.25, 0.25, 0.2 + 0.6 * weight) for _, _, _, weight in links]
        widths = [0.5 + 1.5 * weight for _, _, _, weight in links]
        axis.add_collection(LineCollection(arcs, colors=colours, linewidths=widths, zorder=1))
    fired = {f.engram_id for f in history.firings_per_time[step]}
    reminded = np.array([i in fired and history.engram_creation_times[i] < step for i in ids], dtype=bool)
    if ids:
        axis.scatter(
            positions[:, 0],
            positions[:, 1],
            s=_marker_areas(lifespans, canvas),
            c=[TYPE_COLOURS[kind] for kind in kinds],
            edgecolors=np.where(reminded, REMINDED_EDGE, "black").tolist(),
            linewidths=np.where(reminded, 1.6, 0.3),
            zorder=2,
        )
    counts = {kind: kinds.count(kind) for kind in TYPE_COLOURS}
    axis.set_title(
        f"step {step + 1} of {history.timestep}: {counts['WORKING']} new, {counts['SHORTTERM']} short-term, "
        f"{counts['LONGTERM']} long-term, {int(reminded.sum())} reminded",
        fontsize=10,
    )
    axis.set_xlim(-0.7, canvas.horizon - 0.3)
    axis.set_ylim(-0.15, BAND_BOTTOM["SHORTTERM"] + 1.15)
    axis.set_yticks([0.5, BAND_BOTTOM["SHORTTERM"] + 0.5], ["long-term", "short-term"])
    axis.set_xlabel(f"creation step (marker area: log(1 + lifespan); arcs: the {max_links} most co-fired pairs)")
    handles = [
        Line2D([], [], marker="o", linestyle="", color=colour, markeredgecolor="black", label=TYPE_LABELS[kind])
        for kind, colour in TYPE_COLOURS.items()
    ]
    handles.append(
        Line2D([], [], marker="o", linestyle="", color="white", markeredgecolor=REMINDED_EDGE, label="reminded")
    )
    axis.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _check_history(history: HistoryManager) -> None:
    if not isinstance(history, HistoryManager):
        raise TypeError(f"history must be a HistoryManager, got {type(history).__name__}")
    history.check_whole("the drawing (engrams placed by creation step)")


def plot_engrams(
    history: HistoryManager,
    step: int,
    path: Optional[PathLike] = None,
    max_links: int = 40,
    dpi: int = 120,
):
    """One row's engrams after ``step``: the frame :func:`animate_history` draws for that step.

    Each engram sits at x = its creation step, in the band of its type (long-term below, short-term above; the
    working memory created at this step in its own colour), with marker area growing with its lifespan and a
    red outline when it was reminded at this step; arcs join the ``max_links`` pairs that fired together most
    often, more opaque and thicker the higher their conditional firing probability.

    Args:
        history: a recorded :class:`~memoria.history.HistoryManager` (``Memoria(..., keep_history=True)``).
        step: 0 <= step < ``history.timestep``.
        path: where to write the figure; None returns the Figure.
        max_links: how many links to draw.
        dpi: resolution of the written file.
    """
    _check_history(history)
    if not 0 <= step < history.timestep:
        raise ValueError(f"step must lie in [0, {history.timestep}), got {step}")
    figure = _new_figure((8.0, 4.0))
    _draw_engrams(figure.subplots(), history, step, max_links, _canvas(history))
    figure.tight_layout()
    return _finish(figure, path, dpi)


def animate_history(
    history: HistoryManager,
    path: PathLike,
    steps: Optional[Sequence[int]] = None,
    max_links: int = 40,
    frame_seconds: float = 0.6,
    dpi: int = 90,
    colours: int = 64,
) -> Path:
    """An animated GIF of one row's engrams over steps, one frame per step as :func:`plot_engrams` draws it.

    Args:
        history: a recorded :class:`~memoria.history.HistoryManager`.
        path: the GIF to write (must end in ``.gif``).
        steps: the steps to draw (default: every completed step, in order).
        max_links: links drawn per frame.
        frame_seconds: how long each frame shows.
        dpi: frame resolution (the figure is 8 x 4 inches).
        colours: palette size of the GIF (2 to 256); fewer colours, smaller file.

    Returns:
        the written ``Path``; the GIF loops forever and has one frame per step.
    """
    _check_history(history)
    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise ValueError(f"path must end in .gif, got {str(path)!r}")
    steps = list(range(history.timestep)) if steps is None else [int(s) for s in steps]
    if not steps or any(not 0 <= s < history.timestep for s in steps):
        raise ValueError(f"steps must be a non-empty list of steps in [0, {history.timestep}), got {steps}")
    if not 2 <= colours <= 256:
        raise ValueError(f"colours must lie in [2, 256], got {colours}")
    try:
        from PIL import Image
    except ImportError as error:  # pragma: no cover - exercised only without pillow
        raise ImportError("animate_history needs pillow: pip install 'memoria-pytorch[analysis]'") from error

    canvas = _canvas(history)
    figure = _new_figure((8.0, 4.0), dpi)
    axis = figure.subplots()
    frames = []
    for step in steps:
        axis.clear()
        _draw_engrams(axis, history, step, max_links, canvas)
        figure.tight_layout()
        figure.canvas.draw()
        rgb = Image.fromarray(np.asarray(figure.canvas.buffer_rgba())).convert("RGB")
        frames.append(rgb)
    # one palette for every frame, from all of them: no flicker, and colours that appear late are kept
    sheet = Image.new("RGB", (frames[0].width, frames[0].height * len(frames)))
    for index, frame in enumerate(frames):
        sheet.paste(frame, (0, index * frame.height))
    palette = sheet.quantize(colors=colours)
    frames = [frame.quantize(palette=palette, dither=Image.Dither.NONE) for frame in frames]
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(
        path,
        save_all=True,
        append_images=frames[1:],
        duration=int(1000 * frame_seconds),
        loop=0,
        optimize=True,
        disposal=1,
    )
    return path
