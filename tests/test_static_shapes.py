"""``Memoria(static_shapes=True)``: the paper's step on fixed-capacity buffers (memoria/static.py).

Checked against the default path of the same mode (``mode="paper"``, same ``max_ltm_per_row``) on benchmark-style
inputs: the same engrams and the same reminded engrams, compared by engram id, step after step. The default path
breaks ties between equal counts with random noise and the static path by the oldest engram; the comparisons give
the default path noise that is all equal (:func:`equal_noise`), under which it breaks ties by the oldest engram too.
"""

from typing import Dict, List, Optional, Set, Tuple

import pytest
import torch
import torch.nn.functional as F

from benchmarks.counting import count
from benchmarks.workload import ALPHA
from memoria import Engrams, EngramType, Memoria
from memoria.static import StaticMemoria
from memoria.store import EngramStore

B, W, D = 3, 6, 32
SETTINGS = dict(
    num_reminded_stm=5, stm_capacity=18, ltm_search_depth=3, initial_lifespan=4, num_final_ltms=6, mode="paper"
)


@pytest.fixture
def equal_noise(monkeypatch):
    """The default path's tie-breaking noise, all equal: ties between equal counts go to the lowest position, the
    oldest engram, as on the static path."""

    def zeros(store: EngramStore, entries: int) -> torch.Tensor:
        return torch.zeros(store.batch_size, entries, store.length, dtype=torch.float16, device=store.device)

    monkeypatch.setattr(EngramStore, "seed_noise", zeros)


def hidden_states(step: int, batch: int = B, length: int = W, dim: int = D) -> torch.Tensor:
    """LayerNorm-scale hidden states shaped [B, W, D], as benchmarks.workload draws them."""
    generator = torch.Generator().manual_seed(1000 + step)
    return F.layer_norm(torch.randn(batch, length, dim, generator=generator), (dim,))


def attention_delta(indices: torch.Tensor, ids: torch.Tensor, step: int) -> torch.Tensor:
    """Attention-like lifespan deltas for ``indices`` [B, R] (-1 padded) whose engram ids are ``ids`` [B, R]: per
    row a softmax over the reminded engrams times their number times alpha, as benchmarks.workload computes them,
    with each engram's logit drawn from its id (so that both paths give an engram the same delta in any order)."""
    logits = torch.sin(ids.double() * 12.9898 + step * 78.233).mul(43758.5453).frac().mul(4.0).float()  # [B, R]
    valid = indices >= 0
    weights = torch.softmax(logits.masked_fill(~valid, float("-inf")), dim=-1).nan_to_num(0.0)
    return weights * valid.sum(-1, keepdim=True) * ALPHA


def ids_at(memoria: Memoria, indices: torch.Tensor) -> torch.Tensor:
    """Engram ids at ``indices`` [B, R] (-1 where -1)."""
    ids = memoria.store.engram_ids
    return torch.where(indices >= 0, ids.gather(1, indices.clamp(min=0)), -1)


def engrams_by_id(memoria: Memoria) -> List[Dict[int, Tuple[int, float]]]:
    """Per row: engram id -> (type, lifespan) of every live engram."""
    store = memoria.store
    rows = []
    for ids, types, lifespan in zip(store.engram_ids.tolist(), store.engrams_types.tolist(), store.lifespan.tolist()):
        rows.append({i: (t, life) for i, t, life in zip(ids, types, lifespan) if t != EngramType.NULL.value})
    return rows


def counts_by_id(memoria: Memoria) -> torch.Tensor:
    """Hebbian counts among the live engrams of each row, ordered by id: [B, L, L] (rows with fewer are padded -2)."""
    store = memoria.store
    ids = store.engram_ids.masked_fill(store.engrams_types == EngramType.NULL.value, -1)
    live = (ids >= 0).sum(1)
    L = int(live.max())
    out = torch.full((store.batch_size, L, L), -2, dtype=torch.int32)
    for row in range(store.batch_size):
        order = ids[row].argsort()[-int(live[row]) :] if live[row] else ids[row][:0]
        n = order.numel()
        out[row, :n, :n] = store.induce_counts[row][order][:, order]
    return out


def step(memoria: Memoria, index: int) -> torch.Tensor:
    """One step with benchmark-style inputs; returns the reminded engram ids [B, R] (-1 padded)."""
    memoria.add_working_memory(hidden_states(index))
    _, indices = memoria.remind()
    ids = ids_at(memoria, indices)
    memoria.adjust_lifespan_and_memories(indices, attention_delta(indices, ids, index))
    return ids


def as_sets(ids: torch.Tensor) -> List[Set[int]]:
    return [{i for i in row if i >= 0} for row in ids.tolist()]


def longterm_per_row(memoria: Memoria) -> int:
    return int((memoria.store.engrams_types == EngramType.LONGTERM.value).sum(1).max())


def assert_same_engrams(default: Memoria, static: Memoria, when: str) -> None:
    expected, actual = engrams_by_id(default), engrams_by_id(static)
    for row, (e, a) in enumerate(zip(expected, actual)):
        assert e.keys() == a.keys(), f"{when}, row {row}: engram ids"
        assert [e[i][0] for i in e] == [a[i][0] for i in e], f"{when}, row {row}: types"
        assert torch.allclose(torch.tensor([e[i][1] for i in e]), torch.tensor([a[i][1] for i in e]), atol=1e-4), when
    assert torch.equal(counts_by_id(default), counts_by_id(static)), f"{when}: Hebbian counts"


# ------------------------------------------------------------------------------------------ same as the default
@pytest.mark.parametrize("bound", [400, 12], ids=["bound-not-binding", "bound-binding"])
def test_static_path_keeps_and_reminds_the_same_engrams_as_the_default_path(equal_noise, bound):
    default = Memoria(**SETTINGS, max_ltm_per_row=bound, track_id=True)
    static = Memoria(**SETTINGS, max_ltm_per_row=bound, track_id=True, static_shapes=True)
    most_longterm = 0
    for index in range(60):
        expected, actual = step(default, index), step(static, index)
        assert as_sets(expected) == as_sets(actual), f"step {index}: reminded engrams"
        assert_same_engrams(default, static, f"step {index}")
        most_longterm = max(most_longterm, longterm_per_row(default))
    if bound == 400:
        assert 12 < most_longterm < bound, "the bound never bound, and the graph walk had LTM engrams to walk"
    else:
        assert most_longterm == bound, "the bound bound"
