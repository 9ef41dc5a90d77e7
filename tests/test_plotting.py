"""Figures of recorded histories: what is drawn equals what memoria.analysis computed, and files are written."""

import sys

import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")

from memoria import HistoryManager, Memoria  # noqa: E402
from memoria.analysis import (  # noqa: E402
    episode_from_history,
    lag_crp,
    serial_position_curve,
    shuffle_creation_times,
)
from memoria.plotting import (  # noqa: E402
    AREA_PER_LIFESPAN,
    LIFESPAN_SHOWN,
    animate_history,
    plot_engrams,
    plot_lag_crp,
    plot_serial_position,
)


@pytest.fixture(scope="module")
def histories():
    """Two rows of a Memoria run of 10 steps with random lifespan deltas."""
    torch.manual_seed(0)
    memoria = Memoria(
        num_reminded_stm=3, stm_capacity=8, ltm_search_depth=3, initial_lifespan=3, num_final_ltms=3, keep_history=True
    )
    for _ in range(10):
        memoria.add_working_memory(torch.rand(2, 4, 8))
        _, indices = memoria.remind()
        memoria.adjust_lifespan_and_memories(indices, torch.randint_like(indices, 0, 6).float())
    return memoria.histories


def test_serial_position_axes_hold_the_curves(histories):
    curves = {"row 0": serial_position_curve(histories[:1]), "both": serial_position_curve(histories)}
    measures = ("reminder_rate", "p_reminded", "p_alive_at_end")
    figure = plot_serial_position(curves, measures=measures)
    assert len(figure.axes) == len(measures)
    for axis, measure in zip(figure.axes, measures):
        lines = axis.get_lines()
        assert [line.get_label() for line in lines] == list(curves)
        for line, curve in zip(lines, curves.values()):
            np.testing.assert_array_equal(line.get_xdata(), curve.positions)
            np.testing.assert_array_equal(line.get_ydata(), getattr(curve, measure))


def test_serial_position_control_is_drawn_dashed_beside_its_curve(histories):
    rng = np.random.default_rng(0)
    shuffled = [shuffle_creation_times(episode_from_history(h), rng) for h in histories]
    curve, control = serial_position_curve(histories), serial_position_curve(shuffled)
    figure = plot_serial_position({"recorded": curve}, measures=("p_reminded",), controls={"recorded": control})
    solid, dashed = figure.axes[0].get_lines()
    assert dashed.get_linestyle() == "--" and dashed.get_color() == solid.get_color()
    np.testing.assert_array_equal(dashed.get_ydata(), control.p_reminded)


def test_lag_crp_axes_hold_the_crp_with_a_gap_at_lag_zero(histories):
    crp = lag_crp(histories, max_lag=4)
    figure = plot_lag_crp(crp)
    (line,) = figure.axes[0].get_lines()
    np.testing.assert_array_equal(line.get_xdata(), crp.lags)
    expected = crp.crp.copy()
    expected[crp.lags == 0] = np.nan
    np.testing.assert_array_equal(line.get_ydata(), expected)


def test_figures_are_written_where_asked_and_read_back(histories, tmp_path):
    serial = plot_serial_position(serial_position_curve(histories), tmp_path / "a" / "serial.png", dpi=50)
    crp = plot_lag_crp({"x": lag_crp(histories)}, tmp_path / "crp.png", dpi=50)
    engrams = plot_engrams(histories[0], 3, tmp_path / "engrams.png", dpi=50)
    assert serial == tmp_path / "a" / "serial.png"
    for path, inches in ((serial, (12.6, 3.5)), (crp, (5.4, 3.7)), (engrams, (8.0, 4.0))):
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.size == (round(inches[0] * 50), round(inches[1] * 50))


def test_engram_frame_draws_every_alive_engram_at_its_creation_step(histories):
    history, step = histories[1], 7
    figure = plot_engrams(history, step)
    (points,) = figure.axes[0].collections[1:]  # [0] holds the links
    alive = sorted(history.summaries[step].engrams)
    xs = points.get_offsets()[:, 0]
    assert xs.tolist() == [history.engram_creation_times[i] for i in alive]
    # marker area follows lifespan
    lifespans = np.array([history.summaries[step].engrams[i].lifespan for i in alive])
    np.testing.assert_allclose(points.get_sizes(), AREA_PER_LIFESPAN * np.clip(lifespans, *LIFESPAN_SHOWN))
    assert len(np.unique(lifespans)) > 1
    # reminded engrams (fired at this step, created before it) get the thick outline
    fired = {f.engram_id for f in history.firings_per_time[step]}
    reminded = [i in fired and history.engram_creation_times[i] < step for i in alive]
    assert (np.asarray(points.get_linewidths()) > 1).tolist() == reminded
    assert any(reminded)


def test_animation_has_one_frame_per_step(histories, tmp_path):
    path = animate_history(histories[0], tmp_path / "engrams.gif", dpi=40, colours=32)
    with Image.open(path) as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == histories[0].timestep
        assert gif.size == (320, 160)
        assert gif.info["loop"] == 0
    chosen = animate_history(histories[0], tmp_path / "some.gif", steps=[0, 5, 9], dpi=40)
    with Image.open(chosen) as gif:
        assert gif.n_frames == 3
        frames = []
        for index in range(3):
            gif.seek(index)
            frames.append(np.asarray(gif.convert("RGB")))
    assert not np.array_equal(frames[0], frames[2])  # the engrams changed between step 0 and step 9


def test_bad_arguments_are_refused(histories, tmp_path):
    with pytest.raises(ValueError, match="path must end in .gif"):
        animate_history(histories[0], tmp_path / "engrams.png")
    with pytest.raises(ValueError, match="steps must be"):
        animate_history(histories[0], tmp_path / "engrams.gif", steps=[10])
    with pytest.raises(ValueError, match=r"step must lie in \[0, 10\)"):
        plot_engrams(histories[0], 10)
    with pytest.raises(ValueError, match="no completed step"):
        plot_engrams(HistoryManager(), 0)
    with pytest.raises(TypeError, match="curves must be a SerialPositionCurve"):
        plot_serial_position([serial_position_curve(histories)])
    with pytest.raises(ValueError, match="measures must name fields"):
        plot_serial_position(serial_position_curve(histories), measures=("accuracy",))


def test_missing_matplotlib_names_the_extra(histories, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import of it now raises ImportError
    with pytest.raises(ImportError, match=r"memoria-pytorch\[analysis\]"):
        plot_lag_crp(lag_crp(histories))
