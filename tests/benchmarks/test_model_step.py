"""The experiment models' training step, counted by ``benchmarks.model_step``: the Memoria Transformer's model code
(Abstractor, memory attention, lifespan delta, resets) reads nothing back from the device, so with Memoria's static
shapes a segment makes no more host syncs than the plain Transformer's."""

from benchmarks.model_step import CONFIGS, measure

MEMORIA = str(CONFIGS / "memoria-gpt2-sort-small.json")
STATIC = MEMORIA + ":memoria_mode=paper,memoria_static_shapes=true,memoria_max_ltm_per_row=32"
PLAIN = str(CONFIGS / "gpt2-sort-small.json")


def test_a_static_shapes_memoria_segment_makes_no_more_syncs_than_the_plain_transformer():
    results = measure([STATIC, MEMORIA, PLAIN], segments=3, batch_size=2, length=8, samples=1, seed=0)
    assert results[STATIC]["syncs_per_segment"] <= results[PLAIN]["syncs_per_segment"]
    assert results[MEMORIA]["syncs_per_segment"] > results[STATIC]["syncs_per_segment"]  # the counter sees syncs
    for row in results.values():
        assert row["ops_per_segment"] > 0 and row["cpu_s_per_segment"] > 0
