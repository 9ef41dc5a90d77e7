"""Engram analysis on small hand-built histories whose answers are known."""

from typing import Dict, List, Sequence

import numpy as np
import pytest
import torch

from memoria import HistoryManager, Memoria
from memoria.analysis import (
    Episode,
    contiguity,
    episode_from_history,
    lag_crp,
    primacy_recency,
    serial_position_curve,
    shuffle_creation_times,
)
from memoria.history import Firing, build_summary


def hand_history(
    created: Sequence[Sequence[int]], fired: Sequence[Sequence[int]], deleted: Dict[int, int]
) -> HistoryManager:
    """A history where step s creates ``created[s]``, fires ``fired[s]`` (its working memory fires too) and ends
    with the engrams ``{id: s}`` deleted at step s's end."""
    history = HistoryManager()
    for step, (new, reminded) in enumerate(zip(created, fired)):
        history.add_created(list(new))
        firings = [Firing(step, i, 0.0) for i in [*new, *reminded]]
        gone = [i for i, at in deleted.items() if at == step]
        history.add_step(firings, gone, build_summary([], {}, [], [], []))
    return history


def small_history() -> HistoryManager:
    # step 0 creates 0, 1; step 1 creates 2, 3 and reminds 0, then 1 is deleted; step 2 creates 4, reminds 0, 2, 3
    return hand_history(created=[[0, 1], [2, 3], [4]], fired=[[], [0], [0, 2, 3]], deleted={1: 1})


def test_episode_reads_creation_deletion_and_reminders():
    episode = episode_from_history(small_history())
    assert episode.num_steps == 3
    assert episode.engram_ids.tolist() == [0, 1, 2, 3, 4]
    assert episode.created.tolist() == [0, 0, 1, 1, 2]
    assert episode.deleted.tolist() == [3, 2, 3, 3, 3]  # 1 is gone from step 2 on
    # working memory firing in its own step is not a reminder
    assert [r.tolist() for r in episode.reminded] == [[], [0], [0, 2, 3]]
    assert episode.alive_at(2).tolist() == [0, 2, 3]


def test_serial_position_curve_by_creation_step():
    curve = serial_position_curve([small_history()], by="absolute")
    assert curve.positions.tolist() == [0, 1, 2]
    assert curve.num_engrams.tolist() == [2, 2, 1]
    # step 0: engram 0 reminded twice, engram 1 never; step 1: both reminded once; step 2: never
    assert curve.p_reminded.tolist() == [0.5, 1.0, 0.0]
    assert curve.mean_times_reminded.tolist() == [1.0, 1.0, 0.0]
    assert curve.p_alive_at_end.tolist() == [0.5, 1.0, 1.0]
    # opportunity: engram 0 steps 1-2, engram 1 step 1 -> 2 reminders / 3 steps; engrams 2, 3 step 2 each
    np.testing.assert_allclose(curve.reminder_rate[:2], [2 / 3, 1.0])
    assert np.isnan(curve.reminder_rate[2])  # created at the last step: no opportunity


def test_relative_positions_bin_episodes_of_different_lengths():
    short = hand_history(created=[[0], [1]], fired=[[], [0]], deleted={})
    long = hand_history(created=[[0], [1], [2], [3]], fired=[[], [], [], [1]], deleted={})
    curve = serial_position_curve([short, long], by="relative", num_bins=2)
    assert curve.positions.tolist() == [0.25, 0.75]
    # the last step's engrams (short's 1, long's 3) could not be reminded later: left out; the rest by c / (T - 1)
    # first half: short's 0 (reminded), long's 0 and 1 (1 reminded); second half: long's 2
    assert curve.num_engrams.tolist() == [3, 1]
    np.testing.assert_allclose(curve.p_reminded, [2 / 3, 0.0])


