"""The recall algorithm on small hand-built graphs (paper mode), each expected result derived in a comment.

The graph of one batch row (position: name, type, vector):

    0: A  LONGTERM  (5, 0)        Hebbian counts (symmetric; unlisted pairs 0):
    1: B  LONGTERM  (0, 1)          S1-A 1, S1-B 3, S2-E 4,
    2: C  LONGTERM  (1, 1)          A-B 2, B-C 5, C-E 1
    3: E  LONGTERM  (9, 9)
    4: S1 SHORTTERM (0, 0.1)
    5: S2 SHORTTERM (8, 8)
    6: w  WORKING   (0, 0)        this step's working memory
"""

import torch

from examples.attention_over_reminded import attend_to_reminded
from memoria import EngramType, Memoria
from memoria.recall import recall_shortterm, seed_longterm, select_longterm, walk_longterm
from memoria.similarity import Similarity, WorkingMemoryQuery
from tests.helpers import rewarded_steps

A, B, C, E, S1, S2, WORKING = range(7)
LINKS = {(S1, A): 1, (S1, B): 3, (S2, E): 4, (A, B): 2, (B, C): 5, (C, E): 1}


def hand_built(ltm_search_depth: int = 2, num_final_ltms: int = 2) -> Memoria:
    """A paper-mode Memoria holding the graph above, waiting for remind()."""
    settings = dict(num_reminded_stm=1, stm_capacity=8, initial_lifespan=5, mode="paper")
    memoria = Memoria(**settings, ltm_search_depth=ltm_search_depth, num_final_ltms=num_final_ltms)
    counts = torch.zeros(1, 7, 7, dtype=torch.int32)
    for (i, j), count in LINKS.items():
        counts[0, i, j] = counts[0, j, i] = count
    for i in range(6):
        counts[0, i, i] = 5  # each stored engram fired 5 times; working memory has not fired yet
    types = [EngramType.LONGTERM] * 4 + [EngramType.SHORTTERM] * 2 + [EngramType.WORKING]
    state = memoria.state_dict()
    state["expected_call"] = "remind"
    state["engrams"] = {
        "batch_size": 1,
        "hidden_dim": 2,
        "next_id": 7,
        "data": torch.tensor([[[5.0, 0], [0, 1], [1, 1], [9, 9], [0, 0.1], [8, 8], [0, 0]]]),
        "lifespan": torch.full((1, 7), 5.0),
        "engrams_types": torch.tensor([[t.value for t in types]], dtype=torch.uint8),
        "induce_counts": counts,
        "age": None,
        "engram_ids": None,
    }
    memoria.load_state_dict(state)
    return memoria


def steps(memoria: Memoria, depth: int = 2, num_final: int = 2):
    store = memoria.store
    query = WorkingMemoryQuery(Similarity("gaussian"), store.data_at(torch.tensor([[WORKING]])), store)
    recalled = recall_shortterm(store, query, 1, paper=True)
    longterm = store.longterm_window()
    seeds = seed_longterm(store, longterm, recalled, paper=True)
    found = walk_longterm(longterm, seeds, depth, paper=True)
    return recalled, seeds, found, select_longterm(query, found, num_final, paper=True)


def test_each_step_of_recall_on_a_hand_built_graph():
    recalled, seeds, found, selected = steps(hand_built())
    # STM recall: squared distances to w = (0, 0) are S1 0.01, S2 128; the closest one is recalled, aligned with
    # the STM list [S1, S2]
    assert recalled.tolist() == [[S1, -1]]
    # seeding: S1's counts to the LTMs are A 1, B 3, E 0; the strongest link is B
    assert seeds.tolist() == [[B]]
    # walk, depth 2: from B the unvisited LTMs have counts A 2, C 5, E 0 -> C; from C: A 0, E 1 -> E.
    # A is linked to B, but the greedy walk took the stronger link, so A is never found
    assert sorted(found[found >= 0].tolist()) == [B, C, E]
    # selection of 2: squared distances to w are B 1, C 2, E 162 -> B then C
    assert selected.tolist() == [[B, C]]


def test_the_walk_stops_where_no_link_leads_on():
    # depth 3: from E the only unvisited LTM is A, with count 0: a walk moves only through links (count >= 1)
    _, _, found, _ = steps(hand_built(), depth=3)
    assert sorted(found[found >= 0].tolist()) == [B, C, E]
    # depth 0: the seeds alone
    _, _, found, _ = steps(hand_built(), depth=0)
    assert found.tolist() == [[B]]


def test_remind_returns_the_recalled_stm_and_selected_ltm_and_fires_them_with_working_memory():
    memoria = hand_built()
    memories, indices = memoria.remind()
    # paper mode: distinct positions in ascending order: B, C, S1
    assert indices.tolist() == [[B, C, S1]]
    assert torch.equal(memories, memoria.store.data[:, [B, C, S1]])
    # firing together: every pair among w, B, C, S1 gains 1 (B-C 5 -> 6, S1-B 3 -> 4, w-S1 0 -> 1, ...)
    counts = memoria.store.induce_counts[0]
    assert counts[B, C] == 6 and counts[S1, B] == 4 and counts[WORKING, S1] == 1 and counts[WORKING, WORKING] == 1
    assert counts[A, B] == 2 and counts[S2, E] == 4  # engrams that did not fire keep their counts


def test_attention_over_reminded_memories_stays_finite_for_rows_with_none():
    """README, "Attention over reminded memories": a row reset (or at its first step) has only -1 indices."""
    torch.manual_seed(0)
    memoria = Memoria(num_reminded_stm=2, stm_capacity=4, ltm_search_depth=2, initial_lifespan=3, num_final_ltms=2)
    rewarded_steps(memoria, 3, batch_size=2, width=3, hidden_size=8)
    memoria.reset_memory(rows=[0])
    memoria.add_working_memory(torch.rand(2, 3, 8))
    memories, indices = memoria.remind()
    assert (indices[0] < 0).all() and (indices[1] >= 0).any(), "row 0 has nothing reminded, row 1 has"

    queries = torch.rand(2, 5, 8, requires_grad=True)
    naive_scores = (queries @ memories.transpose(1, 2)).masked_fill((indices < 0)[:, None, :], float("-inf"))
    assert naive_scores.softmax(-1)[0].isnan().all(), "the plain masked softmax gives NaN in row 0"

    out = attend_to_reminded(queries, memories, indices)
    out.sum().backward()
    assert out.isfinite().all() and queries.grad.isfinite().all()
    assert torch.equal(out[0], torch.zeros(5, 8)), "a row with nothing reminded attends to nothing"
    valid = indices[1] >= 0
    expected = ((queries[1] @ memories[1, valid].T) / 8**0.5).softmax(-1) @ memories[1, valid]
    torch.testing.assert_close(out[1], expected)
