"""Engram analysis: serial-position effects and temporal contiguity in recorded Memoria histories.

The functions read the :class:`~memoria.history.HistoryManager` s that ``Memoria(..., keep_history=True)``
records and return plain numpy arrays and dataclasses; plotting is left to the caller.

An *episode* is one history: one batch row between two resets. Engram ``e`` of an episode of ``T`` steps is
created at step ``c_e`` (its serial position) and exists during steps ``c_e <= s < d_e`` (``d_e = T`` if it was
never deleted). It is *reminded* at step ``s`` when it fires at ``s > c_e``: working memory fires in the step that
creates it, so only later firings are reminders.

- :func:`serial_position_curve`: by creation position, the probability of being reminded later, the mean number
  of reminders and the probability of being alive at the end. Primacy = early positions above the middle,
  recency = late positions above the middle (:func:`primacy_recency`).
- :func:`lag_crp`: the lag-conditional response probability of the free-recall literature, with "recalled
  together" read as "reminded in the same step" (or "in consecutive steps"), normalised by the pairs available at
  each lag. Contiguity = a peak at small lags (:func:`contiguity`).

Every effect comes with a bootstrap confidence interval over episodes and a control: the same statistic after the
creation times of each episode's engrams are shuffled, which removes any effect of creation order by construction.
"""

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from .history import HistoryManager

__all__ = [
    "Episode",
    "Effect",
    "SerialPositionCurve",
    "LagCRP",
    "episode_from_history",
    "serial_position_curve",
    "primacy_recency",
    "lag_crp",
    "contiguity",
    "shuffle_creation_times",
]


@dataclass(frozen=True)
class Episode:
    """One history as arrays over its E engrams (ids in creation order).

    Attributes:
        num_steps: T, the steps the history completed.
        engram_ids: shaped [E], the engram ids.
        created: shaped [E], the step that created each engram.
        deleted: shaped [E], the first step at which it no longer exists (T if it survived).
        reminded: T arrays; ``reminded[s]`` holds the positions in ``engram_ids`` of the engrams reminded at step s.
        serial_position: shaped [E], the creation step the statistics group by: ``created`` (the default), or a
            permutation of it in the shuffled control.
    """

    num_steps: int
    engram_ids: np.ndarray
    created: np.ndarray
    deleted: np.ndarray
    reminded: Tuple[np.ndarray, ...]
    serial_position: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        if self.serial_position is None:
            object.__setattr__(self, "serial_position", self.created)

    def alive_at(self, step: int) -> np.ndarray:
        """Positions of the engrams that existed before ``step`` and still exist during it (could be reminded)."""
        return np.flatnonzero((self.created < step) & (self.deleted > step))


def episode_from_history(history: HistoryManager) -> Episode:
    """Reads one :class:`HistoryManager` into an :class:`Episode`.

    Raises:
        ValueError: the history has no completed step, or lacks its first steps (``Memoria(history_window=...)``
            dropped them: an episode is read whole).
    """
    history.check_whole("an episode")
    ids = np.asarray(history.engram_ids, dtype=np.int64)
    created = np.asarray([history.engram_creation_times[i] for i in ids], dtype=np.int64)
    deleted = np.asarray([history.engram_deletion_times.get(i, history.timestep) for i in ids], dtype=np.int64)
    position = {int(engram_id): p for p, engram_id in enumerate(ids)}
    reminded = []
    for step, firings in enumerate(history.firings_per_time):
        fired = {position[f.engram_id] for f in firings if f.engram_id in position}
        reminded.append(np.asarray(sorted(p for p in fired if created[p] < step), dtype=np.int64))
    return Episode(history.timestep, ids, created, deleted, tuple(reminded))


def _episodes(histories: Sequence) -> List[Episode]:
    if len(histories) == 0:
        raise ValueError("histories must hold at least one HistoryManager or Episode, got none")
    episodes = [h if isinstance(h, Episode) else episode_from_history(h) for h in histories]
    for episode in episodes:
        if episode.engram_ids.size == 0:
            raise ValueError("every history must hold at least one engram")
    return episodes


