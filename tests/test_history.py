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