def test_lag_crp_same_step_counts_pairs_by_creation_lag():
    crp = lag_crp([small_history()], max_lag=2)
    assert crp.lags.tolist() == [-2, -1, 0, 1, 2]
    # step 1: 0 reminded, 1 alive (lag 0, not reminded); step 2: 0, 2, 3 reminded and alive
    assert crp.available.tolist() == [0, 2, 3, 2, 0]
    assert crp.actual.tolist() == [0, 2, 2, 2, 0]
    np.testing.assert_allclose(crp.crp[1:4], [1.0, 2 / 3, 1.0])
    assert np.isnan(crp.crp[0]) and np.isnan(crp.crp[4])


def test_lag_crp_next_step_pairs_a_reminder_with_the_next_steps():
    crp = lag_crp([small_history()], max_lag=1, mode="next_step")
    # only step 1 -> 2: 0 (created at 0) then 2 and 3 (created at 1)
    assert crp.actual.tolist() == [0, 0, 2] and crp.available.tolist() == [0, 0, 2]


def flat_episode(rng: np.random.Generator, steps: int, rate_of) -> Episode:
    """One engram per step, never deleted, each reminded at every later step with probability rate_of(c, T)."""
    created = np.arange(steps)
    reminded = []
    for step in range(steps):
        earlier = np.arange(step)
        chance = np.array([rate_of(c, steps) for c in earlier])
        reminded.append(earlier[rng.random(step) < chance])
    return Episode(steps, created.copy(), created, np.full(steps, steps), tuple(reminded))


def test_primacy_appears_when_early_engrams_are_reminded_more():
    rng = np.random.default_rng(0)
    episodes = [flat_episode(rng, 30, lambda c, t: 0.5 if c < t / 10 else 0.1) for _ in range(20)]
    primacy, recency = primacy_recency(episodes, num_samples=200)
    assert primacy.value == pytest.approx(0.4, abs=0.05) and primacy.significant
    assert abs(primacy.control) < 0.05  # the shuffle removes it
    assert not recency.significant


def test_recency_appears_when_late_engrams_are_reminded_more():
    rng = np.random.default_rng(1)
    episodes = [flat_episode(rng, 30, lambda c, t: 0.6 if c >= 0.9 * t - 1 else 0.1) for _ in range(20)]
    primacy, recency = primacy_recency(episodes, num_samples=200)
    assert recency.value > 0.3 and recency.significant
    assert not primacy.significant


def test_recency_is_measured_when_episodes_are_shorter_than_twice_the_bins():
    # 17 steps in 10 bins: by c / T the last bin would hold only the last step's engrams, never remindable
    rng = np.random.default_rng(5)
    episodes = [flat_episode(rng, 17, lambda c, t: 0.6 if c >= t - 3 else 0.1) for _ in range(20)]
    curve = serial_position_curve(episodes, num_bins=10)
    assert not np.isnan(curve.reminder_rate).any()
    assert curve.num_engrams.sum() == 16 * 20  # every engram but the last step's
    primacy, recency = primacy_recency(episodes, num_samples=200)
    assert recency.value > 0.3 and recency.significant and not primacy.significant


def test_equal_reminder_rates_show_no_effect_but_counting_reminders_favours_early_engrams():
    rng = np.random.default_rng(2)
    episodes = [flat_episode(rng, 30, lambda c, t: 0.2) for _ in range(20)]
    primacy, recency = primacy_recency(episodes, num_samples=200)
    assert not primacy.significant and not recency.significant
    # the artefact the rate corrects: early engrams exist longer, so more of them are ever reminded
    raw_primacy, raw_recency = primacy_recency(episodes, measure="mean_times_reminded", num_samples=200)
    assert raw_primacy.value > 1 and raw_recency.value < -1