def shuffle_creation_times(episode: Episode, rng: np.random.Generator) -> Episode:
    """The control: the same episode with creation times permuted among its engrams.

    When each engram exists and when it is reminded stay as recorded; only the serial positions that the
    statistics group by are shuffled, so any dependence on creation order disappears by construction.
    """
    return Episode(
        episode.num_steps,
        episode.engram_ids,
        episode.created,
        episode.deleted,
        episode.reminded,
        rng.permutation(episode.serial_position),
    )


# ------------------------------------------------------------------------------------------ effects
@dataclass(frozen=True)
class Effect:
    """An effect size with its bootstrap confidence interval, and the same for the shuffled control.

    Attributes:
        value: the statistic on the recorded histories.
        ci_low / ci_high: the bootstrap percentile interval (resampling episodes with replacement).
        control / control_ci_low / control_ci_high: the statistic, and its interval, after
            :func:`shuffle_creation_times` (one shuffle per bootstrap sample).
        null_value: what the statistic equals when there is no effect (0 for differences, 1 for ratios).
    """

    value: float
    ci_low: float
    ci_high: float
    control: float
    control_ci_low: float
    control_ci_high: float
    null_value: float

    @property
    def significant(self) -> bool:
        """The interval excludes the null value and does not overlap the control's interval."""
        excludes_null = self.ci_low > self.null_value or self.ci_high < self.null_value
        apart = self.ci_low > self.control_ci_high or self.ci_high < self.control_ci_low
        return excludes_null and apart


