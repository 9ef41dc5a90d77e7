"""The op and sync counter of benchmarks/counting.py sees what a GPU step would pay for."""

import torch

from benchmarks.counting import count


def test_each_kind_of_host_sync_is_counted_once():
    t = torch.arange(6.0)
    mask = t > 2
    for name, sync in {
        "item": lambda: t[0].item(),
        "bool": lambda: bool(mask.any()),
        "tolist": lambda: t.tolist(),
        "nonzero": lambda: mask.nonzero(),
        "unique": lambda: t.unique(),
        "masked_select": lambda: t.masked_select(mask),
        "boolean-mask indexing": lambda: t[mask],
        "boolean-mask assignment": lambda: t.clone().__setitem__(mask, 0.0),
        "equal": lambda: torch.equal(t, t),
        "repeat_interleave without output_size": lambda: t.repeat_interleave(torch.ones(6, dtype=torch.long)),
    }.items():
        assert count(sync).syncs == 1, name


def test_masked_ops_and_fixed_width_ops_do_not_sync():
    t = torch.arange(6.0)
    counts = count(lambda: (t.masked_fill(t > 2, 0.0).topk(3), torch.where(t > 1, t, -t), t[torch.tensor([0, 2])]))
    assert counts.syncs == 0
    assert counts.ops >= 5


def test_views_launch_nothing_and_are_not_counted():
    t = torch.arange(6.0)
    assert count(lambda: t.view(2, 3).transpose(0, 1)[0].unsqueeze(0)).ops == 0
    assert count(lambda: t + 1).by_op == {"add": 1}


def test_profiler_ranges_launch_nothing_and_are_not_counted():
    t = torch.arange(6.0)

    def ranged():
        with torch.profiler.record_function("range"):
            return t + 1

    assert count(ranged).by_op == {"add": 1}
