import gzip
import json

import pytest
import torch

from memoria import HistoryManager, Memoria


def history_run(steps: int = 8) -> Memoria:
    torch.manual_seed(0)
    memoria = Memoria(3, 4, 2, 2, 3, keep_history=True, track_age=True)
    for _ in range(steps):
        memoria.add_working_memory(torch.rand(2, 3, 8))
        _, indices = memoria.remind()
        memoria.adjust_lifespan_and_memories(indices, torch.full(indices.shape, 2.0))
    return memoria


def test_one_history_per_row_with_a_summary_per_step():
    memoria = history_run()
    assert len(memoria.histories) == 2
    for row, history in enumerate(memoria.histories):
        assert history.timestep == 8 and len(history.summaries) == 8
        last = history.summaries[-1]
        live_ids = set(memoria.engrams.engram_ids[row][memoria.engrams.engrams_types[row] != 0].tolist())
        assert set(last.engrams) == live_ids
        for (source, target), edge in last.edges.items():
            assert 0 < edge.weight <= 1 and edge.source_id == source and edge.target_id == target


def test_inspect_reports_creation_firings_and_deletion():
    history = history_run().histories[0]
    deleted = history.deleted_engram_ids[0]
    record = history.inspect(deleted)
    assert record.creation_timestep == 0 and record.deletion_timestep is not None
    assert record.duration == record.deletion_timestep - record.creation_timestep
    assert record.firing_times and record.firing_times[0] == 0  # working memory fires when created
    assert all(f.engram_id == deleted for f in record.firings)


def test_history_save_load_round_trip_is_exact(tmp_path):
    history = history_run().histories[1]
    path = tmp_path / "history.json.gz"
    history.save(str(path))
    assert path.read_bytes()[:2] == b"\x1f\x8b"  # gzip, not pickle
    assert HistoryManager.load(str(path)) == history


# ------------------------------------------------------------------------------------------ bounded history
def records(history: HistoryManager) -> int:
    """Everything a history holds that could grow with the steps."""
    return (
        len(history.summaries)
        + sum(len(s.engrams) + len(s.edges) for s in history.summaries)
        + sum(len(step) for step in history.firings_per_time)
        + sum(len(f) for f in history.engram_firings.values())
        + len(history.engram_creation_times)
        + len(history.engram_deletion_times)
    )


def test_history_window_bounds_what_a_long_run_holds():
    """A soak: after 150 steps a window of 10 holds about what it held after 30 (records counted, not bytes)."""
    torch.manual_seed(0)
    memoria = Memoria(2, 3, 2, 2, 2, keep_history=True, history_window=10, max_ltm_per_row=6)
    held = []
    for step in range(150):
        memoria.add_working_memory(torch.rand(2, 2, 4))
        _, indices = memoria.remind()
        memoria.adjust_lifespan_and_memories(indices, torch.ones(indices.shape))
        held.append(records(memoria.histories[0]))
    history = memoria.histories[0]
    assert history.timestep == 150 and history.first_timestep == 140 and not history.complete
    assert len(history.summaries) == len(history.firings_per_time) == 10
    assert max(held[50:]) <= 1.5 * max(held[20:30])  # flat once the window is full, not growing with the steps
    assert all(f.timestep >= 140 for firings in history.engram_firings.values() for f in firings)
    assert all(t >= 140 for t in history.engram_deletion_times.values())
    alive = set(memoria.store.engram_ids[0][memoria.store.engrams_types[0] != 0].tolist())
    assert alive <= set(history.engram_creation_times)  # engrams alive keep their creation time


def test_a_window_keeps_exactly_the_last_steps_of_the_full_history():
    full, windowed = history_run(12), None
    torch.manual_seed(0)
    windowed = Memoria(3, 4, 2, 2, 3, keep_history=True, track_age=True, history_window=5)
    for _ in range(12):
        windowed.add_working_memory(torch.rand(2, 3, 8))
        _, indices = windowed.remind()
        windowed.adjust_lifespan_and_memories(indices, torch.full(indices.shape, 2.0))
    a, b = full.histories[0], windowed.histories[0]
    assert b.summaries == a.summaries[-5:] and b.firings_per_time == a.firings_per_time[-5:]
    for engram_id in b.engram_creation_times:
        assert b.engram_creation_times[engram_id] == a.engram_creation_times[engram_id]
        assert b.engram_firings.get(engram_id, []) == [
            f for f in a.engram_firings.get(engram_id, []) if f.timestep >= 7
        ]
    gone = set(a.engram_creation_times) - set(b.engram_creation_times)
    assert gone and all(a.engram_deletion_times[i] <= 7 for i in gone)
    with pytest.raises(KeyError, match="deleted before step 7"):
        b.inspect(min(gone))


def test_default_window_and_none_keeps_every_step():
    assert Memoria(3, 4, 2, 2, 3, keep_history=True).history_window == 100
    torch.manual_seed(0)
    memoria = Memoria(3, 4, 2, 2, 3, keep_history=True, history_window=None)
    for _ in range(6):
        memoria.add_working_memory(torch.rand(2, 3, 8))
        _, indices = memoria.remind()
        memoria.adjust_lifespan_and_memories(indices, torch.full(indices.shape, 2.0))
    assert memoria.histories[0].complete and len(memoria.histories[0].summaries) == 6


# ------------------------------------------------------------------------------------------ files
def test_windowed_history_round_trips(tmp_path):
    history = history_run(9).histories[0]
    history.forget_before(4)
    path = tmp_path / "h.json.gz"
    history.save(path)
    assert HistoryManager.load(path) == history


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not gzip at all", "BadGzipFile"),
        (None, "EOFError"),  # a valid file cut in half
        (gzip.compress(b'{"timestep": 1'), "JSONDecodeError"),
        (gzip.compress(b"[1, 2]"), "not a history"),
        (gzip.compress(json.dumps({"timestep": 2, "summaries": []}).encode()), "not a history"),
        (gzip.compress(b"\xff\xfe"), "UnicodeDecodeError"),
    ],
    ids=["not-gzip", "truncated", "bad-json", "a-list", "missing-fields", "not-utf8"],
)
def test_a_bad_history_file_raises_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.json.gz"
    if content is None:
        history_run(4).histories[0].save(path)
        content = path.read_bytes()[: len(path.read_bytes()) // 2]
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"{path}.*{message}"):
        HistoryManager.load(path)


def test_history_steps_that_do_not_add_up_are_refused():
    state = history_run(3).histories[0].to_dict()
    state["timestep"] = 5
    with pytest.raises(ValueError, match="steps 0..5 need 5 summaries"):
        HistoryManager.from_dict(state)


def test_saving_replaces_the_file_only_when_complete(tmp_path, monkeypatch):
    """A save that fails midway leaves the previous file whole and no temporary file behind."""
    path = tmp_path / "h.json.gz"
    old = history_run(2).histories[0]
    old.save(path)
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise RuntimeError("killed while writing")

    monkeypatch.setattr(json, "dump", fail)
    with pytest.raises(RuntimeError, match="killed"):
        history_run(4).histories[0].save(path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["h.json.gz"]


def test_readers_refuse_a_history_that_lacks_its_first_steps():
    from memoria.analysis import episode_from_history
    from memoria.plotting import plot_engrams

    history = history_run(6).histories[0]
    history.forget_before(2)
    with pytest.raises(ValueError, match=r"history holds steps 2..5 only.*history_window=None"):
        episode_from_history(history)
    with pytest.raises(ValueError, match=r"history holds steps 2..5 only"):
        plot_engrams(history, 3)