def _bootstrap(
    counts: np.ndarray,
    control_counts: np.ndarray,
    statistic: Callable[[np.ndarray], float],
    null_value: float,
    num_samples: int,
    confidence: float,
    seed: int,
) -> Effect:
    """Bootstrap a statistic of summed per-episode counts.

    Args:
        counts: shaped [NumEpisodes, ...], each episode's counts; the statistic reads their sum over episodes.
        control_counts: the same for the episodes after :func:`shuffle_creation_times`.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    resamples = rng.integers(0, counts.shape[0], (num_samples, counts.shape[0]))  # [NumSamples, NumEpisodes]
    samples = [statistic(counts[chosen].sum(0)) for chosen in resamples]
    controls = [statistic(control_counts[chosen].sum(0)) for chosen in resamples]
    tail = 50 * (1 - confidence)
    with np.errstate(invalid="ignore"):  # infinite ratios (no far pairs) are valid samples
        low, high = np.nanpercentile(samples, [tail, 100 - tail])
        control_low, control_high = np.nanpercentile(controls, [tail, 100 - tail])
    return Effect(
        statistic(counts.sum(0)),
        float(low),
        float(high),
        statistic(control_counts.sum(0)),
        float(control_low),
        float(control_high),
        null_value,
    )


def _shuffled(episodes: List[Episode], seed: int) -> List[Episode]:
    rng = np.random.default_rng([seed, 1])
    return [shuffle_creation_times(e, rng) for e in episodes]


# ------------------------------------------------------------------------------------------ serial position
@dataclass(frozen=True)
class SerialPositionCurve:
    """Engram outcomes grouped by creation position (all arrays shaped [NumPositions]).

    Attributes:
        positions: the group's position: the creation step (``by="absolute"``) or the centre of a bin of
            relative position c / (T - 1) in [0, 1) (``by="relative"``).
        num_engrams: engrams in the group.
        p_reminded: fraction reminded at least once after creation.
        mean_times_reminded: mean number of steps at which they were reminded.
        p_alive_at_end: fraction still existing at the end of the episode.
        reminder_rate: reminders per step of opportunity (steps after creation during which the engram existed).
            Early engrams exist for more steps, so ``p_reminded`` and ``mean_times_reminded`` favour them even
            when every engram is reminded at the same rate; ``reminder_rate`` does not.
    """

    positions: np.ndarray
    num_engrams: np.ndarray
    p_reminded: np.ndarray
    mean_times_reminded: np.ndarray
    p_alive_at_end: np.ndarray
    reminder_rate: np.ndarray


_MEASURES = ("reminder_rate", "p_reminded", "mean_times_reminded", "p_alive_at_end")


def _times_reminded(episode: Episode) -> np.ndarray:
    counts = np.zeros(episode.engram_ids.size, dtype=np.int64)
    for positions in episode.reminded:
        counts[positions] += 1
    return counts


def _serial_position_counts(episode: Episode, by: str, size: int) -> np.ndarray:
    """Per position group: [engrams, engrams reminded, reminders, engrams alive at the end, steps of opportunity],
    shaped [5, size]."""
    position = episode.serial_position
    included = np.ones(position.size)
    if by == "absolute":
        group = position
    else:  # engrams of the last step never had a later step to be reminded in: left out, the rest span [0, 1)
        included = (episode.created < episode.num_steps - 1).astype(float)
        group = np.minimum(position * size // max(episode.num_steps - 1, 1), size - 1)
    times = _times_reminded(episode)
    alive = episode.deleted >= episode.num_steps
    exposure = np.maximum(episode.deleted - episode.created - 1, 0)
    weights = (np.ones(times.size), (times > 0).astype(float), times.astype(float), alive.astype(float), exposure)
    weights = tuple(w * included for w in weights)
    return np.stack([np.bincount(group, weights=w, minlength=size) for w in weights])


def _curve_from_counts(positions: np.ndarray, counts: np.ndarray) -> SerialPositionCurve:
    engrams, reminded, times, alive, exposure = counts
    with np.errstate(invalid="ignore", divide="ignore"):
        return SerialPositionCurve(
            positions,
            engrams.astype(np.int64),
            reminded / engrams,
            times / engrams,
            alive / engrams,
            np.where(exposure > 0, times / exposure, np.nan),
        )


def _positions(episodes: List[Episode], by: str, num_bins: int) -> np.ndarray:
    if by == "absolute":
        return np.arange(max(e.num_steps for e in episodes), dtype=np.float64)
    if by == "relative":
        if num_bins < 1:
            raise ValueError(f"num_bins must be >= 1, got {num_bins}")
        return (np.arange(num_bins) + 0.5) / num_bins
    raise ValueError(f"by must be 'absolute' or 'relative', got {by!r}")


def serial_position_curve(histories: Sequence, by: str = "relative", num_bins: int = 10) -> SerialPositionCurve:
    """Reminder and survival statistics of engrams grouped by when they were created.

    Args:
        histories: :class:`HistoryManager` s (or :class:`Episode` s), one per episode.
        by: "relative" groups by c / (T - 1) into ``num_bins`` bins, so that episodes of different lengths line
            up; the engrams of an episode's last step are left out (no later step could remind them, so they would
            only pull the last bin's reminder measures down). "absolute" groups by the creation step c, the last
            step included.
        num_bins: bins of relative position.

    Returns:
        a :class:`SerialPositionCurve`; groups without engrams hold NaN.
    """
    episodes = _episodes(histories)
    positions = _positions(episodes, by, num_bins)
    counts = sum(_serial_position_counts(e, by, positions.size) for e in episodes)
    return _curve_from_counts(positions, counts)


def _edge_contrast(values: np.ndarray, edge_bins: int, first: bool) -> float:
    """Mean of the first (or last) ``edge_bins`` groups minus the mean of the middle third."""
    size = values.size
    middle = values[size // 3 : size - size // 3]
    edge = values[:edge_bins] if first else values[size - edge_bins :]
    return float(np.nanmean(edge) - np.nanmean(middle))


def primacy_recency(
    histories: Sequence,
    measure: str = "reminder_rate",
    num_bins: int = 10,
    edge_bins: int = 1,
    num_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Tuple[Effect, Effect]:
    """Primacy and recency as differences of a serial-position measure, with bootstrap intervals and controls.

    primacy = the measure's mean over the first ``edge_bins`` relative-position bins minus its mean over the middle
    third of the bins; recency = the same for the last ``edge_bins`` bins. Both are 0 when position does not matter.

    Args:
        histories: :class:`HistoryManager` s (or :class:`Episode` s), one per episode; the bootstrap resamples them.
        measure: a field of :class:`SerialPositionCurve`: "reminder_rate" (default: corrects for the longer
            exposure of early engrams), "p_reminded", "mean_times_reminded" or "p_alive_at_end".
        num_bins: relative-position bins (at least 3).
        edge_bins: bins counted as "early" and "late" (at most a third of ``num_bins``).
        num_samples / confidence / seed: the bootstrap (and the control's shuffle).

    Returns:
        (primacy, recency) as :class:`Effect` s.
    """
    if measure not in _MEASURES:
        raise ValueError(f"measure must be one of {_MEASURES}, got {measure!r}")
    if num_bins < 3 or not 1 <= edge_bins <= num_bins // 3:
        raise ValueError(f"need num_bins >= 3 and 1 <= edge_bins <= num_bins // 3, got {num_bins}, {edge_bins}")
    episodes = _episodes(histories)
    positions = _positions(episodes, "relative", num_bins)
    counts = np.stack([_serial_position_counts(e, "relative", num_bins) for e in episodes])
    control = np.stack([_serial_position_counts(e, "relative", num_bins) for e in _shuffled(episodes, seed)])

    def contrast(first: bool) -> Callable[[np.ndarray], float]:
        return lambda summed: _edge_contrast(getattr(_curve_from_counts(positions, summed), measure), edge_bins, first)

    primacy = _bootstrap(counts, control, contrast(True), 0.0, num_samples, confidence, seed)
    recency = _bootstrap(counts, control, contrast(False), 0.0, num_samples, confidence, seed)
    return primacy, recency


# ------------------------------------------------------------------------------------------ contiguity
@dataclass(frozen=True)
class LagCRP:
    """Lag-conditional response probability (all arrays shaped [2 * MaxLag + 1]).

    Attributes:
        lags: -MaxLag .. MaxLag, in creation steps (lag = c_b - c_a).
        actual: ordered pairs (a, b) reminded together at each lag.
        available: pairs that could have been: a reminded at s and b existing at s (same-step mode) or at s + 1
            (next-step mode); a != b.
        crp: actual / available (NaN where nothing was available).
    """

    lags: np.ndarray
    actual: np.ndarray
    available: np.ndarray
    crp: np.ndarray


def _by_creation(engrams: np.ndarray, serial_position: np.ndarray, length: int) -> np.ndarray:
    """How many of ``engrams`` were created at each step: shaped [length]."""
    return np.bincount(serial_position[engrams], minlength=length).astype(np.float64)


def _pair_counts(first: np.ndarray, second: np.ndarray, max_lag: int) -> np.ndarray:
    """counts[k + max_lag] = sum over c of first[c] * second[c + k], for k in [-max_lag, max_lag]."""
    length = first.size
    counts = np.zeros(2 * max_lag + 1)
    for k in range(-min(max_lag, length - 1), min(max_lag, length - 1) + 1):
        lo, hi = max(0, -k), length - max(0, k)
        counts[k + max_lag] = first[lo:hi] @ second[lo + k : hi + k]
    return counts


def _lag_counts(episode: Episode, mode: str, max_lag: int) -> np.ndarray:
    """[actual, available] pair counts by lag, shaped [2, 2 * max_lag + 1]."""
    counts = np.zeros((2, 2 * max_lag + 1))
    length = episode.num_steps
    for step in range(length - 1 if mode == "next_step" else length):
        reminded = episode.reminded[step]
        if reminded.size == 0:
            continue
        target = step + 1 if mode == "next_step" else step
        later_reminded, later_alive = episode.reminded[target], episode.alive_at(target)
        position = episode.serial_position
        source = _by_creation(reminded, position, length)
        counts[0] += _pair_counts(source, _by_creation(later_reminded, position, length), max_lag)
        counts[1] += _pair_counts(source, _by_creation(later_alive, position, length), max_lag)
        # a != b: remove each engram paired with itself (always lag 0)
        counts[0, max_lag] -= np.intersect1d(reminded, later_reminded).size
        counts[1, max_lag] -= np.intersect1d(reminded, later_alive).size
    return counts


def _check_lag_mode(mode: str, max_lag: int) -> None:
    if mode not in ("same_step", "next_step"):
        raise ValueError(f"mode must be 'same_step' or 'next_step', got {mode!r}")
    if max_lag < 1:
        raise ValueError(f"max_lag must be >= 1, got {max_lag}")


def lag_crp(histories: Sequence, max_lag: int = 10, mode: str = "same_step") -> LagCRP:
    """The lag-CRP of reminded engrams.

    For every step s and every ordered pair of distinct engrams (a, b) with a reminded at s: the pair is
    *available* when b could be reminded (it exists at s in "same_step" mode, at s + 1 in "next_step" mode) and
    *actual* when b is reminded then. Counts are summed by lag c_b - c_a over steps and episodes;
    CRP(k) = actual(k) / available(k).

    Args:
        histories: :class:`HistoryManager` s (or :class:`Episode` s).
        max_lag: the largest |lag| reported.
        mode: "same_step" or "next_step".

    Returns:
        a :class:`LagCRP`.
    """
    _check_lag_mode(mode, max_lag)
    actual, available = sum(_lag_counts(e, mode, max_lag) for e in _episodes(histories))
    with np.errstate(invalid="ignore", divide="ignore"):
        crp = np.where(available > 0, actual / available, np.nan)
    return LagCRP(np.arange(-max_lag, max_lag + 1), actual, available, crp)


def contiguity(
    histories: Sequence,
    near: int = 1,
    far: Tuple[int, int] = (4, 10),
    mode: str = "same_step",
    num_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Effect:
    """Temporal contiguity as a ratio: the CRP of near lags over the CRP of far lags.

    ratio = (actual / available, summed over 1 <= |k| <= near) / (the same over far[0] <= |k| <= far[1]).
    1 means no contiguity; above 1, engrams created close in time are reminded together more often.

    Args:
        histories: :class:`HistoryManager` s (or :class:`Episode` s); the bootstrap resamples them.
        near: the largest |lag| counted as near.
        far: the range of |lag| counted as far (``near < far[0] <= far[1]``).
        mode: as :func:`lag_crp`.
        num_samples / confidence / seed: the bootstrap (and the control's shuffle).
    """
    if not 1 <= near < far[0] <= far[1]:
        raise ValueError(f"need 1 <= near < far[0] <= far[1], got near={near}, far={far}")
    _check_lag_mode(mode, far[1])
    episodes = _episodes(histories)
    lags = np.abs(np.arange(-far[1], far[1] + 1))
    is_near = (lags >= 1) & (lags <= near)
    is_far = lags >= far[0]

    def ratio(summed: np.ndarray) -> float:
        actual, available = summed
        near_rate = actual[is_near].sum() / max(available[is_near].sum(), 1.0)
        far_rate = actual[is_far].sum() / max(available[is_far].sum(), 1.0)
        if far_rate == 0:
            return float("inf") if near_rate > 0 else float("nan")
        return float(near_rate / far_rate)

    counts = np.stack([_lag_counts(e, mode, far[1]) for e in episodes])
    control = np.stack([_lag_counts(e, mode, far[1]) for e in _shuffled(episodes, seed)])
    return _bootstrap(counts, control, ratio, 1.0, num_samples, confidence, seed)
