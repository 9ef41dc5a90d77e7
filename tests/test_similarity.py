"""Similarity kernels and the working-memory query: scores equal to their brute-force definitions."""

import pytest
import torch

from memoria import EngramType, Memoria
from memoria.similarity import Similarity, WorkingMemoryQuery
from tests.helpers import rewarded_steps


def brute_distances(working: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    return ((working[:, :, None] - keys[:, None]) ** 2).sum(-1)  # [B, W, S]


def test_gaussian_in_log_space_ranks_like_the_kernel_and_pools_like_its_mean():
    torch.manual_seed(0)
    working, keys = torch.rand(2, 3, 5), torch.rand(2, 7, 5)
    similarity = Similarity("gaussian")
    scores = similarity.scores(working, keys)
    torch.testing.assert_close(scores, -brute_distances(working, keys))
    pooled = similarity.pooled(working, keys, reduce="mean")  # log(sum exp(-d^2)) = log(mean) + log(W)
    torch.testing.assert_close(pooled.exp(), torch.exp(-brute_distances(working, keys)).sum(1))


def test_log_space_stays_finite_and_ordered_where_the_kernel_underflows():
    working = torch.zeros(1, 1, 4)
    keys = torch.tensor([[[20.0, 0, 0, 0], [30.0, 0, 0, 0]]])  # squared distances 400 and 900: exp underflows
    assert (torch.exp(-brute_distances(working, keys)) == 0).all()
    pooled = Similarity("gaussian").pooled(working, keys)
    assert pooled.isfinite().all() and pooled[0, 0] > pooled[0, 1]


@pytest.mark.parametrize("name", ["l2", "cosine"])
def test_named_kernels_match_their_definitions(name):
    torch.manual_seed(1)
    working, keys = torch.rand(2, 3, 5), torch.rand(2, 4, 5)
    expected = (
        -brute_distances(working, keys)
        if name == "l2"
        else torch.nn.functional.cosine_similarity(working[:, :, None], keys[:, None], dim=-1)
    )
    torch.testing.assert_close(Similarity(name).scores(working, keys), expected)


def test_a_callable_must_return_one_score_per_pair():
    with pytest.raises(ValueError, match="BatchSize, WorkingLength, KeyLength"):
        Similarity(lambda w, k: w.sum(-1)).scores(torch.rand(1, 2, 3), torch.rand(1, 4, 3))
    with pytest.raises(ValueError, match="similarity must be one of"):
        Similarity("dot")


def test_query_scores_stored_engrams_in_place_and_gathered_alike():
    torch.manual_seed(2)
    memoria = Memoria(num_reminded_stm=2, stm_capacity=6, ltm_search_depth=1, initial_lifespan=4, num_final_ltms=2)
    store = rewarded_steps(memoria, 6, batch_size=2, width=3, hidden_size=4).store
    working = torch.rand(2, 3, 4)
    query = WorkingMemoryQuery(Similarity("l2"), working, store)
    stm = store.positions(EngramType.SHORTTERM)  # side by side: scored in place
    assert store.key_window(stm) is not None
    expected = -brute_distances(working, store.data_at(stm)).mean(1)  # -1 entries are zero vectors
    torch.testing.assert_close(query.scores(stm, reduce="mean"), expected)
    scattered = torch.tensor([[0, store.length - 1], [-1, 1]])
    torch.testing.assert_close(
        query.scores(scattered, reduce="sum"), -brute_distances(working, store.data_at(scattered)).sum(1)
    )