def contiguous_episode(rng: np.random.Generator, steps: int, width: int, extra: bool = True) -> Episode:
    """Each step reminds a run of engrams created at neighbouring steps (a random centre, ``width`` on each side)
    and, with ``extra``, one more engram at random."""
    created = np.arange(steps)
    reminded = [np.array([], dtype=np.int64)]
    for step in range(1, steps):
        centre = rng.integers(0, step)
        run = np.arange(max(0, centre - width), min(step, centre + width + 1))
        reminded.append(np.union1d(run, rng.integers(0, step, 1)) if extra else run)
    return Episode(steps, created.copy(), created, np.full(steps, steps), tuple(reminded))


def test_contiguity_peaks_at_small_lags_and_vanishes_in_the_control():
    rng = np.random.default_rng(3)
    episodes = [contiguous_episode(rng, 40, width=1) for _ in range(10)]
    crp = lag_crp(episodes, max_lag=5)
    assert crp.crp[crp.lags == 1][0] > crp.crp[crp.lags == 4][0]
    effect = contiguity(episodes, near=1, far=(3, 5), num_samples=200)
    assert effect.value > 5 and effect.significant
    assert effect.control == pytest.approx(1.0, abs=0.5)


def test_contiguity_without_far_pairs_is_infinite():
    rng = np.random.default_rng(3)
    runs_only = [contiguous_episode(rng, 40, width=1, extra=False) for _ in range(3)]
    crp = lag_crp(runs_only, max_lag=5)
    assert crp.actual[np.abs(crp.lags) >= 3].sum() == 0  # runs of 3 engrams: never 3 or more steps apart
    assert contiguity(runs_only, near=1, far=(3, 5), num_samples=20).value == float("inf")


def test_random_reminders_show_no_contiguity():
    rng = np.random.default_rng(4)
    episodes = [flat_episode(rng, 30, lambda c, t: 0.3) for _ in range(10)]
    effect = contiguity(episodes, num_samples=200)
    assert effect.value == pytest.approx(1.0, abs=0.2) and not effect.significant


def test_shuffle_keeps_which_engrams_exist_and_are_reminded():
    episode = episode_from_history(small_history())
    shuffled = shuffle_creation_times(episode, np.random.default_rng(0))
    assert sorted(shuffled.serial_position.tolist()) == sorted(episode.created.tolist())
    assert (shuffled.created == episode.created).all() and (shuffled.deleted == episode.deleted).all()
    assert shuffled.reminded == episode.reminded


def test_histories_recorded_by_memoria_are_analysed():
    torch.manual_seed(0)
    memoria = Memoria(4, 8, 3, 3, 4, keep_history=True, mode="paper")
    histories: List[HistoryManager] = []
    for _ in range(3):  # three episodes of 12 steps
        for _ in range(12):
            memoria.add_working_memory(torch.rand(2, 3, 8))
            _, indices = memoria.remind()
            memoria.adjust_lifespan_and_memories(indices, torch.full(indices.shape, 2.0))
        histories.extend(memoria.histories)
        memoria.reset_memory()
    curve = serial_position_curve(histories, by="absolute")
    assert curve.num_engrams.tolist() == [6 * 3 * 1] * 12  # 3 per row per step, 2 rows, 3 episodes
    assert curve.p_reminded[:-1].max() > 0
    crp = lag_crp(histories, max_lag=4)
    assert (crp.actual <= crp.available).all() and crp.available.sum() > 0


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: serial_position_curve([]), "at least one"),
        (lambda: serial_position_curve([HistoryManager()]), "no completed step"),
        (lambda: serial_position_curve([small_history()], by="step"), "by must be"),
        (lambda: lag_crp([small_history()], mode="later"), "mode must be"),
        (lambda: lag_crp([small_history()], max_lag=0), "max_lag"),
        (lambda: primacy_recency([small_history()], measure="age"), "measure must be"),
        (lambda: primacy_recency([small_history()], num_bins=6, edge_bins=3), "edge_bins"),
        (lambda: contiguity([small_history()], near=3, far=(2, 5)), "near"),
        (lambda: contiguity([small_history()], confidence=1.5), "confidence"),
    ],
)
def test_bad_arguments_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
